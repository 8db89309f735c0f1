/* target.c: resolving and checking a target before anything is started, so that a bad
 * target is refused with a clear reason and changes nothing. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "elf-kind.h"
#include "macro.h"
#include "target.h"
#include "utf8.h"

void worker_command_done(struct worker_command *c) {
        free(c->target);
        free(c->directory);
        strv_free(c->argv);
        *c = (struct worker_command){};
}

static int fail(char *err, size_t errlen, int error, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int error, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        return -error;
}

static int not_utf8(char *err, size_t errlen, const char *what, const char *path) {
        _cleanup_free_ char *shown = utf8_escape_invalid(path);
        if (!shown)
                return fail(err, errlen, ENOMEM, "out of memory");
        return fail(err, errlen, EILSEQ, "%s is not valid UTF-8: %s", what, shown);
}

static bool executable_file(const char *path) {
        struct stat st;
        return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* Like execvp's search, so that a bare name in `exec` is refused up front when it
 * would fail at exec time. */
static bool in_path(const char *name) {
        const char *path = getenv("PATH") ?: "/usr/local/bin:/usr/bin:/bin";
        while (*path) {
                size_t n = strcspn(path, ":");
                char buf[PATH_MAX];
                if (n > 0 && (size_t) snprintf(buf, sizeof(buf), "%.*s/%s", (int) n, path, name) < sizeof(buf) &&
                    executable_file(buf))
                        return true;
                path += n + (path[n] == ':');
        }
        return false;
}

int target_resolve(const char *target, const char *exec, struct worker_command *ret, char *err, size_t errlen) {
        struct stat st;

        if (!target || !*target)
                return fail(err, errlen, EINVAL, "no target given");
        if (strlen(target) >= PATH_MAX)
                return fail(err, errlen, ENAMETOOLONG, "target path is too long");

        /* The target is shown on the bus (Target, Workers, replies), and D-Bus carries only
         * UTF-8: a path that is not would leave the instance uncontrollable. The message
         * escapes the bad bytes so that it can itself travel on the bus. */
        if (!utf8_is_valid(target))
                return not_utf8(err, errlen, "target", target);
        _cleanup_free_ char *resolved = realpath(target, NULL);
        if (!resolved)
                return fail(err, errlen, errno, "%s: %s", target, strerror(errno));
        /* A symlink can lead to a name that is not UTF-8 either. */
        if (!utf8_is_valid(resolved))
                return not_utf8(err, errlen, "resolved target", resolved);
        if (stat(resolved, &st) < 0)
                return fail(err, errlen, errno, "%s: %s", target, strerror(errno));

        struct worker_command c = {};
        if (S_ISDIR(st.st_mode)) {
                const char *cmd = exec && *exec ? exec : "./start";
                if (config_split_command(cmd, &c.argv) < 0)
                        return fail(err, errlen, EINVAL, "%s: invalid exec command '%s'", target, cmd);
                if (strchr(c.argv[0], '/')) {
                        _cleanup_free_ char *program = NULL;
                        if (c.argv[0][0] == '/')
                                program = strdup(c.argv[0]);
                        else if (asprintf(&program, "%s/%s", resolved, c.argv[0]) < 0)
                                program = NULL;
                        if (!program) {
                                strv_free(c.argv);
                                return fail(err, errlen, ENOMEM, "out of memory");
                        }
                        if (!executable_file(program)) {
                                strv_free(c.argv);
                                return fail(err, errlen, ENOEXEC,
                                            "%s is a directory without an executable '%s' (set exec= for it)", target,
                                            cmd);
                        }
                } else if (!in_path(c.argv[0])) {
                        int r = fail(err, errlen, ENOENT, "%s: exec command '%s' not found in PATH", target, c.argv[0]);
                        strv_free(c.argv);
                        return r;
                }
                c.directory = strdup(resolved);
        } else if (S_ISREG(st.st_mode)) {
                if (access(resolved, X_OK) < 0)
                        return fail(err, errlen, EACCES, "%s is not executable", target);
                c.argv = calloc(2, sizeof(char *));
                if (c.argv && !(c.argv[0] = strdup(resolved))) {
                        free(c.argv);
                        c.argv = NULL;
                }
                c.directory = strdup(resolved);
                if (c.directory) {
                        char *slash = strrchr(c.directory, '/');
                        if (slash == c.directory)
                                slash[1] = 0;
                        else if (slash)
                                *slash = 0;
                }
        } else
                return fail(err, errlen, EINVAL, "%s is neither an executable file nor a directory", target);

        if (!c.argv || !c.directory) {
                worker_command_done(&c);
                return fail(err, errlen, ENOMEM, "out of memory");
        }
        /* Once per release, not per spawn: it reads the executable's headers. */
        c.is_static = elf_classify_file(c.directory, c.argv[0]) == ELF_STATIC;
        c.target = TAKE_PTR(resolved);
        *ret = c;
        return 0;
}
