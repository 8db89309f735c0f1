/* test-spawn.c: spawn_build_environment(), the environment a worker starts from: the
 * supervisor's own, minus what describes the supervisor's relationship with its service
 * manager (LISTEN_*, NOTIFY_SOCKET, WATCHDOG_*) or its own workers (LIVESWAP_*), with the
 * configured environment= entries replacing inherited ones of the same name, and room
 * for the variables spawn_worker() adds. It reads environ, so each test sets up a
 * controlled one first. Then the spawns themselves: one at a time, and runs of them
 * started by helper processes. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "spawn.h"

static void set_environment(const char *const *entries) {
        cr_assert_eq(clearenv(), 0);
        for (const char *const *e = entries; *e; e++) {
                const char *eq = strchr(*e, '=');
                cr_assert(eq);
                _cleanup_free_ char *name = strndup(*e, eq - *e);
                cr_assert_eq(setenv(name, eq + 1, 1), 0);
        }
}

static size_t length(char **env) {
        size_t n = 0;
        while (env[n])
                n++;
        return n;
}

static void expect(char **env, const char *const *expected) {
        size_t n = 0;
        for (; expected[n]; n++) {
                cr_assert_not_null(env[n], "entry %zu missing, expected %s", n, expected[n]);
                cr_assert_str_eq(env[n], expected[n], "entry %zu", n);
        }
        cr_assert_null(env[n], "unexpected entry %zu: %s", n, env[n]);
}

Test(spawn, inherited_environment_in_order) {
        set_environment((const char *const[]){ "PATH=/usr/bin:/bin", "HOME=/var/lib/app", "LANG=C.UTF-8", NULL });
        _cleanup_strv_free_ char **env = spawn_build_environment(NULL, 0);
        cr_assert_not_null(env);
        expect(env, (const char *const[]){ "PATH=/usr/bin:/bin", "HOME=/var/lib/app", "LANG=C.UTF-8", NULL });
}

Test(spawn, service_manager_variables_are_stripped) {
        set_environment((const char *const[]){ "PATH=/bin", "LISTEN_PID=1234", "LISTEN_FDS=2",
                                               "LISTEN_FDNAMES=web:admin", "NOTIFY_SOCKET=/run/systemd/notify",
                                               "WATCHDOG_PID=1234", "WATCHDOG_USEC=30000000", "LIVESWAP_INSTANCE=web",
                                               "LIVESWAP_GENERATION=3", "LIVESWAP_WORKER=0", "LIVESWAP_CONTROL_FD=5",
                                               "LIVESWAP_LOG_LEVEL=debug", "HOME=/root", NULL });
        _cleanup_strv_free_ char **env = spawn_build_environment(NULL, 0);
        cr_assert_not_null(env);
        expect(env, (const char *const[]){ "PATH=/bin", "HOME=/root", NULL });
}

/* Only the exact names go: a variable that merely starts like one is the app's own. */
Test(spawn, lookalike_names_are_kept) {
        set_environment((const char *const[]){ "LISTEN_PORT=8080", "LISTEN_FDS_EXTRA=1", "NOTIFY_SOCKETS=x",
                                               "WATCHDOG=1", "MY_LIVESWAP_X=1", "LIVESWAPX=1", NULL });
        _cleanup_strv_free_ char **env = spawn_build_environment(NULL, 0);
        expect(env, (const char *const[]){ "LISTEN_PORT=8080", "LISTEN_FDS_EXTRA=1", "NOTIFY_SOCKETS=x", "WATCHDOG=1",
                                           "MY_LIVESWAP_X=1", "LIVESWAPX=1", NULL });
}

Test(spawn, extra_entries_come_last) {
        set_environment((const char *const[]){ "PATH=/bin", "HOME=/root", NULL });
        char *const extra[] = { "APP_ENV=production", "WORKERS=4", NULL };
        _cleanup_strv_free_ char **env = spawn_build_environment(extra, 0);
        expect(env, (const char *const[]){ "PATH=/bin", "HOME=/root", "APP_ENV=production", "WORKERS=4", NULL });
}

/* environment= wins over an inherited variable of the same name, which then appears
 * once, with the configured value: getenv() in the worker must not find the old one. */
Test(spawn, extra_entries_override_inherited_ones) {
        set_environment((const char *const[]){ "PATH=/bin", "LANG=C", "HOME=/root", "LANGUAGE=en", NULL });
        char *const extra[] = { "LANG=de_DE.UTF-8", "PATH=/opt/app/bin:/bin", "EMPTY=", NULL };
        _cleanup_strv_free_ char **env = spawn_build_environment(extra, 0);
        expect(env, (const char *const[]){ "HOME=/root", "LANGUAGE=en", "LANG=de_DE.UTF-8", "PATH=/opt/app/bin:/bin",
                                           "EMPTY=", NULL });
}

/* An empty inherited value is overridden too, and a name that is a prefix of another
 * (LANG, LANGUAGE) overrides only itself. */
Test(spawn, override_matches_whole_names) {
        set_environment((const char *const[]){ "LANG=", "LANGUAGE=en", NULL });
        char *const extra[] = { "LANG=C", NULL };
        _cleanup_strv_free_ char **env = spawn_build_environment(extra, 0);
        expect(env, (const char *const[]){ "LANGUAGE=en", "LANG=C", NULL });

        set_environment((const char *const[]){ "LANG=C.UTF-8", "TZ=UTC", NULL });
        char *const longer[] = { "LANGUAGE=de", "TZDIR=/usr/share/zoneinfo", NULL };
        _cleanup_strv_free_ char **env2 = spawn_build_environment(longer, 0);
        expect(env2,
               (const char *const[]){ "LANG=C.UTF-8", "TZ=UTC", "LANGUAGE=de", "TZDIR=/usr/share/zoneinfo", NULL });
}

/* spawn_worker() appends its own variables after the built environment, in slots that
 * must exist and stay NULL-terminated (ASan reports a write past the block). */
Test(spawn, reserve_leaves_null_slots) {
        set_environment((const char *const[]){ "PATH=/bin", "NOTIFY_SOCKET=/run/x", NULL });
        char *const extra[] = { "A=1", NULL };
        char **env = spawn_build_environment(extra, 8);
        cr_assert_not_null(env);
        size_t n = length(env);
        cr_assert_eq(n, 2);
        for (size_t i = 0; i < 8; i++) {
                cr_assert_null(env[n + i], "reserved slot %zu is not empty", i);
                env[n + i] = strdup("RESERVED=1");
        }
        cr_assert_null(env[n + 8], "the block must stay NULL-terminated after the reserve");
        cr_assert_eq(length(env), n + 8);
        strv_free(env);
}

Test(spawn, empty_environment) {
        cr_assert_eq(clearenv(), 0);
        _cleanup_strv_free_ char **env = spawn_build_environment(NULL, 2);
        cr_assert_not_null(env);
        cr_assert_null(env[0]);
        cr_assert_null(env[1]);
        cr_assert_null(env[2]);

        char *const extra[] = { "ONLY=1", NULL };
        _cleanup_strv_free_ char **env2 = spawn_build_environment(extra, 0);
        expect(env2, (const char *const[]){ "ONLY=1", NULL });
}

/* One worker started on its own (a run of 1, in this process), with no sockets (and in
 * CGROUP_DIR's cgroup if not NULL). */
static pid_t start_in(char *const *argv, const char *cgroup_dir, int *ret) {
        static const struct socket_set none = { 0 };
        struct spawn_request r = { .directory = "/",
                                   .argv = argv,
                                   .sockets = &none,
                                   .fdnames = "",
                                   .notify_socket = "/nonexistent",
                                   .instance = "test",
                                   .generation = 1,
                                   .cgroup_dir = cgroup_dir };
        /* A path the child cannot write: it must be born in the cgroup, not join it. */
        if (cgroup_dir)
                r.cgroup_procs = "/nonexistent/cgroup.procs";
        pid_t pid = 0;
        int control_fd = -1;
        struct spawn_job *j = NULL;
        *ret = spawn_job_prepare(&r, &j);
        if (*ret >= 0) {
                spawn_jobs_start(&j, 1, NULL, NULL);
                *ret = spawn_job_result(j, &pid, &control_fd);
        }
        spawn_job_free(j);
        if (control_fd >= 0)
                close(control_fd);
        return pid;
}

static pid_t start(const char *program, int *ret) {
        return start_in((char *const[]){ (char *) program, NULL }, NULL, ret);
}

static long minor_faults(void) {
        struct rusage ru;
        cr_assert_eq(getrusage(RUSAGE_SELF, &ru), 0);
        return ru.ru_minflt;
}

/* The child borrows the supervisor's memory until exec (CLONE_VM | CLONE_VFORK) instead
 * of a copy-on-write copy of it: after a fork() every page we then write faults once
 * (1,024 here), however big the supervisor. */
Test(spawn, spawning_costs_no_copy_on_write) {
#if defined(__SANITIZE_ADDRESS__)
        cr_skip_test("sanitizer builds spawn fork-like (spawn.c, SPAWN_SHARES_MEMORY)");
#endif
        size_t size = 1024 * (size_t) sysconf(_SC_PAGESIZE);
        _cleanup_free_ char *memory = malloc(size);
        cr_assert_not_null(memory);
        memset(memory, 1, size);
        long before = minor_faults();
        int r;
        pid_t pid = start("/bin/true", &r);
        cr_assert_eq(r, 0, "spawn: %s", strerror(-r));
        memset(memory, 2, size);
        long faults = minor_faults() - before;
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        cr_assert_lt(faults, 256, "%ld page faults for one spawn", faults);
}

/* An exec failure comes back as its errno before spawn_jobs_start() returns, and the
 * child is already reaped. */
Test(spawn, exec_failure_is_reported) {
        int r;
        start("/nonexistent/program", &r);
        cr_assert_eq(r, -ENOENT, "got %s", strerror(-r));
        cr_assert_eq(waitpid(-1, NULL, WNOHANG), -1);
        cr_assert_eq(errno, ECHILD);
}

/* A worker with a cgroup is born in it (clone3 with CLONE_INTO_CGROUP), and that too
 * without a copy-on-write copy of us. Needs a writable cgroup v2 hierarchy (root). */
/* Makes a cgroup of ours in a writable v2 hierarchy, in DIR; false where there is none. */
static bool make_cgroup(char *dir, size_t size) {
        const char *roots[] = { "/sys/fs/cgroup/unified", "/sys/fs/cgroup" };
        *dir = 0;
        for (size_t i = 0; i < ELEMENTSOF(roots) && !*dir; i++) {
                char probe[128];
                snprintf(probe, sizeof(probe), "%s/cgroup.procs", roots[i]);
                if (access(probe, W_OK) == 0 && access(roots[i], W_OK) == 0) {
                        snprintf(dir, size, "%s/liveswap-test-spawn-%d", roots[i], (int) getpid());
                        if (mkdir(dir, 0755) < 0)
                                *dir = 0;
                }
        }
        return *dir;
}

/* The v2 cgroup line of PID's /proc/PID/cgroup, in LINE. */
static void cgroup_of(pid_t pid, char *line, size_t size) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/cgroup", (int) pid);
        FILE *f = fopen(path, "re");
        *line = 0;
        while (f && fgets(line, (int) size, f) && strncmp(line, "0::", 3) != 0)
                ;
        if (f)
                fclose(f);
}

Test(spawn, born_in_its_cgroup_without_copy_on_write) {
#if defined(__SANITIZE_ADDRESS__)
        cr_skip_test("sanitizer builds spawn fork-like (spawn.c, SPAWN_SHARES_MEMORY)");
#endif
        char dir[256];
        if (!make_cgroup(dir, sizeof(dir)))
                cr_skip_test("no writable cgroup v2 hierarchy");

        size_t size = 1024 * (size_t) sysconf(_SC_PAGESIZE);
        _cleanup_free_ char *memory = malloc(size);
        cr_assert_not_null(memory);
        memset(memory, 1, size);
        long before = minor_faults();
        int r;
        pid_t pid = start_in((char *const[]){ "/bin/sleep", "30", NULL }, dir, &r);
        memset(memory, 2, size);
        long faults = minor_faults() - before;
        char line[512] = "";
        if (r == 0)
                cgroup_of(pid, line, sizeof(line));
        if (r == 0) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
        }
        (void) rmdir(dir);
        cr_assert_eq(r, 0, "spawn: %s", strerror(-r));
        cr_assert_not_null(strstr(line, strrchr(dir, '/')), "worker's cgroup: %s", line);
        cr_assert_lt(faults, 256, "%ld page faults for one spawn", faults);
}

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

/* The quickest of ROUNDS spawns of /bin/true, in ns, up to its exit. */
static uint64_t quickest_spawn(int rounds) {
        uint64_t best = UINT64_MAX;
        for (int i = 0; i < rounds; i++) {
                int r, status;
                uint64_t t = now_ns();
                pid_t pid = start("/bin/true", &r);
                cr_assert_eq(r, 0, "spawn: %s", strerror(-r));
                cr_assert_eq(waitpid(pid, &status, 0), pid);
                t = now_ns() - t;
                best = t < best ? t : best;
        }
        return best;
}

/* The supervisor holds two fds per worker. A child with a copy of all of them would
 * close them one by one at exec, which made each spawn O(N) at 1,024 workers (the
 * largest part of a step): the child copies only the low fds it needs. With 16,000 fds
 * open a spawn must cost about what it costs without them (measured here: 1x with the
 * fix, 3x without; the quickest of several, so that a busy machine does not decide). */
Test(spawn, many_open_fds_do_not_slow_a_spawn) {
#if defined(__SANITIZE_ADDRESS__)
        cr_skip_test("sanitizer builds spawn fork-like (spawn.c, SPAWN_SHARES_MEMORY)");
#endif
        struct rlimit limit;
        cr_assert_eq(getrlimit(RLIMIT_NOFILE, &limit), 0);
        int extra = limit.rlim_max == RLIM_INFINITY || limit.rlim_max > 16256 ? 16000 : (int) limit.rlim_max - 256;
        if (extra < 12000)
                cr_skip_test("the hard open-file limit is too low to tell");
        struct rlimit raised = { .rlim_cur = limit.rlim_max, .rlim_max = limit.rlim_max };
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &raised), 0);

        (void) quickest_spawn(3); /* the first spawn opens what later ones keep */
        uint64_t without = quickest_spawn(15);
        int *fds = calloc((size_t) extra, sizeof(int));
        cr_assert_not_null(fds);
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        cr_assert_geq(null, 0);
        for (int i = 0; i < extra; i++) {
                fds[i] = fcntl(null, F_DUPFD_CLOEXEC, 0);
                cr_assert_geq(fds[i], 0);
        }
        uint64_t with = quickest_spawn(15);
        /* Ours are all still open: the child never closed one in the table we share. */
        for (int i = 0; i < extra; i++)
                cr_assert_geq(fcntl(fds[i], F_GETFD), 0, "fd %d was closed", fds[i]);
        for (int i = 0; i < extra; i++)
                close(fds[i]);
        close(null);
        free(fds);
        cr_log_info("quickest spawn: %.2f ms without, %.2f ms with %d fds open", without / 1e6, with / 1e6, extra);
        cr_assert_lt((double) with, 2.0 * (double) without, "a spawn took %.2f ms with %d fds open, %.2f ms without",
                     with / 1e6, extra, without / 1e6);
}

/* ---- runs of spawns (spawn_jobs_start()) ---- */

static struct spawn_job *prepared_in(char *const *argv, const char *procs, const char *cgroup_dir) {
        static const struct socket_set none = { 0 };
        struct spawn_request r = { .directory = "/",
                                   .argv = argv,
                                   .sockets = &none,
                                   .fdnames = "",
                                   .notify_socket = "/nonexistent",
                                   .instance = "test",
                                   .generation = 1,
                                   .cgroup_procs = procs,
                                   .cgroup_dir = cgroup_dir };
        struct spawn_job *j = NULL;
        cr_assert_eq(spawn_job_prepare(&r, &j), 0);
        return j;
}

static struct spawn_job *prepared(char *const *argv, const char *procs) {
        return prepared_in(argv, procs, NULL);
}

static void count_started(void *userdata, size_t index, pid_t pid) {
        pid_t *started = userdata;
        cr_assert_eq(started[index], 0, "job %zu started twice", index);
        started[index] = pid;
}

/* Each worker of a run is our child (a helper starts it with CLONE_PARENT), each exec
 * failure comes back for its own job, every child is announced as soon as it runs (even
 * one that then fails to exec), and nothing is left to reap: no helper, no child that
 * failed. Runs without helpers (sanitizers) must say the same. */
static void run_of(size_t n) {
        /* By path and by name (a helper looks names up in PATH), and neither found. */
        char *const good[] = { "/bin/true", NULL }, *const named[] = { "true", NULL },
                    *const bad[] = { "/nonexistent/program", NULL },
                    *const unknown[] = { "liveswap-no-such-program", NULL };
        struct spawn_job **jobs = calloc(n, sizeof(*jobs));
        pid_t *started = calloc(n, sizeof(*started));
        cr_assert(jobs && started);
        for (size_t i = 0; i < n; i++)
                jobs[i] = prepared(i % 3 == 1 ? (i % 2 ? bad : unknown) : i % 2 ? named : good, NULL);
        spawn_jobs_start(jobs, n, count_started, started);
        for (size_t i = 0; i < n; i++) {
                pid_t pid = 0;
                int fd = -1, r = spawn_job_result(jobs[i], &pid, &fd), status;
                cr_assert_gt(started[i], 0, "job %zu: its start was not announced", i);
                if (i % 3 == 1) {
                        cr_assert_eq(r, -ENOENT, "job %zu: %s", i, strerror(-r));
                        continue;
                }
                cr_assert_eq(r, 0, "job %zu: %s", i, strerror(-r));
                cr_assert_eq(pid, started[i]);
                cr_assert_geq(fd, 0);
                close(fd);
                cr_assert_eq(waitpid(pid, &status, 0), pid, "job %zu: pid %d is not our child", i, (int) pid);
                cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
        for (size_t i = 0; i < n; i++)
                spawn_job_free(jobs[i]);
        free(jobs);
        free(started);
        cr_assert_eq(waitpid(-1, NULL, WNOHANG), -1, "a process was left to reap");
        cr_assert_eq(errno, ECHILD);
}

/* Helpers that do not wait for each exec. */
Test(spawn, a_run_starts_each_worker_as_our_child) {
        run_of(4 * SPAWN_JOBS_PER_HELPER + 3);
}

/* Helpers that wait for one exec after another. */
Test(spawn, a_large_run_starts_each_worker_as_our_child) {
        run_of(SPAWN_DETACHED_MAX + 3);
}

enum { MAX_BLOCKED = 4 * (int) SPAWN_JOBS_PER_HELPER };

/* A run whose children each block before exec, opening a FIFO (as their cgroup.procs)
 * that nobody reads until watcher() opens them all. */
struct watch {
        pid_t tid;
        size_t want; /* children of ours at once */
        size_t most;
        char dir[64];
        size_t n;
        char paths[MAX_BLOCKED][128]; /* the jobs point at them until they are freed */
        int readers[MAX_BLOCKED];
        struct spawn_job *jobs[MAX_BLOCKED];
};

/* Skips the test where the children of a thread cannot be read. */
#define REQUIRE_CHILDREN_FILE()                                                                  \
        do {                                                                                     \
                char probe_[64];                                                                 \
                snprintf(probe_, sizeof(probe_), "/proc/self/task/%d/children", (int) gettid()); \
                if (access(probe_, R_OK) < 0)                                                    \
                        cr_skip_test("no %s (CONFIG_PROC_CHILDREN)", probe_);                    \
        } while (0)

static void prepare_blocked(struct watch *w, const char *name, size_t n) {
        static char *const argv[] = { "/bin/true", NULL };
        cr_assert_leq(n, (size_t) MAX_BLOCKED);
        w->tid = gettid();
        w->n = n;
        snprintf(w->dir, sizeof(w->dir), "/tmp/liveswap-test-%s-%d", name, (int) getpid());
        cr_assert_eq(mkdir(w->dir, 0700), 0);
        for (size_t i = 0; i < n; i++) {
                snprintf(w->paths[i], sizeof(w->paths[i]), "%s/%zu", w->dir, i);
                cr_assert_eq(mkfifo(w->paths[i], 0600), 0);
                w->readers[i] = -1;
                w->jobs[i] = prepared(argv, w->paths[i]);
        }
}

static void remove_blocked(struct watch *w) {
        for (size_t i = 0; i < w->n; i++) {
                w->jobs[i] = spawn_job_free(w->jobs[i]);
                if (w->readers[i] >= 0)
                        close(w->readers[i]);
                unlink(w->paths[i]);
        }
        rmdir(w->dir);
}

static size_t count_children(pid_t tid) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int) tid);
        FILE *f = fopen(path, "re");
        if (!f)
                return 0;
        size_t n = 0;
        for (int c, in = 0; (c = fgetc(f)) != EOF;) {
                n += !in && c != ' ';
                in = c != ' ';
        }
        fclose(f);
        return n;
}

/* Waits (up to 10 s) until W->want children of W->tid exist at once, then lets every
 * child through its FIFO. */
static void *watcher(void *userdata) {
        struct watch *w = userdata;
        for (int i = 0; i < 10000 && w->most < w->want; i++) {
                size_t n = count_children(w->tid);
                w->most = n > w->most ? n : w->most;
                if (w->most < w->want)
                        usleep(1000);
        }
        for (size_t i = 0; i < w->n; i++)
                w->readers[i] = open(w->paths[i], O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        return NULL;
}

/* The point of a run: its workers' waits for exec overlap. Each child here blocks before
 * exec, opening a FIFO (as its cgroup.procs) that nobody reads yet: one spawn at a time
 * would have one child of ours at a time; 4 helpers that each waited for their child's
 * exec, 4 helpers and 4 children. Helpers that do not wait start all 32 at once. */
Test(spawn, the_spawns_of_a_run_overlap) {
#if defined(__SANITIZE_ADDRESS__)
        cr_skip_test("sanitizer builds spawn one at a time (spawn.c, SPAWN_SHARES_MEMORY)");
#endif
        REQUIRE_CHILDREN_FILE();
        static struct watch w = { .want = 2 * SPAWN_JOBS_PER_HELPER };
        prepare_blocked(&w, "run", 4 * SPAWN_JOBS_PER_HELPER);
        pthread_t thread;
        cr_assert_eq(pthread_create(&thread, NULL, watcher, &w), 0);
        spawn_jobs_start(w.jobs, w.n, NULL, NULL);
        cr_assert_eq(pthread_join(thread, NULL), 0);
        for (size_t i = 0; i < w.n; i++) {
                pid_t pid = 0;
                int fd = -1, r = spawn_job_result(w.jobs[i], &pid, &fd);
                cr_assert_eq(r, 0, "job %zu: %s", i, strerror(-r));
                close(fd);
                cr_assert_eq(waitpid(pid, NULL, 0), pid);
        }
        remove_blocked(&w);
        cr_assert_geq(w.most, w.want, "at most %zu children at once, not %zu", w.most, w.want);
}

/* A helper's workers too are born in their cgroups (clone3 with CLONE_INTO_CGROUP and
 * CLONE_PARENT). Needs a writable cgroup v2 hierarchy (root). */
Test(spawn, the_workers_of_a_run_are_born_in_their_cgroups) {
        char dir[256];
        if (!make_cgroup(dir, sizeof(dir)))
                cr_skip_test("no writable cgroup v2 hierarchy");
        enum { N = 2 * (int) SPAWN_JOBS_PER_HELPER };
        struct spawn_job *jobs[N];
        char *const argv[] = { "/bin/sleep", "30", NULL };
        /* A path the child cannot write: it must be born in the cgroup, not join it. */
        for (size_t i = 0; i < N; i++)
                jobs[i] = prepared_in(argv, "/nonexistent/cgroup.procs", dir);
        spawn_jobs_start(jobs, N, NULL, NULL);
        int failed = 0;
        char line[512] = "", wrong[512] = "";
        for (size_t i = 0; i < N; i++) {
                pid_t pid = 0;
                int fd = -1, r = spawn_job_result(jobs[i], &pid, &fd);
                if (r < 0) {
                        failed = r;
                        continue;
                }
                close(fd);
                cgroup_of(pid, line, sizeof(line));
                if (!strstr(line, strrchr(dir, '/')))
                        snprintf(wrong, sizeof(wrong), "%s", line);
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
        }
        for (size_t i = 0; i < N; i++)
                spawn_job_free(jobs[i]);
        (void) rmdir(dir);
        cr_assert_eq(failed, 0, "spawn: %s", strerror(-failed));
        cr_assert_str_empty(wrong, "a worker's cgroup: %s", wrong);
}

/* A helper killed halfway (by the OOM killer, say): the worker it had started still
 * starts and is ours (its child reported its own pid, as the helper could not), the jobs
 * it never reached fail with EIO instead of being lost, and nothing is left to reap. */
Test(spawn, a_helper_killed_halfway_loses_no_worker) {
#if defined(__SANITIZE_ADDRESS__)
        cr_skip_test("sanitizer builds spawn one at a time (spawn.c, SPAWN_SHARES_MEMORY)");
#endif
        enum { N = 2 * (int) SPAWN_JOBS_PER_HELPER };
        char *const argv[] = { "/bin/true", NULL };
        struct spawn_job *jobs[N];
        for (size_t i = 0; i < N; i++)
                jobs[i] = prepared(argv, NULL);
        /* Job 0 is the first helper's first: it dies right after starting it. */
        spawn_test_helper_dies_after = 0;
        spawn_jobs_start(jobs, N, NULL, NULL);
        spawn_test_helper_dies_after = SIZE_MAX;
        size_t started = 0, lost = 0;
        for (size_t i = 0; i < N; i++) {
                pid_t pid = 0;
                int fd = -1, r = spawn_job_result(jobs[i], &pid, &fd);
                if (r == 0) {
                        close(fd);
                        cr_assert_eq(waitpid(pid, NULL, 0), pid, "job %zu: pid %d is not our child", i, (int) pid);
                        started++;
                } else {
                        cr_assert_eq(r, -EIO, "job %zu: %s", i, strerror(-r));
                        cr_assert_neq(i, 0, "the job started before the helper died was lost");
                        lost++;
                }
                spawn_job_free(jobs[i]);
        }
        /* It had started its first job, and never reached the others. */
        cr_assert_eq(lost, SPAWN_JOBS_PER_HELPER - 1, "%zu started, %zu lost", started, lost);
        cr_assert_eq(waitpid(-1, NULL, WNOHANG), -1, "a process was left to reap");
        cr_assert_eq(errno, ECHILD);
}
