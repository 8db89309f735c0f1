/* floor.c: the benchmarks' floor for liveswap's upgrade step (bench.py, the scale
 * scenario): the least a supervisor can do to replace N workers, and nothing else. It
 * binds one socket, starts N workers of `CURRENT/start` with it as fd 3 (LISTEN_FDS=1,
 * LISTEN_PID, NOTIFY_SOCKET), and on SIGHUP replaces them with workers of what CURRENT
 * points at now: rolling (start one, wait for its READY=1, SIGTERM one old, repeat) or
 * blue-green (start N, wait for all READY=1, SIGTERM all old). Each worker: fork, exec,
 * READY=1, SIGTERM. No timers, no rollback, no D-Bus, no bookkeeping beyond a pid table:
 * liveswap's time per step divided by this one's is what its policy costs.
 *
 *   liveswap-bench-floor --listen 127.0.0.1:PORT --workers N --current PATH
 *                        [--strategy rolling|blue-green]
 *
 * SIGTERM: every worker gets SIGTERM, and it exits once they have. Not a supervisor:
 * a worker that crashes is not replaced, and errors end it with a message. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

struct worker {
        pid_t pid;
        unsigned generation;
        bool ready, signalled;
};

static struct worker *workers;
static size_t n_workers, max_workers;
static unsigned generation;
static int listen_fd, notify_fd;
static char notify_path[sizeof(((struct sockaddr_un *) 0)->sun_path)];
static char program[PATH_MAX + sizeof("/start")];
static bool blue_green;
static size_t wanted;

static _Noreturn void die(const char *what) {
        fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
        exit(1);
}

static void resolve(const char *current) {
        char dir[PATH_MAX];
        if (!realpath(current, dir))
                die(current);
        snprintf(program, sizeof(program), "%s/start", dir);
}

static void spawn(void) {
        if (n_workers == max_workers)
                die("too many workers");
        pid_t pid = fork();
        if (pid < 0)
                die("fork");
        if (pid == 0) {
                sigset_t none;
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                char value[32];
                snprintf(value, sizeof(value), "%d", (int) getpid());
                if (dup2(listen_fd, 3) < 0 || setenv("LISTEN_PID", value, 1) < 0 || setenv("LISTEN_FDS", "1", 1) < 0 ||
                    setenv("NOTIFY_SOCKET", notify_path, 1) < 0)
                        _exit(127);
                execl(program, program, (char *) NULL);
                _exit(127);
        }
        workers[n_workers++] = (struct worker){ .pid = pid, .generation = generation };
}

static size_t count(unsigned gen, bool ready_only, bool unsignalled_only) {
        size_t n = 0;
        for (size_t i = 0; i < n_workers; i++)
                if (workers[i].generation == gen && (!ready_only || workers[i].ready) &&
                    (!unsignalled_only || !workers[i].signalled))
                        n++;
        return n;
}

/* SIGTERM to up to N workers of older generations that have not had it yet. */
static void drain_old(size_t n) {
        for (size_t i = 0; i < n_workers && n > 0; i++)
                if (workers[i].generation != generation && !workers[i].signalled) {
                        (void) kill(workers[i].pid, SIGTERM);
                        workers[i].signalled = true;
                        n--;
                }
}

/* The upgrade's next move, after a READY=1 or the SIGHUP that starts it. */
static void step(void) {
        size_t started = count(generation, false, false), ready = count(generation, true, false);
        if (blue_green) {
                while (started < wanted) {
                        spawn();
                        started++;
                }
                if (ready == wanted)
                        drain_old(SIZE_MAX);
                return;
        }
        /* Rolling, batch 1: one new worker at a time, then one old one drains. */
        if (ready == started && ready > 0 && generation > 1)
                drain_old(1);
        if (ready == started && started < wanted)
                spawn();
}

static void on_notify(void) {
        char buf[4096];
        union {
                struct cmsghdr h;
                char space[CMSG_SPACE(sizeof(struct ucred))];
        } control;
        for (;;) {
                struct iovec iov = { buf, sizeof(buf) - 1 };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                                     .msg_controllen = sizeof(control) };
                ssize_t n = recvmsg(notify_fd, &mh, MSG_DONTWAIT);
                if (n < 0)
                        return;
                buf[n] = 0;
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                if (!c || c->cmsg_type != SCM_CREDENTIALS || !strstr(buf, "READY=1"))
                        continue;
                struct ucred cred;
                memcpy(&cred, CMSG_DATA(c), sizeof(cred));
                for (size_t i = 0; i < n_workers; i++)
                        if (workers[i].pid == cred.pid && !workers[i].ready) {
                                workers[i].ready = true;
                                step();
                        }
        }
}

static void reap(void) {
        pid_t pid;
        while ((pid = waitpid(-1, NULL, WNOHANG)) > 0)
                for (size_t i = 0; i < n_workers; i++)
                        if (workers[i].pid == pid) {
                                workers[i] = workers[--n_workers];
                                break;
                        }
}

static void setup_sockets(const char *listen_spec) {
        char host[64];
        const char *colon = strrchr(listen_spec, ':');
        if (!colon || (size_t) (colon - listen_spec) >= sizeof(host)) {
                errno = EINVAL;
                die(listen_spec);
        }
        memcpy(host, listen_spec, (size_t) (colon - listen_spec));
        host[colon - listen_spec] = 0;
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t) atoi(colon + 1)) };
        if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
                errno = EINVAL;
                die(listen_spec);
        }
        int one = 1;
        listen_fd = socket(AF_INET, SOCK_STREAM, 0); /* inherited: fd 3 of every worker */
        if (listen_fd < 0 || setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            bind(listen_fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(listen_fd, 4096) < 0)
                die("listening socket");

        struct sockaddr_un un = { .sun_family = AF_UNIX };
        snprintf(notify_path, sizeof(notify_path), "/tmp/liveswap-bench-floor-%d.notify", (int) getpid());
        strcpy(un.sun_path, notify_path);
        notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (notify_fd < 0 || bind(notify_fd, (struct sockaddr *) &un, sizeof(un)) < 0 ||
            setsockopt(notify_fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0)
                die("notify socket");
}

int main(int argc, char **argv) {
        const char *listen_spec = NULL, *current = NULL;
        for (int i = 1; i + 1 < argc; i += 2) {
                if (strcmp(argv[i], "--listen") == 0)
                        listen_spec = argv[i + 1];
                else if (strcmp(argv[i], "--workers") == 0)
                        wanted = (size_t) atol(argv[i + 1]);
                else if (strcmp(argv[i], "--current") == 0)
                        current = argv[i + 1];
                else if (strcmp(argv[i], "--strategy") == 0)
                        blue_green = strcmp(argv[i + 1], "blue-green") == 0;
        }
        if (!listen_spec || !current || wanted == 0) {
                fprintf(stderr, "usage: %s --listen ADDR:PORT --workers N --current PATH [--strategy S]\n", argv[0]);
                return 2;
        }
        max_workers = 2 * wanted + 1;
        if (!(workers = calloc(max_workers, sizeof(*workers))))
                die("calloc");
        setup_sockets(listen_spec);

        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGCHLD);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        int signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (signal_fd < 0)
                die("signalfd");

        resolve(current);
        generation = 1;
        for (size_t i = 0; i < wanted; i++)
                spawn();
        bool stopping = false;
        while (!stopping || n_workers > 0) {
                struct pollfd p[2] = { { .fd = signal_fd, .events = POLLIN }, { .fd = notify_fd, .events = POLLIN } };
                if (poll(p, 2, -1) < 0 && errno != EINTR)
                        die("poll");
                if (p[1].revents)
                        on_notify();
                struct signalfd_siginfo si;
                while (read(signal_fd, &si, sizeof(si)) == sizeof(si)) {
                        if (si.ssi_signo == SIGCHLD)
                                reap();
                        else if (si.ssi_signo == SIGHUP && !stopping) {
                                resolve(current);
                                generation++;
                                step();
                        } else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
                                stopping = true;
                                for (size_t i = 0; i < n_workers; i++)
                                        (void) kill(workers[i].pid, SIGTERM);
                        }
                }
        }
        unlink(notify_path);
        free(workers);
        return 0;
}
