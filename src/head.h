/* head.h: the HEAD state file (the deployed target) and PREVIOUS beside it.
 * Writes are atomic: temp file, fsync, rename, fsync of the directory. */
#pragma once

/* Reads the target recorded in a HEAD-format file (one path, trailing newline and
 * surrounding blanks ignored; empty or more than one line = invalid).
 * Returns 0 with *ret a new string, -ENOENT when absent, -EINVAL when malformed,
 * other negative errno on I/O errors. */
int head_read(const char *path, char **ret);

/* Atomically replaces PATH with "TARGET\n". Creates missing parent directories (0755).
 * Returns 0 or a negative errno; on failure the old file is untouched. */
int head_write(const char *path, const char *target);

/* The PREVIOUS file that sits beside HEAD: dirname(head) + "/PREVIOUS". NULL on ENOMEM. */
char *head_previous_path(const char *head_path);

/* Records a successful upgrade: PREVIOUS := old target (if not NULL), then HEAD := new.
 * Returns 0 or a negative errno (HEAD is untouched if PREVIOUS could not be written). */
int head_commit(const char *head_path, const char *previous, const char *current);
