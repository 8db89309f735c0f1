/* fs-util.c: small file-system helpers. Plain syscalls, no logging: callers say what
 * failed in their own words. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs-util.h"
#include "macro.h"

int mkdir_parents(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        /* Each prefix in turn; EEXIST is fine, and a component that is not a directory
         * shows up as ENOTDIR on the next one or on the final open. */
        for (char *slash = p + 1; (slash = strchr(slash, '/')); slash++) {
                *slash = 0;
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return -errno;
                *slash = '/';
        }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}
