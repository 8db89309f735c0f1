/* httpd.c: a tiny HTTP/1.1 server that speaks the liveswap worker protocol. It is the
 * demo's application and the integration tests' worker, so it drains exactly as a good
 * worker should: on SIGTERM it stops accepting, finishes every request it has (including
 * one that arrived on an idle keep-alive connection a moment ago) and exits.
 *
 *   GET /                -> "<version>\n" (headers X-Version, X-Pid, X-Generation)
 *   GET /sleep?ms=N      -> the same after N ms (a timer, not a blocking sleep)
 *   GET /fds             -> the fds it inherited, as listed before it opened any
 *   GET /env?name=X      -> the value of environment variable X
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <stdarg.h>

#define MAX_LISTEN 16
#define REQUEST_MAX 16384

/* What an epoll event is about; index is the fd for connections and their timers. */
enum kind { K_LISTEN, K_CONN, K_TIMER, K_SIGNAL, K_CONTROL, K_CRASH };
struct tag {
        enum kind kind;
        int index;
        struct conn *conn;
};

struct conn {
        struct tag tag, timer_tag;
        int fd;
        int timer_fd; /* armed while a /sleep request waits */
        char in[REQUEST_MAX];
        size_t in_len;
        char *out;
        size_t out_len, out_sent;
        bool close_after;
        bool busy; /* a request is being served (waiting or writing) */
};

static struct {
        const char *version;
        long delay_start_ms;
        long crash_after_ms;
        bool crash_at_start, no_ready, ignore_term;
        FILE *log;
        int epoll_fd;
        int listen_fds[MAX_LISTEN];
        int n_listen;
        int control_fd;
        bool draining;
        int open_conns;
        char fds_at_start[512];
} app = { .version = "v1", .control_fd = -1 };


static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...) {
        if (!app.log)
                return;
        va_list ap;
        va_start(ap, fmt);
        fprintf(app.log, "%d ", (int) getpid());
        vfprintf(app.log, fmt, ap);
        fputc('\n', app.log);
        fflush(app.log);
        va_end(ap);
}

static void capture_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        int fds[256], n = 0, self = d ? dirfd(d) : -1;
        struct dirent *de;
        while (d && (de = readdir(d)) && n < 256) {
                if (de->d_name[0] == '.')
                        continue;
                int fd = atoi(de->d_name);
                if (fd != self)
                        fds[n++] = fd;
        }
        if (d)
                closedir(d);
        for (int i = 0; i < n; i++) /* tiny insertion sort */
                for (int j = i; j > 0 && fds[j - 1] > fds[j]; j--) {
                        int t = fds[j];
                        fds[j] = fds[j - 1];
                        fds[j - 1] = t;
                }
        size_t pos = 0;
        for (int i = 0; i < n && pos < sizeof(app.fds_at_start) - 12; i++)
                pos += snprintf(app.fds_at_start + pos, sizeof(app.fds_at_start) - pos, "%s%d", i ? " " : "", fds[i]);
}

static void watch(int fd, uint32_t events, struct tag *t, enum kind kind, int index, struct conn *c) {
        *t = (struct tag){ kind, index, c };
        struct epoll_event ev = { .events = events, .data.ptr = t };
        if (epoll_ctl(app.epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                perror("epoll_ctl");
                exit(1);
        }
}

static struct conn *conns_by_fd[65536];

static void conn_free(struct conn *c) {
        conns_by_fd[c->fd] = NULL;
        close(c->fd); /* also drops it from epoll */
        if (c->timer_fd >= 0)
                close(c->timer_fd);
        free(c->out);
        free(c);
        app.open_conns--;
}

static void maybe_exit(void) {
        if (app.draining && app.open_conns == 0) {
                logf_("exit");
                exit(0);
        }
}

static void respond(struct conn *c, int status, const char *body) {
        const char *reason = status == 200 ? "OK" : status == 404 ? "Not Found" : "Bad Request";
        const char *generation = getenv("LIVESWAP_GENERATION") ?: "0";
        if (app.draining)
                c->close_after = true;
        free(c->out);
        c->out_len = (size_t) asprintf(&c->out,
                                       "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                                       "X-Version: %s\r\nX-Pid: %d\r\nX-Generation: %s\r\n%s\r\n%s",
                                       status, reason, strlen(body), app.version, (int) getpid(), generation,
                                       c->close_after ? "Connection: close\r\n" : "", body);
        c->out_sent = 0;
}

static void conn_write(struct conn *c);

/* Parses one complete request from c->in, if there is one, and starts answering it. */
static void conn_handle(struct conn *c) {
        if (c->busy)
                return;
        char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (!end) {
                if (c->in_len >= sizeof(c->in)) {
                        c->close_after = true;
                        c->busy = true;
                        respond(c, 400, "request too large\n");
                        conn_write(c);
                }
                return;
        }
        size_t head_len = (size_t) (end - c->in) + 4;
        char head[REQUEST_MAX + 1];
        memcpy(head, c->in, head_len);
        head[head_len] = 0;

        size_t body_len = 0;
        for (char *h = strstr(head, "\r\n"); h && h[2] != '\r'; h = strstr(h + 2, "\r\n")) {
                if (strncasecmp(h + 2, "Content-Length:", 15) == 0)
                        body_len = strtoul(h + 17, NULL, 10);
                if (strncasecmp(h + 2, "Connection:", 11) == 0 && strcasestr(h + 13, "close") &&
                    strcasestr(h + 13, "close") < strstr(h + 2, "\r\n"))
                        c->close_after = true;
        }
        if (strstr(head, " HTTP/1.0\r\n") && !strcasestr(head, "keep-alive"))
                c->close_after = true;
        if (head_len + body_len > c->in_len)
                return; /* wait for the body */
        memmove(c->in, c->in + head_len + body_len, c->in_len - head_len - body_len);
        c->in_len -= head_len + body_len;

        char method[16], target[2048];
        if (sscanf(head, "%15s %2047s", method, target) != 2) {
                c->close_after = true;
                c->busy = true;
                respond(c, 400, "bad request\n");
                conn_write(c);
                return;
        }
        c->busy = true;
        char body[4096];
        if (strcmp(target, "/") == 0) {
                snprintf(body, sizeof(body), "%s\n", app.version);
                respond(c, 200, body);
        } else if (strncmp(target, "/sleep?ms=", 10) == 0) {
                long ms = atol(target + 10);
                c->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
                struct itimerspec its = { .it_value = { ms / 1000, (ms % 1000) * 1000000L + 1 } };
                timerfd_settime(c->timer_fd, 0, &its, NULL);
                watch(c->timer_fd, EPOLLIN, &c->timer_tag, K_TIMER, c->fd, c);
                return;
        } else if (strcmp(target, "/fds") == 0) {
                snprintf(body, sizeof(body), "%s\n", app.fds_at_start);
                respond(c, 200, body);
        } else if (strncmp(target, "/env?name=", 10) == 0) {
                snprintf(body, sizeof(body), "%s", getenv(target + 10) ?: "");
                respond(c, 200, body);
        } else
                respond(c, 404, "not found\n");
        conn_write(c);
}

static void conn_write(struct conn *c) {
        while (c->out_sent < c->out_len) {
                ssize_t n = send(c->fd, c->out + c->out_sent, c->out_len - c->out_sent, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EAGAIN)
                                return; /* EPOLLOUT will call us again */
                        conn_free(c);
                        maybe_exit();
                        return;
                }
                c->out_sent += (size_t) n;
        }
        c->busy = false;
        if (c->close_after) {
                conn_free(c);
                maybe_exit();
                return;
        }
        conn_handle(c); /* a pipelined request may already be buffered */
}

/* Returns false when the connection was closed. */
static bool conn_read(struct conn *c) {
        for (;;) {
                if (c->in_len == sizeof(c->in))
                        break;
                ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
                if (n < 0) {
                        if (errno == EAGAIN)
                                break;
                        conn_free(c);
                        return false;
                }
                if (n == 0) {
                        if (c->busy) {
                                c->close_after = true; /* half-closed: still answer it */
                                break;
                        }
                        conn_free(c);
                        return false;
                }
                c->in_len += (size_t) n;
        }
        conn_handle(c);
        return true;
}

static void start_drain(void) {
        if (app.draining)
                return;
        app.draining = true;
        logf_("drain");
        sd_notify(0, "STOPPING=1");
        /* Our copies only: the supervisor keeps the socket open for the next workers. */
        for (int i = 0; i < app.n_listen; i++)
                close(app.listen_fds[i]);
        /* Idle keep-alive connections close now, unless a request has just arrived on
         * one: then it is served first, with Connection: close. */
        for (int fd = 0; fd < 65536; fd++) {
                struct conn *c = conns_by_fd[fd];
                if (!c)
                        continue;
                c->close_after = true;
                if (c->busy)
                        continue;
                if (!conn_read(c))
                        continue; /* closed by the peer meanwhile */
                if (!c->busy && c->in_len == 0)
                        conn_free(c);
        }
        maybe_exit();
}

static void accept_all(int lfd) {
        for (;;) {
                int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0)
                        return;
                if (fd >= 65536) {
                        close(fd);
                        continue;
                }
                struct conn *c = calloc(1, sizeof(*c));
                if (!c) {
                        close(fd);
                        continue;
                }
                c->fd = fd;
                c->timer_fd = -1;
                conns_by_fd[fd] = c;
                app.open_conns++;
                watch(fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, &c->tag, K_CONN, fd, c);
                conn_read(c);
        }
}

static long arg_long(int argc, char **argv, int *i) {
        if (*i + 1 >= argc) {
                fprintf(stderr, "%s needs a value\n", argv[*i]);
                exit(2);
        }
        return atol(argv[++*i]);
}

int main(int argc, char **argv) {
        static struct tag static_tags[MAX_LISTEN + 3];

        capture_fds(); /* before we open anything ourselves */

        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--version") == 0 && i + 1 < argc)
                        app.version = argv[++i];
                else if (strcmp(argv[i], "--delay-start") == 0)
                        app.delay_start_ms = arg_long(argc, argv, &i);
                else if (strcmp(argv[i], "--crash-after") == 0)
                        app.crash_after_ms = arg_long(argc, argv, &i);
                else if (strcmp(argv[i], "--crash-at-start") == 0)
                        app.crash_at_start = true;
                else if (strcmp(argv[i], "--no-ready") == 0)
                        app.no_ready = true;
                else if (strcmp(argv[i], "--ignore-term") == 0)
                        app.ignore_term = true;
                else if (strcmp(argv[i], "--log") == 0 && i + 1 < argc)
                        app.log = fopen(argv[++i], "ae");
                else {
                        fprintf(stderr, "usage: %s [--version V] [--delay-start MS] [--crash-after MS] "
                                        "[--crash-at-start] [--no-ready] [--ignore-term] [--log FILE]\n",
                                argv[0]);
                        return 2;
                }
        }
        logf_("start gen=%s worker=%s", getenv("LIVESWAP_GENERATION") ?: "-", getenv("LIVESWAP_WORKER") ?: "-");
        if (app.crash_at_start) {
                fprintf(stderr, "httpd %s: crashing at start as asked\n", app.version);
                return 1;
        }

        int n = sd_listen_fds(0);
        if (n <= 0) {
                fprintf(stderr, "httpd: no listening sockets (LISTEN_FDS): run me under liveswap or systemd\n");
                return 1;
        }
        app.n_listen = n > MAX_LISTEN ? MAX_LISTEN : n;
        const char *control = getenv("LIVESWAP_CONTROL_FD");
        if (control)
                app.control_fd = atoi(control);

        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (app.ignore_term)
                signal(SIGTERM, SIG_IGN);
        else
                sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);

        if (app.delay_start_ms > 0) {
                struct timespec ts = { app.delay_start_ms / 1000, (app.delay_start_ms % 1000) * 1000000L };
                nanosleep(&ts, NULL); /* start-up work: loading code, warming caches */
        }

        app.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        for (int i = 0; i < app.n_listen; i++) {
                app.listen_fds[i] = SD_LISTEN_FDS_START + i;
                fcntl(app.listen_fds[i], F_SETFL, fcntl(app.listen_fds[i], F_GETFL) | O_NONBLOCK);
                watch(app.listen_fds[i], EPOLLIN, &static_tags[i], K_LISTEN, i, NULL);
        }
        if (!app.ignore_term) {
                int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
                watch(sfd, EPOLLIN, &static_tags[MAX_LISTEN], K_SIGNAL, sfd, NULL);
        }
        if (app.control_fd >= 0)
                watch(app.control_fd, EPOLLIN, &static_tags[MAX_LISTEN + 1], K_CONTROL, 0, NULL);
        if (app.crash_after_ms > 0) {
                int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
                struct itimerspec its = { .it_value = { app.crash_after_ms / 1000,
                                                        (app.crash_after_ms % 1000) * 1000000L + 1 } };
                timerfd_settime(tfd, 0, &its, NULL);
                watch(tfd, EPOLLIN, &static_tags[MAX_LISTEN + 2], K_CRASH, 0, NULL);
        }
        if (!app.no_ready)
                sd_notifyf(0, "READY=1\nSTATUS=serving %s", app.version);

        for (;;) {
                struct epoll_event events[64];
                int k = epoll_wait(app.epoll_fd, events, 64, -1);
                if (k < 0 && errno == EINTR)
                        continue;
                for (int i = 0; i < k; i++) {
                        struct tag *t = events[i].data.ptr;
                        switch (t->kind) {
                        case K_LISTEN:
                                if (!app.draining)
                                        accept_all(app.listen_fds[t->index]);
                                break;
                        case K_CONN: {
                                /* Closed earlier in this batch? Then its fd no longer maps to it. */
                                struct conn *c = conns_by_fd[t->index];
                                if (c != t->conn)
                                        break;
                                if (c->out_sent < c->out_len)
                                        conn_write(c);
                                /* Edge-triggered: read too, or input arriving with EPOLLOUT is lost. */
                                if (conns_by_fd[t->index] == c)
                                        conn_read(c);
                                break;
                        }
                        case K_TIMER: {
                                struct conn *c = conns_by_fd[t->index];
                                if (c != t->conn || c->timer_fd < 0)
                                        break;
                                char body[64];
                                snprintf(body, sizeof(body), "%s\n", app.version);
                                close(c->timer_fd);
                                c->timer_fd = -1;
                                respond(c, 200, body);
                                conn_write(c);
                                break;
                        }
                        case K_SIGNAL: {
                                struct signalfd_siginfo si;
                                while (read(t->index, &si, sizeof(si)) == sizeof(si))
                                        ;
                                start_drain();
                                break;
                        }
                        case K_CONTROL: {
                                char buf[65536 + 1];
                                ssize_t got = recv(app.control_fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
                                if (got == 0) {
                                        /* The supervisor is gone: nobody will drain us later. */
                                        epoll_ctl(app.epoll_fd, EPOLL_CTL_DEL, app.control_fd, NULL);
                                        start_drain();
                                } else if (got > 0) {
                                        buf[got] = 0;
                                        logf_("message %s", buf);
                                }
                                break;
                        }
                        case K_CRASH:
                                fprintf(stderr, "httpd %s: crashing as asked\n", app.version);
                                _exit(1);
                        }
                }
        }
}
