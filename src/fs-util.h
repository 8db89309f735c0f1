/* fs-util.h: small file-system helpers shared by the supervisor and the state files. */
#pragma once

#include <sys/types.h>

/* mkdir -p: creates PATH and every missing parent with MODE. 0 or a negative errno. */
int mkdir_parents(const char *path, mode_t mode);
