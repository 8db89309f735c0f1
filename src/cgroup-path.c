/* cgroup-path.c: parsing and naming for cgroup.c, kept free of I/O so the unit tests can
 * feed it every shape of /proc/self/cgroup the kernel writes. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cgroup-path.h"
#include "macro.h"

/* Does the comma-separated LIST (of LEN bytes) hold WORD? */
static bool list_has(const char *list, size_t len, const char *word) {
        size_t n = strlen(word);
        for (const char *p = list, *end = list + len; p < end;) {
                const char *comma = memchr(p, ',', (size_t) (end - p));
                size_t item = comma ? (size_t) (comma - p) : (size_t) (end - p);
                if (item == n && memcmp(p, word, n) == 0)
                        return true;
                p += item + 1;
        }
        return false;
}

int cgroup_parse_self(const char *text, char **ret_unified, char **ret_named) {
        _cleanup_free_ char *unified = NULL, *named = NULL;
        for (const char *line = text; *line;) {
                size_t len = strcspn(line, "\n");
                const char *c1 = memchr(line, ':', len);
                const char *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t) (c1 + 1 - line)) : NULL;
                if (!c1 || c1 == line || !c2 || c2 + 1 >= line + len || c2[1] != '/')
                        return -EINVAL;
                size_t path_len = len - (size_t) (c2 + 1 - line);
                const char *controllers = c1 + 1;
                size_t controllers_len = (size_t) (c2 - controllers);
                char **target = NULL;
                if (c1 - line == 1 && line[0] == '0' && controllers_len == 0)
                        target = &unified;
                else if (list_has(controllers, controllers_len, "name=systemd"))
                        target = &named;
                if (target) {
                        free(*target);
                        if (!(*target = strndup(c2 + 1, path_len)))
                                return -ENOMEM;
                }
                line += len;
                if (*line == '\n')
                        line++;
        }
        *ret_unified = TAKE_PTR(unified);
        *ret_named = TAKE_PTR(named);
        return 0;
}

char *cgroup_unit_path(const char *path) {
        const char *slash = strrchr(path, '/');
        if (slash && slash != path && strcmp(slash + 1, CGROUP_SUPERVISOR) == 0)
                return strndup(path, (size_t) (slash - path));
        return strdup(path);
}

char *cgroup_join(const char *mount, const char *path) {
        if (path[0] != '/')
                return NULL;
        for (const char *p = path; *p;) {
                while (*p == '/')
                        p++;
                size_t n = strcspn(p, "/");
                if (n == 2 && p[0] == '.' && p[1] == '.')
                        return NULL;
                p += n;
        }
        char *joined;
        /* "/" is the root cgroup: the mount point itself, without a trailing slash. */
        if (asprintf(&joined, "%s%s", mount, strcmp(path, "/") == 0 ? "" : path) < 0)
                return NULL;
        return joined;
}

char *cgroup_generation_name(uint64_t generation) {
        char *name;
        return asprintf(&name, "generation-%" PRIu64, generation) < 0 ? NULL : name;
}

char *cgroup_worker_name(uint64_t generation, uint64_t worker_id) {
        char *name;
        return asprintf(&name, "generation-%" PRIu64 "/worker-%" PRIu64, generation, worker_id) < 0 ? NULL : name;
}

int cgroup_subtree_request(const char *controllers, char *buf, size_t size) {
        static const char *const wanted[] = { "memory", "cpu", "pids" };
        size_t used = 0;
        if (size == 0)
                return -ENOBUFS;
        buf[0] = 0;
        for (size_t i = 0; i < ELEMENTSOF(wanted); i++) {
                size_t n = strlen(wanted[i]);
                bool offered = false;
                for (const char *p = controllers; *p;) {
                        p += strspn(p, " \t\n");
                        size_t word = strcspn(p, " \t\n");
                        if (word == n && memcmp(p, wanted[i], n) == 0)
                                offered = true;
                        p += word;
                }
                if (!offered)
                        continue;
                int r = snprintf(buf + used, size - used, "%s+%s", used ? " " : "", wanted[i]);
                if (r < 0 || (size_t) r >= size - used)
                        return -ENOBUFS;
                used += (size_t) r;
        }
        return 0;
}

int cgroup_events_populated(const char *text) {
        for (const char *line = text; *line;) {
                size_t len = strcspn(line, "\n");
                if (len == strlen("populated 0") && strncmp(line, "populated ", 10) == 0 &&
                    (line[10] == '0' || line[10] == '1'))
                        return line[10] - '0';
                line += len;
                if (*line == '\n')
                        line++;
        }
        return -EINVAL;
}
