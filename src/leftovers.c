/* leftovers.c: the shell half of leftovers.h: worker records in <runtime_dir>/workers,
 * the /proc snapshot, and stopping a previous run's leftovers with pidfds, so that a
 * signal can never reach a process that replaced the one examined. It only runs before
 * the first worker of this run is spawned, and every wait in it is bounded.
 *
 * Why records and not PR_SET_CHILD_SUBREAPER: a subreaper only adopts orphans while it
 * lives. When the supervisor itself is SIGKILLed, which is the case here, its adoptees are
 * handed on to the next reaper (PID 1) like everything else, so only something that
 * outlives the supervisor (a file) can tell the next run what to stop. Adopting orphans
 * while alive would also need reaping unknown children beside sd-event's child sources,
 * without stealing their exits (a WNOWAIT peek over P_ALL on every SIGCHLD): complexity
 * for a case the process-group kill on each worker exit already covers. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fs-util.h"
#include "leftovers.h"
#include "log.h"
#include "macro.h"
#include "proc-stat.h"

/* Time to wait for a SIGKILLed process to be gone: it cannot refuse, so only a process
 * stuck in the kernel (D state) takes this long, and then we go on and say so. */
#define KILL_WAIT_USEC (5 * USEC_PER_SEC)
/* Scans after the first: a leftover may fork while it drains. */
#define MAX_ROUNDS 3

struct victim {
        int pidfd; /* -1 once it is gone */
        pid_t pid;
};

static int read_process(pid_t pid, struct process_info *ret) {
        char path[32], buf[1024];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        ssize_t n = read_small_file_at(AT_FDCWD, path, buf, sizeof(buf));
        if (n < 0)
                return (int) n;
        struct proc_stat s;
        if (proc_stat_parse(buf, (size_t) n, &s) < 0)
                return -EINVAL;
        *ret = (struct process_info){
                .pid = s.pid, .session = s.session, .state = s.state, .start_time = s.start_time
        };
        return 0;
}

static int read_boot_id(char ret[static LEFTOVERS_BOOT_ID_SIZE]) {
        char buf[64];
        ssize_t n = read_small_file_at(AT_FDCWD, "/proc/sys/kernel/random/boot_id", buf, sizeof(buf));
        if (n < 0)
                return (int) n;
        if (n != LEFTOVERS_BOOT_ID_SIZE || buf[LEFTOVERS_BOOT_ID_SIZE - 1] != '\n')
                return -EINVAL;
        memcpy(ret, buf, LEFTOVERS_BOOT_ID_SIZE - 1);
        ret[LEFTOVERS_BOOT_ID_SIZE - 1] = 0;
        return 0;
}

/* Makes room for element N of a growing array; -ENOMEM leaves it as it was. */
static int grow(void **array, size_t *capacity, size_t n, size_t size) {
        if (n < *capacity)
                return 0;
        size_t want = *capacity ? *capacity * 2 : 64;
        void *p = reallocarray(*array, want, size);
        if (!p)
                return -ENOMEM;
        *array = p;
        *capacity = want;
        return 0;
}

static bool is_per_pid_file(const char *name) {
        return name[0] != '.' && strcmp(name, LEFTOVERS_SLOTS_FILE) != 0;
}

/* Whether the directory holds any record file of an older version. */
static bool has_per_pid_files(int dir_fd) {
        int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        bool found = false;
        if (!d) {
                closep(&fd);
                return true; /* unknown: look for them at each forget, as before */
        }
        for (struct dirent *de; !found && (de = readdir(d));)
                found = is_per_pid_file(de->d_name);
        closedir(d);
        return found;
}

static void free_slot(struct leftovers *l, unsigned slot) {
        /* Cannot fail: n_slots entries at most, and room was made when the slot was added. */
        if (grow((void **) &l->free_slots, &l->allocated_free, l->n_free, sizeof(unsigned)) >= 0)
                l->free_slots[l->n_free++] = slot;
}

/* Opens the records file and learns which of its slots are taken (by the records of a
 * previous run, which leftovers_stop_previous() then clears, or, after a reexec, of our
 * own workers) and which are free. */
static void open_slots(struct leftovers *l) {
        l->per_pid_files = has_per_pid_files(l->dir_fd);
        l->slots_fd = openat(l->dir_fd, LEFTOVERS_SLOTS_FILE, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (l->slots_fd < 0) {
                log_warning_errno(errno, "Cannot open the worker records (%m), so workers are not recorded: a SIGKILL "
                                         "of the supervisor may leave what they forked running");
                return;
        }
        char slot[LEFTOVERS_SLOT_SIZE];
        for (unsigned i = 0;; i++) {
                ssize_t n = pread(l->slots_fd, slot, sizeof(slot), (off_t) i * LEFTOVERS_SLOT_SIZE);
                if (n <= 0)
                        break;
                l->n_slots = i + 1;
                struct leftover_record r;
                uint64_t other;
                if (n == (ssize_t) sizeof(slot) && leftovers_parse_slot(slot, &r) == 0 &&
                    !pid_map_get(&l->slot_of, r.pid, &other) && pid_map_put(&l->slot_of, r.pid, i) >= 0)
                        continue;
                /* Free, cut short, or a second record of a pid: nothing to keep. */
                if (n == (ssize_t) sizeof(slot) && slot[0] != 0)
                        (void) !pwrite(l->slots_fd, "", 1, (off_t) i * LEFTOVERS_SLOT_SIZE);
                free_slot(l, i);
        }
}

int leftovers_open(struct leftovers *l, const char *runtime_dir) {
        _cleanup_free_ char *path = NULL;
        l->dir_fd = l->slots_fd = -1;
        int r = read_boot_id(l->boot_id);
        if (r < 0) {
                log_warning_errno(r,
                                  "Cannot read the boot id, so workers are not recorded (%s): a SIGKILL of the "
                                  "supervisor may leave what they forked running",
                                  strerror(-r));
                return 0;
        }
        if (asprintf(&path, "%s/workers", runtime_dir) < 0)
                return log_error_errno(-ENOMEM, "Out of memory");
        if (mkdir(path, 0700) < 0 && errno != EEXIST) {
                log_warning_errno(errno, "Cannot create %s, so workers are not recorded: %m", path);
                return 0;
        }
        _cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
                log_warning_errno(errno, "Cannot open %s, so workers are not recorded: %m", path);
                return 0;
        }
        /* Released by the kernel however this process ends: a held lock means a live
         * supervisor, whose workers are not leftovers. */
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                if (errno == EWOULDBLOCK)
                        return -EBUSY;
                log_warning_errno(errno, "Cannot lock %s, so workers are not recorded: %m", path);
                return 0;
        }
        l->dir_fd = TAKE_FD(fd);
        open_slots(l);
        return 0;
}

void leftovers_take(struct leftovers *l, int dir_fd) {
        l->dir_fd = dir_fd;
        l->slots_fd = -1;
        if (dir_fd >= 0 && read_boot_id(l->boot_id) < 0)
                leftovers_close(l); /* records without a boot id would never be trusted */
        else if (dir_fd >= 0)
                open_slots(l);
}

void leftovers_close(struct leftovers *l) {
        closep(&l->dir_fd);
        l->dir_fd = -1;
        closep(&l->slots_fd);
        l->slots_fd = -1;
        pid_map_clear(&l->slot_of);
        free(l->free_slots);
        l->free_slots = NULL;
        l->n_free = l->allocated_free = 0;
        l->n_slots = 0;
}

void leftovers_record(struct leftovers *l, pid_t pid, uint64_t generation) {
        struct leftover_record rec = { .pid = pid, .generation = generation };
        struct process_info info;
        char slot_text[LEFTOVERS_SLOT_SIZE];

        if (l->slots_fd < 0)
                return;
        memcpy(rec.boot_id, l->boot_id, sizeof(rec.boot_id));
        int r = read_process(pid, &info);
        if (r < 0) {
                /* Gone already (it will be reaped in a moment): nothing to record. */
                if (r != -ENOENT)
                        log_warning_errno(r, "Cannot record worker %d: /proc/%d/stat: %s", pid, pid, strerror(-r));
                return;
        }
        rec.start_time = info.start_time;
        bool reuse = l->n_free > 0;
        unsigned slot = reuse ? l->free_slots[l->n_free - 1] : l->n_slots;
        /* Room to give the slot back later, so that forgetting never fails. */
        r = leftovers_format_slot(&rec, slot_text);
        if (r >= 0 && !reuse)
                r = grow((void **) &l->free_slots, &l->allocated_free, (size_t) l->n_slots, sizeof(unsigned));
        if (r >= 0)
                r = pid_map_put(&l->slot_of, pid, slot);
        if (r >= 0 && pwrite(l->slots_fd, slot_text, sizeof(slot_text), (off_t) slot * LEFTOVERS_SLOT_SIZE) !=
                              (ssize_t) sizeof(slot_text)) {
                r = errno > 0 ? -errno : -EIO;
                pid_map_remove(&l->slot_of, pid);
        }
        if (r < 0) {
                log_warning_errno(r,
                                  "Cannot record worker %d in the runtime directory (%s): if the supervisor is "
                                  "killed, what it forked will not be stopped at the next start",
                                  pid, strerror(-r));
                return;
        }
        if (reuse)
                l->n_free--;
        else
                l->n_slots++;
}

void leftovers_forget(struct leftovers *l, pid_t pid) {
        uint64_t slot;
        if (l->slots_fd >= 0 && pid_map_get(&l->slot_of, pid, &slot)) {
                /* A NUL first byte frees the slot: one byte cannot be half written. */
                if (pwrite(l->slots_fd, "", 1, (off_t) slot * LEFTOVERS_SLOT_SIZE) != 1)
                        log_warning_errno(errno, "Cannot remove the record of worker %d: %m", pid);
                pid_map_remove(&l->slot_of, pid);
                free_slot(l, (unsigned) slot);
                return;
        }
        if (l->dir_fd < 0 || !l->per_pid_files)
                return;
        char name[16];
        snprintf(name, sizeof(name), "%d", (int) pid);
        if (unlinkat(l->dir_fd, name, 0) < 0 && errno != ENOENT)
                log_warning_errno(errno, "Cannot remove the record of worker %d: %m", pid);
}

/* ---- the previous run ---- */

static size_t read_records(struct leftovers *l, struct leftover_record **ret) {
        struct leftover_record *records = NULL;
        size_t n = 0, capacity = 0;
        int fd = openat(l->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        if (!d) {
                log_warning_errno(errno, "Cannot read the worker records: %m");
                closep(&fd);
                *ret = NULL;
                return 0;
        }
        for (struct dirent *de; (de = readdir(d));) {
                char buf[LEFTOVERS_RECORD_MAX];
                if (!is_per_pid_file(de->d_name))
                        continue;
                ssize_t len = read_small_file_at(l->dir_fd, de->d_name, buf, sizeof(buf));
                if (len < 0 || leftovers_parse_record(de->d_name, buf, (size_t) len, &(struct leftover_record){}) < 0) {
                        /* Half written when the previous run died, or not ours: nothing to trust. */
                        log_warning("Ignoring the malformed worker record %s", de->d_name);
                        (void) unlinkat(l->dir_fd, de->d_name, 0);
                        continue;
                }
                if (grow((void **) &records, &capacity, n, sizeof(*records)) < 0) {
                        log_error("Out of memory reading the worker records");
                        break;
                }
                (void) leftovers_parse_record(de->d_name, buf, (size_t) len, &records[n++]);
        }
        closedir(d);
        /* Every slot taken when the file was opened. */
        char slot[LEFTOVERS_SLOT_SIZE];
        for (unsigned i = 0; l->slots_fd >= 0 && i < l->n_slots; i++) {
                struct leftover_record r;
                if (pread(l->slots_fd, slot, sizeof(slot), (off_t) i * LEFTOVERS_SLOT_SIZE) != (ssize_t) sizeof(slot) ||
                    leftovers_parse_slot(slot, &r) < 0)
                        continue;
                if (grow((void **) &records, &capacity, n, sizeof(*records)) < 0) {
                        log_error("Out of memory reading the worker records");
                        break;
                }
                records[n++] = r;
        }
        *ret = records;
        return n;
}

static size_t snapshot(struct process_info **ret) {
        struct process_info *procs = NULL;
        size_t n = 0, capacity = 0;
        DIR *d = opendir("/proc");
        if (!d) {
                log_warning_errno(errno, "Cannot read /proc: %m");
                *ret = NULL;
                return 0;
        }
        for (struct dirent *de; (de = readdir(d));) {
                char *end;
                long pid = strtol(de->d_name, &end, 10);
                if (*end || pid <= 0)
                        continue;
                if (grow((void **) &procs, &capacity, n, sizeof(*procs)) < 0)
                        break;
                if (read_process((pid_t) pid, &procs[n]) >= 0)
                        n++; /* else it exited meanwhile */
        }
        closedir(d);
        *ret = procs;
        return n;
}

/* "1234 node server.js" from /proc/PID/cmdline, or the name in /proc/PID/stat's place. */
static void describe(pid_t pid, char *buf, size_t size) {
        char path[32], cmdline[256];
        snprintf(path, sizeof(path), "/proc/%d/cmdline", (int) pid);
        ssize_t n = read_small_file_at(AT_FDCWD, path, cmdline, sizeof(cmdline) - 1);
        if (n <= 0) {
                snprintf(buf, size, "%d", (int) pid);
                return;
        }
        for (ssize_t i = 0; i < n; i++)
                if (cmdline[i] == 0)
                        cmdline[i] = ' ';
        while (n > 0 && cmdline[n - 1] == ' ')
                n--;
        cmdline[n] = 0;
        snprintf(buf, size, "%d %s", (int) pid, cmdline);
}

static int pidfd_open_checked(const struct process_info *p) {
        int fd = (int) syscall(SYS_pidfd_open, p->pid, 0);
        if (fd < 0)
                return -errno;
        /* The pidfd names whatever has the pid now: if that is still the process examined
         * (same start time), every signal through it reaches that process or nothing. */
        struct process_info again;
        if (read_process(p->pid, &again) < 0 || again.start_time != p->start_time) {
                close(fd);
                return -ESRCH;
        }
        return fd;
}

static void send_all(struct victim *v, size_t n, int sig) {
        for (size_t i = 0; i < n; i++)
                if (v[i].pidfd >= 0 && syscall(SYS_pidfd_send_signal, v[i].pidfd, sig, NULL, 0) < 0 && errno != ESRCH) {
                        log_warning_errno(errno, "Cannot stop leftover process %d: %m", v[i].pid);
                        closep(&v[i].pidfd);
                        v[i].pidfd = -1;
                }
}

/* Waits until every victim has exited (its pidfd turns readable) or USEC passed; closes
 * the pidfds of those gone. Returns how many are left. */
static size_t wait_all(struct victim *v, size_t n, uint64_t usec) {
        _cleanup_free_ struct pollfd *fds = calloc(n, sizeof(*fds));
        uint64_t deadline = now_usec() + usec;
        size_t left = 0;
        if (!fds)
                return n;
        for (size_t i = 0; i < n; i++) {
                fds[i] = (struct pollfd){ .fd = v[i].pidfd, .events = POLLIN };
                left += v[i].pidfd >= 0;
        }
        while (left > 0) {
                uint64_t now = now_usec();
                if (now >= deadline)
                        break;
                int r = poll(fds, n, (int) ((deadline - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC));
                if (r < 0 && errno != EINTR)
                        break;
                for (size_t i = 0; r > 0 && i < n; i++)
                        if (fds[i].fd >= 0 && fds[i].revents) {
                                closep(&v[i].pidfd);
                                v[i].pidfd = fds[i].fd = -1;
                                left--;
                        }
        }
        return left;
}

/* One round: finds the leftovers of every record in a fresh snapshot, signals them and
 * waits. Returns how many it found. */
static size_t stop_round(struct leftovers *l, const struct leftover_record *records, size_t n_records, bool drain,
                         int drain_signal, uint64_t drain_usec) {
        _cleanup_free_ struct process_info *procs = NULL;
        size_t n_procs = snapshot(&procs);
        _cleanup_free_ size_t *indices = calloc(n_procs ?: 1, sizeof(size_t));
        _cleanup_free_ struct victim *victims = calloc(n_procs ?: 1, sizeof(struct victim));
        size_t n = 0;
        if (!indices || !victims) {
                log_error("Out of memory looking for leftover processes");
                return 0;
        }
        for (size_t i = 0; i < n_records; i++) {
                size_t k = leftovers_select(&records[i], l->boot_id, procs, n_procs, getpid(), getsid(0), indices);
                char list[1024] = "";
                size_t used = 0, first = n;
                for (size_t j = 0; j < k; j++) {
                        int fd = pidfd_open_checked(&procs[indices[j]]);
                        if (fd < 0)
                                continue; /* exited since the snapshot */
                        victims[n++] = (struct victim){ .pidfd = fd, .pid = procs[indices[j]].pid };
                        char one[300];
                        describe(procs[indices[j]].pid, one, sizeof(one));
                        if (used < sizeof(list))
                                used += (size_t) snprintf(list + used, sizeof(list) - used, "%s%s", used ? ", " : "",
                                                          one);
                }
                if (n > first)
                        log_warning("%s %zu process%s left by a previous run of this instance (worker %d, "
                                    "generation %" PRIu64 "): %s",
                                    drain ? "Stopping" : "Killing", n - first, n - first == 1 ? "" : "es",
                                    records[i].pid, records[i].generation, list);
        }
        if (n == 0)
                return 0;
        size_t left = n;
        if (drain) {
                send_all(victims, n, drain_signal);
                send_all(victims, n, SIGCONT); /* a stopped process would never see it */
                left = wait_all(victims, n, drain_usec);
                if (left > 0)
                        log_warning("Killing %zu leftover process%s that did not exit within %" PRIu64 " ms", left,
                                    left == 1 ? "" : "es", (uint64_t) (drain_usec / USEC_PER_MSEC));
        }
        if (left > 0) {
                send_all(victims, n, SIGKILL);
                left = wait_all(victims, n, KILL_WAIT_USEC);
        }
        for (size_t i = 0; i < n; i++)
                if (victims[i].pidfd >= 0) {
                        log_warning("Leftover process %d did not die within %" PRIu64 " s of SIGKILL", victims[i].pid,
                                    (uint64_t) (KILL_WAIT_USEC / USEC_PER_SEC));
                        closep(&victims[i].pidfd);
                }
        return n;
}

size_t leftovers_stop_previous(struct leftovers *l, int drain_signal, uint64_t drain_usec) {
        return leftovers_stop_previous_except(l, drain_signal, drain_usec, NULL, 0);
}

size_t leftovers_stop_previous_except(struct leftovers *l, int drain_signal, uint64_t drain_usec, const pid_t *keep,
                                      size_t n_keep) {
        if (l->dir_fd < 0)
                return 0;
        _cleanup_free_ struct leftover_record *records = NULL;
        size_t n_records = read_records(l, &records), total = 0;
        for (size_t i = 0; i < n_records;) {
                bool kept = false;
                for (size_t k = 0; k < n_keep && !kept; k++)
                        kept = records[i].pid == keep[k];
                if (kept)
                        records[i] = records[--n_records];
                else
                        i++;
        }
        if (n_records == 0)
                return 0;
        /* Drain first, as an upgrade would; then a few SIGKILL rounds for what the
         * leftovers forked meanwhile. Each round is bounded, and so is their number. */
        for (int round = 0; round < MAX_ROUNDS; round++) {
                size_t n = stop_round(l, records, n_records, round == 0, drain_signal, drain_usec);
                total += n;
                if (n == 0)
                        break;
        }
        for (size_t i = 0; i < n_records; i++)
                leftovers_forget(l, records[i].pid);
        if (n_keep == 0)
                l->per_pid_files = has_per_pid_files(l->dir_fd);
        if (total > 0)
                log_info("Stopped %zu process%s left by a previous run", total, total == 1 ? "" : "es");
        return total;
}
