/* target.h: what a target is (contract section 3): an executable file, run with no
 * arguments from its own directory, or a directory whose `exec` command runs inside it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct worker_command {
        char *target; /* the resolved absolute path (symlinks followed) */
        char *directory; /* where the worker runs */
        char **argv; /* what is executed (argv[0] relative to directory or in PATH) */
        bool is_static; /* the program is statically linked: no preload can reach it */
};

/* Resolves and checks TARGET (relative paths against the current directory, symlinks
 * followed at this moment). EXEC is the command for a directory target. Returns 0, or
 * -errno with a sentence for the user in err (e.g. "/srv/app: not an executable file"). */
int target_resolve(const char *target, const char *exec, struct worker_command *ret, char *err, size_t errlen);

void worker_command_done(struct worker_command *c);
