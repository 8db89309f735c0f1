/* adopt.c: libliveswap-adopt.so, the preload library that lets an app which binds its own
 * port run under liveswap unchanged (contract section 9). liveswap puts it in each
 * worker's LD_PRELOAD; it is inert unless the app binds an address a passed socket
 * (LISTEN_FDS, fds 3..) listens on.
 *
 * Adoption. bind() of such an address turns the app's fd into a duplicate of the passed
 * socket (dup3, keeping the app's close-on-exec flag) and succeeds; listen() on it then
 * succeeds without touching the shared socket, and sends READY=1 to NOTIFY_SOCKET when
 * LIVESWAP_READY=listen (the first time in this process). A non-blocking app socket makes
 * the shared socket non-blocking (an event loop would hang in accept() otherwise); a
 * blocking app on a non-blocking shared socket gets blocking accept() emulated with poll.
 * LISTEN_PID is not checked: a shell script's child is a worker too; the variables are
 * left as they are for sd_listen_fds()-aware apps.
 *
 * Drain (only in a process that adopted a socket, and only with LIVESWAP_DRAIN_SIGNAL).
 * At the first adoption the library installs its own handler for the drain signal,
 * recording what the app had installed (later signal()/sigaction() calls for it are
 * recorded too, and reported back through oldact, but only take effect after the drain),
 * and starts one thread blocked on a pipe. The handler only writes a byte to the pipe
 * (async-signal-safe, no allocation). The thread then:
 *  1. stops new connections from reaching this process: each adopted fd is removed from
 *     the epoll sets the app registered it in (epoll_ctl is intercepted for that), and a
 *     listening socket nobody can connect to (an autobound abstract unix socket) is
 *     dup2'd in its place and registered again with the app's own event mask, so the app's
 *     event loop sees nothing more. App threads asleep in accept() on it, which the swap
 *     does not move, are interrupted (the drain signal, sent to each) and accept again on
 *     the dead socket. The shared socket is never shut down or closed;
 *  2. lets the app finish the connections it accepted (tracked through accept/accept4
 *     and close, with the app's reads and writes timed): the first HTTP/1.x response head
 *     written on a connection during the drain has its "Connection: keep-alive" rewritten
 *     in place to "Connection: close" padded with spaces (trailing whitespace, allowed),
 *     when the status line and that header are in one buffer; the client then closes and
 *     the app sees EOF as usual;
 *  3. closes connections that sit idle: no unread input, nothing read by the app since
 *     its last write, and idle for the grace period (LIVESWAP_IDLE_GRACE_MS, default 1 s;
 *     5 s for a connection that has not sent its first request) counted from the later of
 *     the drain start and the last write. It calls shutdown(SHUT_WR): the client gets a
 *     FIN, closes its side, and the app reads EOF and closes the fd itself (a lingering
 *     close the app does without knowing). If the client has not closed 2 s later the
 *     thread also shuts down the reading side, so the app reads EOF anyway. The thread
 *     never closes an app's fd: it cannot know what the app still does with it;
 *  4. when no tracked connection is left, restores the app's own disposition of the
 *     signal and sends the signal to the process with kill(), so the app's handler or the
 *     default action runs as it would have at once without the library.
 * After fork() the thread is gone: the child gets a fresh pipe (pthread_atfork) and starts
 * its own thread at its next intercepted call; until then its handler falls back to the
 * app's disposition. Each process tracks the connections it accepted itself.
 *
 * Limits: fds above CONN_MAX are not tracked; dup()'d copies of connections are not
 * followed; a connection closed behind the library's back (fclose of an fdopen'd socket)
 * is recognised by its inode changing. Not instrumented by the sanitizers: an ASan
 * runtime must come first in the process, which a preload into an uninstrumented app
 * cannot be; its pure part, adopt-match.c, runs under them in the unit tests. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "adopt-idle.h"
#include "adopt-match.h"

#define EXPORT __attribute__((visibility("default")))
#define PASSED_MAX 64
#define ADOPTED_MAX 64
#define EPOLL_MAX 256
#define CONN_MAX 65536
#define NEW_CONNECTION_GRACE_NS (5000ull * 1000000ull)
#define LINGER_NS (2000ull * 1000000ull)
#define TICK_MS 50

/* ---- the real functions ---- */

static int (*real_bind)(int, const struct sockaddr *, socklen_t);
static int (*real_listen)(int, int);
static int (*real_accept)(int, struct sockaddr *, socklen_t *);
static int (*real_accept4)(int, struct sockaddr *, socklen_t *, int);
static int (*real_close)(int);
static int (*real_epoll_ctl)(int, int, int, struct epoll_event *);
static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_send)(int, const void *, size_t, int);
static ssize_t (*real_sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
static ssize_t (*real_sendmsg)(int, const struct msghdr *, int);
static ssize_t (*real_read)(int, void *, size_t);
static ssize_t (*real_readv)(int, const struct iovec *, int);
static ssize_t (*real_recv)(int, void *, size_t, int);
static ssize_t (*real_recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
static ssize_t (*real_recvmsg)(int, struct msghdr *, int);

static void resolve(void) {
        static atomic_bool done;
        if (atomic_load_explicit(&done, memory_order_acquire))
                return;
#define R(name) *(void **) &real_##name = dlsym(RTLD_NEXT, #name)
        R(bind);
        R(listen);
        R(accept);
        R(accept4);
        R(close);
        R(epoll_ctl);
        R(sigaction);
        R(write);
        R(writev);
        R(send);
        R(sendto);
        R(sendmsg);
        R(read);
        R(readv);
        R(recv);
        R(recvfrom);
        R(recvmsg);
#undef R
        atomic_store_explicit(&done, true, memory_order_release);
}

/* ---- state ---- */

struct passed {
        int fd;
        ino_t ino;
        struct sockaddr_storage addr;
        socklen_t addr_len;
};

struct adopted {
        int fd; /* <= 0: free */
        bool app_nonblock; /* what the app believes */
        int family; /* of the passed socket */
};

struct epoll_reg {
        int epfd; /* <= 0: free */
        int fd;
        struct epoll_event event;
};

struct conn {
        atomic_bool tracked;
        atomic_ullong ino;
        atomic_ullong accepted_ns, last_in_ns, last_out_ns;
        atomic_ullong shut_ns; /* when the thread shut its sending side down; 0: not yet */
        atomic_bool close_announced; /* a response said Connection: close */
};

static struct passed passed[PASSED_MAX];
static size_t n_passed;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* adopted[], epolls[], thread start */
static struct adopted adopted[ADOPTED_MAX];
static struct epoll_reg epolls[EPOLL_MAX];
static struct conn *conns; /* CONN_MAX entries once something was adopted */
static atomic_bool adopted_any, ready_sent;
static bool ready_listen;
static int drain_signal; /* 0: the library does not drain */
static uint64_t idle_grace_ns = 1000ull * 1000000ull;

/* The drain: the signal handler's pipe, the thread, and the app's own disposition. */
static int pipe_fds[2] = { -1, -1 };
static atomic_bool own_signal; /* our handler is installed for drain_signal */
static atomic_bool thread_running, draining;
/* App threads in an accept on an adopted socket (do_accept()), from before the call until
 * what it returned is tracked. A thread asleep in accept() when stop_accepting() swaps
 * the fd stays asleep on the shared socket (the call holds the file it began on), and
 * would take the next connection meant for a sibling: served by old code after the drain
 * began, or dying with the app if the drain ends first (python3 -m http.server, whose
 * main thread waits in accept() once a sibling won a connection, lost 1 request in
 * ~12,000 so under load). So each such thread is known by its tid, and the drain
 * interrupts it (kick_accepters()); it then accepts again, on the dead socket. A thread
 * that found no free slot is only counted, and is waited for at most ACCEPT_KICK_NS, as
 * is one that does not take the signal (it blocks it). A thread that leaves its accept
 * just as it is signalled runs the (empty) handler elsewhere: a system call it is in then
 * may return EINTR, as any signal can make it. */
#define ACCEPTERS_MAX 128
#define ACCEPT_KICK_NS (1000ull * 1000000ull)
#define KICK_TICK_MS 2
struct accepter {
        atomic_int tid; /* 0: free */
        atomic_bool kicked; /* interrupted by the drain: its EINTR is ours, not the app's */
};
static struct accepter accepters[ACCEPTERS_MAX];
static atomic_int accepts_unslotted;
static atomic_ullong drain_start_ns;
static struct sigaction app_action; /* what the app set (or had) for drain_signal */

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

static ino_t fd_ino(int fd) {
        struct stat st;
        return fstat(fd, &st) < 0 ? 0 : st.st_ino;
}

static int env_int(const char *name, int def) {
        const char *v = getenv(name);
        if (!v || !*v)
                return def;
        char *end;
        long n = strtol(v, &end, 10);
        return *end || n < 0 || n > 1000000000 ? def : (int) n;
}

__attribute__((constructor)) static void adopt_init(void) {
        int saved = errno;
        resolve();
        int n = env_int("LISTEN_FDS", 0);
        for (int i = 0; i < n && n_passed < PASSED_MAX; i++) {
                struct passed *p = &passed[n_passed];
                int accepting = 0;
                socklen_t len = sizeof(accepting);
                p->fd = 3 + i;
                p->addr_len = sizeof(p->addr);
                if (getsockopt(p->fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) < 0 || !accepting ||
                    getsockname(p->fd, (struct sockaddr *) &p->addr, &p->addr_len) < 0)
                        continue;
                p->ino = fd_ino(p->fd);
                n_passed++;
        }
        const char *ready = getenv("LIVESWAP_READY");
        ready_listen = ready && strcmp(ready, "listen") == 0;
        drain_signal = env_int("LIVESWAP_DRAIN_SIGNAL", 0);
        if (drain_signal >= NSIG || drain_signal == SIGKILL || drain_signal == SIGSTOP)
                drain_signal = 0;
        idle_grace_ns = (uint64_t) env_int("LIVESWAP_IDLE_GRACE_MS", 1000) * 1000000ull;
        errno = saved;
}

/* ---- READY=1 ---- */

static void notify_ready(void) {
        const char *path = getenv("NOTIFY_SOCKET");
        if (!path || (path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof(((struct sockaddr_un *) 0)->sun_path))
                return;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t len = strlen(path);
        memcpy(sa.sun_path, path, len);
        if (sa.sun_path[0] == '@')
                sa.sun_path[0] = 0;
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return;
        (void) real_sendto(fd, "READY=1", 7, MSG_NOSIGNAL, (struct sockaddr *) &sa,
                           (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len));
        real_close(fd);
}

/* ---- connections ---- */

static struct conn *conn_of(int fd) {
        if (!conns || fd < 0 || fd >= CONN_MAX || !atomic_load_explicit(&conns[fd].tracked, memory_order_acquire))
                return NULL;
        return &conns[fd];
}

static void conn_track(int fd) {
        if (!conns || fd < 0 || fd >= CONN_MAX)
                return;
        struct conn *c = &conns[fd];
        uint64_t t = now_ns();
        atomic_store(&c->ino, (unsigned long long) fd_ino(fd));
        atomic_store(&c->accepted_ns, t);
        atomic_store(&c->last_in_ns, 0);
        atomic_store(&c->last_out_ns, 0);
        atomic_store(&c->shut_ns, 0);
        atomic_store(&c->close_announced, false);
        atomic_store_explicit(&c->tracked, true, memory_order_release);
}

static void conn_forget(int fd) {
        struct conn *c = conn_of(fd);
        if (c)
                atomic_store_explicit(&c->tracked, false, memory_order_release);
}

static void note_in(int fd, ssize_t n) {
        struct conn *c;
        if (n > 0 && (c = conn_of(fd)))
                atomic_store_explicit(&c->last_in_ns, now_ns(), memory_order_relaxed);
}

static void note_out(int fd, ssize_t n) {
        struct conn *c;
        if (n > 0 && (c = conn_of(fd)))
                atomic_store_explicit(&c->last_out_ns, now_ns(), memory_order_relaxed);
}

/* In an HTTP/1.x response head that is whole in BUF, finds the value of its Connection
 * header. Returns its offset and length, or -1. */
static long find_connection_value(const char *buf, size_t len, size_t *ret_len) {
        if (len < 12 || memcmp(buf, "HTTP/1.", 7) != 0)
                return -1;
        const char *end = memmem(buf, len, "\r\n\r\n", 4);
        if (!end)
                return -1;
        size_t head = (size_t) (end - buf) + 2;
        for (size_t i = 0; i + 2 < head;) {
                const char *nl = memmem(buf + i, head - i, "\r\n", 2);
                if (!nl)
                        break;
                size_t line = (size_t) (nl + 2 - buf);
                if (line + 11 <= head && strncasecmp(buf + line, "Connection:", 11) == 0) {
                        size_t v = line + 11;
                        while (v < head && (buf[v] == ' ' || buf[v] == '\t'))
                                v++;
                        const char *vend = memmem(buf + v, head - v, "\r\n", 2);
                        if (!vend)
                                return -1;
                        *ret_len = (size_t) (vend - (buf + v));
                        return (long) v;
                }
                i = line;
        }
        return -1;
}

/* During the drain, the response about to be written on tracked connection C in BUF:
 * "Connection: keep-alive" becomes "Connection: close" plus spaces, in a copy. Returns
 * the copy to write instead (the same length), or NULL to write BUF as it is. */
static char *rewrite_head(struct conn *c, const void *buf, size_t len) {
        if (!atomic_load_explicit(&draining, memory_order_relaxed) || atomic_load(&c->close_announced))
                return NULL;
        size_t vlen;
        long v = find_connection_value(buf, len, &vlen);
        if (v < 0)
                return NULL;
        const char *value = (const char *) buf + v;
        if (vlen >= 5 && strncasecmp(value, "close", 5) == 0) {
                atomic_store(&c->close_announced, true);
                return NULL;
        }
        if (vlen != 10 || strncasecmp(value, "keep-alive", 10) != 0)
                return NULL;
        char *copy = malloc(len);
        if (!copy)
                return NULL;
        memcpy(copy, buf, len);
        memcpy(copy + v, "close     ", 10);
        atomic_store(&c->close_announced, true);
        return copy;
}

/* ---- the drain thread ---- */

static void *drain_thread(void *arg);

/* Starts this process's drain thread if it adopted something and has none (the first
 * adoption, or the first intercepted call after a fork). Called with lock held. */
static void ensure_thread_locked(void) {
        if (!drain_signal || !atomic_load(&adopted_any) || atomic_load(&thread_running) || pipe_fds[0] < 0)
                return;
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread inherits: signals go to the app's threads */
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, drain_thread, NULL) == 0)
                atomic_store(&thread_running, true);
        pthread_attr_destroy(&attr);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void ensure_thread(void) {
        if (!drain_signal || !atomic_load_explicit(&adopted_any, memory_order_relaxed) ||
            atomic_load_explicit(&thread_running, memory_order_relaxed))
                return;
        pthread_mutex_lock(&lock);
        ensure_thread_locked();
        pthread_mutex_unlock(&lock);
}

/* Hands the signal to the app: its own disposition back, then the signal itself. */
static void deliver_to_app(void) {
        atomic_store(&own_signal, false);
        (void) real_sigaction(drain_signal, &app_action, NULL);
        (void) kill(getpid(), drain_signal);
}

static void on_drain_signal(int sig) {
        int saved = errno;
        if (!atomic_exchange(&draining, true)) {
                if (atomic_load(&thread_running)) {
                        char b = 1;
                        (void) !real_write(pipe_fds[1], &b, 1);
                } else
                        deliver_to_app(); /* sigaction() and kill() are async-signal-safe */
        }
        errno = saved;
}

/* Step 1: the adopted fds stop getting connections, in this process only. */
static void stop_accepting(void) {
        pthread_mutex_lock(&lock);
        for (size_t i = 0; i < ADOPTED_MAX; i++) {
                struct adopted *a = &adopted[i];
                if (a->fd <= 0)
                        continue;
                int fd_flags = fcntl(a->fd, F_GETFD);
                int dead = socket(AF_UNIX, SOCK_STREAM | (a->app_nonblock ? SOCK_NONBLOCK : 0), 0);
                if (dead < 0)
                        continue;
                sa_family_t fam = AF_UNIX; /* a bare family: the kernel picks an abstract name */
                if (real_bind(dead, (struct sockaddr *) &fam, sizeof(fam)) < 0 || real_listen(dead, 1) < 0) {
                        real_close(dead);
                        continue;
                }
                for (size_t k = 0; k < EPOLL_MAX; k++)
                        if (epolls[k].epfd > 0 && epolls[k].fd == a->fd)
                                (void) real_epoll_ctl(epolls[k].epfd, EPOLL_CTL_DEL, a->fd, NULL);
                (void) dup3(dead, a->fd, fd_flags > 0 && (fd_flags & FD_CLOEXEC) ? O_CLOEXEC : 0);
                real_close(dead);
                for (size_t k = 0; k < EPOLL_MAX; k++)
                        if (epolls[k].epfd > 0 && epolls[k].fd == a->fd)
                                (void) real_epoll_ctl(epolls[k].epfd, EPOLL_CTL_ADD, a->fd, &epolls[k].event);
                a->fd = -1;
        }
        pthread_mutex_unlock(&lock);
}

/* Steps 2 and 3 for one connection. Returns whether it still counts. */
static bool watch_conn(int fd, struct conn *c, uint64_t now, uint64_t start) {
        if ((unsigned long long) fd_ino(fd) != atomic_load(&c->ino)) {
                atomic_store(&c->tracked, false); /* closed behind our back */
                return false;
        }
        uint64_t shut = atomic_load(&c->shut_ns);
        if (shut) {
                if (now - shut >= LINGER_NS)
                        (void) shutdown(fd, SHUT_RD); /* the app reads EOF now */
                return true;
        }
        int unread = 0;
        if (ioctl(fd, FIONREAD, &unread) < 0 || unread > 0)
                return true;
        struct adopt_conn_times t = {
                .accepted = atomic_load(&c->accepted_ns),
                .in = atomic_load(&c->last_in_ns),
                .out = atomic_load(&c->last_out_ns),
        };
        if (adopt_conn_idle(&t, now, start, idle_grace_ns, NEW_CONNECTION_GRACE_NS) && shutdown(fd, SHUT_WR) == 0)
                atomic_store(&c->shut_ns, now);
        return true;
}

/* Interrupts each app thread still in an accept that began on the shared socket (see
 * accepters[]): the drain signal, ours until the drain ends, now without SA_RESTART, so
 * that accept() returns EINTR (do_accept() then accepts again, on the dead socket).
 * Returns whether any such accept is still in flight. */
static bool kick_accepters(void) {
        static bool restart_off;
        bool any = atomic_load(&accepts_unslotted) > 0;
        for (size_t i = 0; i < ACCEPTERS_MAX; i++) {
                int tid = atomic_load(&accepters[i].tid);
                if (!tid)
                        continue;
                any = true;
                if (!restart_off) {
                        struct sigaction ours = { .sa_handler = on_drain_signal };
                        sigfillset(&ours.sa_mask);
                        (void) real_sigaction(drain_signal, &ours, NULL);
                        restart_off = true;
                }
                atomic_store(&accepters[i].kicked, true);
                (void) tgkill(getpid(), tid, drain_signal);
        }
        return any;
}

static void *drain_thread(void *arg) {
        char b;
        ssize_t n;
        do
                n = real_read(pipe_fds[0], &b, 1);
        while (n < 0 && errno == EINTR);
        if (n != 1)
                return NULL;
        uint64_t start = now_ns();
        atomic_store(&drain_start_ns, start);
        stop_accepting();
        for (;;) {
                /* Accepts first: one that took a connection is tracked before it leaves. */
                bool accepting = kick_accepters() && now_ns() - start < ACCEPT_KICK_NS;
                uint64_t now = now_ns();
                size_t live = 0;
                for (int fd = 0; fd < CONN_MAX; fd++) {
                        struct conn *c = conn_of(fd);
                        if (c && watch_conn(fd, c, now, start))
                                live++;
                }
                if (!live && !accepting)
                        break;
                struct timespec ts = { 0, (live ? TICK_MS : KICK_TICK_MS) * 1000000L };
                nanosleep(&ts, NULL);
        }
        pthread_mutex_lock(&lock);
        deliver_to_app();
        pthread_mutex_unlock(&lock);
        return NULL;
}

static void atfork_child(void) {
        /* The thread did not come along; the pipe is the parent's. */
        atomic_store(&thread_running, false);
        if (pipe_fds[0] >= 0) {
                real_close(pipe_fds[0]);
                real_close(pipe_fds[1]);
                pipe_fds[0] = pipe_fds[1] = -1;
                if (pipe2(pipe_fds, O_CLOEXEC) < 0)
                        pipe_fds[0] = pipe_fds[1] = -1;
        }
        pthread_mutex_init(&lock, NULL);
}

/* At the first adoption: the connection table, the handler, the pipe and the thread.
 * Called with lock held. */
static void first_adoption_locked(void) {
        if (atomic_load(&adopted_any))
                return;
        conns = calloc(CONN_MAX, sizeof(struct conn));
        atomic_store(&adopted_any, true);
        if (!drain_signal || !conns || pipe2(pipe_fds, O_CLOEXEC) < 0)
                return;
        static bool atfork;
        if (!atfork && pthread_atfork(NULL, NULL, atfork_child) == 0)
                atfork = true;
        struct sigaction ours = { .sa_handler = on_drain_signal, .sa_flags = SA_RESTART };
        sigfillset(&ours.sa_mask);
        if (real_sigaction(drain_signal, &ours, &app_action) == 0)
                atomic_store(&own_signal, true);
        ensure_thread_locked();
}

/* ---- the intercepted calls ---- */

EXPORT int bind(int fd, const struct sockaddr *addr, socklen_t len) {
        resolve();
        int type = 0;
        socklen_t tl = sizeof(type);
        if (n_passed && addr && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_STREAM)
                for (size_t i = 0; i < n_passed; i++) {
                        struct passed *p = &passed[i];
                        if (!adopt_address_matches(addr, len, (struct sockaddr *) &p->addr, p->addr_len) ||
                            fd_ino(p->fd) != p->ino)
                                continue;
                        int fd_flags = fcntl(fd, F_GETFD), fl_flags = fcntl(fd, F_GETFL);
                        if (fd_flags < 0 || fl_flags < 0)
                                break;
                        pthread_mutex_lock(&lock);
                        struct adopted *slot = NULL;
                        for (size_t k = 0; k < ADOPTED_MAX && !slot; k++)
                                if (adopted[k].fd <= 0 || adopted[k].fd == fd)
                                        slot = &adopted[k];
                        if (!slot || dup3(p->fd, fd, (fd_flags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) {
                                pthread_mutex_unlock(&lock);
                                break;
                        }
                        bool nonblock = fl_flags & O_NONBLOCK;
                        if (nonblock) {
                                /* Shared by every worker: an event loop must not block in
                                 * accept(); a blocking app gets it emulated (accept below). */
                                int shared = fcntl(fd, F_GETFL);
                                if (shared >= 0 && !(shared & O_NONBLOCK))
                                        (void) fcntl(fd, F_SETFL, shared | O_NONBLOCK);
                        }
                        *slot = (struct adopted){ .fd = fd, .app_nonblock = nonblock, .family = p->addr.ss_family };
                        first_adoption_locked();
                        pthread_mutex_unlock(&lock);
                        return 0;
                }
        return real_bind(fd, addr, len);
}

static struct adopted *adopted_of(int fd) {
        if (!atomic_load_explicit(&adopted_any, memory_order_relaxed))
                return NULL;
        for (size_t k = 0; k < ADOPTED_MAX; k++)
                if (adopted[k].fd == fd && fd > 0)
                        return &adopted[k];
        return NULL;
}

EXPORT int listen(int fd, int backlog) {
        resolve();
        if (!adopted_of(fd))
                return real_listen(fd, backlog);
        ensure_thread();
        if (ready_listen && !atomic_exchange(&ready_sent, true))
                notify_ready();
        return 0;
}

static struct accepter *accepter_enter(void) {
        int tid = gettid();
        for (size_t i = 0; i < ACCEPTERS_MAX; i++) {
                int free_tid = 0;
                if (atomic_compare_exchange_strong(&accepters[i].tid, &free_tid, tid))
                        return &accepters[i];
        }
        atomic_fetch_add(&accepts_unslotted, 1);
        return NULL;
}

/* Returns whether the drain interrupted this accept. */
static bool accepter_leave(struct accepter *slot) {
        if (!slot) {
                atomic_fetch_sub(&accepts_unslotted, 1);
                return false;
        }
        bool kicked = atomic_exchange(&slot->kicked, false); /* cleared for the next one */
        atomic_store(&slot->tid, 0);
        return kicked;
}

static int do_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
        struct adopted *a = adopted_of(fd);
        bool emulate_blocking = a && !a->app_nonblock;
        for (;;) {
                /* Known while it may take a connection off the shared socket (the fd is
                 * still ours: stop_accepting() has not swapped it) until that is tracked. */
                bool counted = a && adopted_of(fd);
                struct accepter *slot = counted ? accepter_enter() : NULL;
                int r = real_accept4(fd, addr, len, flags);
                int err = errno;
                if (r >= 0 && a)
                        conn_track(r);
                bool kicked = counted && accepter_leave(slot);
                if (r >= 0)
                        return r;
                if (kicked && err == EINTR)
                        continue; /* the drain's interruption: accept again, on the dead socket */
                errno = err;
                if (!emulate_blocking || (err != EAGAIN && err != EWOULDBLOCK))
                        return r;
                struct pollfd p = { .fd = fd, .events = POLLIN };
                if (poll(&p, 1, -1) < 0 && errno != EINTR)
                        return -1;
        }
}

EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *len) {
        resolve();
        ensure_thread();
        return do_accept(fd, addr, len, 0);
}

EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
        resolve();
        ensure_thread();
        return do_accept(fd, addr, len, flags);
}

EXPORT int close(int fd) {
        resolve();
        if (atomic_load_explicit(&adopted_any, memory_order_relaxed)) {
                conn_forget(fd);
                pthread_mutex_lock(&lock);
                for (size_t k = 0; k < ADOPTED_MAX; k++)
                        if (adopted[k].fd == fd && fd > 0)
                                adopted[k].fd = -1;
                for (size_t k = 0; k < EPOLL_MAX; k++)
                        if (epolls[k].epfd > 0 && (epolls[k].epfd == fd || epolls[k].fd == fd))
                                epolls[k].epfd = -1;
                pthread_mutex_unlock(&lock);
        }
        return real_close(fd);
}

EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event) {
        resolve();
        int r = real_epoll_ctl(epfd, op, fd, event);
        if (r < 0 || !adopted_of(fd))
                return r;
        pthread_mutex_lock(&lock);
        struct epoll_reg *slot = NULL, *free_slot = NULL;
        for (size_t k = 0; k < EPOLL_MAX; k++) {
                if (epolls[k].epfd == epfd && epolls[k].fd == fd)
                        slot = &epolls[k];
                else if (epolls[k].epfd <= 0 && !free_slot)
                        free_slot = &epolls[k];
        }
        if (op == EPOLL_CTL_DEL) {
                if (slot)
                        slot->epfd = -1;
        } else if ((slot = slot ?: free_slot) && event)
                *slot = (struct epoll_reg){ .epfd = epfd, .fd = fd, .event = *event };
        pthread_mutex_unlock(&lock);
        ensure_thread();
        return r;
}

EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *oldact) {
        resolve();
        if (sig != drain_signal || !atomic_load(&own_signal))
                return real_sigaction(sig, act, oldact);
        /* Ours until the drain is done: the app's wish is recorded, and takes effect then. */
        pthread_mutex_lock(&lock);
        bool still = atomic_load(&own_signal);
        if (still) {
                if (oldact)
                        *oldact = app_action;
                if (act)
                        app_action = *act;
        }
        pthread_mutex_unlock(&lock);
        return still ? 0 : real_sigaction(sig, act, oldact);
}

EXPORT sighandler_t signal(int sig, sighandler_t handler) {
        static sighandler_t (*real_signal)(int, sighandler_t);
        if (sig != drain_signal || !atomic_load(&own_signal)) {
                if (!real_signal)
                        *(void **) &real_signal = dlsym(RTLD_NEXT, "signal");
                return real_signal(sig, handler);
        }
        struct sigaction act = { .sa_handler = handler, .sa_flags = SA_RESTART }, old;
        sigemptyset(&act.sa_mask);
        if (sigaction(sig, &act, &old) < 0)
                return SIG_ERR;
        return old.sa_handler;
}

EXPORT ssize_t write(int fd, const void *buf, size_t len) {
        resolve();
        struct conn *c = conn_of(fd);
        if (!c)
                return real_write(fd, buf, len);
        char *copy = rewrite_head(c, buf, len);
        ssize_t r = real_write(fd, copy ?: buf, len);
        free(copy);
        note_out(fd, r);
        return r;
}

EXPORT ssize_t send(int fd, const void *buf, size_t len, int flags) {
        resolve();
        struct conn *c = conn_of(fd);
        if (!c)
                return real_send(fd, buf, len, flags);
        char *copy = rewrite_head(c, buf, len);
        ssize_t r = real_send(fd, copy ?: buf, len, flags);
        free(copy);
        note_out(fd, r);
        return r;
}

EXPORT ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *addr, socklen_t alen) {
        resolve();
        struct conn *c = conn_of(fd);
        if (!c)
                return real_sendto(fd, buf, len, flags, addr, alen);
        char *copy = rewrite_head(c, buf, len);
        ssize_t r = real_sendto(fd, copy ?: buf, len, flags, addr, alen);
        free(copy);
        note_out(fd, r);
        return r;
}

/* The head must be whole in the first buffer; the others go as they are. */
static ssize_t write_iov(int fd, struct conn *c, const struct iovec *iov, int n, struct msghdr *msg, int flags) {
        struct iovec local[64];
        char *copy = NULL;
        if (n > 0 && n <= 64 && (copy = rewrite_head(c, iov[0].iov_base, iov[0].iov_len))) {
                memcpy(local, iov, sizeof(*iov) * (size_t) n);
                local[0].iov_base = copy;
                iov = local;
        }
        ssize_t r;
        if (msg) {
                struct msghdr m = *msg;
                m.msg_iov = (struct iovec *) iov;
                r = real_sendmsg(fd, &m, flags);
        } else
                r = real_writev(fd, iov, n);
        free(copy);
        note_out(fd, r);
        return r;
}

EXPORT ssize_t writev(int fd, const struct iovec *iov, int n) {
        resolve();
        struct conn *c = conn_of(fd);
        return c ? write_iov(fd, c, iov, n, NULL, 0) : real_writev(fd, iov, n);
}

EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
        resolve();
        struct conn *c = conn_of(fd);
        if (!c || !msg)
                return real_sendmsg(fd, msg, flags);
        return write_iov(fd, c, msg->msg_iov, (int) msg->msg_iovlen, (struct msghdr *) msg, flags);
}

EXPORT ssize_t read(int fd, void *buf, size_t len) {
        resolve();
        ssize_t r = real_read(fd, buf, len);
        note_in(fd, r);
        return r;
}

EXPORT ssize_t readv(int fd, const struct iovec *iov, int n) {
        resolve();
        ssize_t r = real_readv(fd, iov, n);
        note_in(fd, r);
        return r;
}

EXPORT ssize_t recv(int fd, void *buf, size_t len, int flags) {
        resolve();
        ssize_t r = real_recv(fd, buf, len, flags);
        if (!(flags & MSG_PEEK))
                note_in(fd, r);
        return r;
}

EXPORT ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *addr, socklen_t *alen) {
        resolve();
        ssize_t r = real_recvfrom(fd, buf, len, flags, addr, alen);
        if (!(flags & MSG_PEEK))
                note_in(fd, r);
        return r;
}

EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags) {
        resolve();
        ssize_t r = real_recvmsg(fd, msg, flags);
        if (!(flags & MSG_PEEK))
                note_in(fd, r);
        return r;
}
