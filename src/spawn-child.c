/* spawn-child.c: the child side of a spawn. Everything the child needs is prepared
 * before it exists (environment strings with room for its pid, the fd plan), so the
 * child only moves fds, resets signals and execs. It usually shares our memory until
 * exec (CLONE_VM with CLONE_VFORK, as posix_spawn does): fork()'s copy-on-write cost
 * 60-85 page faults per worker in the supervisor. So the child code must write nothing
 * of ours but the buffers prepared for it, never allocate, never return, and run on a
 * stack of its own. A helper's children (DETACHED) share its memory side by side, not
 * waited for, with one errno: only a failure's report reads errno, so two children
 * failing at once may report each other's. execvpe() decides by errno on its walk
 * through PATH: the helper walks it first, and a child falls back to execvpe() only
 * where the helper could not decide (a relative entry), or what it found fails. */
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <syslog.h>
#include <unistd.h>

#include "clone-vfork.h"
#include "journal-stream.h"
#include "macro.h"
#include "spawn-child.h"

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

NO_SANITIZE_ADDRESS static void child_report(int fd, uint32_t job, int error) {
        struct spawn_report r = { .job = job, .pid = (int32_t) getpid(), .error = error };
        (void) !write(fd, &r, sizeof(r));
}

NO_SANITIZE_ADDRESS static _Noreturn void child(const struct child_plan *plan) {
        const struct spawn_request *r = plan->r;
        char **env = plan->env;
        int error_fd = plan->error_fd, *moved = plan->moved;
        int n = (int) r->sockets->n;
        int first_free = FIRST_LISTEN_FD + n + 1;

        child_report(error_fd, plan->index, 0);

        /* Our own fd table, with only the low fds in it, where all the child needs is:
         * a copy of the whole of it (fork, or clone without CLONE_FILES) holds the two fds
         * we keep per worker, and exec would close them one by one (O(N) per spawn, the
         * largest part of a step at 1,024 workers). The table we share is left alone. */
        if (plan->files_shared && close_range(plan->keep_below, ~0U, CLOSE_RANGE_UNSHARE) < 0 &&
            unshare(CLONE_FILES) < 0) {
                child_report(error_fd, plan->index, errno);
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
        if (plan->exec_path) {
                execve(plan->exec_path, r->argv, env);
                /* What PATH gave, and failed (a script without "#!", a noexec mount):
                 * execvpe() decides, as it always did. */
                execvpe(r->argv[0], r->argv, env);
        } else if (strchr(r->argv[0], '/'))
                execve(r->argv[0], r->argv, env);
        else
                execvpe(r->argv[0], r->argv, env);
fail:
        child_report(error_fd, plan->index, errno);
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
 * the kernel does the move that the child would otherwise write. A DETACHED plan's child
 * (a helper's) is not waited for, and keeps its stack. Returns the pid, or -1 with
 * errno. */
static pid_t vfork_worker(struct child_plan *plan, bool into_cgroup) {
        size_t page = (size_t) sysconf(_SC_PAGESIZE), size = child_stack_size(plan->r);
        char *stack = mmap(NULL, size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (stack == MAP_FAILED)
                return -1;
        pid_t pid = -1;
        sigset_t all, saved;
        sigfillset(&all);
        if (mprotect(stack, page, PROT_NONE) == 0 && sigprocmask(SIG_SETMASK, &all, &saved) == 0) {
                /* Read by the child: set before it exists. */
                plan->files_shared = !plan->detached && files_shareable();
                unsigned long files = plan->files_shared ? CLONE_FILES : 0;
                unsigned long wait = plan->detached ? 0 : CLONE_VFORK;
                if (into_cgroup) {
                        /* With CLONE_PARENT the kernel takes the caller's exit signal,
                         * and clone3 refuses one of ours. */
                        struct clone_args args = {
                                .flags = CLONE_VM | wait | files | plan->clone_parent | CLONE_INTO_CGROUP,
                                .exit_signal = plan->clone_parent ? 0 : SIGCHLD,
                                .stack = (uint64_t) (uintptr_t) (stack + page),
                                .stack_size = size,
                                .cgroup = (uint64_t) plan->cgroup_fd,
                        };
                        plan->in_cgroup = true; /* read by the child: set before it exists */
                        pid = (pid_t) clone3_vfork(&args, child_entry, plan);
                        if (pid < 0)
                                plan->in_cgroup = false;
                } else
                        /* The stack grows down on every architecture glibc's clone() takes
                         * a stack top for; pass the top. */
                        pid = clone(child_entry, stack + page + size,
                                    CLONE_VM | (int) wait | (int) files | (int) plan->clone_parent | SIGCHLD, plan);
                if (pid < 0)
                        plan->files_shared = false;
                int e = errno;
                (void) sigprocmask(SIG_SETMASK, &saved, NULL);
                errno = e;
        }
        int e = errno;
        if (pid < 0 || !plan->detached)
                (void) munmap(stack, size + page);
        errno = e;
        return pid;
}

/* Fork-like clone3(CLONE_INTO_CGROUP), without a stack: it returns twice like fork().
 * For architectures without clone3_vfork(). */
static pid_t fork_into_cgroup(struct child_plan *plan) {
        struct clone_args args = {
                .flags = CLONE_INTO_CGROUP | plan->clone_parent,
                .exit_signal = plan->clone_parent ? 0 : SIGCHLD,
                .cgroup = (uint64_t) plan->cgroup_fd,
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

/* The cheapest way that works. Where clone3 fails (ENOSYS before
 * Linux 5.7, a seccomp filter, a cgroup the kernel refuses), a worker with a cgroup joins
 * it by cgroup.procs instead; where clone() is refused too, fork(). Out of processes or
 * memory is an answer, not a reason to try another way (settled()). Returns the pid in the parent,
 * 0 in a fork-like child, or -1 with errno. */
static pid_t start_child(struct child_plan *plan) {
        pid_t pid;
        if (!SPAWN_SHARES_MEMORY) {
                if (plan->r->cgroup_procs && plan->cgroup_fd >= 0 && settled(pid = fork_into_cgroup(plan)))
                        return pid;
                return fork();
        }
        if (plan->r->cgroup_procs && plan->cgroup_fd >= 0) {
                if (settled(pid = vfork_worker(plan, true)))
                        return pid;
                if (errno == ENOSYS && settled(pid = fork_into_cgroup(plan)))
                        return pid;
        }
        if (settled(pid = vfork_worker(plan, false)))
                return pid;
        if (plan->clone_parent)
                /* fork() with CLONE_PARENT: no stack, so it returns twice like fork(). */
                return (pid_t) syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, NULL, NULL, 0);
        return fork();
}

pid_t spawn_child_start(struct child_plan *plan) {
        pid_t pid = start_child(plan);
        if (pid == 0)
                child(plan);
        return pid;
}

bool spawn_child_shares_memory(void) {
        return SPAWN_SHARES_MEMORY;
}

bool spawn_child_shares_files(void) {
        return files_shareable();
}
