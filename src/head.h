/* head.h: the HEAD state file (the deployed target) and PREVIOUS beside it.
 * Writes are atomic: temp file, fsync, rename, fsync of the directory. */
#pragma once

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

/* Whether head_write(PATH, TARGET) would succeed now: writes and syncs the temp file it
 * would rename, then removes it. PATH itself is never touched. Lets an upgrade be refused
 * up front, with nothing changed, when its result could not be recorded (a read-only or
 * full state directory). Returns 0 or head_write()'s negative errno. */
int head_probe(const char *path, const char *target);

/* The PREVIOUS file that sits beside HEAD: dirname(head) + "/PREVIOUS". NULL on ENOMEM. */
char *head_previous_path(const char *head_path);

/* Records a successful upgrade: PREVIOUS := old target (if not NULL), then HEAD := new.
 * Returns 0 or a negative errno (HEAD is untouched if PREVIOUS could not be written). */
int head_commit(const char *head_path, const char *previous, const char *current);
