/* names.c: instance names and the paths derived from them. Pure string work. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "names.h"

static int is_alnum(unsigned char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

char *names_escape_instance(const char *instance) {
        if (!instance || !*instance) {
                errno = EINVAL;
                return NULL;
        }
        size_t n = strlen(instance);
        char *out = malloc(n * 3 + 1), *p = out;
        if (!out)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) instance[i];
                if (is_alnum(c) && !(i == 0 && c >= '0' && c <= '9'))
                        *p++ = (char) c;
                else
                        p += sprintf(p, "_%02x", c);
        }
        *p = 0;
        return out;
}

static int hex(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1;
}

char *names_unescape_instance(const char *escaped) {
        if (!escaped || !*escaped) {
                errno = EINVAL;
                return NULL;
        }
        char *out = malloc(strlen(escaped) + 1), *p = out;
        if (!out)
                return NULL;
        for (const char *s = escaped; *s;) {
                if (*s == '_') {
                        int hi = hex(s[1]), lo = hi >= 0 ? hex(s[2]) : -1;
                        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                                free(out);
                                errno = EINVAL;
                                return NULL;
                        }
                        *p++ = (char) (hi * 16 + lo);
                        s += 3;
                } else if (is_alnum((unsigned char) *s)) {
                        *p++ = *s++;
                } else {
                        free(out);
                        errno = EINVAL;
                        return NULL;
                }
        }
        *p = 0;
        return out;
}

char *names_bus_name(const char *instance) {
        _cleanup_free_ char *escaped = names_escape_instance(instance);
        char *name;
        if (!escaped || asprintf(&name, "%s%s", LIVESWAP_BUS_PREFIX, escaped) < 0)
                return NULL;
        return name;
}

int names_validate_instance(const char *instance) {
        if (!instance)
                return -EINVAL;
        size_t n = strlen(instance);
        if (n == 0 || n > 200 || strcmp(instance, ".") == 0 || strcmp(instance, "..") == 0)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) instance[i];
                if (c == '/' || c < 0x20 || c == 0x7f)
                        return -EINVAL;
        }
        return 0;
}

char *names_instance_from_target(const char *target) {
        if (!target)
                return NULL;
        size_t n = strlen(target);
        while (n > 1 && target[n - 1] == '/')
                n--;
        size_t start = n;
        while (start > 0 && target[start - 1] != '/')
                start--;
        char *name = strndup(target + start, n - start);
        if (name && names_validate_instance(name) < 0) {
                free(name);
                return NULL;
        }
        return name;
}

static int set(const char *s) {
        return s && *s;
}

char *names_runtime_dir(const char *runtime_directory, const char *xdg_runtime_dir, const char *instance) {
        char *path;
        if (set(runtime_directory))
                return strdup(runtime_directory);
        if (asprintf(&path, "%s/liveswap/%s", set(xdg_runtime_dir) ? xdg_runtime_dir : "/run", instance) < 0)
                return NULL;
        return path;
}

char *names_head_path(const char *state_directory, const char *xdg_state_home, const char *home, int is_root,
                      const char *instance) {
        char *path;
        int r;
        if (set(state_directory))
                r = asprintf(&path, "%s/HEAD", state_directory);
        else if (is_root && !set(xdg_state_home))
                r = asprintf(&path, "/var/lib/liveswap/%s/HEAD", instance);
        else if (set(xdg_state_home))
                r = asprintf(&path, "%s/liveswap/%s/HEAD", xdg_state_home, instance);
        else
                r = asprintf(&path, "%s/.local/state/liveswap/%s/HEAD", set(home) ? home : "/tmp", instance);
        return r < 0 ? NULL : path;
}
