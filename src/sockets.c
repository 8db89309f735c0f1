/* sockets.c: owning the listening sockets. The supervisor keeps every listening fd open
 * for its whole life: while it does, the kernel goes on queueing connections even at
 * moments when no worker is accepting, which is what makes an upgrade invisible. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "sockets.h"

/* The kernel caps this at net.core.somaxconn; ask for plenty so bursts during an
 * upgrade queue instead of being refused. */
#define LISTEN_BACKLOG 4096

static int add_socket(struct socket_set *set, int fd, const char *name) {
        struct listen_socket *p = reallocarray(set->sockets, set->n + 1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        set->sockets = p;
        char *n = strdup(name);
        if (!n)
                return -ENOMEM;
        set->sockets[set->n++] = (struct listen_socket){ .fd = fd, .name = n };
        return 0;
}

int sockets_from_systemd(struct socket_set *set) {
        char **names = NULL;
        int n = sd_listen_fds_with_names(1, &names);
        if (n <= 0) {
                strv_free(names);
                return n;
        }
        int r = 0;
        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i;
                if (r >= 0)
                        r = add_socket(set, fd, names && names[i] ? names[i] : "unknown");
                if (r < 0)
                        close(fd);
        }
        strv_free(names);
        return r < 0 ? r : n;
}

/* bind() creates the file with 0777 minus the umask, and fchmod() on the socket before
 * bind() does not reach the file on Linux. A chmod() after bind() would leave a moment
 * in which the socket has the wrong mode; the umask set around bind() instead gives the
 * file its mode as it is created. The supervisor is single-threaded, so nothing else can
 * create a file under the borrowed umask. (A default ACL on the directory takes
 * precedence over any umask, as it does for systemd's SocketMode=.) */
static int bind_with_mode(int fd, const struct sockaddr_un *sa, mode_t mode) {
        mode_t saved = umask(~mode & 0777);
        int r = bind(fd, (const struct sockaddr *) sa, sizeof(*sa));
        int error = errno;
        umask(saved);
        errno = error;
        return r;
}

static int bind_unix(const char *path, mode_t mode, int *ret_fd) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof(sa.sun_path))
                return log_error_errno(ENAMETOOLONG, "Socket path %s is too long (at most %zu bytes)", path,
                                       sizeof(sa.sun_path) - 1);
        strcpy(sa.sun_path, path);

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return log_error_errno(errno, "Cannot create unix socket: %m");

        /* Replace a socket file left behind by a dead process, never a live one. */
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
                _cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (probe >= 0 && connect(probe, (struct sockaddr *) &sa, sizeof(sa)) < 0 && errno == ECONNREFUSED)
                        unlink(path);
        }
        if (bind_with_mode(fd, &sa, mode) < 0)
                return log_error_errno(errno, "Cannot bind %s: %m", path);
        if (listen(fd, LISTEN_BACKLOG) < 0)
                return log_error_errno(errno, "Cannot listen on %s: %m", path);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int sockets_parse_inet(const char *spec, const char *default_address, struct sockaddr_storage *ss, socklen_t *len) {
        char host[256];
        const char *port;

        if (spec[0] == '[') {
                const char *end = strchr(spec, ']');
                if (!end || end[1] != ':' || (size_t) (end - spec - 1) >= sizeof(host))
                        return -EINVAL;
                memcpy(host, spec + 1, end - spec - 1);
                host[end - spec - 1] = 0;
                port = end + 2;
        } else {
                const char *colon = strrchr(spec, ':');
                if (!colon) {
                        snprintf(host, sizeof(host), "%s", default_address);
                        port = spec;
                } else if (colon == spec) {
                        snprintf(host, sizeof(host), "%s", default_address);
                        port = colon + 1;
                } else {
                        if ((size_t) (colon - spec) >= sizeof(host))
                                return -EINVAL;
                        memcpy(host, spec, colon - spec);
                        host[colon - spec] = 0;
                        port = colon + 1;
                }
        }

        /* Digits only: strtoul() would also take blanks and a sign, and wrap "-1". */
        char *end;
        errno = 0;
        unsigned long p = strtoul(port, &end, 10);
        if (errno || !isdigit((unsigned char) port[0]) || *end || p == 0 || p > 65535)
                return -EINVAL;

        memset(ss, 0, sizeof(*ss));
        struct sockaddr_in *in4 = (struct sockaddr_in *) ss;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) ss;
        if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
                in4->sin_family = AF_INET;
                in4->sin_port = htons((uint16_t) p);
                *len = sizeof(*in4);
        } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons((uint16_t) p);
                *len = sizeof(*in6);
        } else
                return -EINVAL;
        return 0;
}

static int bind_inet(const char *spec, const char *default_address, int *ret_fd) {
        struct sockaddr_storage ss;
        socklen_t len;
        if (sockets_parse_inet(spec, default_address, &ss, &len) < 0)
                return log_error_errno(
                        EINVAL, "Invalid listen address '%s' (expected ADDR:PORT, [ADDR]:PORT, PORT or a path)", spec);

        _cleanup_close_ int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return log_error_errno(errno, "Cannot create socket for %s: %m", spec);
        int one = 1;
        /* SO_REUSEADDR so a restarted supervisor can bind while old connections sit in TIME_WAIT. */
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
                return log_error_errno(errno, "Cannot set SO_REUSEADDR on %s: %m", spec);
        if (ss.ss_family == AF_INET6)
                (void) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *) &ss, len) < 0)
                return log_error_errno(errno, "Cannot bind %s: %m", spec);
        if (listen(fd, LISTEN_BACKLOG) < 0)
                return log_error_errno(errno, "Cannot listen on %s: %m", spec);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int sockets_bind(struct socket_set *set, const char *spec, const char *default_address, mode_t unix_mode) {
        int fd = -1, r;
        if (strchr(spec, '/'))
                r = bind_unix(spec, unix_mode, &fd);
        else
                r = bind_inet(spec, default_address ?: "127.0.0.1", &fd);
        if (r < 0)
                return r;
        r = add_socket(set, fd, "liveswap");
        if (r < 0) {
                close(fd);
                return log_error_errno(r, "Out of memory");
        }
        struct stat st;
        struct listen_socket *s = &set->sockets[set->n - 1];
        if (strchr(spec, '/') && stat(spec, &st) == 0) {
                s->path = strdup(spec); /* without it the file merely stays behind */
                s->dev = st.st_dev;
                s->ino = st.st_ino;
        }
        return 0;
}

char *sockets_fdnames(const struct socket_set *set) {
        size_t len = 1;
        for (size_t i = 0; i < set->n; i++)
                len += strlen(set->sockets[i].name) + 1;
        char *s = malloc(len), *p = s;
        if (!s)
                return NULL;
        *p = 0;
        for (size_t i = 0; i < set->n; i++)
                p = stpcpy(stpcpy(p, i ? ":" : ""), set->sockets[i].name);
        return s;
}

void sockets_done(struct socket_set *set) {
        for (size_t i = 0; i < set->n; i++) {
                struct listen_socket *s = &set->sockets[i];
                struct stat st;
                /* A file another process bound there since is not ours to remove. */
                if (s->path && stat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
                        (void) unlink(s->path);
                close(s->fd);
                free(s->name);
                free(s->path);
        }
        free(set->sockets);
        *set = (struct socket_set){};
}
