/* head.h: the HEAD state file (the deployed target), PREVIOUS beside it,
 * HEAD.origin: from which configuration liveswap wrote HEAD, and GENERATION: the highest
 * generation number used.
 * Writes are atomic: temp file, fsync, rename, fsync of the directory. */
#pragma once

#include <stdint.h>

/* Reads the target recorded in a HEAD-format file: one absolute path (HEAD records
 * resolved targets, so a relative one was not written by liveswap and would depend on the
 * working directory), shorter than PATH_MAX; surrounding blanks and blank lines are
 * ignored. Empty, more than one line, a NUL byte, or not a regular file = invalid.
 * Returns 0 with *ret a new string, -ENOENT when absent, -EINVAL when malformed, -EISDIR
 * for a directory, other negative errno on I/O errors. */
int head_read(const char *path, char **ret);

/* Atomically replaces PATH (mode 0644) with "TARGET\n", through a temp file
 * ".<name>.XXXXXX" beside it. Creates missing parent directories (0755). TARGET must be
 * what head_read() accepts (absolute, one line, no surrounding blanks), else -EINVAL.
 * Returns 0 or a negative errno; on failure the old file is untouched and no temp file is
 * left, except when only the final fsync of the directory fails: then the new content is
 * in place but may not survive a crash, and that error is returned. */
int head_write(const char *path, const char *target);

/* Whether head_write(PATH, TARGET) would succeed now: writes the temp file it would
 * rename (without syncing it), then removes it. PATH itself is never touched. Lets an upgrade be refused
 * up front, with nothing changed, when its result could not be recorded (a read-only or
 * full state directory). Returns 0 or head_write()'s negative errno. */
int head_probe(const char *path, const char *target);

/* The PREVIOUS file that sits beside HEAD: dirname(head) + "/PREVIOUS". NULL on ENOMEM. */
char *head_previous_path(const char *head_path);

/* GENERATION beside HEAD: the highest generation number this instance has used, so that
 * a restarted supervisor never numbers a generation the same as an earlier one.
 * dirname(head) + "/GENERATION"; NULL on ENOMEM. */
char *head_generation_path(const char *head_path);
/* Reads a GENERATION file: one decimal number from 1 to INT64_MAX - 1, surrounding blanks
 * ignored. Returns 0, -ENOENT when absent, -EINVAL when malformed, out of range or not a
 * regular file, -EISDIR, or another negative errno. */
int head_generation_read(const char *path, uint64_t *ret);
/* Atomically replaces PATH with "GENERATION\n", as head_write() does, but not synced to
 * disk (head.c says why). -EINVAL for a number head_generation_read() would refuse. */
int head_generation_write(const char *path, uint64_t generation);

/* Records a successful upgrade: PREVIOUS := old target (if not NULL), then HEAD := new,
 * then HEAD.origin := { INSTANCE, CONFIGURED (the absolute configured target, see
 * head_configured_target(); NULL or "" when none), CURRENT }. Returns 0 or a negative
 * errno (HEAD is untouched if PREVIOUS could not be written). */
int head_commit(const char *head_path, const char *previous, const char *current, const char *instance,
                const char *configured);

/* Where liveswap last wrote HEAD from. HEAD itself stays one line that deploy tools read
 * and write; this sits beside it so that a HEAD left by another configuration sharing
 * the state directory (two apps both started as ./server: the same default instance) is
 * not taken for this one's. */
struct head_origin {
        char *instance;
        char *target; /* the configured target, absolute; "" when none was configured */
        char *head; /* the HEAD content liveswap wrote with it */
};
void head_origin_done(struct head_origin *o);

/* head_path + ".origin". NULL on ENOMEM. */
char *head_origin_path(const char *head_path);

/* The file's text: a comment line, then "instance=", "target=" and "head=" lines, with
 * backslash and newline in values written as \\ and \n. -EINVAL when instance or head
 * is missing or empty. */
int head_origin_format(const struct head_origin *o, char **ret);
/* The reverse. Blank and '#' lines and unknown keys are skipped; a missing, repeated or
 * badly escaped key is -EINVAL. */
int head_origin_parse(const char *text, struct head_origin *ret);
/* Reads and parses PATH: 0, -ENOENT, -EINVAL, or another negative errno. */
int head_origin_read(const char *path, struct head_origin *ret);

/* PATH made absolute against CWD and normalised without looking at the file system
 * ("." and empty components dropped, ".." taking back one): a configured "./server" and
 * "server" are the same target, and a "current" symlink that deploys repoint stays the
 * same configured target, however it resolves today. NULL with errno EINVAL for an empty
 * PATH or a relative one without an absolute CWD, or ENOMEM. */
char *head_absolute_path(const char *cwd, const char *path);
/* The configured TARGET as recorded in HEAD.origin: head_absolute_path() against the
 * current directory; "" for NULL or "". NULL with errno on failure. */
char *head_configured_target(const char *target);

enum head_verdict {
        HEAD_FROM_DEPLOY_TOOL, /* not what liveswap last wrote (or no origin): a deploy tool's */
        HEAD_FROM_HERE, /* written by liveswap for this instance and configured target */
        HEAD_FROM_ELSEWHERE, /* written by liveswap for another instance or configured target */
};
/* Whether HEAD (its content) applies to this INSTANCE with this CONFIGURED target (as
 * head_configured_target() gives it). ORIGIN may be NULL (none, or unreadable). A HEAD
 * that differs from the one the origin names was rewritten by a deploy tool for this
 * state directory, and is followed as before; one liveswap wrote itself applies only to
 * the same instance and the same configured target (unless none is known, now or in the
 * origin: then there is nothing to tell apart). Pure. */
enum head_verdict head_judge(const struct head_origin *origin, const char *head, const char *instance,
                             const char *configured);
