/* fuzz-target.c: libFuzzer target for target validation. The input is split at the first
 * NUL into a target path and a directory target's exec command. Whatever the path (.., a
 * symlink loop, spaces, a very long one), target_resolve() either refuses it with a
 * sentence or returns an absolute, resolved target with a command to run. It only reads
 * the file system. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "macro.h"
#include "target.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > 8192)
                return 0;
        _cleanup_free_ char *buf = malloc(size + 1);
        CHECK(buf);
        memcpy(buf, data, size);
        buf[size] = 0;
        const char *target = buf;
        const char *exec = strlen(buf) < size ? buf + strlen(buf) + 1 : NULL;

        struct worker_command cmd;
        char err[512] = "";
        int r = target_resolve(target, exec, &cmd, err, sizeof(err));
        if (r >= 0) {
                CHECK(cmd.target[0] == '/' && cmd.directory[0] == '/');
                CHECK(cmd.argv && cmd.argv[0]);
                worker_command_done(&cmd);
        } else
                CHECK(err[0] != 0);
        return 0;
}
