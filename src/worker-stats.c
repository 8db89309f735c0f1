/* worker-stats.c: reads what workers cost (worker-stats.h). Called on demand (a status
 * request) or from the memory_max timer, never on a timer of its own. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs-util.h"
#include "macro.h"
#include "proc-stat.h"
#include "worker-stats.h"

/* A small text file, NUL-terminated. 0 or a negative errno. */
static int read_text(int dir_fd, const char *path, char *buf, size_t size) {
        ssize_t n = read_small_file_at(dir_fd, path, buf, size - 1);
        if (n < 0)
                return (int) n;
        buf[n] = '\0';
        return 0;
}

struct totals {
        uint64_t rss_pages;
        uint64_t ticks;
        unsigned processes;
};

static void add_process(struct totals *t, const struct proc_stat *f) {
        t->rss_pages += f->rss_pages;
        /* A process's cutime/cstime hold its reaped children, so each one counts once. */
        t->ticks += f->utime_ticks + f->stime_ticks + f->cutime_ticks + f->cstime_ticks;
        t->processes++;
}

static int read_proc_stat(int proc_fd, const char *pid, struct proc_stat *ret) {
        char path[64], line[1024];
        snprintf(path, sizeof path, "%s/stat", pid);
        int r = read_text(proc_fd, path, line, sizeof line);
        if (r < 0)
                return r;
        return proc_stat_parse(line, strlen(line), ret);
}

static void totals_to_stats(const struct totals *t, bool with_cpu, struct worker_stats *s) {
        static long page_size, ticks_per_second;
        if (page_size <= 0)
                page_size = sysconf(_SC_PAGESIZE);
        if (ticks_per_second <= 0)
                ticks_per_second = sysconf(_SC_CLK_TCK);
        s->processes = t->processes;
        if (t->processes == 0)
                return;
        if (!s->has_memory && page_size > 0) {
                s->has_memory = true;
                s->memory_bytes = t->rss_pages * (uint64_t) page_size;
        }
        if (with_cpu && !s->has_cpu && ticks_per_second > 0) {
                s->has_cpu = true;
                s->cpu_usec = t->ticks * 1000000ULL / (uint64_t) ticks_per_second;
        }
}

/* A worker with a cgroup: memory.current and cpu.stat where the hierarchy has them (on a
 * hybrid host the memory controller lives in v1, so memory.current is missing); whatever
 * is missing comes from its members' /proc entries. */
static void collect_cgroup(int proc_fd, const char *cgroup_path, struct worker_stats *s) {
        _cleanup_close_ int dir_fd = open(cgroup_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0)
                return;
        char buf[4096];
        uint64_t v;
        if (read_text(dir_fd, "memory.current", buf, sizeof buf) >= 0 && cgroup_memory_current_parse(buf, &v) >= 0) {
                s->has_memory = true;
                s->memory_bytes = v;
        }
        if (read_text(dir_fd, "cpu.stat", buf, sizeof buf) >= 0 && cgroup_cpu_stat_parse(buf, &v) >= 0) {
                s->has_cpu = true;
                s->cpu_usec = v;
        }

        _cleanup_close_ int procs_fd = openat(dir_fd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
        if (procs_fd < 0)
                return;
        FILE *f = fdopen(procs_fd, "re");
        if (!f)
                return;
        procs_fd = -1;
        struct totals t = { 0 };
        char pid[32];
        /* Bounded by the cgroup's membership, which the kernel bounds. */
        while (fgets(pid, sizeof pid, f)) {
                pid[strcspn(pid, "\n")] = '\0';
                struct proc_stat fields;
                if (read_proc_stat(proc_fd, pid, &fields) >= 0)
                        add_process(&t, &fields);
        }
        fclose(f);
        totals_to_stats(&t, true, s);
}

struct group_index {
        pid_t pgid;
        size_t query;
};

static int compare_groups(const void *a, const void *b) {
        pid_t x = ((const struct group_index *) a)->pgid, y = ((const struct group_index *) b)->pgid;
        return (x > y) - (x < y);
}

int worker_stats_collect(const struct worker_stats_query *queries, size_t n, struct worker_stats *ret) {
        memset(ret, 0, n * sizeof *ret);
        _cleanup_close_ int proc_fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (proc_fd < 0)
                return 0;

        size_t n_groups = 0;
        for (size_t i = 0; i < n; i++) {
                if (queries[i].cgroup_path)
                        collect_cgroup(proc_fd, queries[i].cgroup_path, &ret[i]);
                else if (queries[i].pgid > 0)
                        n_groups++;
        }
        if (n_groups == 0)
                return 0;

        _cleanup_free_ struct group_index *groups = calloc(n_groups, sizeof *groups);
        _cleanup_free_ struct totals *totals = calloc(n, sizeof *totals);
        if (!groups || !totals)
                return -ENOMEM;
        n_groups = 0;
        for (size_t i = 0; i < n; i++)
                if (!queries[i].cgroup_path && queries[i].pgid > 0)
                        groups[n_groups++] = (struct group_index){ queries[i].pgid, i };
        qsort(groups, n_groups, sizeof *groups, compare_groups);

        /* One pass over every process: its stat names its process group. */
        int dup_fd = dup(proc_fd);
        if (dup_fd < 0)
                return 0;
        DIR *d = fdopendir(dup_fd);
        if (!d) {
                close(dup_fd);
                return 0;
        }
        for (struct dirent *de; (de = readdir(d));) {
                if (de->d_name[0] < '1' || de->d_name[0] > '9')
                        continue;
                struct proc_stat fields;
                if (read_proc_stat(proc_fd, de->d_name, &fields) < 0)
                        continue; /* gone meanwhile */
                struct group_index key = { .pgid = fields.pgrp };
                struct group_index *g = bsearch(&key, groups, n_groups, sizeof *groups, compare_groups);
                if (g)
                        add_process(&totals[g->query], &fields);
        }
        closedir(d);
        for (size_t i = 0; i < n_groups; i++)
                totals_to_stats(&totals[groups[i].query], true, &ret[groups[i].query]);
        return 0;
}
