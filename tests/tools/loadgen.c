/* loadgen.c: a load client for liveswap's tests and benchmarks. N concurrent clients on
 * one epoll loop send GET requests as fast as answers come back: over a new connection
 * per request ("close"), over kept-alive connections ("keepalive"), or half and half
 * ("mixed": odd-numbered clients keep alive). Every outcome is counted in its own class,
 * so that a test can demand zero failures and say exactly what went wrong otherwise.
 *
 * Two things are neither ok nor failed:
 * - a kept-alive connection the server closed while idle, seen before reuse (or
 *   announced with Connection: close): the client reconnects (idle_closed). Every
 *   client that checks a pooled connection before reusing it does the same.
 * - the keep-alive race: the server closes a reused connection just as a request was
 *   written, so not a byte of response comes back. The request is retried once on a new
 *   connection, as some clients do for idempotent requests; a request answered only by
 *   its retry is its own class, retried, not ok: a client that does not retry (wrk, a
 *   POST, most load testers) sees it as a read error. It is a failure if the retry fails
 *   too. A worker that drains as liveswap(8) describes leaves it at 0.
 * So requests = ok + retried + failed.
 *
 * Output: key=value lines on stdout (and in --report FILE); --timeline FILE adds one
 * line per request: "T_MS LATENCY_US STATUS VERSION MODE RETRIED", T_MS when it ended,
 * counted from t0_monotonic_us (CLOCK_MONOTONIC, so a benchmark driver can line requests
 * up with the moments it started and ended an upgrade), MODE k (keep-alive) or c
 * (close), RETRIED r when the request was answered (or failed) on its retry, else -. It
 * never exits non-zero except for bad usage (2): the numbers are the result. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define RESPONSE_HEAD_MAX 8192
#define VERSION_MAX 64
#define VERSIONS_MAX 64
#define FAILURE_BACKOFF_US 10000 /* after a failure, so a refusing server is not hammered */
#define SWEEP_US 10000 /* how often timeouts and back-offs are checked */
#define UNTIL_FILE_CHECK_US 50000
#define CLIENTS_MAX 100000

enum outcome {
        OUTCOME_OK,
        OUTCOME_RETRIED, /* a 2xx answer, but only to the retry after a keep-alive race */
        OUTCOME_BAD_STATUS, /* a complete response, not 2xx */
        OUTCOME_BAD_RESPONSE, /* not HTTP, or framing we cannot follow */
        OUTCOME_REFUSED, /* ECONNREFUSED (or a full unix backlog) */
        OUTCOME_RESET, /* ECONNRESET/EPIPE on a request in flight */
        OUTCOME_EOF, /* closed before a full response to a request we sent */
        OUTCOME_TIMEOUT,
        OUTCOME_CONNECT_ERROR, /* any other failure to connect */
        _OUTCOME_MAX,
};

static const char *const outcome_names[_OUTCOME_MAX] = {
        [OUTCOME_OK] = "ok",
        [OUTCOME_RETRIED] = "retried",
        [OUTCOME_BAD_STATUS] = "bad_status",
        [OUTCOME_BAD_RESPONSE] = "bad_response",
        [OUTCOME_REFUSED] = "refused",
        [OUTCOME_RESET] = "reset",
        [OUTCOME_EOF] = "eof",
        [OUTCOME_TIMEOUT] = "timeout",
        [OUTCOME_CONNECT_ERROR] = "connect_error",
};

/* An incremental HTTP/1.1 response parser: Content-Length, chunked, or until EOF. */
enum parse_state {
        PARSE_HEAD,
        PARSE_BODY_LENGTH,
        PARSE_CHUNK_SIZE,
        PARSE_CHUNK_DATA,
        PARSE_CHUNK_DATA_END,
        PARSE_TRAILERS,
        PARSE_BODY_UNTIL_EOF,
        PARSE_DONE,
};

struct response {
        enum parse_state state;
        int status;
        bool close;
        char version[VERSION_MAX];
        uint64_t left; /* body or chunk bytes still to come */
        uint64_t bytes; /* everything received for this response */
        size_t line_len; /* head bytes, or the current chunk-size/trailer line */
        char line[RESPONSE_HEAD_MAX + 1];
};

enum phase {
        PHASE_IDLE, /* about to start the next request */
        PHASE_BACKOFF, /* waiting a little after a failure */
        PHASE_CONNECTING,
        PHASE_SENDING,
        PHASE_READING,
        PHASE_CLOSING, /* the response said close: waiting for the server's FIN */
};

struct client {
        uint32_t index, serial; /* serial changes with each connection: stale events are dropped */
        int fd;
        bool keepalive;
        bool retrying; /* this attempt is the one retry after a keep-alive race */
        enum phase phase;
        unsigned served; /* responses on this connection */
        size_t sent;
        uint64_t started_us; /* of the request, kept across its retry */
        uint64_t deadline_us;
        struct response response;
};

/* Latencies in a log-linear histogram: exact below 2048 us, then 1024 buckets per power
 * of two (0.1% resolution), so hours of load take constant memory. */
#define HISTOGRAM_LINEAR 2048
#define HISTOGRAM_SUB 1024
#define HISTOGRAM_BUCKETS (HISTOGRAM_LINEAR + (64 - 11) * HISTOGRAM_SUB)

static struct {
        struct sockaddr_storage addr;
        socklen_t addr_len;
        char request_close[2048], request_keepalive[2048];
        uint64_t timeout_us;
        int epoll_fd;
        FILE *timeline;
        uint64_t t0;

        uint64_t counts[_OUTCOME_MAX];
        uint64_t requests, idle_closed, connections;
        char versions[VERSIONS_MAX][VERSION_MAX];
        uint64_t version_counts[VERSIONS_MAX];
        unsigned n_versions;
        char last_version[VERSION_MAX];
        uint64_t histogram[HISTOGRAM_BUCKETS];
        uint64_t latency_max;
} g = { .epoll_fd = -1 };

static uint64_t now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

/* ---- statistics ---- */

static size_t histogram_index(uint64_t v) {
        if (v < HISTOGRAM_LINEAR)
                return (size_t) v;
        int bit = 63 - __builtin_clzll(v); /* >= 11 */
        int shift = bit - 10;
        return HISTOGRAM_LINEAR + (size_t) (bit - 11) * HISTOGRAM_SUB + (size_t) ((v >> shift) - HISTOGRAM_SUB);
}

/* The largest value that falls into bucket I. */
static uint64_t histogram_value(size_t i) {
        if (i < HISTOGRAM_LINEAR)
                return i;
        size_t k = i - HISTOGRAM_LINEAR;
        int shift = (int) (k / HISTOGRAM_SUB) + 1;
        uint64_t base = (uint64_t) (k % HISTOGRAM_SUB + HISTOGRAM_SUB) << shift;
        return base + ((uint64_t) 1 << shift) - 1;
}

static bool outcome_failed(enum outcome o) {
        return o != OUTCOME_OK && o != OUTCOME_RETRIED;
}

/* Nearest-rank percentile of the answered (ok or retried) requests' latencies (0 when
 * there are none); a retried request's latency includes its retry. */
static uint64_t percentile(double p) {
        uint64_t n = g.counts[OUTCOME_OK] + g.counts[OUTCOME_RETRIED];
        if (n == 0)
                return 0;
        uint64_t rank = (uint64_t) (p * (double) n + 0.999999);
        if (rank < 1)
                rank = 1;
        uint64_t seen = 0;
        for (size_t i = 0; i < HISTOGRAM_BUCKETS; i++) {
                seen += g.histogram[i];
                if (seen >= rank) {
                        uint64_t v = histogram_value(i);
                        return v < g.latency_max ? v : g.latency_max;
                }
        }
        return g.latency_max;
}

static void record_version(const char *v) {
        snprintf(g.last_version, sizeof(g.last_version), "%s", v);
        for (unsigned i = 0; i < g.n_versions; i++)
                if (strcmp(g.versions[i], v) == 0) {
                        g.version_counts[i]++;
                        return;
                }
        if (g.n_versions < VERSIONS_MAX) {
                snprintf(g.versions[g.n_versions], VERSION_MAX, "%s", v);
                g.version_counts[g.n_versions++] = 1;
        }
}

/* Counts the end of the client's current request. */
static void record(struct client *c, enum outcome o) {
        uint64_t t = now_us(), latency = t - c->started_us;
        const struct response *r = &c->response;
        if (o == OUTCOME_OK && c->retrying)
                o = OUTCOME_RETRIED;
        g.counts[o]++;
        g.requests++;
        if (!outcome_failed(o)) {
                g.histogram[histogram_index(latency)]++;
                if (latency > g.latency_max)
                        g.latency_max = latency;
                if (r->version[0])
                        record_version(r->version);
        }
        if (g.timeline) {
                /* t_ms latency_us status version; status is the outcome when there was no
                 * HTTP status to show. */
                char status[32];
                if (!outcome_failed(o) || o == OUTCOME_BAD_STATUS)
                        snprintf(status, sizeof(status), "%d", r->status);
                else
                        snprintf(status, sizeof(status), "%s", outcome_names[o]);
                fprintf(g.timeline, "%.3f %" PRIu64 " %s %s %c %c\n", (double) (t - g.t0) / 1000.0, latency, status,
                        !outcome_failed(o) && r->version[0] ? r->version : "-", c->keepalive ? 'k' : 'c',
                        c->retrying ? 'r' : '-');
        }
}

/* ---- the response parser ---- */

static bool header_value(const char *line, size_t len, const char *name, char *value, size_t size) {
        size_t n = strlen(name);
        if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
                return false;
        const char *v = line + n + 1, *end = line + len;
        while (v < end && (*v == ' ' || *v == '\t'))
                v++;
        while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
        size_t vlen = (size_t) (end - v) < size - 1 ? (size_t) (end - v) : size - 1;
        memcpy(value, v, vlen);
        value[vlen] = 0;
        return true;
}

static bool has_token(const char *v, const char *token) {
        size_t n = strlen(token);
        for (const char *p = v; *p;) {
                while (*p == ' ' || *p == '\t' || *p == ',')
                        p++;
                const char *start = p;
                while (*p && *p != ',' && *p != ' ' && *p != '\t')
                        p++;
                if ((size_t) (p - start) == n && strncasecmp(start, token, n) == 0)
                        return true;
        }
        return false;
}

/* Interprets the complete head in r->line. Returns 0 or -EBADMSG. */
static int response_head(struct response *r) {
        char *p = r->line, *end = r->line + r->line_len;
        char *eol = memmem(p, (size_t) (end - p), "\r\n", 2);
        int minor;
        char text[64];
        if (!eol || sscanf(p, "HTTP/1.%d %3d", &minor, &r->status) != 2 || r->status < 100 || r->status > 999)
                return -EBADMSG;
        bool have_length = false, chunked = false;
        r->close = minor == 0;
        r->version[0] = 0;
        for (p = eol + 2; p < end; p = eol + 2) {
                eol = memmem(p, (size_t) (end - p), "\r\n", 2);
                if (!eol || eol == p)
                        break;
                size_t len = (size_t) (eol - p);
                if (header_value(p, len, "Content-Length", text, sizeof(text))) {
                        char *e;
                        errno = 0;
                        unsigned long long n = strtoull(text, &e, 10);
                        if (errno || e == text || *e || text[0] == '-')
                                return -EBADMSG;
                        r->left = n;
                        have_length = true;
                } else if (header_value(p, len, "Transfer-Encoding", text, sizeof(text)))
                        chunked = has_token(text, "chunked");
                else if (header_value(p, len, "Connection", text, sizeof(text))) {
                        if (has_token(text, "close"))
                                r->close = true;
                        else if (has_token(text, "keep-alive"))
                                r->close = false;
                } else
                        (void) header_value(p, len, "X-Version", r->version, sizeof(r->version));
        }
        if (r->status == 204 || r->status == 304)
                r->state = PARSE_DONE;
        else if (chunked)
                r->state = PARSE_CHUNK_SIZE;
        else if (have_length)
                r->state = r->left > 0 ? PARSE_BODY_LENGTH : PARSE_DONE;
        else {
                r->state = PARSE_BODY_UNTIL_EOF;
                r->close = true;
        }
        return 0;
}

/* Feeds received bytes. Returns the bytes used (the rest is beyond the response), or
 * -EBADMSG. */
static ssize_t response_feed(struct response *r, const char *data, size_t len) {
        size_t used = 0;
        r->bytes += len;
        while (used < len && r->state != PARSE_DONE) {
                const char *p = data + used;
                size_t n = len - used;
                switch (r->state) {
                case PARSE_HEAD:
                case PARSE_CHUNK_SIZE:
                case PARSE_CHUNK_DATA_END:
                case PARSE_TRAILERS: {
                        /* Line-oriented states: collect up to the end of the line (or head). */
                        const char *terminator = r->state == PARSE_HEAD ? "\r\n\r\n" : "\r\n";
                        size_t tlen = strlen(terminator), take = 0;
                        bool complete = false;
                        while (take < n) {
                                if (r->line_len >= RESPONSE_HEAD_MAX)
                                        return -EBADMSG;
                                r->line[r->line_len++] = p[take++];
                                if (r->line_len >= tlen &&
                                    memcmp(r->line + r->line_len - tlen, terminator, tlen) == 0) {
                                        complete = true;
                                        break;
                                }
                        }
                        used += take;
                        if (!complete)
                                break;
                        size_t line_len = r->line_len;
                        r->line[line_len] = 0;
                        r->line_len = 0;
                        if (r->state == PARSE_HEAD) {
                                r->line_len = line_len;
                                int status = response_head(r);
                                r->line_len = 0;
                                if (status < 0)
                                        return status;
                                if (r->status >= 100 && r->status < 200 && r->status != 101)
                                        r->state = PARSE_HEAD; /* an interim response: the real one follows */
                        } else if (r->state == PARSE_CHUNK_SIZE) {
                                char *e;
                                r->line[line_len - 2] = 0;
                                unsigned long long size = strtoull(r->line, &e, 16);
                                if (e == r->line || (*e && *e != ';' && *e != ' '))
                                        return -EBADMSG;
                                r->left = size;
                                r->state = size > 0 ? PARSE_CHUNK_DATA : PARSE_TRAILERS;
                        } else if (r->state == PARSE_CHUNK_DATA_END) {
                                if (line_len != 2)
                                        return -EBADMSG;
                                r->state = PARSE_CHUNK_SIZE;
                        } else if (line_len == 2) /* the empty line after the trailers */
                                r->state = PARSE_DONE;
                        break;
                }
                case PARSE_BODY_LENGTH:
                case PARSE_CHUNK_DATA: {
                        size_t take = r->left < n ? (size_t) r->left : n;
                        r->left -= take;
                        used += take;
                        if (r->left == 0)
                                r->state = r->state == PARSE_BODY_LENGTH ? PARSE_DONE : PARSE_CHUNK_DATA_END;
                        break;
                }
                case PARSE_BODY_UNTIL_EOF:
                        used = len;
                        break;
                case PARSE_DONE:
                        break;
                }
        }
        return (ssize_t) used;
}

static void response_reset(struct response *r) {
        r->state = PARSE_HEAD;
        r->status = 0;
        r->close = false;
        r->version[0] = 0;
        r->left = r->bytes = 0;
        r->line_len = 0;
}

/* ---- clients ---- */

static uint64_t event_key(const struct client *c) {
        return (uint64_t) c->serial << 32 | c->index;
}

static void client_watch(struct client *c, uint32_t events) {
        struct epoll_event ev = { .events = events, .data.u64 = event_key(c) };
        (void) epoll_ctl(g.epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void client_disconnect(struct client *c) {
        if (c->fd >= 0)
                close(c->fd); /* also leaves epoll: the fd is ours alone */
        c->fd = -1;
        c->served = 0;
        c->phase = PHASE_IDLE;
}

static void client_start(struct client *c, bool retry);

/* The current request failed with O; the client starts the next one after a pause. */
static void client_fail(struct client *c, enum outcome o) {
        client_disconnect(c);
        record(c, o);
        c->phase = PHASE_BACKOFF;
        c->deadline_us = now_us() + FAILURE_BACKOFF_US;
}

/* The connection broke before a byte of response came back. On a reused connection that
 * is the keep-alive race: retried once. */
static void client_broken(struct client *c, enum outcome o) {
        if (c->served > 0 && c->response.bytes == 0 && !c->retrying) {
                client_disconnect(c);
                client_start(c, true);
                return;
        }
        client_fail(c, o);
}

static void client_connect(struct client *c) {
        c->fd = socket(g.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
                client_fail(c, OUTCOME_CONNECT_ERROR);
                return;
        }
        if (g.addr.ss_family != AF_UNIX) {
                int one = 1;
                (void) setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        c->serial++;
        c->served = 0;
        g.connections++;
        struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = event_key(c) };
        if (epoll_ctl(g.epoll_fd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
                client_fail(c, OUTCOME_CONNECT_ERROR);
                return;
        }
        c->phase = PHASE_CONNECTING;
        if (connect(c->fd, (struct sockaddr *) &g.addr, g.addr_len) < 0 && errno != EINPROGRESS) {
                /* A unix socket's full backlog is EAGAIN: the server did not take us. */
                client_fail(c, errno == ECONNREFUSED || errno == EAGAIN ? OUTCOME_REFUSED : OUTCOME_CONNECT_ERROR);
                return;
        }
}

static void client_send(struct client *c) {
        const char *req = c->keepalive ? g.request_keepalive : g.request_close;
        size_t len = strlen(req);
        c->phase = PHASE_SENDING;
        while (c->sent < len) {
                ssize_t n = send(c->fd, req + c->sent, len - c->sent, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN || errno == EWOULDBLOCK) {
                                client_watch(c, EPOLLOUT);
                                return;
                        }
                        client_broken(c, errno == ECONNREFUSED ? OUTCOME_REFUSED : OUTCOME_RESET);
                        return;
                }
                c->sent += (size_t) n;
        }
        c->phase = PHASE_READING;
        client_watch(c, EPOLLIN);
}

/* A kept-alive connection the server has closed (or reset) while it was idle: reading
 * without waiting shows end of file or an error instead of "nothing yet". */
static bool closed_while_idle(int fd) {
        char byte;
        ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) || n > 0;
}

/* Starts the next request (or the retry of the current one). */
static void client_start(struct client *c, bool retry) {
        uint64_t t = now_us();
        if (!retry)
                c->started_us = t;
        c->retrying = retry;
        c->deadline_us = t + g.timeout_us;
        c->sent = 0;
        response_reset(&c->response);
        if (c->fd >= 0 && closed_while_idle(c->fd)) {
                g.idle_closed++;
                client_disconnect(c);
        }
        if (c->fd < 0)
                client_connect(c);
        else
                client_send(c);
}

/* A whole response: count it, then reuse the connection or let the server close it. */
static void client_done(struct client *c) {
        struct response *r = &c->response;
        record(c, r->status >= 200 && r->status < 300 ? OUTCOME_OK : OUTCOME_BAD_STATUS);
        c->served++;
        if (r->close || !c->keepalive) {
                /* Let the server close first: TIME_WAIT stays on its side, and our
                 * ephemeral ports last through long runs. */
                c->phase = PHASE_CLOSING;
                c->deadline_us = now_us() + g.timeout_us;
                client_watch(c, EPOLLIN);
                return;
        }
        client_start(c, false);
}

static void client_on_writable(struct client *c) {
        if (c->phase == PHASE_CONNECTING) {
                int err = 0;
                socklen_t len = sizeof(err);
                if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                        err = errno;
                if (err) {
                        client_fail(c, err == ECONNREFUSED ? OUTCOME_REFUSED
                                       : err == ECONNRESET ? OUTCOME_RESET
                                                           : OUTCOME_CONNECT_ERROR);
                        return;
                }
        }
        client_send(c);
}

static void client_on_readable(struct client *c) {
        char buf[16384];
        for (;;) {
                ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                        return;
                if (n < 0 && errno == EINTR)
                        continue;
                if (c->phase == PHASE_CLOSING) {
                        if (n > 0)
                                continue; /* nothing more was asked for: dropped */
                        client_disconnect(c);
                        client_start(c, false);
                        return;
                }
                if (n < 0) {
                        client_broken(c, errno == ECONNRESET || errno == EPIPE ? OUTCOME_RESET : OUTCOME_EOF);
                        return;
                }
                if (n == 0) {
                        if (c->response.state == PARSE_BODY_UNTIL_EOF) {
                                c->response.state = PARSE_DONE;
                                record(c, c->response.status / 100 == 2 ? OUTCOME_OK : OUTCOME_BAD_STATUS);
                                client_disconnect(c);
                                client_start(c, false);
                                return;
                        }
                        client_broken(c, OUTCOME_EOF);
                        return;
                }
                ssize_t used = response_feed(&c->response, buf, (size_t) n);
                if (used < 0 || (c->response.state == PARSE_DONE && (size_t) used < (size_t) n)) {
                        /* Garbage, or bytes nobody asked for after the response. */
                        client_fail(c, OUTCOME_BAD_RESPONSE);
                        return;
                }
                if (c->response.state == PARSE_DONE) {
                        client_done(c);
                        return;
                }
        }
}

/* Timeouts and the end of back-offs. */
static void clients_sweep(struct client *clients, int n, uint64_t t) {
        for (int i = 0; i < n; i++) {
                struct client *c = &clients[i];
                if (c->phase == PHASE_IDLE || (c->phase == PHASE_BACKOFF && t >= c->deadline_us))
                        client_start(c, false);
                else if (c->phase != PHASE_BACKOFF && t >= c->deadline_us) {
                        if (c->phase == PHASE_CLOSING) {
                                client_disconnect(c); /* the server kept it open: not our problem */
                                client_start(c, false);
                        } else
                                client_fail(c, OUTCOME_TIMEOUT);
                }
        }
}

/* ---- command line and report ---- */

static int parse_target(const char *t) {
        memset(&g.addr, 0, sizeof(g.addr));
        if (strncmp(t, "unix:", 5) == 0) {
                struct sockaddr_un *un = (struct sockaddr_un *) &g.addr;
                size_t len = strlen(t + 5);
                if (len == 0 || len >= sizeof(un->sun_path))
                        return -EINVAL;
                un->sun_family = AF_UNIX;
                memcpy(un->sun_path, t + 5, len + 1);
                g.addr_len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len + 1);
                return 0;
        }
        const char *colon = strrchr(t, ':');
        if (!colon || colon == t)
                return -EINVAL;
        char host[256];
        size_t hlen = (size_t) (colon - t);
        if (t[0] == '[' && colon[-1] == ']') { /* [::1]:8080 */
                t++;
                hlen -= 2;
        }
        if (hlen >= sizeof(host))
                return -EINVAL;
        memcpy(host, t, hlen);
        host[hlen] = 0;
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV }, *res = NULL;
        if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || !res)
                return -EINVAL;
        memcpy(&g.addr, res->ai_addr, res->ai_addrlen);
        g.addr_len = res->ai_addrlen;
        freeaddrinfo(res);
        return 0;
}

static void report(FILE *f, double seconds) {
        uint64_t failed = 0;
        for (int o = 0; o < _OUTCOME_MAX; o++)
                if (outcome_failed(o))
                        failed += g.counts[o];
        fprintf(f, "requests=%" PRIu64 "\nok=%" PRIu64 "\nretried=%" PRIu64 "\nfailed=%" PRIu64 "\n", g.requests,
                g.counts[OUTCOME_OK], g.counts[OUTCOME_RETRIED], failed);
        for (int o = 0; o < _OUTCOME_MAX; o++)
                if (outcome_failed(o))
                        fprintf(f, "%s=%" PRIu64 "\n", outcome_names[o], g.counts[o]);
        fprintf(f, "idle_closed=%" PRIu64 "\nconnections=%" PRIu64 "\nversions=", g.idle_closed, g.connections);
        for (unsigned i = 0; i < g.n_versions; i++)
                fprintf(f, "%s%s:%" PRIu64, i ? "," : "", g.versions[i], g.version_counts[i]);
        fprintf(f, "\nlast_version=%s\n", g.last_version);
        fprintf(f, "p50_us=%" PRIu64 "\np99_us=%" PRIu64 "\np999_us=%" PRIu64 "\nmax_us=%" PRIu64 "\n",
                percentile(0.50), percentile(0.99), percentile(0.999), g.latency_max);
        fprintf(f, "duration_s=%.3f\nrate=%.0f\n", seconds, seconds > 0 ? (double) g.requests / seconds : 0.0);
        fprintf(f, "t0_monotonic_us=%" PRIu64 "\n", g.t0);
}

static _Noreturn void usage(const char *message) {
        if (message)
                fprintf(stderr, "loadgen: %s\n", message);
        fprintf(stderr, "usage: loadgen --target HOST:PORT|unix:PATH [--clients N] [--mode close|keepalive|mixed]\n"
                        "               (--duration SEC | --until-file PATH) [--max-seconds SEC] [--path /]\n"
                        "               [--timeout-ms MS] [--report FILE] [--timeline FILE]\n");
        exit(2);
}

static double parse_number(const char *option, const char *text, double min, double max) {
        char *end;
        errno = 0;
        double v = strtod(text, &end);
        if (errno || end == text || *end || !(v >= min && v <= max)) {
                char message[256];
                snprintf(message, sizeof(message), "%s: invalid value: %s", option, text);
                usage(message);
        }
        return v;
}

int main(int argc, char **argv) {
        const char *target = NULL, *mode = "mixed", *path = "/", *until = NULL, *report_path = NULL,
                   *timeline_path = NULL;
        int n_clients = 8;
        double duration = 0, max_seconds = 600, timeout_ms = 5000;

        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
                        usage(NULL);
                if (i + 1 >= argc) {
                        char message[256];
                        snprintf(message, sizeof(message), "%s needs a value", a);
                        usage(message);
                }
                const char *v = argv[++i];
                if (strcmp(a, "--target") == 0)
                        target = v;
                else if (strcmp(a, "--clients") == 0)
                        n_clients = (int) parse_number(a, v, 1, CLIENTS_MAX);
                else if (strcmp(a, "--mode") == 0)
                        mode = v;
                else if (strcmp(a, "--duration") == 0)
                        duration = parse_number(a, v, 0.001, 1e7);
                else if (strcmp(a, "--until-file") == 0)
                        until = v;
                else if (strcmp(a, "--max-seconds") == 0)
                        max_seconds = parse_number(a, v, 0.001, 1e7);
                else if (strcmp(a, "--path") == 0)
                        path = v;
                else if (strcmp(a, "--timeout-ms") == 0)
                        timeout_ms = parse_number(a, v, 1, 1e9);
                else if (strcmp(a, "--report") == 0)
                        report_path = v;
                else if (strcmp(a, "--timeline") == 0)
                        timeline_path = v;
                else {
                        char message[256];
                        snprintf(message, sizeof(message), "unknown option %s", a);
                        usage(message);
                }
        }
        if (!target)
                usage("--target is required");
        if (duration <= 0 && !until)
                usage("--duration or --until-file is required");
        if (parse_target(target) < 0)
                usage("--target: expected HOST:PORT, [IPv6]:PORT or unix:PATH");
        if (path[0] != '/' || strpbrk(path, " \r\n") || strlen(path) > 1024)
                usage("--path: expected an absolute path without spaces");
        bool all_keepalive = strcmp(mode, "keepalive") == 0, mixed = strcmp(mode, "mixed") == 0;
        if (!all_keepalive && !mixed && strcmp(mode, "close") != 0)
                usage("--mode: expected close, keepalive or mixed");
        if (timeline_path) {
                g.timeline = fopen(timeline_path, "we");
                if (!g.timeline) {
                        fprintf(stderr, "loadgen: %s: %m\n", timeline_path);
                        return 2;
                }
                /* Tens of thousands of lines a second: few, large writes. */
                (void) setvbuf(g.timeline, NULL, _IOFBF, 1 << 20);
        }

        snprintf(g.request_close, sizeof(g.request_close), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                 path);
        snprintf(g.request_keepalive, sizeof(g.request_keepalive), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
        g.timeout_us = (uint64_t) (timeout_ms * 1000);

        /* One fd per client, plus slack. */
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
        }
        g.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        struct client *clients = calloc((size_t) n_clients, sizeof(*clients));
        if (g.epoll_fd < 0 || !clients) {
                fprintf(stderr, "loadgen: %m\n");
                free(clients);
                return 1;
        }

        g.t0 = now_us();
        uint64_t hard_stop = g.t0 + (uint64_t) (max_seconds * 1e6);
        uint64_t stop_at = duration > 0 ? g.t0 + (uint64_t) (duration * 1e6) : hard_stop;
        if (stop_at > hard_stop)
                stop_at = hard_stop;
        for (int i = 0; i < n_clients; i++) {
                clients[i] = (struct client){ .index = (uint32_t) i, .fd = -1 };
                clients[i].keepalive = all_keepalive || (mixed && i % 2 == 1);
                client_start(&clients[i], false);
        }

        uint64_t next_sweep = 0, next_until_check = 0;
        for (;;) {
                uint64_t t = now_us();
                if (t >= stop_at)
                        break;
                if (until && t >= next_until_check) {
                        struct stat st;
                        if (stat(until, &st) == 0)
                                break;
                        next_until_check = t + UNTIL_FILE_CHECK_US;
                }
                if (t >= next_sweep) {
                        clients_sweep(clients, n_clients, t);
                        next_sweep = t + SWEEP_US;
                }
                struct epoll_event events[512];
                int n = epoll_wait(g.epoll_fd, events, 512, (int) (SWEEP_US / 1000));
                for (int i = 0; i < n; i++) {
                        struct client *c = &clients[events[i].data.u64 & 0xffffffffu];
                        if (c->fd < 0 || c->serial != (uint32_t) (events[i].data.u64 >> 32))
                                continue; /* about a connection closed earlier in this batch */
                        if (c->phase == PHASE_CONNECTING || c->phase == PHASE_SENDING)
                                client_on_writable(c);
                        else if (c->phase == PHASE_READING || c->phase == PHASE_CLOSING)
                                client_on_readable(c);
                }
        }

        /* Requests still in flight at the stop are neither successes nor failures. */
        double seconds = (double) (now_us() - g.t0) / 1e6;
        report(stdout, seconds);
        fflush(stdout);
        if (report_path) {
                FILE *f = fopen(report_path, "we");
                if (f) {
                        report(f, seconds);
                        fclose(f);
                } else
                        fprintf(stderr, "loadgen: %s: %m\n", report_path);
        }
        if (g.timeline)
                fclose(g.timeline);
        for (int i = 0; i < n_clients; i++)
                if (clients[i].fd >= 0)
                        close(clients[i].fd);
        free(clients);
        close(g.epoll_fd);
        return 0;
}
