/* names.c: instance names, their D-Bus spelling, and the paths derived from them. Pure
 * string work: no syscalls, no environment lookups (callers pass what they read). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "names.h"

#define INSTANCE_MAX 200
/* The D-Bus specification caps a bus name at 255 characters. */
#define BUS_NAME_MAX 255

static bool is_alnum(unsigned char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_digit(unsigned char c) {
        return c >= '0' && c <= '9';
}

/* Whether escaping keeps this byte as it is at position i. */
static bool kept(unsigned char c, size_t i) {
        return is_alnum(c) && !(i == 0 && is_digit(c));
}

/* Why not sd_bus_path_encode()/sd_bus_path_decode(), libsystemd's label escaping: their
 * encoding is the same as ours for every non-empty name (lower-case _xx for each byte
 * outside [A-Za-z0-9], a leading digit escaped too; tests/unit/test-names-sdbus.c checks
 * it byte for byte), but
 *   - the empty string encodes as "_", which would decode back to "": ours refuses it;
 *   - decoding accepts every other spelling too: "_61" gives "a", "_2D" (upper case) gives
 *     "-", a raw leading digit is kept. One instance would then answer to several bus
 *     names, and `liveswapctl list` could show one supervisor twice under two names;
 *     names_unescape_instance() takes only the one spelling escaping produces;
 *   - they work on object paths (a prefix to add and strip for a bus-name element), and
 *     would tie this pure file, linked into the fuzzers and unit tests, to libsystemd.
 * So the escaper stays ours; the test keeps the two in step. */
char *names_escape_instance(const char *instance) {
        static const char hex[] = "0123456789abcdef";
        if (!instance || !*instance) {
                errno = EINVAL;
                return NULL;
        }
        size_t n = strlen(instance);
        char *out = malloc(n * 3 + 1);
        if (!out)
                return NULL;
        char *p = out;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) instance[i];
                if (kept(c, i))
                        *p++ = (char) c;
                else {
                        *p++ = '_';
                        *p++ = hex[c >> 4];
                        *p++ = hex[c & 15];
                }
        }
        *p = 0;
        return out;
}

static int unhex(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1; /* escaping writes lower case only */
}

/* Accepts exactly what names_escape_instance() produces, so that each instance has one
 * bus name and each bus name one instance: "_61" for "a", or a raw leading digit, would
 * be a second spelling. */
char *names_unescape_instance(const char *escaped) {
        if (!escaped || !*escaped) {
                errno = EINVAL;
                return NULL;
        }
        _cleanup_free_ char *out = malloc(strlen(escaped) + 1);
        if (!out)
                return NULL;
        size_t n = 0;
        for (const char *s = escaped; *s; n++) {
                unsigned char c;
                if (*s == '_') {
                        int hi = unhex(s[1]), lo = hi < 0 ? -1 : unhex(s[2]);
                        if (lo < 0)
                                goto invalid;
                        c = (unsigned char) (hi << 4 | lo);
                        if (c == 0 || kept(c, n))
                                goto invalid;
                        s += 3;
                } else {
                        c = (unsigned char) *s;
                        if (!kept(c, n))
                                goto invalid;
                        s++;
                }
                out[n] = (char) c;
        }
        out[n] = 0;
        return TAKE_PTR(out);
invalid:
        errno = EINVAL;
        return NULL;
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
        size_t n = strlen(instance), escaped = strlen(LIVESWAP_BUS_PREFIX);
        /* "." and ".." would make the runtime and state directories point elsewhere. */
        if (n == 0 || n > INSTANCE_MAX || strcmp(instance, ".") == 0 || strcmp(instance, "..") == 0)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) instance[i];
                if (c == '/' || c < 0x20 || c == 0x7f)
                        return -EINVAL;
                escaped += kept(c, i) ? 1 : 3;
        }
        return escaped <= BUS_NAME_MAX ? 0 : -EINVAL;
}

char *names_instance_from_target(const char *target) {
        if (!target)
                return NULL;
        size_t end = strlen(target);
        while (end > 0 && target[end - 1] == '/')
                end--;
        size_t start = end;
        while (start > 0 && target[start - 1] != '/')
                start--;
        char *name = strndup(target + start, end - start);
        if (name && names_validate_instance(name) < 0) {
                free(name);
                errno = EINVAL;
                return NULL;
        }
        return name;
}

/* Environment values that name directories count only when absolute: the XDG base
 * directory specification says to ignore relative ones. */
static bool usable(const char *dir) {
        return dir && dir[0] == '/';
}

/* systemd joins several RuntimeDirectory=/StateDirectory= entries with ':'; ours is the
 * first one. Trailing slashes go, so that joined paths read cleanly. */
static char *first_directory(const char *list) {
        size_t len = strcspn(list, ":");
        while (len > 1 && list[len - 1] == '/')
                len--;
        return strndup(list, len);
}

static size_t trimmed_length(const char *dir) {
        size_t len = strlen(dir);
        while (len > 0 && dir[len - 1] == '/')
                len--;
        return len;
}

char *names_runtime_dir(const char *runtime_directory, const char *xdg_runtime_dir, const char *instance) {
        char *path;
        if (usable(runtime_directory))
                return first_directory(runtime_directory);
        if (names_validate_instance(instance) < 0) {
                errno = EINVAL;
                return NULL;
        }
        if (usable(xdg_runtime_dir)) {
                if (asprintf(&path, "%.*s/liveswap/%s", (int) trimmed_length(xdg_runtime_dir), xdg_runtime_dir,
                             instance) < 0)
                        return NULL;
        } else if (asprintf(&path, "/run/liveswap/%s", instance) < 0)
                return NULL;
        return path;
}

char *names_head_path(const char *state_directory, const char *xdg_state_home, const char *home, int is_root,
                      const char *instance) {
        char *path;
        int r;
        if (usable(state_directory)) {
                _cleanup_free_ char *dir = first_directory(state_directory);
                if (!dir || asprintf(&path, "%s/HEAD", strcmp(dir, "/") == 0 ? "" : dir) < 0)
                        return NULL;
                return path;
        }
        if (names_validate_instance(instance) < 0) {
                errno = EINVAL;
                return NULL;
        }
        /* An explicit XDG_STATE_HOME wins even for root, as XDG_RUNTIME_DIR does for the
         * runtime directory: it is how a test or a sandbox keeps root's state apart. */
        if (usable(xdg_state_home))
                r = asprintf(&path, "%.*s/liveswap/%s/HEAD", (int) trimmed_length(xdg_state_home), xdg_state_home,
                             instance);
        else if (is_root)
                r = asprintf(&path, "/var/lib/liveswap/%s/HEAD", instance);
        else if (usable(home))
                r = asprintf(&path, "%.*s/.local/state/liveswap/%s/HEAD", (int) trimmed_length(home), home, instance);
        else {
                /* No home to put it in; a shared directory such as /tmp would let other
                 * users plant a HEAD. */
                errno = ENOENT;
                return NULL;
        }
        return r < 0 ? NULL : path;
}
