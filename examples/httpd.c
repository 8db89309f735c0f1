/* httpd.c: a tiny HTTP/1.1 server that speaks the liveswap worker protocol. It is the
 * demo's application and the integration tests' worker, so it drains exactly as a good
 * worker should (liveswap(8), "DRAINING KEEP-ALIVE CONNECTIONS"): on SIGTERM it stops
 * accepting, answers the next request on every kept-alive connection with
 * "Connection: close", closes a connection that sits idle only once it has been idle for
 * the grace period (--idle-grace, default 1 s), closes with a lingering close, and exits
 * 0 once no connection is left.
 *
 * Why the grace period: HTTP/1.1 lets either side close an idle kept-alive connection,
 * and a client that sends its next request just as the server closes gets a reset or an
 * empty read instead of an answer. Clients that do not retry (wrk, most load testers, any
 * client sending a POST) count that as an error. A busy client sends its next request
 * well within the grace period, so it gets Connection: close instead and reconnects to
 * a worker that is not draining; only a client quiet for the whole period can still
 * meet the race, as it could with any server's keep-alive timeout.
 *
 *   GET /                -> "<version>\n" (headers X-Version, X-Pid, X-Generation)
 *   GET /sleep?ms=N      -> the same after N ms (a timer: other clients are not held up)
 *   GET /fds             -> the fds it inherited, as listed before it opened any
 *   GET /env?name=X      -> the value of environment variable X (404 when unset)
 *   GET /signals         -> "blocked=MASK ignored=MASK": the signals blocked and ignored
 *                           when it started, in hex as /proc/PID/status shows them
 *
 * With a watchdog (WATCHDOG_USEC and WATCHDOG_PID, as systemd and liveswap's `watchdog`
 * set them) it sends WATCHDOG=1 from its loop at half the interval, so a hung loop stops
 * the pings (--no-watchdog never sends them; --leak BYTES keeps that much memory per
 * request: the tests' hung and leaking workers).
 *
 * Its sockets come the systemd way (LISTEN_FDS: liveswap, systemd, systemd-socket-activate)
 * or, so that the benchmarks can run the same worker under Server::Starter, the
 * start_server way (SERVER_STARTER_PORT).
 *
 * One thread, one level-triggered epoll loop, non-blocking sockets. A connection is only
 * ever read while it waits for a request, so a pipelining client cannot grow its buffer
 * beyond REQUEST_HEAD_MAX and a slow response never blocks another connection.
 *
 * Many siblings share each listener, so it is watched with EPOLLEXCLUSIVE (one wake-up
 * per connection, not one per worker), and a drain unwatches it and then accepts until
 * EAGAIN, so that a connection whose wake-up came to us alone is never left queued
 * (liveswap(8), WORKERS WITH MANY SIBLINGS). Its --log "exit" event counts those.
 *
 * It must never close a listening socket without removing it from epoll first: the
 * supervisor holds the same open file description, so close() alone would leave it
 * registered and the loop would spin on its readiness. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#define REQUEST_HEAD_MAX 8192
#define TARGET_MAX 2048
#define SLEEP_MAX_MS (3600L * 1000)
#define LINGER_MS 2000 /* how long a closing connection may take to drain its input */
#define DRAIN_REQUEST_MS 5000 /* while draining, how long a request head may take to arrive */
#define IDLE_GRACE_MS 1000 /* while draining, how long a kept-alive connection must stay idle to be closed */
#define ACCEPT_PAUSE_MS 100 /* back-off when out of fds */
#define ACCEPT_BATCH 64 /* accepts per wake-up, so other workers get a share */
#define CONTROL_MESSAGE_MAX 65536

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

/* What an epoll event is about. Every source lives inside the object it belongs to. */
enum source_kind {
        SOURCE_LISTEN,
        SOURCE_CONN,
        SOURCE_CONN_TIMER,
        SOURCE_SIGNAL,
        SOURCE_CONTROL,
        SOURCE_START_TIMER,
        SOURCE_CRASH_TIMER,
        SOURCE_ACCEPT_TIMER,
        SOURCE_WATCHDOG_TIMER,
};

struct source {
        enum source_kind kind;
        int fd;
        struct conn *conn; /* for SOURCE_CONN and SOURCE_CONN_TIMER */
};

enum conn_state {
        CONN_READ, /* waiting for (the rest of) a request head */
        CONN_BODY, /* discarding a request body before answering */
        CONN_SLEEP, /* a /sleep request waits for its timer */
        CONN_WRITE, /* a response is being sent */
        CONN_LINGER, /* our side is shut: reading what the client still sends, then close */
};

struct conn {
        struct server *server;
        struct conn *prev, *next; /* in server.conns, or in server.graveyard once closed */
        struct source io, timer;
        enum conn_state state;
        uint32_t events; /* the current epoll interest */
        bool closed;
        bool close_after; /* the response says Connection: close */
        bool client_close; /* the client asked for that itself (Connection: close, HTTP/1.0) */
        bool request_deadline; /* draining: the timer bounds a request on its way, not idleness */
        bool head_only; /* a HEAD request: no body in the response */
        bool method_ok; /* GET or HEAD */
        unsigned served; /* responses completed on this connection */
        uint64_t body_left;
        char target[TARGET_MAX + 1]; /* of the request being answered */
        size_t in_len;
        char *out;
        size_t out_len, out_sent;
        char in[REQUEST_HEAD_MAX];
};

struct options {
        const char *version;
        long delay_start_ms;
        long crash_after_ms;
        long idle_grace_ms;
        bool crash_at_start;
        bool no_ready;
        bool ignore_term;
        bool die_on_term; /* a naive server: SIGTERM kills it with its connections open */
        bool no_watchdog; /* never send WATCHDOG=1: a hung worker, for the tests */
        long leak_bytes; /* memory kept for good per request: a leak, for the tests */
        const char *log_path;
};

struct server {
        struct options opt;
        int epoll_fd;
        int log_fd;
        pid_t pid;
        const char *generation;
        char *fds_at_start;
        uint64_t blocked_at_start, ignored_at_start; /* bit N-1 is signal N */
        struct source *listeners;
        size_t n_listeners;
        bool serving; /* listeners are watched */
        bool draining;
        struct source signal, control, start_timer, crash_timer, accept_timer, watchdog_timer;
        long watchdog_ms; /* the ping interval, 0 = no watchdog */
        struct conn *conns, *graveyard;
        unsigned n_conns;
        uint64_t drain_accepts; /* for the "exit" event (--log): taken while draining */
};

static void log_event(struct server *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_event(struct server *s, const char *fmt, ...) {
        if (s->log_fd < 0)
                return;
        _cleanup_free_ char *line = NULL;
        va_list ap;
        va_start(ap, fmt);
        int n = vasprintf(&line, fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        line[n] = '\n';
        /* One write(2) per line on an O_APPEND fd: workers sharing a log do not interleave. */
        if (write(s->log_fd, line, (size_t) n + 1) < 0)
                fprintf(stderr, SD_WARNING "httpd: writing to %s: %m\n", s->opt.log_path);
}

static int compare_int(const void *a, const void *b) {
        int x = *(const int *) a, y = *(const int *) b;
        return (x > y) - (x < y);
}

/* The fds this process was given, before it opens any of its own, sorted. */
static char *capture_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        if (!d)
                return strdup("?");
        int self = dirfd(d), fds[4096];
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d)) && n < sizeof(fds) / sizeof(fds[0])) {
                if (de->d_name[0] == '.')
                        continue;
                int fd = atoi(de->d_name);
                if (fd != self)
                        fds[n++] = fd;
        }
        closedir(d);
        qsort(fds, n, sizeof(fds[0]), compare_int);

        size_t size = n * 12 + 1, len = 0;
        char *list = malloc(size);
        if (!list)
                return NULL;
        list[0] = 0;
        for (size_t i = 0; i < n; i++)
                len += (size_t) snprintf(list + len, size - len, "%s%d", i ? " " : "", fds[i]);
        return list;
}

/* The signal mask and dispositions inherited from whoever started us. */
static void capture_signals(uint64_t *blocked, uint64_t *ignored) {
        sigset_t mask;
        *blocked = *ignored = 0;
        if (sigprocmask(SIG_SETMASK, NULL, &mask) < 0)
                return;
        for (int sig = 1; sig < NSIG && sig <= 64; sig++) {
                struct sigaction sa;
                if (sigismember(&mask, sig) == 1)
                        *blocked |= UINT64_C(1) << (sig - 1);
                if (sigaction(sig, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN)
                        *ignored |= UINT64_C(1) << (sig - 1);
        }
}

static int watch(struct server *s, struct source *src, uint32_t events) {
        struct epoll_event ev = { .events = events, .data.ptr = src };
        if (epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, src->fd, &ev) < 0)
                return -errno;
        return 0;
}

static void unwatch(struct server *s, struct source *src) {
        if (src->fd >= 0)
                (void) epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, src->fd, NULL);
}

static void source_close(struct server *s, struct source *src) {
        if (src->fd < 0)
                return;
        unwatch(s, src);
        close(src->fd);
        src->fd = -1;
}

static int timer_new(struct server *s, struct source *src, enum source_kind kind, long ms) {
        src->kind = kind;
        src->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (src->fd < 0)
                return -errno;
        /* it_value zero would disarm the timer: one nanosecond means "now". */
        struct itimerspec its = { .it_value = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L + 1 } };
        if (timerfd_settime(src->fd, 0, &its, NULL) < 0)
                return -errno;
        return watch(s, src, EPOLLIN);
}

static int timer_rearm(struct source *src, long ms) {
        struct itimerspec its = { .it_value = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L + 1 } };
        return timerfd_settime(src->fd, 0, &its, NULL) < 0 ? -errno : 0;
}

static void timer_consume(struct source *src) {
        uint64_t expirations;
        (void) !read(src->fd, &expirations, sizeof(expirations));
}

/* ---- connections ---- */

static void conn_set_events(struct conn *c, uint32_t events) {
        if (c->events == events)
                return;
        struct epoll_event ev = { .events = events, .data.ptr = &c->io };
        if (epoll_ctl(c->server->epoll_fd, EPOLL_CTL_MOD, c->io.fd, &ev) == 0)
                c->events = events;
}

/* Closes at once. The memory stays until the end of the current epoll batch, which may
 * still hold events pointing into it. */
static void conn_close(struct conn *c) {
        struct server *s = c->server;
        if (c->closed)
                return;
        c->closed = true;
        source_close(s, &c->io);
        source_close(s, &c->timer);
        if (c->prev)
                c->prev->next = c->next;
        else
                s->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        c->prev = NULL;
        c->next = s->graveyard;
        s->graveyard = c;
        s->n_conns--;
}

static void conn_free(struct conn *c) {
        free(c->out);
        free(c);
}

static int conn_timer(struct conn *c, long ms) {
        if (c->timer.fd >= 0)
                return timer_rearm(&c->timer, ms);
        c->timer.conn = c;
        return timer_new(c->server, &c->timer, SOURCE_CONN_TIMER, ms);
}

/* Closes after the last response. Input the client sent that we will never read would
 * make close() send a reset, which can destroy that response before the client reads
 * it; so only our side is shut, and what still comes is read and dropped until the
 * client closes too (it does once it has read Connection: close) or LINGER_MS passes.
 * When we chose to close (draining, an error) a pipelining client may have requests on
 * the wire that no FIONREAD shows yet: always linger then. Only when the client asked
 * for the close and nothing of its is unread can nothing more come: close at once. */
static void conn_finish(struct conn *c) {
        int pending = 0;
        if (c->client_close && c->in_len == 0 && c->body_left == 0 &&
            (ioctl(c->io.fd, FIONREAD, &pending) < 0 || pending == 0)) {
                conn_close(c);
                return;
        }
        if (shutdown(c->io.fd, SHUT_WR) < 0 || conn_timer(c, LINGER_MS) < 0) {
                conn_close(c);
                return;
        }
        c->state = CONN_LINGER;
        c->in_len = 0;
        conn_set_events(c, EPOLLIN);
}

/* Returns the bytes read, 0 at end of file, or a negative errno (-EAGAIN: nothing yet). */
static ssize_t conn_read(struct conn *c) {
        size_t room = sizeof(c->in) - c->in_len;
        if (room == 0)
                return -ENOBUFS;
        ssize_t n = recv(c->io.fd, c->in + c->in_len, room, 0);
        if (n < 0)
                return errno == EWOULDBLOCK ? -EAGAIN : -errno;
        c->in_len += (size_t) n;
        return n;
}

static void conn_consume(struct conn *c, size_t n) {
        memmove(c->in, c->in + n, c->in_len - n);
        c->in_len -= n;
}

static void conn_flush(struct conn *c);

static const char *status_reason(int status) {
        switch (status) {
        case 200:
                return "OK";
        case 400:
                return "Bad Request";
        case 404:
                return "Not Found";
        case 405:
                return "Method Not Allowed";
        case 431:
                return "Request Header Fields Too Large";
        case 501:
                return "Not Implemented";
        case 505:
                return "HTTP Version Not Supported";
        default:
                return "Unknown";
        }
}

static void conn_respond(struct conn *c, int status, const char *body) {
        struct server *s = c->server;
        if (s->draining)
                c->close_after = true;
        free(c->out);
        int n = asprintf(&c->out,
                         "HTTP/1.1 %d %s\r\n"
                         "Content-Type: text/plain\r\n"
                         "Content-Length: %zu\r\n"
                         "X-Version: %s\r\n"
                         "X-Pid: %d\r\n"
                         "X-Generation: %s\r\n"
                         "%s%s"
                         "\r\n"
                         "%s",
                         status, status_reason(status), strlen(body), s->opt.version, (int) s->pid, s->generation,
                         status == 405 ? "Allow: GET, HEAD\r\n" : "", c->close_after ? "Connection: close\r\n" : "",
                         c->head_only ? "" : body);
        if (n < 0) {
                c->out = NULL;
                conn_close(c);
                return;
        }
        c->out_len = (size_t) n;
        c->out_sent = 0;
        c->state = CONN_WRITE;
        conn_flush(c);
}

/* Sends what it can. When the response is complete the connection is back in CONN_READ
 * (the caller decides what comes next), lingering, or closed. */
static void conn_flush(struct conn *c) {
        while (c->out_sent < c->out_len) {
                ssize_t n = send(c->io.fd, c->out + c->out_sent, c->out_len - c->out_sent, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EWOULDBLOCK) {
                                conn_set_events(c, EPOLLOUT);
                                return;
                        }
                        if (errno == EINTR)
                                continue;
                        conn_close(c); /* the client is gone */
                        return;
                }
                c->out_sent += (size_t) n;
        }
        free(c->out);
        c->out = NULL;
        c->out_len = c->out_sent = 0;
        if (c->close_after) {
                conn_finish(c);
                return;
        }
        c->served++;
        c->state = CONN_READ;
        c->head_only = false;
}

static int hex_digit(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Finds NAME's value in a query string like "a=1&name=x", percent-decoded into BUF;
 * NULL when absent. */
static char *query_param(const char *query, const char *name, char *buf, size_t size) {
        size_t name_len = strlen(name);
        for (const char *p = query; p && *p; p = strchr(p, '&'), p = p ? p + 1 : NULL) {
                if (strncmp(p, name, name_len) != 0 || p[name_len] != '=')
                        continue;
                size_t i = 0;
                for (const char *v = p + name_len + 1; *v && *v != '&' && i + 1 < size; v++) {
                        int hi = *v == '%' ? hex_digit(v[1]) : -1, lo = hi >= 0 ? hex_digit(v[2]) : -1;
                        if (lo >= 0) {
                                buf[i++] = (char) (unsigned char) (hi << 4 | lo);
                                v += 2;
                        } else
                                buf[i++] = *v == '+' ? ' ' : *v;
                }
                buf[i] = 0;
                return buf;
        }
        return NULL;
}

static bool parse_ms(const char *text, long *ret) {
        char *end;
        errno = 0;
        long v = strtol(text, &end, 10);
        if (errno || end == text || *end || v < 0 || v > SLEEP_MAX_MS)
                return false;
        *ret = v;
        return true;
}

/* Answers the request whose head (and body) has been read; its target is in c->target. */
static void conn_dispatch(struct conn *c) {
        struct server *s = c->server;
        char *query = strchr(c->target, '?');
        if (query)
                *query++ = 0;
        const char *path = c->target;
        char value[TARGET_MAX + 1], body[TARGET_MAX + 64];

        if (s->opt.leak_bytes >= (long) sizeof(void *)) {
                /* Touched, so that it counts in the RSS; never freed, but chained
                 * from a global so that LeakSanitizer does not call it a bug. */
                static void *leaked;
                void **leak = malloc((size_t) s->opt.leak_bytes);
                if (leak) {
                        memset(leak, 0x5a, (size_t) s->opt.leak_bytes);
                        *leak = leaked;
                        leaked = leak;
                }
        }
        if (!c->method_ok)
                conn_respond(c, 405, "only GET and HEAD\n");
        else if (strcmp(path, "/") == 0) {
                snprintf(body, sizeof(body), "%s\n", s->opt.version);
                conn_respond(c, 200, body);
        } else if (strcmp(path, "/sleep") == 0) {
                long ms;
                if (!query_param(query, "ms", value, sizeof(value)) || !parse_ms(value, &ms)) {
                        conn_respond(c, 400, "/sleep needs ms=0..3600000\n");
                        return;
                }
                if (conn_timer(c, ms) < 0) {
                        conn_close(c);
                        return;
                }
                c->state = CONN_SLEEP;
                conn_set_events(c, 0); /* errors and hang-ups are still reported */
        } else if (strcmp(path, "/fds") == 0) {
                _cleanup_free_ char *text = NULL;
                if (asprintf(&text, "%s\n", s->fds_at_start) < 0) {
                        conn_close(c);
                        return;
                }
                conn_respond(c, 200, text);
        } else if (strcmp(path, "/signals") == 0) {
                snprintf(body, sizeof(body), "blocked=%" PRIx64 " ignored=%" PRIx64 "\n", s->blocked_at_start,
                         s->ignored_at_start);
                conn_respond(c, 200, body);
        } else if (strcmp(path, "/env") == 0) {
                const char *v = query_param(query, "name", value, sizeof(value)) ? getenv(value) : NULL;
                conn_respond(c, v ? 200 : 404, v ? v : "");
        } else
                conn_respond(c, 404, "not found\n");
}

static bool header_is(const char *line, size_t len, const char *name, const char **value, size_t *value_len) {
        size_t n = strlen(name);
        if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
                return false;
        const char *v = line + n + 1, *end = line + len;
        while (v < end && (*v == ' ' || *v == '\t'))
                v++;
        while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
        *value = v;
        *value_len = (size_t) (end - v);
        return true;
}

static bool has_token(const char *v, size_t len, const char *token) {
        size_t n = strlen(token);
        for (size_t i = 0; i < len;) {
                while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
                        i++;
                size_t start = i;
                while (i < len && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
                        i++;
                if (i - start == n && strncasecmp(v + start, token, n) == 0)
                        return true;
        }
        return false;
}

/* Parses the head in c->in[0..head_len) (ending in "\r\n\r\n"). Returns 0, or the HTTP
 * status to refuse the request with. */
static int conn_parse_head(struct conn *c, size_t head_len) {
        const char *p = c->in, *end = c->in + head_len - 2; /* keep the last line's CRLF */
        const char *eol = memmem(p, (size_t) (end - p), "\r\n", 2);
        size_t line_len = (size_t) (eol - p);

        /* Request line: METHOD SP TARGET SP HTTP/1.x */
        const char *sp1 = memchr(p, ' ', line_len);
        const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t) (eol - sp1 - 1)) : NULL;
        if (!sp1 || !sp2 || sp2 == sp1 + 1 || sp1[1] != '/')
                return 400;
        size_t target_len = (size_t) (sp2 - sp1 - 1);
        if (target_len > TARGET_MAX)
                return 431;
        memcpy(c->target, sp1 + 1, target_len);
        c->target[target_len] = 0;
        const char *version = sp2 + 1;
        size_t version_len = (size_t) (eol - version);
        if (version_len != 8 || strncmp(version, "HTTP/1.", 7) != 0)
                return version_len >= 5 && strncmp(version, "HTTP/", 5) == 0 ? 505 : 400;
        bool http10 = version[7] == '0';
        if (!http10 && version[7] != '1')
                return 505;
        size_t method_len = (size_t) (sp1 - p);
        c->head_only = method_len == 4 && memcmp(p, "HEAD", 4) == 0;
        c->method_ok = c->head_only || (method_len == 3 && memcmp(p, "GET", 3) == 0);

        bool have_length = false;
        for (p = eol + 2; p < end; p = eol + 2) {
                eol = memmem(p, (size_t) (end - p) + 2, "\r\n", 2);
                line_len = (size_t) (eol - p);
                const char *v;
                size_t v_len;
                if (header_is(p, line_len, "Content-Length", &v, &v_len)) {
                        uint64_t n = 0;
                        if (v_len == 0 || v_len > 15)
                                return 400;
                        for (size_t i = 0; i < v_len; i++) {
                                if (v[i] < '0' || v[i] > '9')
                                        return 400;
                                n = n * 10 + (uint64_t) (v[i] - '0');
                        }
                        if (have_length && n != c->body_left)
                                return 400;
                        have_length = true;
                        c->body_left = n;
                } else if (header_is(p, line_len, "Transfer-Encoding", &v, &v_len))
                        return 501; /* a body whose end we cannot find without decoding it */
                else if (header_is(p, line_len, "Connection", &v, &v_len)) {
                        if (has_token(v, v_len, "close"))
                                c->close_after = c->client_close = true;
                }
        }
        /* HTTP/1.0 keep-alive would need a Connection: keep-alive reply; not worth it here. */
        if (http10)
                c->close_after = c->client_close = true;
        return 0;
}

/* Draining, and no complete request is buffered: how long to wait for one. An idle
 * kept-alive connection is closed only after idle_grace_ms of idleness counted from now
 * (a client that is busy sends its next request long before, and gets Connection:
 * close). A request that has begun to arrive, or the first one on a connection accepted
 * just before the drain, gets DRAIN_REQUEST_MS once. */
static void conn_wait_request(struct conn *c) {
        long ms;
        if (c->in_len == 0 && c->served > 0)
                ms = c->server->opt.idle_grace_ms;
        else if (!c->request_deadline) {
                ms = DRAIN_REQUEST_MS;
                c->request_deadline = true;
        } else {
                conn_set_events(c, EPOLLIN); /* its deadline is already set */
                return;
        }
        if (conn_timer(c, ms) < 0) {
                conn_close(c);
                return;
        }
        conn_set_events(c, EPOLLIN);
}

/* Works through what is buffered: request heads, bodies to drop, pipelined requests.
 * Returns with the connection waiting for input, busy answering, or closed. */
static void conn_process(struct conn *c) {
        struct server *s = c->server;
        for (;;) {
                if (c->closed)
                        return;
                if (c->state == CONN_BODY) {
                        size_t n = c->body_left < c->in_len ? (size_t) c->body_left : c->in_len;
                        conn_consume(c, n);
                        c->body_left -= n;
                        if (c->body_left > 0) {
                                conn_set_events(c, EPOLLIN);
                                return;
                        }
                        conn_dispatch(c);
                        if (c->closed || c->state != CONN_READ)
                                return;
                        continue; /* answered at once: on to a pipelined request */
                }
                if (c->state != CONN_READ)
                        return;

                char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
                if (!end) {
                        if (c->in_len == sizeof(c->in)) {
                                c->in_len = 0;
                                c->close_after = true; /* the rest of that head is still coming */
                                conn_respond(c, 431, "request head too large\n");
                                return;
                        }
                        if (s->draining)
                                conn_wait_request(c);
                        else
                                conn_set_events(c, EPOLLIN);
                        return;
                }
                size_t head_len = (size_t) (end - c->in) + 4;
                c->body_left = 0;
                int status = conn_parse_head(c, head_len);
                conn_consume(c, head_len);
                if (status != 0) {
                        /* The framing may be lost: answer, then close. */
                        c->close_after = true;
                        c->head_only = false;
                        c->body_left = 0;
                        conn_respond(c, status, status_reason(status));
                        return;
                }
                c->state = CONN_BODY;
        }
}

/* The connection became idle after a response (CONN_READ): go on with what is next. */
static void conn_idle(struct conn *c) {
        if (!c->closed && c->state == CONN_READ)
                conn_process(c);
}

static void conn_on_io(struct conn *c, uint32_t events) {
        switch (c->state) {
        case CONN_READ:
        case CONN_BODY: {
                ssize_t r = conn_read(c);
                if (r == -EAGAIN || r == -EINTR)
                        return;
                if (r <= 0) {
                        /* End of file or an error: no request left to answer. */
                        conn_close(c);
                        return;
                }
                conn_process(c);
                return;
        }
        case CONN_SLEEP:
                if (events & (EPOLLERR | EPOLLHUP))
                        conn_close(c); /* the client is gone: nobody to answer */
                return;
        case CONN_WRITE:
                conn_flush(c);
                conn_idle(c);
                return;
        case CONN_LINGER: {
                char sink[4096];
                for (;;) {
                        ssize_t n = recv(c->io.fd, sink, sizeof(sink), 0);
                        if (n > 0)
                                continue;
                        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                                return;
                        conn_close(c);
                        return;
                }
        }
        }
}

static void conn_on_timer(struct conn *c) {
        timer_consume(&c->timer);
        if (c->state == CONN_SLEEP) {
                char body[256];
                snprintf(body, sizeof(body), "%s\n", c->server->opt.version);
                conn_respond(c, 200, body);
                conn_idle(c);
        } else if (c->state == CONN_LINGER || (c->state == CONN_READ && c->request_deadline))
                conn_close(c); /* lingered enough, or a request did not come in time */
        else if (c->state == CONN_READ) {
                /* Idle for the whole grace period, unless a request is arriving right
                 * now (its event may be later in this batch): one read decides. */
                ssize_t r = conn_read(c);
                if (r > 0)
                        conn_process(c);
                else if (r == -EAGAIN || r == -EINTR)
                        conn_finish(c);
                else
                        conn_close(c);
        }
}

static void conn_new(struct server *s, int fd) {
        struct conn *c = malloc(sizeof(*c));
        if (!c) {
                close(fd);
                return;
        }
        /* Not calloc'ed: the input buffer needs no zeroing. */
        memset(c, 0, offsetof(struct conn, in));
        c->server = s;
        c->io = (struct source){ .kind = SOURCE_CONN, .fd = fd, .conn = c };
        c->timer = (struct source){ .kind = SOURCE_CONN_TIMER, .fd = -1, .conn = c };
        c->state = CONN_READ;
        c->events = EPOLLIN;
        if (watch(s, &c->io, EPOLLIN) < 0) {
                close(fd);
                free(c);
                return;
        }
        c->next = s->conns;
        if (s->conns)
                s->conns->prev = c;
        s->conns = c;
        s->n_conns++;
}

/* ---- the server ---- */

static void server_watch_listeners(struct server *s, bool on) {
        for (size_t i = 0; i < s->n_listeners; i++) {
                if (on) {
                        /* EPOLLEXCLUSIVE: a connection wakes one idle sibling, not all N (the
                         * thundering herd costs N context switches per connection). The
                         * wake-up it used is then ours alone, so a drain must not drop it:
                         * server_start_drain() takes what is queued after unwatching. */
                        if (watch(s, &s->listeners[i], EPOLLIN | EPOLLEXCLUSIVE) < 0)
                                fprintf(stderr, SD_ERR "httpd: watching listening socket %d: %m\n", s->listeners[i].fd);
                } else
                        unwatch(s, &s->listeners[i]);
        }
}

static void server_accept(struct server *s, struct source *listener) {
        for (int i = 0; i < ACCEPT_BATCH; i++) {
                int fd = accept4(listener->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd >= 0) {
                        conn_new(s, fd);
                        continue;
                }
                switch (errno) {
                case EAGAIN:
#if EAGAIN != EWOULDBLOCK
                case EWOULDBLOCK:
#endif
                        return;
                case EINTR:
                case ECONNABORTED:
                case EPROTO:
                        continue;
                case EMFILE:
                case ENFILE:
                case ENOBUFS:
                case ENOMEM:
                        /* The connection stays queued; level-triggered epoll would spin on
                         * it, so stop listening for a moment (another worker may take it). */
                        fprintf(stderr, SD_WARNING "httpd: accept: %m; pausing for %d ms\n", ACCEPT_PAUSE_MS);
                        server_watch_listeners(s, false);
                        if (s->accept_timer.fd >= 0)
                                (void) timer_rearm(&s->accept_timer, ACCEPT_PAUSE_MS);
                        else
                                (void) timer_new(s, &s->accept_timer, SOURCE_ACCEPT_TIMER, ACCEPT_PAUSE_MS);
                        return;
                default:
                        fprintf(stderr, SD_ERR "httpd: accept on fd %d: %m\n", listener->fd);
                        return;
                }
        }
}

/* Draining: takes every connection queued on LISTENER (no longer watched). */
static void server_accept_all(struct server *s, struct source *listener) {
        for (;;) {
                int fd = accept4(listener->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd >= 0) {
                        s->drain_accepts++;
                        conn_new(s, fd);
                } else if (errno != EINTR && errno != ECONNABORTED && errno != EPROTO)
                        return; /* EAGAIN; or out of fds: the next arrival wakes a sibling */
        }
}

static void server_start_serving(struct server *s) {
        if (s->draining || s->serving)
                return;
        s->serving = true;
        server_watch_listeners(s, true);
        if (!s->opt.no_ready)
                sd_notifyf(0, "READY=1\nSTATUS=serving %s", s->opt.version);
}

static void server_start_drain(struct server *s, const char *why) {
        if (s->draining)
                return;
        s->draining = true;
        log_event(s, "drain");
        fprintf(stderr, SD_INFO "httpd %s: %s: draining %u connection(s)\n", s->opt.version, why, s->n_conns);
        sd_notifyf(0, "STOPPING=1\nSTATUS=draining %s", s->opt.version);
        /* Our copies only: the supervisor keeps the sockets, and connections still in
         * the accept queue are taken by other workers. With EPOLLEXCLUSIVE, though, a
         * connection that arrived before the EPOLL_CTL_DEL may have woken only us, and
         * no sibling hears of it until the next one arrives. So unwatch first, then
         * accept until EAGAIN: whatever was queued for us is ours to serve (it gets
         * Connection: close), and what arrives after the DEL wakes a sibling. */
        if (s->serving) {
                server_watch_listeners(s, false);
                for (size_t i = 0; i < s->n_listeners; i++)
                        server_accept_all(s, &s->listeners[i]);
        }
        for (size_t i = 0; i < s->n_listeners; i++)
                close(s->listeners[i].fd);
        s->n_listeners = 0;
        source_close(s, &s->start_timer);
        source_close(s, &s->accept_timer);
        /* Busy connections answer with Connection: close when done (conn_respond); the
         * others wait for their next request: idle ones for the grace period, those with
         * a request on its way a little longer (conn_wait_request). */
        for (struct conn *c = s->conns, *next; c; c = next) {
                next = c->next; /* c may move to the graveyard, never another one */
                if (c->state == CONN_READ)
                        conn_process(c);
        }
}

static void server_on_control(struct server *s) {
        static char buf[CONTROL_MESSAGE_MAX + 1];
        for (;;) {
                ssize_t n = recv(s->control.fd, buf, CONTROL_MESSAGE_MAX, MSG_DONTWAIT);
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                        return;
                if (n <= 0) {
                        /* The supervisor is gone: nobody will tell us to drain later. */
                        source_close(s, &s->control);
                        server_start_drain(s, "control socket closed");
                        return;
                }
                while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == 0))
                        n--;
                for (ssize_t i = 0; i < n; i++)
                        if ((unsigned char) buf[i] < ' ' || buf[i] == 0x7f)
                                buf[i] = ' '; /* one line per message in the log */
                buf[n] = 0;
                log_event(s, "message %s", buf);
        }
}

static void server_on_signal(struct server *s) {
        struct signalfd_siginfo si;
        while (read(s->signal.fd, &si, sizeof(si)) == sizeof(si))
                server_start_drain(s, si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
}

static void server_dispatch(struct server *s, struct source *src, uint32_t events) {
        switch (src->kind) {
        case SOURCE_LISTEN:
                if (!s->draining)
                        server_accept(s, src);
                break;
        case SOURCE_CONN:
                if (!src->conn->closed)
                        conn_on_io(src->conn, events);
                break;
        case SOURCE_CONN_TIMER:
                if (!src->conn->closed)
                        conn_on_timer(src->conn);
                break;
        case SOURCE_SIGNAL:
                server_on_signal(s);
                break;
        case SOURCE_CONTROL:
                server_on_control(s);
                break;
        case SOURCE_START_TIMER:
                source_close(s, &s->start_timer);
                server_start_serving(s);
                break;
        case SOURCE_ACCEPT_TIMER:
                timer_consume(src);
                if (s->serving && !s->draining)
                        server_watch_listeners(s, true);
                break;
        case SOURCE_WATCHDOG_TIMER:
                timer_consume(src);
                sd_notify(0, "WATCHDOG=1");
                (void) timer_rearm(src, s->watchdog_ms);
                break;
        case SOURCE_CRASH_TIMER:
                log_event(s, "crash");
                fprintf(stderr, SD_ERR "httpd %s: crashing after %ld ms as asked\n", s->opt.version,
                        s->opt.crash_after_ms);
                _exit(1); /* like a crash: no clean-up, no leak report */
        }
}

static void server_bury(struct server *s) {
        while (s->graveyard) {
                struct conn *c = s->graveyard;
                s->graveyard = c->next;
                conn_free(c);
        }
}

static int server_run(struct server *s) {
        while (!(s->draining && s->n_conns == 0)) {
                struct epoll_event events[256];
                int n = epoll_wait(s->epoll_fd, events, 256, -1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        fprintf(stderr, SD_ERR "httpd: epoll_wait: %m\n");
                        return -errno;
                }
                for (int i = 0; i < n; i++)
                        server_dispatch(s, events[i].data.ptr, events[i].events);
                server_bury(s);
        }
        return 0;
}

static void server_free(struct server *s) {
        while (s->conns)
                conn_close(s->conns);
        server_bury(s);
        for (size_t i = 0; i < s->n_listeners; i++)
                close(s->listeners[i].fd);
        free(s->listeners);
        source_close(s, &s->signal);
        source_close(s, &s->control);
        source_close(s, &s->start_timer);
        source_close(s, &s->crash_timer);
        source_close(s, &s->accept_timer);
        source_close(s, &s->watchdog_timer);
        if (s->epoll_fd >= 0)
                close(s->epoll_fd);
        if (s->log_fd >= 0)
                close(s->log_fd);
        free(s->fds_at_start);
}

static bool parse_long(const char *text, long *ret) {
        char *end;
        errno = 0;
        long v = strtol(text, &end, 10);
        if (errno || end == text || *end || v < 0)
                return false;
        *ret = v;
        return true;
}

/* Adds FD to the sockets we serve if it is a listening stream socket. Returns 1 when
 * added, 0 when ignored, or a negative errno. */
static int server_add_listener(struct server *s, int fd, const char *origin) {
        if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
                fprintf(stderr, SD_WARNING "httpd: fd %d from %s is not a listening stream socket, ignored\n", fd,
                        origin);
                return 0;
        }
        int flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
                fprintf(stderr, SD_ERR "httpd: fd %d: %m\n", fd);
                return -errno;
        }
        s->listeners[s->n_listeners++] = (struct source){ .kind = SOURCE_LISTEN, .fd = fd };
        return 1;
}

/* Server::Starter (start_server) does not use LISTEN_FDS: it leaves each socket open at
 * whatever fd number Perl gave it and describes them as SERVER_STARTER_PORT=
 * "ADDR=FD;ADDR=FD..." (ADDR is host:port, a port or a unix socket path). The fd is
 * what follows the last '=' of each item, since a unix path may contain '=' itself. */
static int server_take_starter_listeners(struct server *s, const char *spec) {
        _cleanup_free_ char *copy = strdup(spec);
        if (!copy)
                return -ENOMEM;
        size_t items = 1;
        for (const char *p = spec; *p; p++)
                items += *p == ';';
        s->listeners = calloc(items, sizeof(*s->listeners));
        if (!s->listeners)
                return -ENOMEM;
        char *save = NULL;
        for (char *item = strtok_r(copy, ";", &save); item; item = strtok_r(NULL, ";", &save)) {
                const char *eq = strrchr(item, '=');
                long fd;
                if (!eq || !parse_long(eq + 1, &fd) || fd > INT_MAX) {
                        fprintf(stderr, SD_WARNING "httpd: SERVER_STARTER_PORT item \"%s\" has no fd number, ignored\n",
                                item);
                        continue;
                }
                int r = server_add_listener(s, (int) fd, "SERVER_STARTER_PORT");
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Takes every stream socket systemd-style socket passing gave us (LISTEN_FDS), else
 * those Server::Starter gave us. LISTEN_* stay set so that /env can show them. */
static int server_take_listeners(struct server *s) {
        int n = sd_listen_fds(0);
        if (n < 0) {
                fprintf(stderr, SD_ERR "httpd: LISTEN_FDS: %s\n", strerror(-n));
                return n;
        }
        const char *starter = getenv("SERVER_STARTER_PORT");
        if (n == 0 && starter && *starter) {
                int r = server_take_starter_listeners(s, starter);
                if (r < 0)
                        return r;
        } else {
                s->listeners = calloc(n > 0 ? (size_t) n : 1, sizeof(*s->listeners));
                if (!s->listeners)
                        return -ENOMEM;
                for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + n; fd++) {
                        int r = server_add_listener(s, fd, "LISTEN_FDS");
                        if (r < 0)
                                return r;
                }
        }
        if (s->n_listeners == 0) {
                fprintf(stderr, SD_ERR "httpd: no listening sockets were passed (LISTEN_FDS/LISTEN_PID or "
                                       "SERVER_STARTER_PORT); run me under liveswap, systemd, systemd-socket-activate "
                                       "or start_server\n");
                return -EBADF;
        }
        return 0;
}

static int server_watch_control(struct server *s) {
        const char *text = getenv("LIVESWAP_CONTROL_FD");
        if (!text || !*text)
                return 0;
        char *end;
        errno = 0;
        long fd = strtol(text, &end, 10);
        struct stat st;
        if (errno || *end || fd < 0 || fd > INT_MAX || fstat((int) fd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
                fprintf(stderr, SD_WARNING "httpd: LIVESWAP_CONTROL_FD=%s is not a socket, ignored\n", text);
                return 0;
        }
        s->control = (struct source){ .kind = SOURCE_CONTROL, .fd = (int) fd };
        (void) fcntl(s->control.fd, F_SETFD, FD_CLOEXEC);
        return watch(s, &s->control, EPOLLIN);
}

static int server_init(struct server *s) {
        int r;
        /* Many connections: as many fds as we are allowed. */
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
        }

        r = server_take_listeners(s);
        if (r < 0)
                return r;

        s->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        if (s->epoll_fd < 0)
                return -errno;

        /* An ignored signal never reaches a signalfd: whatever we inherited, the ones we
         * drain on get their default disposition back before they are blocked. */
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        signal(SIGINT, SIG_DFL);
        if (s->opt.ignore_term)
                signal(SIGTERM, SIG_IGN);
        else if (s->opt.die_on_term)
                signal(SIGTERM, SIG_DFL);
        else {
                sigaddset(&mask, SIGTERM);
                signal(SIGTERM, SIG_DFL);
        }
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return -errno;
        s->signal = (struct source){ .kind = SOURCE_SIGNAL, .fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC) };
        if (s->signal.fd < 0)
                return -errno;
        r = watch(s, &s->signal, EPOLLIN);
        if (r < 0)
                return r;

        r = server_watch_control(s);
        if (r < 0)
                return r;

        if (s->opt.crash_after_ms > 0) {
                r = timer_new(s, &s->crash_timer, SOURCE_CRASH_TIMER, s->opt.crash_after_ms);
                if (r < 0)
                        return r;
        }
        /* The watchdog runs from exec, as systemd's does: pings start before READY=1. */
        uint64_t watchdog_usec;
        if (!s->opt.no_watchdog && sd_watchdog_enabled(0, &watchdog_usec) > 0) {
                s->watchdog_ms = (long) (watchdog_usec / 2000) ?: 1;
                r = timer_new(s, &s->watchdog_timer, SOURCE_WATCHDOG_TIMER, 0);
                if (r < 0)
                        return r;
        }
        /* Start-up work runs on a timer, so a drain request during it is seen at once. */
        if (s->opt.delay_start_ms > 0)
                return timer_new(s, &s->start_timer, SOURCE_START_TIMER, s->opt.delay_start_ms);
        server_start_serving(s);
        return 0;
}

static int usage(const char *argv0, int status) {
        fprintf(status ? stderr : stdout,
                "usage: %s [--version STR] [--idle-grace MS] [--delay-start MS] [--crash-at-start]\n"
                "       [--crash-after MS] [--no-ready] [--ignore-term] [--die-on-term] [--log FILE]\n"
                "       [--no-watchdog] [--leak BYTES]\n"
                "An HTTP/1.1 worker for liveswap: serves on the sockets passed in LISTEN_FDS\n"
                "(or, under Server::Starter's start_server, in SERVER_STARTER_PORT).\n"
                "While draining, a kept-alive connection idle for --idle-grace MS (default %d)\n"
                "is closed; one that sends a request is answered with Connection: close.\n",
                argv0, IDLE_GRACE_MS);
        return status;
}

/* Returns 0, or the exit status for a usage error (-1 for --help). */
static int parse_args(int argc, char **argv, struct options *o) {
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                if (strcmp(a, "--crash-at-start") == 0)
                        o->crash_at_start = true;
                else if (strcmp(a, "--no-ready") == 0)
                        o->no_ready = true;
                else if (strcmp(a, "--ignore-term") == 0)
                        o->ignore_term = true;
                else if (strcmp(a, "--die-on-term") == 0)
                        o->die_on_term = true;
                else if (strcmp(a, "--no-watchdog") == 0)
                        o->no_watchdog = true;
                else if (strcmp(a, "--leak") == 0) {
                        if (i + 1 >= argc || !parse_long(argv[i + 1], &o->leak_bytes)) {
                                fprintf(stderr, "httpd: --leak needs a number of bytes\n");
                                return 2;
                        }
                        i++;
                } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
                        return -1;
                else if (strcmp(a, "--version") == 0 || strcmp(a, "--log") == 0 || strcmp(a, "--delay-start") == 0 ||
                         strcmp(a, "--crash-after") == 0 || strcmp(a, "--idle-grace") == 0) {
                        if (i + 1 >= argc) {
                                fprintf(stderr, "httpd: %s needs a value\n", a);
                                return 2;
                        }
                        const char *v = argv[++i];
                        if (strcmp(a, "--version") == 0)
                                o->version = v;
                        else if (strcmp(a, "--log") == 0)
                                o->log_path = v;
                        else if (!parse_long(v, strcmp(a, "--delay-start") == 0  ? &o->delay_start_ms
                                                : strcmp(a, "--idle-grace") == 0 ? &o->idle_grace_ms
                                                                                 : &o->crash_after_ms)) {
                                fprintf(stderr, "httpd: %s: not a number of milliseconds: %s\n", a, v);
                                return 2;
                        }
                } else {
                        fprintf(stderr, "httpd: unknown argument: %s\n", a);
                        return 2;
                }
        }
        return 0;
}

int main(int argc, char **argv) {
        /* First thing: the fd list must not include anything of ours. */
        struct server s = {
                .opt = { .version = "v1", .idle_grace_ms = IDLE_GRACE_MS },
                .epoll_fd = -1,
                .log_fd = -1,
                .fds_at_start = capture_fds(),
                .signal.fd = -1,
                .control.fd = -1,
                .start_timer.fd = -1,
                .crash_timer.fd = -1,
                .accept_timer.fd = -1,
                .watchdog_timer.fd = -1,
        };
        capture_signals(&s.blocked_at_start, &s.ignored_at_start);
        int r = parse_args(argc, argv, &s.opt);
        if (r != 0) {
                free(s.fds_at_start);
                return usage(argv[0], r < 0 ? 0 : r);
        }
        s.pid = getpid();
        s.generation = getenv("LIVESWAP_GENERATION") ?: "";

        if (s.opt.log_path) {
                s.log_fd = open(s.opt.log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
                if (s.log_fd < 0)
                        fprintf(stderr, SD_WARNING "httpd: cannot open log %s: %m\n", s.opt.log_path);
        }
        log_event(&s, "start pid=%d gen=%s worker=%s", (int) s.pid, getenv("LIVESWAP_GENERATION") ?: "-",
                  getenv("LIVESWAP_WORKER") ?: "-");
        if (s.opt.crash_at_start) {
                log_event(&s, "crash");
                fprintf(stderr, SD_ERR "httpd %s: crashing at start as asked\n", s.opt.version);
                server_free(&s);
                return 1;
        }
        if (!s.fds_at_start) {
                server_free(&s);
                return 1;
        }

        r = server_init(&s);
        if (r < 0) {
                if (r != -EBADF)
                        fprintf(stderr, SD_ERR "httpd: start-up failed: %s\n", strerror(-r));
                server_free(&s);
                return 1;
        }
        r = server_run(&s);
        log_event(&s, "exit drain_accepts=%" PRIu64, s.drain_accepts);
        server_free(&s);
        return r < 0 ? 1 : 0;
}
