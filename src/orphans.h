/* orphans.h: the previous image's workers, after a reexec whose hand-over this program
 * could not read (a newer format, a corrupted memfd). They are still our children (exec
 * keeps the process), so they are found in /proc/self/task/STAR/children, watched, and
 * left serving until the fresh first generation is ready; then they drain like an
 * upgrade's old workers: the drain signal, SIGKILL after drain_timeout. The fds the old
 * image passed that this one cannot name (their control sockets among them, whose close
 * a worker may take for the end of its supervisor) stay open until the last is gone.
 * liveswap(8), REEXEC, says so. */
#pragma once

#include <stddef.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

struct orphans;
struct leftovers;

/* An fd open at start, and what it was (a number reused since is not it). */
struct inherited_fd {
        int fd;
        dev_t dev;
        ino_t ino;
};

/* The fds open at start (before anything of this image opened one): malloc'd into *RET.
 * 0 or a negative errno. */
int orphans_inherited_fds(struct inherited_fd **ret, size_t *ret_n);
/* Takes the children of this process and the inherited FDS at or above FIRST_FD (the
 * records lock, the one that names RECORDS_DIR, is closed instead: the fresh start takes
 * it again). NULL when there are no children, or on ENOMEM (logged). Call before the
 * first fork. */
struct orphans *orphans_collect(const struct inherited_fd *fds, size_t n_fds, int first_fd, const char *records_dir);
/* Their pids, for leftovers_stop_previous() to leave alone. */
size_t orphans_pids(const struct orphans *o, const pid_t **ret);
/* Watches their exits from now on, on EVENT; each one gone is forgotten in LEFTOVERS. */
int orphans_watch(struct orphans *o, sd_event *event, struct leftovers *leftovers);
/* Drains them (the fresh generation is ready, or the supervisor stops): DRAIN_SIGNAL to
 * each one's process group, SIGCONT, SIGKILL after DRAIN_USEC. Once. */
void orphans_drain(struct orphans *o, int drain_signal, uint64_t drain_usec);
/* Kills and reaps whatever is left, closes the fds, frees. */
struct orphans *orphans_free(struct orphans *o);
