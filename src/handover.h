/* handover.h: reexec, the shell's side (contract section 11; liveswap(8), REEXEC). The old
 * image serialises the engine, the configuration in effect and its own state into a
 * sealed memfd and execve()s the liveswap program in the same process, with the fds that
 * must survive; the new image reads the memfd back (handover_read()) and takes over.
 *
 * Why a memfd and not systemd's FDSTORE: the memfd works the same standalone and under
 * systemd, needs no FileDescriptorStoreMax= in the unit, and lives exactly as long as
 * the exec: nothing is left in a store to clean up after a failed exec or a crash. It
 * is sealed (no write, grow or shrink) before the exec, so the new image reads what the
 * old one wrote and nothing else.
 *
 * The listening sockets go to the new image as systemd passes them: at fds 3, 4, ...
 * with LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES. A new image that cannot read the hand-over
 * (a newer format after a downgrade, a corrupted memfd) therefore still has its sockets,
 * and starts afresh while it drains the previous image's workers (orphans.h): no
 * connection is refused, no worker is orphaned. */
#pragma once

#include <stddef.h>

#include "handover-format.h"
#include "supervisor.h"

/* ---- the old image ---- */

/* The program a reexec runs, chosen at start: $LIVESWAP_PROGRAM when set (tests,
 * packagers); else the file this process was started from, by its path, when that path
 * still names a file (after a package upgrade: the new version, not the deleted inode
 * /proc/self/exe points at); else the installed LIVESWAP_PROGRAM_PATH. malloc'd, NULL
 * on ENOMEM. */
char *handover_choose_program(void);

/* Whether PROGRAM can be executed in place of this one: a regular executable file, and,
 * when it is an ELF file, one of this machine's kind (class, byte order, machine). 0, or
 * -errno with a sentence in ERR. */
int handover_check_program(const char *program, char *err, size_t errlen);

/* Performs every queued action, serialises S (BUS_FD: the private bus's listening
 * socket) and execve()s s->program with s->arguments. Returns only if that failed, with
 * -errno and a sentence in ERR, after undoing everything: the old image goes on as it
 * was. */
int handover_exec(struct supervisor *s, int bus_fd, char *err, size_t errlen);

/* ---- the new image ---- */

/* Reads the hand-over from FD (closed in every case) and parses it. 0, or -errno with a
 * sentence in ERR. */
int handover_read(int fd, struct handover_state *ret, char *err, size_t errlen);

/* Everything but the event sources: rebuilds the engine, the configuration and S's own
 * state from ST, and checks every inherited fd. Either all of it succeeds or nothing in S
 * changed (-errno and a sentence in ERR). */
int handover_restore_state(struct supervisor *s, struct handover_state *st, char *err, size_t errlen);
/* Then, once the event loop exists: the workers' child watches. */
int handover_restore_workers(struct supervisor *s, struct handover_state *st);
