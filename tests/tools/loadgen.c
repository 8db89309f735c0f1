/* loadgen.c: a load client for liveswap's tests and benchmarks. N concurrent clients on
 * one epoll loop send GET requests as fast as answers come back, over a new connection
 * per request ("close"), over kept-alive connections ("keepalive"), or half and half
 * ("mixed"). Every outcome is counted in its own class, so that a test can demand zero
 * failures and say exactly what went wrong when there are some.
 *
 * A keep-alive connection the server closes while idle is normal HTTP: the client just
 * reconnects. A server that closes a reused connection right as a request was written
 * (the well-known keep-alive race) gets the request retried once on a new connection,
 * as real clients do for idempotent requests; counted as retried_idle_close, a failure
 * only if the retry fails too.
 *
 * Output: key=value lines (requests, ok, failed, each class, versions, latency
 * percentiles), on stdout and in --report FILE. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum outcome { OK, BAD_STATUS, REFUSED, RESET, EOF_EARLY, TIMEOUT, CONNECT_ERROR, N_OUTCOMES };
static const char *const outcome_names[] = { "ok", "bad_status", "refused", "reset", "eof", "timeout", "connect_error" };

enum phase { IDLE, CONNECTING, SENDING, READING, AWAIT_EOF };

struct client {
        int fd;
        bool keepalive;
        enum phase phase;
        int served_on_conn; /* responses received on this connection */
        bool retried;
        uint64_t started_us, deadline_us;
        char buf[65536];
        size_t len;
        size_t sent;
        uint32_t index, serial; /* serial changes with each connection: stale events are ignored */
};

static struct {
        struct sockaddr_storage addr;
        socklen_t addr_len;
        char request_close[512], request_keep[512];
        uint64_t counts[N_OUTCOMES];
        uint64_t retried_idle_close;
        uint64_t requests;
        uint32_t *latencies;
        size_t n_latencies, cap_latencies;
        char versions[32][64];
        uint64_t version_counts[32];
        int n_versions;
        char last_version[64];
        uint64_t timeout_us;
        int epoll_fd;
        FILE *timeline;
        uint64_t t0;
} g;

static uint64_t now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static int parse_target(const char *t) {
        memset(&g.addr, 0, sizeof(g.addr));
        if (strncmp(t, "unix:", 5) == 0) {
                struct sockaddr_un *un = (struct sockaddr_un *) &g.addr;
                if (strlen(t + 5) >= sizeof(un->sun_path))
                        return -1;
                un->sun_family = AF_UNIX;
                strcpy(un->sun_path, t + 5);
                g.addr_len = sizeof(*un);
                return 0;
        }
        char host[256];
        const char *colon = strrchr(t, ':');
        if (!colon || (size_t) (colon - t) >= sizeof(host))
                return -1;
        memcpy(host, t, colon - t);
        host[colon - t] = 0;
        int port = atoi(colon + 1);
        struct sockaddr_in *in = (struct sockaddr_in *) &g.addr;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &g.addr;
        char *h = host;
        if (h[0] == '[') {
                h++;
                h[strlen(h) - 1] = 0;
        }
        if (inet_pton(AF_INET, h, &in->sin_addr) == 1) {
                in->sin_family = AF_INET;
                in->sin_port = htons((uint16_t) port);
                g.addr_len = sizeof(*in);
        } else if (inet_pton(AF_INET6, h, &in6->sin6_addr) == 1) {
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons((uint16_t) port);
                g.addr_len = sizeof(*in6);
        } else
                return -1;
        return 0;
}

static void record_version(const char *v) {
        snprintf(g.last_version, sizeof(g.last_version), "%s", v);
        for (int i = 0; i < g.n_versions; i++)
                if (strcmp(g.versions[i], v) == 0) {
                        g.version_counts[i]++;
                        return;
                }
        if (g.n_versions < 32) {
                snprintf(g.versions[g.n_versions], sizeof(g.versions[0]), "%s", v);
                g.version_counts[g.n_versions++] = 1;
        }
}

static void record(struct client *c, enum outcome o, int status, const char *version) {
        uint64_t t = now_us();
        g.counts[o]++;
        g.requests++;
        if (o == OK) {
                if (g.n_latencies == g.cap_latencies) {
                        g.cap_latencies = g.cap_latencies ? g.cap_latencies * 2 : 65536;
                        g.latencies = realloc(g.latencies, g.cap_latencies * sizeof(uint32_t));
                        if (!g.latencies)
                                abort();
                }
                uint64_t l = t - c->started_us;
                g.latencies[g.n_latencies++] = l > UINT32_MAX ? UINT32_MAX : (uint32_t) l;
        }
        if (g.timeline)
                fprintf(g.timeline, "%.3f %llu %d %s %s\n", (t - g.t0) / 1000.0,
                        (unsigned long long) (t - c->started_us), status, version ? version : "-", outcome_names[o]);
}

static void client_close(struct client *c) {
        if (c->fd >= 0)
                close(c->fd);
        c->fd = -1;
        c->phase = IDLE;
        c->served_on_conn = 0;
        c->len = 0;
}

static uint64_t event_key(const struct client *c) {
        return (uint64_t) c->serial << 32 | c->index;
}

static void arm(struct client *c, uint32_t events) {
        struct epoll_event ev = { .events = events, .data.u64 = event_key(c) };
        epoll_ctl(g.epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void send_request(struct client *c);

static void start_connect(struct client *c) {
        c->fd = socket(g.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
                record(c, CONNECT_ERROR, 0, NULL);
                c->phase = IDLE;
                return;
        }
        if (g.addr.ss_family != AF_UNIX) {
                int one = 1;
                setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        c->serial++;
        struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = event_key(c) };
        epoll_ctl(g.epoll_fd, EPOLL_CTL_ADD, c->fd, &ev);
        c->served_on_conn = 0;
        if (connect(c->fd, (struct sockaddr *) &g.addr, g.addr_len) < 0 && errno != EINPROGRESS) {
                int e = errno;
                client_close(c);
                record(c, e == ECONNREFUSED ? REFUSED : e == EAGAIN && g.addr.ss_family == AF_UNIX ? REFUSED
                                                                                                   : CONNECT_ERROR,
                       0, NULL);
                return;
        }
        c->phase = CONNECTING;
}

/* Starts the next request: on the kept-alive connection, or a new one. */
static void next_request(struct client *c, bool retry) {
        uint64_t t = now_us();
        c->retried = retry;
        if (!retry)
                c->started_us = t;
        c->deadline_us = t + g.timeout_us;
        c->len = 0;
        c->sent = 0;
        if (c->fd < 0)
                start_connect(c);
        else
                send_request(c);
}

static void send_request(struct client *c) {
        const char *req = c->keepalive ? g.request_keep : g.request_close;
        size_t n = strlen(req);
        c->phase = SENDING;
        while (c->sent < n) {
                ssize_t w = send(c->fd, req + c->sent, n - c->sent, MSG_NOSIGNAL);
                if (w < 0) {
                        if (errno == EAGAIN) {
                                arm(c, EPOLLOUT);
                                return;
                        }
                        goto broken;
                }
                c->sent += (size_t) w;
        }
        c->phase = READING;
        arm(c, EPOLLIN | EPOLLRDHUP);
        return;
broken:;
        int e = errno;
        bool reused = c->served_on_conn > 0;
        client_close(c);
        if (reused && !c->retried) {
                g.retried_idle_close++;
                next_request(c, true);
        } else
                record(c, e == ECONNREFUSED ? REFUSED : RESET, 0, NULL);
}

/* Returns 1 when a full response is in the buffer, 0 when more is needed, -1 if garbage. */
static int parse_response(struct client *c, int *status, char *version, size_t vsize, bool *close_after) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (!end)
                return c->len == sizeof(c->buf) ? -1 : 0;
        size_t head = (size_t) (end - c->buf) + 4;
        char saved = c->buf[head - 1];
        c->buf[head - 1] = 0;
        if (sscanf(c->buf, "HTTP/1.%*d %d", status) != 1) {
                c->buf[head - 1] = saved;
                return -1;
        }
        size_t body = 0;
        *close_after = false;
        version[0] = 0;
        for (char *h = strstr(c->buf, "\r\n"); h && h < c->buf + head - 2; h = strstr(h + 2, "\r\n")) {
                if (strncasecmp(h + 2, "Content-Length:", 15) == 0)
                        body = strtoul(h + 17, NULL, 10);
                else if (strncasecmp(h + 2, "Connection:", 11) == 0 && strncasecmp(h + 13, " close", 6) == 0)
                        *close_after = true;
                else if (strncasecmp(h + 2, "X-Version:", 10) == 0) {
                        const char *v = h + 12;
                        while (*v == ' ')
                                v++;
                        size_t n = strcspn(v, "\r");
                        snprintf(version, vsize, "%.*s", (int) (n < vsize ? n : vsize - 1), v);
                }
        }
        c->buf[head - 1] = saved;
        return c->len >= head + body ? 1 : 0;
}

static void on_readable(struct client *c) {
        for (;;) {
                if (c->phase == AWAIT_EOF) {
                        char sink[4096];
                        ssize_t n = recv(c->fd, sink, sizeof(sink), 0);
                        if (n > 0)
                                continue;
                        if (n < 0 && errno == EAGAIN)
                                return;
                        client_close(c);
                        next_request(c, false);
                        return;
                }
                ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
                if (n < 0 && errno == EAGAIN)
                        return;
                if (n <= 0) {
                        bool reused = c->served_on_conn > 0;
                        int e = n < 0 ? errno : 0;
                        bool nothing = c->len == 0;
                        client_close(c);
                        if (nothing && reused && !c->retried) {
                                g.retried_idle_close++;
                                next_request(c, true);
                        } else {
                                record(c, e == ECONNRESET || e == EPIPE ? RESET : EOF_EARLY, 0, NULL);
                                next_request(c, false);
                        }
                        return;
                }
                c->len += (size_t) n;
                int status = 0;
                bool close_after = false;
                char version[64];
                int r = parse_response(c, &status, version, sizeof(version), &close_after);
                if (r == 0)
                        continue;
                if (r < 0) {
                        record(c, BAD_STATUS, 0, NULL);
                        client_close(c);
                        next_request(c, false);
                        return;
                }
                bool ok = status >= 200 && status < 300;
                if (ok && version[0])
                        record_version(version);
                record(c, ok ? OK : BAD_STATUS, status, version);
                c->served_on_conn++;
                if (!c->keepalive || close_after) {
                        /* Let the server close first, so TIME_WAIT stays on its side and our
                         * ephemeral ports do not run out. */
                        c->phase = AWAIT_EOF;
                        c->deadline_us = now_us() + g.timeout_us;
                        continue;
                }
                next_request(c, false);
                return;
        }
}

static void on_writable(struct client *c) {
        if (c->phase == CONNECTING) {
                int err = 0;
                socklen_t len = sizeof(err);
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) {
                        client_close(c);
                        record(c, err == ECONNREFUSED ? REFUSED : err == ECONNRESET ? RESET : CONNECT_ERROR, 0, NULL);
                        next_request(c, false);
                        return;
                }
                c->sent = 0;
        }
        send_request(c);
}

static int cmp_u32(const void *a, const void *b) {
        uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
        return x < y ? -1 : x > y;
}

static uint32_t percentile(double p) {
        if (g.n_latencies == 0)
                return 0;
        size_t i = (size_t) (p * (double) (g.n_latencies - 1) + 0.5);
        return g.latencies[i];
}

static void report(FILE *f, double seconds) {
        uint64_t failed = 0;
        for (int o = 1; o < N_OUTCOMES; o++)
                failed += g.counts[o];
        fprintf(f, "requests=%llu\nok=%llu\nfailed=%llu\n", (unsigned long long) g.requests,
                (unsigned long long) g.counts[OK], (unsigned long long) failed);
        for (int o = 1; o < N_OUTCOMES; o++)
                fprintf(f, "%s=%llu\n", outcome_names[o], (unsigned long long) g.counts[o]);
        fprintf(f, "retried_idle_close=%llu\nversions=", (unsigned long long) g.retried_idle_close);
        for (int i = 0; i < g.n_versions; i++)
                fprintf(f, "%s%s:%llu", i ? "," : "", g.versions[i], (unsigned long long) g.version_counts[i]);
        fprintf(f, "\nlast_version=%s\n", g.last_version);
        fprintf(f, "p50_us=%u\np99_us=%u\np999_us=%u\nmax_us=%u\nduration_s=%.3f\nrate=%.0f\n", percentile(0.50),
                percentile(0.99), percentile(0.999), percentile(1.0), seconds,
                seconds > 0 ? (double) g.requests / seconds : 0.0);
}

static void usage(void) {
        fprintf(stderr, "usage: loadgen --target HOST:PORT|unix:PATH [--clients N] [--mode close|keepalive|mixed]\n"
                        "               (--duration SEC | --until-file PATH) [--max-seconds SEC] [--path /]\n"
                        "               [--timeout-ms MS] [--report FILE] [--timeline FILE]\n");
        exit(2);
}

int main(int argc, char **argv) {
        const char *target = NULL, *mode = "mixed", *path = "/", *until = NULL, *report_path = NULL;
        int clients = 8;
        double duration = 0, max_seconds = 600;
        long timeout_ms = 5000;

        for (int i = 1; i < argc; i++) {
                const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
                if (!v)
                        usage();
                i++;
                if (strcmp(a, "--target") == 0)
                        target = v;
                else if (strcmp(a, "--clients") == 0)
                        clients = atoi(v);
                else if (strcmp(a, "--mode") == 0)
                        mode = v;
                else if (strcmp(a, "--duration") == 0)
                        duration = atof(v);
                else if (strcmp(a, "--until-file") == 0)
                        until = v;
                else if (strcmp(a, "--max-seconds") == 0)
                        max_seconds = atof(v);
                else if (strcmp(a, "--path") == 0)
                        path = v;
                else if (strcmp(a, "--timeout-ms") == 0)
                        timeout_ms = atol(v);
                else if (strcmp(a, "--report") == 0)
                        report_path = v;
                else if (strcmp(a, "--timeline") == 0) {
                        g.timeline = fopen(v, "we");
                        if (!g.timeline) {
                                perror(v);
                                return 2;
                        }
                } else
                        usage();
        }
        if (!target || clients < 1 || clients > 10000 || (duration <= 0 && !until) || parse_target(target) < 0)
                usage();
        bool all_keep = strcmp(mode, "keepalive") == 0, mixed = strcmp(mode, "mixed") == 0;
        if (!all_keep && !mixed && strcmp(mode, "close") != 0)
                usage();
        snprintf(g.request_close, sizeof(g.request_close), "GET %s HTTP/1.1\r\nHost: loadgen\r\nConnection: close\r\n\r\n",
                 path);
        snprintf(g.request_keep, sizeof(g.request_keep), "GET %s HTTP/1.1\r\nHost: loadgen\r\n\r\n", path);
        g.timeout_us = (uint64_t) timeout_ms * 1000;
        g.epoll_fd = epoll_create1(EPOLL_CLOEXEC);

        struct client *cs = calloc((size_t) clients, sizeof(*cs));
        if (!cs)
                return 1;
        g.t0 = now_us();
        uint64_t stop_at = g.t0 + (uint64_t) ((duration > 0 ? duration : max_seconds) * 1e6);
        uint64_t hard_stop = g.t0 + (uint64_t) (max_seconds * 1e6);
        if (stop_at > hard_stop)
                stop_at = hard_stop;
        for (int i = 0; i < clients; i++) {
                cs[i].fd = -1;
                cs[i].index = (uint32_t) i;
                cs[i].keepalive = all_keep || (mixed && i % 2 == 1);
                next_request(&cs[i], false);
        }

        uint64_t next_check = 0;
        for (;;) {
                uint64_t t = now_us();
                if (t >= stop_at)
                        break;
                if (until && t >= next_check) {
                        struct stat st;
                        if (stat(until, &st) == 0)
                                break;
                        next_check = t + 20000;
                }
                for (int i = 0; i < clients; i++) {
                        struct client *c = &cs[i];
                        if (c->phase == IDLE) {
                                next_request(c, false);
                        } else if (t >= c->deadline_us) {
                                bool waiting_eof = c->phase == AWAIT_EOF;
                                client_close(c);
                                if (!waiting_eof)
                                        record(c, TIMEOUT, 0, NULL);
                                next_request(c, false);
                        }
                }
                struct epoll_event events[256];
                int n = epoll_wait(g.epoll_fd, events, 256, 20);
                for (int i = 0; i < n; i++) {
                        struct client *c = &cs[events[i].data.u64 & 0xffffffff];
                        if (c->fd < 0 || c->serial != (uint32_t) (events[i].data.u64 >> 32))
                                continue; /* about a connection closed earlier in this batch */
                        if (c->phase == CONNECTING || c->phase == SENDING)
                                on_writable(c);
                        else
                                on_readable(c);
                }
        }
        double seconds = (double) (now_us() - g.t0) / 1e6;
        /* Requests still in flight at the stop are neither successes nor failures. */
        qsort(g.latencies, g.n_latencies, sizeof(uint32_t), cmp_u32);
        report(stdout, seconds);
        if (report_path) {
                FILE *f = fopen(report_path, "we");
                if (f) {
                        report(f, seconds);
                        fclose(f);
                }
        }
        if (g.timeline)
                fclose(g.timeline);
        for (int i = 0; i < clients; i++)
                if (cs[i].fd >= 0)
                        close(cs[i].fd);
        free(cs);
        free(g.latencies);
        return 0;
}
