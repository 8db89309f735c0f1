/* handover-format.c: writes and parses the hand-over document (handover-format.h). Pure:
 * memory only. The parser takes untrusted bytes: every length, count and number is
 * checked, a failure frees what was built and says where it stopped. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handover-format.h"
#include "macro.h"

#define HEADER "liveswap-handover"
#define ARGV_MAX 4096
#define FIELDS_MAX 8
#define STRING_MAX 65536 /* any one path, name or argument */

/* ---- writing ---- */

/* A string field: "-" for NULL, else "=" and the bytes, with backslash, blanks, control
 * bytes and DEL as \xNN, so that fields split on spaces and lines on newlines. */
static void put_string(FILE *f, const char *s) {
        if (!s) {
                fputs(" -", f);
                return;
        }
        fputs(" =", f);
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                if (*p <= ' ' || *p == 0x7f || *p == '\\')
                        fprintf(f, "\\x%02x", *p);
                else
                        fputc(*p, f);
}

static void put_key_string(FILE *f, const char *key, const char *s) {
        fputs(key, f);
        put_string(f, s);
        fputc('\n', f);
}

static void put_section(FILE *f, const char *name, const char *text, size_t size) {
        fprintf(f, "section %s %zu\n", name, size);
        fwrite(text, 1, size, f);
        fputc('\n', f);
}

static char *format_supervisor(const struct handover_state *st, size_t *ret_size) {
        char *text = NULL;
        FILE *f = open_memstream(&text, ret_size);
        if (!f)
                return NULL;
        put_key_string(f, "instance", st->instance);
        put_key_string(f, "config-path", st->config_path);
        put_key_string(f, "runtime-dir", st->runtime_dir);
        put_key_string(f, "notify-path", st->notify_path);
        put_key_string(f, "head-path", st->head_path);
        put_key_string(f, "head-seen", st->head_seen);
        fputs("adopt-library", f);
        put_string(f, st->adopt_library);
        fprintf(f, " %d\n", st->adopt_library_searched);
        fprintf(f, "notify-fd %d\nbus-fd %d\nlock-fd %d\nexit-status %d\n", st->notify_fd, st->bus_fd, st->lock_fd,
                st->exit_status);
        put_key_string(f, "target", st->target);
        put_key_string(f, "directory", st->directory);
        fprintf(f, "static %d\n", st->is_static);
        for (char **a = st->argv; a && *a; a++)
                put_key_string(f, "argv", *a);
        for (size_t i = 0; i < st->n_sockets; i++) {
                const struct handover_socket *k = &st->sockets[i];
                fprintf(f, "socket %d %" PRIu64 " %" PRIu64, k->fd, k->dev, k->ino);
                put_string(f, k->name);
                put_string(f, k->path);
                fputc('\n', f);
        }
        for (size_t i = 0; i < st->n_workers; i++) {
                const struct handover_worker *w = &st->workers[i];
                fprintf(f, "worker %d %d %d", (int) w->pid, w->control_fd, w->unpreloadable);
                put_string(f, w->cgroup_path);
                put_string(f, w->cgroup_v1_path);
                fputc('\n', f);
        }
        if (fclose(f) != 0) {
                free(text);
                return NULL;
        }
        return text;
}

int handover_format(const struct handover_state *st, unsigned version, char **ret, size_t *ret_size) {
        size_t supervisor_size = 0, size = 0;
        _cleanup_free_ char *supervisor = format_supervisor(st, &supervisor_size);
        char *doc = NULL;
        if (!supervisor)
                return -ENOMEM;
        FILE *f = open_memstream(&doc, &size);
        if (!f)
                return -ENOMEM;
        fprintf(f, HEADER " %u", version);
        put_string(f, st->writer_version);
        fputc('\n', f);
        put_section(f, "engine", st->engine_text ?: "", st->engine_text ? st->engine_size : 0);
        put_section(f, "config", st->config_text ?: "", st->config_text ? st->config_size : 0);
        put_section(f, "supervisor", supervisor, supervisor_size);
        fputs("end\n", f);
        if (fclose(f) != 0) {
                free(doc);
                return -ENOMEM;
        }
        *ret = doc;
        *ret_size = size;
        return 0;
}

/* ---- parsing ---- */

struct parser {
        char *err;
        size_t errlen;
        unsigned line;
};

static int fail(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct parser *p, const char *fmt, ...) {
        char what[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        if (p->line > 0)
                snprintf(p->err, p->errlen, "supervisor section, line %u: %s", p->line, what);
        else
                snprintf(p->err, p->errlen, "%s", what);
        return -EINVAL;
}

static int hex_digit(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1;
}

/* A field written by put_string(): 0 with *RET (NULL for "-"), -EINVAL, -ENOMEM. */
static int parse_string(const char *field, char **ret) {
        if (strcmp(field, "-") == 0) {
                *ret = NULL;
                return 0;
        }
        if (field[0] != '=' || strlen(field) > STRING_MAX * 4)
                return -EINVAL;
        char *s = malloc(strlen(field)), *o = s;
        if (!s)
                return -ENOMEM;
        for (const char *p = field + 1; *p; p++) {
                if (*p != '\\') {
                        /* Only what put_string() writes raw: a reader that took more would
                         * write back a longer document than it read (a header past its
                         * limit, found by fuzz-handover). */
                        if ((unsigned char) *p <= ' ' || *p == 0x7f) {
                                free(s);
                                return -EINVAL;
                        }
                        *o++ = *p;
                        continue;
                }
                int hi = p[1] == 'x' ? hex_digit(p[2]) : -1, lo = hi >= 0 ? hex_digit(p[3]) : -1;
                if (lo < 0 || (hi == 0 && lo == 0)) {
                        free(s);
                        return -EINVAL;
                }
                *o++ = (char) (hi * 16 + lo);
                p += 3;
        }
        *o = 0;
        if (o - s > STRING_MAX) {
                free(s);
                return -EINVAL;
        }
        *ret = s;
        return 0;
}

static int parse_int(const char *field, long long min, long long max, long long *ret) {
        char *end;
        errno = 0;
        long long v = strtoll(field, &end, 10);
        if (errno || end == field || *end || v < min || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

static int parse_u64(const char *field, uint64_t *ret) {
        char *end;
        errno = 0;
        if (field[0] < '0' || field[0] > '9')
                return -EINVAL;
        unsigned long long v = strtoull(field, &end, 10);
        if (errno || *end)
                return -EINVAL;
        *ret = v;
        return 0;
}

static int parse_fd(const char *field, bool may_be_none, int *ret) {
        long long v;
        if (parse_int(field, may_be_none ? -1 : 3, 1 << 20, &v) < 0)
                return -EINVAL;
        *ret = (int) v;
        return 0;
}

static int parse_bool(const char *field, bool *ret) {
        if (strcmp(field, "0") != 0 && strcmp(field, "1") != 0)
                return -EINVAL;
        *ret = field[0] == '1';
        return 0;
}

/* Sets a string once: a repeated key is an error, not a silent overwrite. */
static int set_string(struct parser *p, const char *key, const char *field, char **slot, bool *seen) {
        if (*seen)
                return fail(p, "%s given twice", key);
        *seen = true;
        int r = parse_string(field, slot);
        if (r == -ENOMEM)
                return r;
        return r < 0 ? fail(p, "bad %s", key) : 0;
}

static int grow(void **array, size_t n, size_t size, size_t max) {
        if (n >= max)
                return -E2BIG;
        void *q = reallocarray(*array, n + 1, size);
        if (!q)
                return -ENOMEM;
        *array = q;
        return 0;
}

enum {
        SEEN_INSTANCE,
        SEEN_CONFIG_PATH,
        SEEN_RUNTIME_DIR,
        SEEN_NOTIFY_PATH,
        SEEN_HEAD_PATH,
        SEEN_HEAD_SEEN,
        SEEN_ADOPT,
        SEEN_NOTIFY_FD,
        SEEN_BUS_FD,
        SEEN_LOCK_FD,
        SEEN_EXIT,
        SEEN_TARGET,
        SEEN_DIRECTORY,
        SEEN_STATIC,
        SEEN_MAX,
};

static int parse_line(struct parser *p, char **f, size_t n, struct handover_state *st, bool seen[SEEN_MAX],
                      size_t *n_argv) {
        const char *key = f[0];
        long long v;
        int r;
#define WANT(count)                                                   \
        do {                                                          \
                if (n != (count))                                     \
                        return fail(p, "%s: %zu fields", key, n - 1); \
        } while (0)
        if (strcmp(key, "instance") == 0 || strcmp(key, "config-path") == 0 || strcmp(key, "runtime-dir") == 0 ||
            strcmp(key, "notify-path") == 0 || strcmp(key, "head-path") == 0 || strcmp(key, "head-seen") == 0 ||
            strcmp(key, "target") == 0 || strcmp(key, "directory") == 0) {
                static const struct {
                        const char *key;
                        int seen;
                        size_t offset;
                } strings[] = {
                        { "instance", SEEN_INSTANCE, offsetof(struct handover_state, instance) },
                        { "config-path", SEEN_CONFIG_PATH, offsetof(struct handover_state, config_path) },
                        { "runtime-dir", SEEN_RUNTIME_DIR, offsetof(struct handover_state, runtime_dir) },
                        { "notify-path", SEEN_NOTIFY_PATH, offsetof(struct handover_state, notify_path) },
                        { "head-path", SEEN_HEAD_PATH, offsetof(struct handover_state, head_path) },
                        { "head-seen", SEEN_HEAD_SEEN, offsetof(struct handover_state, head_seen) },
                        { "target", SEEN_TARGET, offsetof(struct handover_state, target) },
                        { "directory", SEEN_DIRECTORY, offsetof(struct handover_state, directory) },
                };
                WANT(2);
                for (size_t i = 0; i < ELEMENTSOF(strings); i++)
                        if (strcmp(key, strings[i].key) == 0)
                                return set_string(p, key, f[1], (char **) ((char *) st + strings[i].offset),
                                                  &seen[strings[i].seen]);
        }
        if (strcmp(key, "adopt-library") == 0) {
                WANT(3);
                if ((r = set_string(p, key, f[1], &st->adopt_library, &seen[SEEN_ADOPT])) < 0)
                        return r;
                return parse_bool(f[2], &st->adopt_library_searched) < 0 ? fail(p, "bad %s", key) : 0;
        }
        if (strcmp(key, "notify-fd") == 0 || strcmp(key, "bus-fd") == 0 || strcmp(key, "lock-fd") == 0) {
                bool lock = key[0] == 'l';
                int *slot = lock ? &st->lock_fd : key[0] == 'n' ? &st->notify_fd : &st->bus_fd;
                bool *s = &seen[lock ? SEEN_LOCK_FD : key[0] == 'n' ? SEEN_NOTIFY_FD : SEEN_BUS_FD];
                WANT(2);
                if (*s)
                        return fail(p, "%s given twice", key);
                *s = true;
                return parse_fd(f[1], lock, slot) < 0 ? fail(p, "bad %s", key) : 0;
        }
        if (strcmp(key, "exit-status") == 0) {
                WANT(2);
                if (seen[SEEN_EXIT] || parse_int(f[1], 0, 255, &v) < 0)
                        return fail(p, "bad %s", key);
                seen[SEEN_EXIT] = true;
                st->exit_status = (int) v;
                return 0;
        }
        if (strcmp(key, "static") == 0) {
                WANT(2);
                if (seen[SEEN_STATIC] || parse_bool(f[1], &st->is_static) < 0)
                        return fail(p, "bad %s", key);
                seen[SEEN_STATIC] = true;
                return 0;
        }
        if (strcmp(key, "argv") == 0) {
                WANT(2);
                if ((r = grow((void **) &st->argv, *n_argv + 1, sizeof(char *), ARGV_MAX)) < 0)
                        return r == -ENOMEM ? r : fail(p, "too many arguments");
                st->argv[*n_argv] = st->argv[*n_argv + 1] = NULL;
                if ((r = parse_string(f[1], &st->argv[*n_argv])) < 0 || !st->argv[*n_argv])
                        return r == -ENOMEM ? r : fail(p, "bad argv");
                (*n_argv)++;
                return 0;
        }
        if (strcmp(key, "socket") == 0) {
                struct handover_socket k = {};
                WANT(6);
                if ((r = grow((void **) &st->sockets, st->n_sockets, sizeof(k), HANDOVER_SOCKETS_MAX)) < 0)
                        return r == -ENOMEM ? r : fail(p, "too many sockets");
                if (parse_fd(f[1], false, &k.fd) < 0 || parse_u64(f[2], &k.dev) < 0 || parse_u64(f[3], &k.ino) < 0)
                        return fail(p, "bad socket");
                if ((r = parse_string(f[4], &k.name)) < 0 || !k.name || (r = parse_string(f[5], &k.path)) < 0) {
                        free(k.name);
                        return r == -ENOMEM ? r : fail(p, "bad socket name or path");
                }
                st->sockets[st->n_sockets++] = k;
                return 0;
        }
        if (strcmp(key, "worker") == 0) {
                struct handover_worker w = {};
                WANT(6);
                if ((r = grow((void **) &st->workers, st->n_workers, sizeof(w), HANDOVER_WORKERS_MAX)) < 0)
                        return r == -ENOMEM ? r : fail(p, "too many workers");
                if (parse_int(f[1], 1, INT32_MAX, &v) < 0 || parse_fd(f[2], true, &w.control_fd) < 0 ||
                    parse_bool(f[3], &w.unpreloadable) < 0)
                        return fail(p, "bad worker");
                w.pid = (pid_t) v;
                for (size_t i = 0; i < st->n_workers; i++)
                        if (st->workers[i].pid == w.pid)
                                return fail(p, "worker %d given twice", (int) w.pid);
                if ((r = parse_string(f[4], &w.cgroup_path)) < 0 || (r = parse_string(f[5], &w.cgroup_v1_path)) < 0) {
                        free(w.cgroup_path);
                        return r == -ENOMEM ? r : fail(p, "bad worker cgroup");
                }
                st->workers[st->n_workers++] = w;
                return 0;
        }
#undef WANT
        return 0; /* a key a newer writer added within this version: skipped */
}

static int parse_supervisor(struct parser *p, const char *text, size_t size, struct handover_state *st) {
        bool seen[SEEN_MAX] = {};
        size_t n_argv = 0;
        for (size_t pos = 0; pos < size;) {
                const char *nl = memchr(text + pos, '\n', size - pos);
                size_t len = nl ? (size_t) (nl - (text + pos)) : size - pos;
                _cleanup_free_ char *line = strndup(text + pos, len);
                if (!line)
                        return -ENOMEM;
                pos += len + 1;
                p->line++;
                if (strlen(line) != len)
                        return fail(p, "NUL byte");
                char *f[FIELDS_MAX + 1], *save = NULL;
                size_t n = 0;
                for (char *t = strtok_r(line, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
                        if (n == FIELDS_MAX)
                                return fail(p, "too many fields");
                        f[n++] = t;
                }
                if (n == 0)
                        continue;
                int r = parse_line(p, f, n, st, seen, &n_argv);
                if (r < 0)
                        return r;
        }
        p->line = 0;
        static const char *const required[SEEN_MAX] = { "instance",  "config-path", "runtime-dir",   "notify-path",
                                                        "head-path", "head-seen",   "adopt-library", "notify-fd",
                                                        "bus-fd",    "lock-fd",     "exit-status",   "target",
                                                        "directory", "static" };
        for (size_t i = 0; i < SEEN_MAX; i++)
                if (!seen[i])
                        return fail(p, "the supervisor section has no %s", required[i]);
        if (!st->instance || !st->runtime_dir || !st->notify_path || !st->head_path || !st->target || !st->directory ||
            n_argv == 0)
                return fail(p, "the supervisor section lacks a required value");
        if (st->n_sockets == 0)
                return fail(p, "no listening socket");
        for (size_t i = 0; i < st->n_sockets; i++)
                if (st->sockets[i].fd != 3 + (int) i)
                        return fail(p, "socket %zu is not at fd %zu", i, 3 + i);
        return 0;
}

/* One "section NAME LENGTH\n<bytes>\n" at *POS. */
static int next_section(struct parser *p, const char *doc, size_t size, size_t *pos, char *name, size_t name_size,
                        const char **ret, size_t *ret_size) {
        const char *nl = memchr(doc + *pos, '\n', size - *pos);
        char line[128];
        size_t len = nl ? (size_t) (nl - (doc + *pos)) : 0;
        if (!nl || len >= sizeof(line))
                return fail(p, "truncated after byte %zu", *pos);
        memcpy(line, doc + *pos, len);
        line[len] = 0;
        if (strcmp(line, "end") == 0) {
                *pos += len + 1;
                return 0;
        }
        char section[33];
        unsigned long long length;
        int consumed = 0;
        if (strlen(line) != len || sscanf(line, "section %32[a-z-] %llu%n", section, &length, &consumed) != 2 ||
            (size_t) consumed != len)
                return fail(p, "expected a section at byte %zu", *pos);
        *pos += len + 1;
        if (length > size - *pos || size - *pos - length < 1 || doc[*pos + length] != '\n')
                return fail(p, "section %s is truncated", section);
        snprintf(name, name_size, "%s", section);
        *ret = doc + *pos;
        *ret_size = (size_t) length;
        *pos += (size_t) length + 1;
        return 1;
}

static int copy_text(const char *text, size_t size, char **ret, size_t *ret_size) {
        char *c = malloc(size + 1);
        if (!c)
                return -ENOMEM;
        memcpy(c, text, size);
        c[size] = 0;
        free(*ret);
        *ret = c;
        *ret_size = size;
        return 0;
}

static int parse_document(struct parser *p, const char *doc, size_t size, struct handover_state *st) {
        if (size > HANDOVER_SIZE_MAX)
                return fail(p, "%zu bytes, more than the %u a hand-over may have", size, HANDOVER_SIZE_MAX);
        const char *nl = memchr(doc, '\n', size < 512 ? size : 512);
        if (!nl || (size_t) (nl - doc) < strlen(HEADER) || memcmp(doc, HEADER " ", strlen(HEADER) + 1) != 0)
                return fail(p, "not a liveswap hand-over (no \"" HEADER "\" header)");
        char header[512], version_field[32], writer[480];
        memcpy(header, doc, (size_t) (nl - doc));
        header[nl - doc] = 0;
        long long version;
        if (strlen(header) != (size_t) (nl - doc) || sscanf(header, HEADER " %31s %479s", version_field, writer) != 2 ||
            parse_int(version_field, 0, INT32_MAX, &version) < 0)
                return fail(p, "malformed header \"%.100s\"", header);
        if (version < HANDOVER_VERSION_MIN || version > HANDOVER_VERSION)
                return fail(p, "hand-over format version %lld, this program reads versions %d to %d", version,
                            HANDOVER_VERSION_MIN, HANDOVER_VERSION);
        int r = parse_string(writer, &st->writer_version);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return fail(p, "malformed header \"%.100s\"", header);

        bool have_engine = false, have_config = false, have_supervisor = false;
        size_t pos = (size_t) (nl - doc) + 1;
        for (;;) {
                char name[33];
                const char *text = NULL;
                size_t text_size = 0;
                r = next_section(p, doc, size, &pos, name, sizeof(name), &text, &text_size);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if (strcmp(name, "engine") == 0) {
                        if (have_engine)
                                return fail(p, "two engine sections");
                        have_engine = true;
                        r = copy_text(text, text_size, &st->engine_text, &st->engine_size);
                } else if (strcmp(name, "config") == 0) {
                        if (have_config)
                                return fail(p, "two config sections");
                        have_config = true;
                        r = copy_text(text, text_size, &st->config_text, &st->config_size);
                } else if (strcmp(name, "supervisor") == 0) {
                        if (have_supervisor)
                                return fail(p, "two supervisor sections");
                        have_supervisor = true;
                        r = parse_supervisor(p, text, text_size, st);
                }
                if (r < 0)
                        return r;
        }
        if (pos != size)
                return fail(p, "%zu bytes after the end", size - pos);
        if (!have_engine || !have_config || !have_supervisor)
                return fail(p, "no %s section", !have_engine ? "engine" : !have_config ? "config" : "supervisor");
        return 0;
}

int handover_parse(const char *doc, size_t size, struct handover_state *ret, char *err, size_t errlen) {
        struct parser p = { .err = err, .errlen = errlen };
        *ret = (struct handover_state){ .notify_fd = -1, .bus_fd = -1, .lock_fd = -1 };
        int r = parse_document(&p, doc, size, ret);
        if (r < 0) {
                if (r == -ENOMEM)
                        snprintf(err, errlen, "out of memory");
                handover_state_done(ret);
        }
        return r;
}

void handover_state_done(struct handover_state *st) {
        free(st->writer_version);
        free(st->engine_text);
        free(st->config_text);
        free(st->instance);
        free(st->config_path);
        free(st->runtime_dir);
        free(st->notify_path);
        free(st->head_path);
        free(st->head_seen);
        free(st->adopt_library);
        free(st->target);
        free(st->directory);
        strv_free(st->argv);
        for (size_t i = 0; i < st->n_sockets; i++) {
                free(st->sockets[i].name);
                free(st->sockets[i].path);
        }
        free(st->sockets);
        for (size_t i = 0; i < st->n_workers; i++) {
                free(st->workers[i].cgroup_path);
                free(st->workers[i].cgroup_v1_path);
        }
        free(st->workers);
        *st = (struct handover_state){ .notify_fd = -1, .bus_fd = -1, .lock_fd = -1 };
}
