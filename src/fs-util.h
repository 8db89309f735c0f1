/* fs-util.h: small file-system helpers shared by the supervisor and the state files. */
#pragma once

#include <sys/types.h>

/* mkdir -p: creates PATH and every missing parent with MODE. 0 or a negative errno. */
int mkdir_parents(const char *path, mode_t mode);
/* Reads a small file whole (PATH relative to DIR_FD, not following a last symlink) into
 * BUF, at most SIZE bytes, not NUL-terminated. The length or a negative errno. */
ssize_t read_small_file_at(int dir_fd, const char *path, char *buf, size_t size);
