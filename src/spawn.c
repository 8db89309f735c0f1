/* spawn.c: starting a worker. Everything the child needs is prepared before it exists
 * (environment strings with room for its pid, the fd plan), so the child only moves fds,
 * resets signals and execs. It usually shares our memory until exec (CLONE_VM with
 * CLONE_VFORK, as posix_spawn does): fork()'s copy-on-write cost 60-85 page faults per
 * worker in the supervisor. So the child code must write nothing of ours but the buffers
 * prepared for it, never allocate, never return, and run on a stack of its own. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/close_range.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "clone-vfork.h"
#include "journal-stream.h"
#include "macro.h"
#include "spawn.h"

#define FIRST_LISTEN_FD 3 /* SD_LISTEN_FDS_START */
#define JOURNAL_STREAM_SIZE 64 /* "JOURNAL_STREAM=" and two 64-bit numbers */

extern char **environ;

/* Variables that describe the supervisor's own relationship with its service manager or
 * a previous exec; a worker gets fresh ones (or none). */
static bool inherited_unwanted(const char *kv) {
        static const char *const prefixes[] = { "LISTEN_PID=",   "LISTEN_FDS=",    "LISTEN_FDNAMES=", "NOTIFY_SOCKET=",
                                                "WATCHDOG_PID=", "WATCHDOG_USEC=", "LIVESWAP_" };
        for (size_t i = 0; i < ELEMENTSOF(prefixes); i++)
                if (strncmp(kv, prefixes[i], strlen(prefixes[i])) == 0)
                        return true;
        return false;
}

static bool overridden(const char *kv, char *const *extra) {
        size_t n = strcspn(kv, "=");
        for (char *const *e = extra; e && *e; e++)
                if (strncmp(*e, kv, n) == 0 && (*e)[n] == '=')
                        return true;
        return false;
}

char **spawn_build_environment(char *const *extra, size_t reserve) {
        size_t n = 0, m = 0;
        for (char **e = environ; e && *e; e++)
                n++;
        for (char *const *e = extra; e && *e; e++)
                m++;
        char **env = calloc(n + m + reserve + 1, sizeof(char *));
        if (!env)
                return NULL;
        size_t k = 0;
        for (char **e = environ; e && *e; e++)
                if (!inherited_unwanted(*e) && !overridden(*e, extra) && !(env[k++] = strdup(*e)))
                        goto fail;
        for (char *const *e = extra; e && *e; e++)
                if (!(env[k++] = strdup(*e)))
                        goto fail;
        return env;
fail:
        strv_free(env);
        return NULL;
}

static int push(char **env, size_t *k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int push(char **env, size_t *k, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = vasprintf(&env[*k], fmt, ap);
        va_end(ap);
        if (r < 0) {
                env[*k] = NULL;
                return -ENOMEM;
        }
        (*k)++;
        return 0;
}

int spawn_child_reset(pid_t parent, bool own_session) {
        /* Dispositions before the mask: a child that shares our memory must never run one
         * of our handlers (it would run on our data), and it starts with all blocked. */
        for (int sig = 1; sig < NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        (void) signal(sig, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);

        /* Its own process group, so that a signal to the group reaches what it forks, and
         * notify messages from its children can be attributed to it. A worker's is in a
         * session of its own too: setpgid() cannot join a group of another session, so
         * only the worker's own descendants can ever be in it (and speak for it). The
         * session also outlives a killed supervisor: leftovers.c finds by it what the
         * worker forked. */
        if (own_session)
                (void) setsid();
        else
                (void) setpgid(0, 0);
        /* Nothing we start outlives a supervisor that dies: nothing would drain it. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                return -1;
        return 0;
}

int spawn_signal_worker(pid_t pid, int sig, bool group) {
        if (!group)
                return kill(pid, sig) < 0 && errno != ESRCH ? -errno : 0;
        /* getpgid() fails once the worker is reaped; its group may still hold children. */
        if (getpgid(pid) != pid && kill(pid, sig) < 0 && errno != ESRCH)
                return -errno;
        if (kill(-pid, sig) < 0 && errno != ESRCH)
                return -errno;
        return 0;
}

/* Writes v in decimal into buf (child side: no stdio). */
static void format_pid(char *buf, pid_t v) {
        char tmp[16];
        int n = 0;
        do
                tmp[n++] = (char) ('0' + v % 10);
        while ((v /= 10) > 0);
        while (n > 0)
                *buf++ = tmp[--n];
        *buf = 0;
}

/* Child side: moves the calling process into the cgroup of PROCS ("0" is the writer). */
static int join_cgroup(const char *procs) {
        int fd = open(procs, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -1;
        int r = write(fd, "0", 1) == 1 ? 0 : -1;
        int e = errno;
        close(fd);
        errno = e;
        return r;
}

/* Gives the worker its own journal stream, so that journald records its lines with its
 * _PID, as systemd does for a service. On failure the worker keeps ours, and says so on
 * it (one write: lines on a stream must not interleave). Its JOURNAL_STREAM describes the
 * stream it has, as systemd would set it: an app that checks it (sd-daemon(3)) then knows
 * its output is the journal's, and one that got ours would find that it does not match. */
static void child_connect_journal(const struct spawn_request *r, char *journal_stream) {
        int fd = journal_stream_connect(r->journal_path, r->instance, LOG_INFO, true);
        if (fd < 0) {
                char line[256];
                const char *parts[] = { "<4>liveswap: cannot connect worker ", "", " to the journal (",
                                        strerrordesc_np(-fd) ?: "error",
                                        "): its output goes to the supervisor's stream\n" };
                char pid[16];
                format_pid(pid, getpid());
                parts[1] = pid;
                size_t p = 0;
                for (size_t i = 0; i < ELEMENTSOF(parts); i++) {
                        size_t n = strnlen(parts[i], sizeof(line) - 1 - p);
                        memcpy(line + p, parts[i], n);
                        p += n;
                }
                (void) !write(STDERR_FILENO, line, p);
                return;
        }
        if (r->journal_stdout)
                (void) dup2(fd, STDOUT_FILENO);
        if (r->journal_stderr)
                (void) dup2(fd, STDERR_FILENO);
        (void) journal_stream_format(fd, journal_stream + strlen("JOURNAL_STREAM="),
                                     JOURNAL_STREAM_SIZE - strlen("JOURNAL_STREAM="));
        close(fd);
}

/* What the child gets: all of it prepared and owned by the parent, which waits (vfork)
 * or has been copied (fork) while the child writes the buffers meant for it. */
struct child_plan {
        const struct spawn_request *r;
        char **env;
        char *listen_pid, *journal_stream, *watchdog_pid; /* room in env for the child */
        int control_fd, error_fd;
        pid_t parent;
        int *moved; /* n_sockets + 1 entries */
        bool in_cgroup;
        /* CLONE_FILES: the child shares our fd table, and must take its own copy before it
         * changes any fd. Every fd it needs is below keep_below. */
        bool files_shared;
        unsigned keep_below;
};

/* gcc says __SANITIZE_ADDRESS__, clang __has_feature(address_sanitizer). */
#if defined(__SANITIZE_ADDRESS__)
#define LIVESWAP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LIVESWAP_ASAN 1
#endif
#endif

/* Not instrumented by AddressSanitizer: before each noreturn call (_exit) it would check
 * the stack it runs on against our thread's, and warn that the child's is not it. */
#if defined(LIVESWAP_ASAN)
#define NO_SANITIZE_ADDRESS __attribute__((no_sanitize_address))
/* Under AddressSanitizer the child of a CLONE_VM spawn would run instrumented code (libc's
 * interceptors, our helpers) in memory and thread state it shares with the suspended
 * supervisor, on a stack ASan does not know, leaving its shadow of that stack poisoned
 * after the exec. ASan does not support that, so sanitizer builds spawn fork-like; the
 * normal build, which tests the CLONE_VM path, is what ships. */
#define SPAWN_SHARES_MEMORY false
#else
#define NO_SANITIZE_ADDRESS
#define SPAWN_SHARES_MEMORY true
#endif

NO_SANITIZE_ADDRESS static _Noreturn void child(const struct child_plan *plan) {
        const struct spawn_request *r = plan->r;
        char **env = plan->env;
        int error_fd = plan->error_fd, *moved = plan->moved;
        int n = (int) r->sockets->n;
        int first_free = FIRST_LISTEN_FD + n + 1;

        /* Our own fd table, with only the low fds in it, where all the child needs is:
         * a copy of the whole of it (fork, or clone without CLONE_FILES) holds the two fds
         * we keep per worker, and exec would close them one by one (O(N) per spawn, the
         * largest part of a step at 1,024 workers). The table we share is left alone. */
        if (plan->files_shared && close_range(plan->keep_below, ~0U, CLOSE_RANGE_UNSHARE) < 0 &&
            unshare(CLONE_FILES) < 0) {
                int e = errno;
                (void) !write(error_fd, &e, sizeof(e));
                _exit(127);
        }
        if (spawn_child_reset(plan->parent, true) < 0)
                _exit(127);
        /* select() breaks above 1024: the worker gets the soft limit we were given. */
        struct rlimit nofile;
        if (r->nofile_soft > 0 && getrlimit(RLIMIT_NOFILE, &nofile) >= 0) {
                nofile.rlim_cur = (rlim_t) r->nofile_soft;
                (void) setrlimit(RLIMIT_NOFILE, &nofile);
        }
        /* Before exec, so that nothing the worker runs or forks is ever outside them. */
        if ((r->cgroup_procs && !plan->in_cgroup && join_cgroup(r->cgroup_procs) < 0) ||
            (r->cgroup_v1_procs && join_cgroup(r->cgroup_v1_procs) < 0))
                goto fail;
        if (plan->journal_stream)
                child_connect_journal(r, plan->journal_stream);

        /* Park every fd we keep above the target range first, so no dup2 clobbers one. */
        error_fd = fcntl(error_fd, F_DUPFD_CLOEXEC, first_free);
        if (error_fd < 0)
                _exit(127);
        for (int i = 0; i < n; i++)
                moved[i] = fcntl(r->sockets->sockets[i].fd, F_DUPFD_CLOEXEC, first_free);
        moved[n] = fcntl(plan->control_fd, F_DUPFD_CLOEXEC, first_free);
        for (int i = 0; i <= n; i++)
                if (moved[i] < 0 || dup2(moved[i], FIRST_LISTEN_FD + i) < 0)
                        goto fail;
        /* Whatever else is open (even an fd someone handed us without O_CLOEXEC) closes
         * at exec: the worker sees 0, 1, 2, its sockets and the control fd, nothing else. */
        if (close_range((unsigned) first_free, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
                for (int fd = first_free; fd < 65536; fd++)
                        if (fd != error_fd)
                                (void) fcntl(fd, F_SETFD, FD_CLOEXEC);

        format_pid(plan->listen_pid, getpid());
        if (plan->watchdog_pid)
                format_pid(plan->watchdog_pid, getpid());
        if (chdir(r->directory) < 0)
                goto fail;
        if (strchr(r->argv[0], '/'))
                execve(r->argv[0], r->argv, env);
        else
                execvpe(r->argv[0], r->argv, env);
fail:;
        int e = errno;
        (void) !write(error_fd, &e, sizeof(e));
        _exit(127);
}

NO_SANITIZE_ADDRESS static int child_entry(void *plan) {
        child(plan);
}

/* Enough for child(): its frames, the journal header, execvpe()'s copy of PATH and a
 * script's argv (glibc keeps them on the stack), with room for the sanitizers' redzones.
 * Untouched pages cost nothing. */
static size_t child_stack_size(const struct spawn_request *r) {
        size_t page = (size_t) sysconf(_SC_PAGESIZE);
        const char *path = getenv("PATH");
        size_t size = 256 * 1024 + (path ? strlen(path) : 0);
        for (char *const *a = r->argv; *a; a++)
                size += sizeof(char *) + strlen(*a);
        return (size + page - 1) / page * page;
}

/* Whether the child may share our fd table (CLONE_FILES). Valgrind cannot run such a
 * clone() (it stops the program: "Unsupported clone() flags"), and it runs ours with its
 * preload library in LD_PRELOAD: under it the child copies the table, the vfork way. */
static bool files_shareable(void) {
        static int shareable = -1;
        if (shareable < 0) {
                const char *preload = getenv("LD_PRELOAD");
                shareable = !(preload && strstr(preload, "/vgpreload_"));
        }
        return shareable;
}

/* clone(CLONE_VM | CLONE_VFORK): the child borrows our memory until it execs or exits,
 * and we are suspended until then, so that nothing here is copied on write. It runs on
 * its own stack (with a guard page below), and with every signal blocked: no handler of
 * ours may run on it. With INTO_CGROUP by clone3(CLONE_INTO_CGROUP), so that it is born
 * in the worker's cgroup: not even its first instructions run in the supervisor's, and
 * the kernel does the move that the child would otherwise write. Returns the pid, or -1
 * with errno. */
static pid_t vfork_worker(struct child_plan *plan, bool into_cgroup) {
        size_t page = (size_t) sysconf(_SC_PAGESIZE), size = child_stack_size(plan->r);
        char *stack = mmap(NULL, size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (stack == MAP_FAILED)
                return -1;
        pid_t pid = -1;
        sigset_t all, saved;
        sigfillset(&all);
        if (mprotect(stack, page, PROT_NONE) == 0 && sigprocmask(SIG_SETMASK, &all, &saved) == 0) {
                plan->files_shared = files_shareable(); /* read by the child: set before it exists */
                unsigned long files = plan->files_shared ? CLONE_FILES : 0;
                if (into_cgroup) {
                        struct clone_args args = {
                                .flags = CLONE_VM | CLONE_VFORK | files | CLONE_INTO_CGROUP,
                                .exit_signal = SIGCHLD,
                                .stack = (uint64_t) (uintptr_t) (stack + page),
                                .stack_size = size,
                                .cgroup = (uint64_t) plan->r->cgroup_fd,
                        };
                        plan->in_cgroup = true; /* read by the child: set before it exists */
                        pid = (pid_t) clone3_vfork(&args, child_entry, plan);
                        if (pid < 0)
                                plan->in_cgroup = false;
                } else
                        /* The stack grows down on every architecture glibc's clone() takes
                         * a stack top for; pass the top. */
                        pid = clone(child_entry, stack + page + size, CLONE_VM | CLONE_VFORK | (int) files | SIGCHLD,
                                    plan);
                if (pid < 0)
                        plan->files_shared = false;
                int e = errno;
                (void) sigprocmask(SIG_SETMASK, &saved, NULL);
                errno = e;
        }
        int e = errno;
        (void) munmap(stack, size + page);
        errno = e;
        return pid;
}

/* Fork-like clone3(CLONE_INTO_CGROUP), without a stack: it returns twice like fork().
 * For architectures without clone3_vfork(). */
static pid_t fork_into_cgroup(struct child_plan *plan) {
        struct clone_args args = {
                .flags = CLONE_INTO_CGROUP,
                .exit_signal = SIGCHLD,
                .cgroup = (uint64_t) plan->r->cgroup_fd,
        };
        long pid = syscall(SYS_clone3, &args, sizeof(args));
        if (pid == 0)
                plan->in_cgroup = true;
        return (pid_t) pid;
}

/* Whether an attempt to start the child is the answer: it worked, or we are out of
 * processes or memory, which another way would not change. */
static bool settled(pid_t pid) {
        return pid >= 0 || errno == EAGAIN || errno == ENOMEM;
}

/* Starts the child by the cheapest way that works. Where clone3 fails (ENOSYS before
 * Linux 5.7, a seccomp filter, a cgroup the kernel refuses), a worker with a cgroup joins
 * it by cgroup.procs instead; where clone() is refused too, fork(). Out of processes or
 * memory is an answer, not a reason to try another way (settled()). Returns the pid in the parent,
 * 0 in a fork-like child, or -1 with errno. */
static pid_t start_child(struct child_plan *plan) {
        pid_t pid;
        if (!SPAWN_SHARES_MEMORY) {
                if (plan->r->cgroup_procs && plan->r->cgroup_fd >= 0 && settled(pid = fork_into_cgroup(plan)))
                        return pid;
                return fork();
        }
        if (plan->r->cgroup_procs && plan->r->cgroup_fd >= 0) {
                if (settled(pid = vfork_worker(plan, true)))
                        return pid;
                if (errno == ENOSYS && settled(pid = fork_into_cgroup(plan)))
                        return pid;
        }
        if (settled(pid = vfork_worker(plan, false)))
                return pid;
        return fork();
}

/* Two fds at low numbers that the child's control socket and error pipe are copied into
 * for each spawn, so that a child sharing our fd table copies only its low part (child()),
 * and a third to park in them between spawns (so that we hold no end of the worker's).
 * O_CLOEXEC, so a reexec drops them (and the new image opens its own). */
static int low_fds[3] = { -1, -1, -1 };

int spawn_reserve_fds(void) {
        for (size_t i = 0; i < ELEMENTSOF(low_fds); i++)
                if (low_fds[i] < 0 && (low_fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
                        return -errno;
        return 0;
}

/* Puts CONTROL and ERROR in the low fds: false (and nothing held) when it cannot. */
static bool lend_low_fds(int control, int error) {
        if (!SPAWN_SHARES_MEMORY || spawn_reserve_fds() < 0)
                return false;
        if (dup3(control, low_fds[0], O_CLOEXEC) >= 0 && dup3(error, low_fds[1], O_CLOEXEC) >= 0)
                return true;
        (void) dup3(low_fds[2], low_fds[0], O_CLOEXEC);
        (void) dup3(low_fds[2], low_fds[1], O_CLOEXEC);
        return false;
}

static void return_low_fds(void) {
        (void) dup3(low_fds[2], low_fds[0], O_CLOEXEC);
        (void) dup3(low_fds[2], low_fds[1], O_CLOEXEC);
}

int spawn_start_worker(const struct spawn_request *r, pid_t *ret_pid, int *ret_control_fd) {
        _cleanup_strv_free_ char **env = spawn_build_environment(r->environment, 15);
        if (!env)
                return -ENOMEM;
        size_t k = 0;
        while (env[k])
                k++;

        /* LISTEN_PID must be the child's own pid: reserve room, fill it in the child. */
        size_t listen_pid_index = k;
        if (push(env, &k, "LISTEN_PID=%-20s", "") < 0 || push(env, &k, "LISTEN_FDS=%zu", r->sockets->n) < 0 ||
            push(env, &k, "LISTEN_FDNAMES=%s", r->fdnames) < 0 ||
            push(env, &k, "NOTIFY_SOCKET=%s", r->notify_socket) < 0 ||
            push(env, &k, "LIVESWAP_INSTANCE=%s", r->instance) < 0 ||
            push(env, &k, "LIVESWAP_GENERATION=%" PRIu64, r->generation) < 0 ||
            push(env, &k, "LIVESWAP_WORKER=%u", r->slot) < 0 ||
            push(env, &k, "LIVESWAP_CONTROL_FD=%zu", FIRST_LISTEN_FD + r->sockets->n) < 0)
                return -ENOMEM;
        if (r->adopt_library) {
                /* After the inherited LIVESWAP_* were dropped; any LD_PRELOAD the worker
                 * would get (ours, or the config's) keeps its libraries, ours comes last. */
                size_t at = k;
                for (size_t i = 0; i < k; i++)
                        if (strncmp(env[i], "LD_PRELOAD=", 11) == 0)
                                at = i;
                const char *v = at < k ? env[at] + 11 : "";
                char *value;
                if (asprintf(&value, "LD_PRELOAD=%s%s%s", v, *v ? ":" : "", r->adopt_library) < 0)
                        return -ENOMEM;
                if (at < k)
                        free(env[at]);
                env[at] = value;
                if (at == k)
                        k++;
                if ((r->ready_listen && push(env, &k, "LIVESWAP_READY=listen") < 0) ||
                    push(env, &k, "LIVESWAP_DRAIN_SIGNAL=%d", r->drain_signal) < 0)
                        return -ENOMEM;
        }
        char *listen_pid = env[listen_pid_index] + strlen("LISTEN_PID=");
        char *journal_stream = NULL;
        if (r->journal_path) {
                /* Room for the child to write its own stream's DEV:INO; ours until then. */
                size_t at = 0;
                while (at < k && strncmp(env[at], "JOURNAL_STREAM=", 15) != 0)
                        at++;
                if (!(journal_stream = calloc(1, JOURNAL_STREAM_SIZE)))
                        return -ENOMEM;
                if (at < k) {
                        strncpy(journal_stream, env[at], JOURNAL_STREAM_SIZE - 1);
                        free(env[at]);
                } else
                        strcpy(journal_stream, "JOURNAL_STREAM=");
                env[at] = journal_stream;
                if (at == k)
                        k++;
        }
        /* WATCHDOG_PID likewise: sd_watchdog_enabled() checks it against getpid(). */
        char *watchdog_pid = NULL;
        if (r->watchdog_usec > 0) {
                if (push(env, &k, "WATCHDOG_USEC=%" PRIu64, r->watchdog_usec) < 0 ||
                    push(env, &k, "WATCHDOG_PID=%-20s", "") < 0)
                        return -ENOMEM;
                watchdog_pid = env[k - 1] + strlen("WATCHDOG_PID=");
        }

        int pair[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
                return -errno;
        _cleanup_close_ int ours = pair[0], theirs = pair[1];
        if (fcntl(ours, F_SETFL, O_NONBLOCK) < 0)
                return -errno;

        int pipe_fds[2];
        if (pipe2(pipe_fds, O_CLOEXEC) < 0)
                return -errno;
        _cleanup_close_ int error_read = pipe_fds[0], error_write = pipe_fds[1];

        _cleanup_free_ int *moved = calloc(r->sockets->n + 1, sizeof(int));
        if (!moved)
                return -ENOMEM;

        bool low = lend_low_fds(theirs, error_write);
        struct child_plan plan = {
                .r = r,
                .env = env,
                .listen_pid = listen_pid,
                .journal_stream = journal_stream,
                .watchdog_pid = watchdog_pid,
                .control_fd = low ? low_fds[0] : theirs,
                .error_fd = low ? low_fds[1] : error_write,
                .parent = getpid(),
                .moved = moved,
        };
        int highest = STDERR_FILENO;
        highest = plan.control_fd > highest ? plan.control_fd : highest;
        highest = plan.error_fd > highest ? plan.error_fd : highest;
        for (size_t i = 0; i < r->sockets->n; i++)
                highest = r->sockets->sockets[i].fd > highest ? r->sockets->sockets[i].fd : highest;
        plan.keep_below = (unsigned) highest + 1;
        pid_t pid = start_child(&plan);
        if (pid == 0)
                child(&plan);
        int e = errno;
        if (low)
                return_low_fds(); /* before the read below, which waits for the last writer */
        if (pid < 0)
                return -e;

        /* No setpgid() from here as for the hook (it would make the child's setsid() fail):
         * the child has its session and group before exec, and we return only after that. */
        closep(&error_write);
        error_write = -1; /* so the read below sees EOF once the child has exec'd */
        int child_errno = 0;
        ssize_t got;
        do
                got = read(error_read, &child_errno, sizeof(child_errno));
        while (got < 0 && errno == EINTR);
        if (got == sizeof(child_errno)) {
                /* exec failed and the child is exiting right now: reap it here. */
                (void) waitpid(pid, NULL, 0);
                return -(child_errno ?: EIO);
        }

        *ret_pid = pid;
        *ret_control_fd = TAKE_FD(ours);
        return 0;
}
