/* notify.c: the workers' NOTIFY_SOCKET. Each datagram carries SCM_CREDENTIALS (we set
 * SO_PASSCRED), so the kernel tells us which pid sent it: a worker cannot speak for
 * another. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "macro.h"
#include "notify.h"

/* A decimal number of microseconds, at most 20 digits and no overflow. */
static bool parse_usec(const char *v, size_t len, uint64_t *ret) {
        uint64_t n = 0;
        if (len == 0 || len > 20)
                return false;
        for (size_t i = 0; i < len; i++) {
                if (v[i] < '0' || v[i] > '9')
                        return false;
                uint64_t digit = (uint64_t) (v[i] - '0');
                if (n > (UINT64_MAX - digit) / 10)
                        return false;
                n = n * 10 + digit;
        }
        *ret = n;
        return true;
}

int notify_parse(const char *data, size_t len, struct notify_message *ret) {
        *ret = (struct notify_message){};
        if (memchr(data, 0, len))
                return -EBADMSG;
        const char *p = data, *end = data + len;
        while (p < end) {
                const char *nl = memchr(p, '\n', end - p);
                const char *line_end = nl ?: end;
                size_t n = line_end - p;
                if (n > 0) {
                        const char *eq = memchr(p, '=', n);
                        if (!eq || eq == p) {
                                *ret = (struct notify_message){}; /* nothing from a refused message */
                                return -EBADMSG;
                        }
                        size_t klen = eq - p, vlen = line_end - eq - 1;
                        const char *v = eq + 1;
                        if (klen == 5 && memcmp(p, "READY", 5) == 0 && vlen == 1 && v[0] == '1')
                                ret->ready = true;
                        else if (klen == 8 && memcmp(p, "WATCHDOG", 8) == 0 && vlen == 1 && v[0] == '1')
                                ret->watchdog = true;
                        else if (klen == 8 && memcmp(p, "WATCHDOG", 8) == 0 && vlen == 7 &&
                                 memcmp(v, "trigger", 7) == 0)
                                ret->watchdog_trigger = true;
                        else if (klen == 13 && memcmp(p, "WATCHDOG_USEC", 13) == 0)
                                /* Digits only, as systemd takes it; anything else is ignored. */
                                ret->has_watchdog_usec = parse_usec(v, vlen, &ret->watchdog_usec);
                        else if (klen == 6 && memcmp(p, "STATUS", 6) == 0) {
                                size_t c = vlen < sizeof(ret->status) - 1 ? vlen : sizeof(ret->status) - 1;
                                memcpy(ret->status, v, c);
                                ret->status[c] = 0;
                                ret->has_status = true;
                        }
                }
                p = line_end + (nl ? 1 : 0);
        }
        return 0;
}

int notify_open(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        int one = 1;
        if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0)
                return -errno;
        (void) unlink(path);
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        if (chmod(path, 0666) < 0)
                return -errno;
        return TAKE_FD(fd);
}

int notify_receive(int fd, pid_t *ret_pid, char *buf, size_t size, size_t *ret_len) {
        union {
                struct cmsghdr header;
                char space[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * 16)];
        } control;
        struct iovec iov = { .iov_base = buf, .iov_len = size };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof(control),
        };
        ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
        if (n < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : -errno;

        pid_t pid = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                if (c->cmsg_level != SOL_SOCKET)
                        continue;
                if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len == CMSG_LEN(sizeof(struct ucred))) {
                        struct ucred uc;
                        memcpy(&uc, CMSG_DATA(c), sizeof(uc));
                        pid = uc.pid;
                } else if (c->cmsg_type == SCM_RIGHTS) {
                        /* Someone passed fds (FDSTORE=1): we do not keep them. */
                        int *fds = (int *) CMSG_DATA(c);
                        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                        for (size_t i = 0; i < k; i++)
                                close(fds[i]);
                }
        }
        if (pid <= 0 || (size_t) n > size || (mh.msg_flags & MSG_TRUNC))
                return 0; /* anonymous or oversized: ignore, as systemd does */
        *ret_pid = pid;
        *ret_len = (size_t) n;
        return 1;
}
