/* leftovers.h: what a previous run of this instance left behind, and how to stop it.
 *
 * A worker dies with the supervisor (PR_SET_PDEATHSIG), but what it forked does not: a
 * wrapper script's server, reparented to PID 1, would keep serving old code on the port
 * after a SIGKILL of the supervisor, and the next start could not bind. So every worker is
 * recorded in <runtime_dir>/workers/slots while it lives, and the next start of the same
 * instance stops whatever is left in those workers' sessions before it takes the sockets.
 *
 * Why one file of fixed-size slots, and not a file per worker (as earlier versions kept them): a spawn
 * and an exit then cost one pwrite() each. Creating and deleting a file per worker cost
 * more than the rest of a spawn together where the runtime directory is not a tmpfs: on
 * ext4, churning inodes made inode allocation search (55 % of the supervisor's CPU in a
 * blue-green upgrade of 256 workers under load). Records of an older version's per-pid
 * files are still read, and removed, at the next start or reexec.
 *
 * Why a session identifies a worker's leftovers: each worker is a session leader
 * (spawn.c calls setsid()), so everything it forks keeps session id == the worker's pid
 * unless it calls setsid() itself. Linux never reuses a pid while any process still has it
 * as its process group or session id. Hence, for a record of pid P started at tick T:
 *   - a process P started at T is the worker itself;
 *   - a process P started at another time means P was reused, which the kernel allows only
 *     once session P had emptied: nothing of ours is left, and P's session is not ours;
 *   - no process P but processes in session P: they are the worker's leftovers.
 *
 * The pure half (leftovers-match.c: parsing and deciding) is unit tested; the shell half
 * (leftovers.c: files, /proc, signals) stays thin. Neither ever signals a process that is
 * not positively identified as a leftover of this instance. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "leftovers-match.h"
#include "pid-map.h"

/* ---- shell: leftovers.c ---- */

struct leftovers {
        int dir_fd; /* <runtime_dir>/workers, locked; -1 when records cannot be kept */
        int slots_fd; /* its file "slots"; -1 when it cannot be opened (nothing recorded) */
        char boot_id[LEFTOVERS_BOOT_ID_SIZE];
        struct pid_map slot_of; /* pid -> slot of every record in the file */
        unsigned *free_slots; /* below n_slots */
        size_t n_free, allocated_free;
        unsigned n_slots; /* the file's length in slots */
        bool per_pid_files; /* records of an older version may be in files of their own */
};

/* The file the records are kept in, inside <runtime_dir>/workers. */
#define LEFTOVERS_SLOTS_FILE "slots"

/* Opens (creating it) <runtime_dir>/workers and takes its lock for as long as this
 * supervisor runs: the lock proves that the run that wrote older records is dead.
 * -EBUSY when another supervisor of the instance holds it. Any other failure is logged
 * and leaves dir_fd -1: the supervisor runs, without this protection. */
int leftovers_open(struct leftovers *l, const char *runtime_dir);
void leftovers_close(struct leftovers *l);
/* After a reexec: the records directory the previous image opened and locked, DIR_FD
 * (-1 when it had none). The lock is held across the exec: no other start can have
 * stopped our workers meanwhile. */
void leftovers_take(struct leftovers *l, int dir_fd);

/* Records a worker just spawned, and forgets it once reaped. Failures are warnings. */
void leftovers_record(struct leftovers *l, pid_t pid, uint64_t generation);
void leftovers_forget(struct leftovers *l, pid_t pid);

/* Stops what the records of a previous run point at: DRAIN_SIGNAL and SIGCONT, up to
 * DRAIN_USEC for them to exit, then SIGKILL; then deletes the records. Returns how many
 * processes were stopped. Bounded in time. */
size_t leftovers_stop_previous(struct leftovers *l, int drain_signal, uint64_t drain_usec);
/* The same, leaving alone the records of KEEP: live workers of this very process, which a
 * reexec whose hand-over could not be read starts afresh beside (orphans.h). */
size_t leftovers_stop_previous_except(struct leftovers *l, int drain_signal, uint64_t drain_usec, const pid_t *keep,
                                      size_t n_keep);
