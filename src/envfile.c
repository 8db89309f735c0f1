/* envfile.c: environment_file= (liveswap.conf(5)). envfile_parse() is pure: systemd's
 * EnvironmentFile= grammar, stricter in one way: a line that is not KEY=VALUE is an error
 * naming FILE:LINE (systemd skips it with a log line), since a reload that silently
 * dropped a setting would change a running service without a word. envfile_load_all()
 * reads the files; it never leaves a partial result behind. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "envfile.h"
#include "macro.h"

/* Bigger than any environment a kernel passes to execve() (ARG_MAX is 2 MiB by default):
 * a larger file is a mistake, not settings. */
#define ENVFILE_MAX (4 << 20)

struct buffer {
        char *data;
        size_t len, allocated;
};

static int buffer_add(struct buffer *b, char c) {
        if (b->len + 2 > b->allocated) {
                size_t n = b->allocated ? b->allocated * 2 : 64;
                char *p = realloc(b->data, n);
                if (!p)
                        return -ENOMEM;
                b->data = p;
                b->allocated = n;
        }
        b->data[b->len++] = c;
        b->data[b->len] = 0;
        return 0;
}

static int error(char *err, size_t errlen, const char *path, unsigned line, const char *format, ...)
        __attribute__((format(printf, 5, 6)));
static int error(char *err, size_t errlen, const char *path, unsigned line, const char *format, ...) {
        if (err && errlen > 0) {
                int n = snprintf(err, errlen, "%s:%u: ", path, line);
                va_list ap;
                va_start(ap, format);
                if (n >= 0 && (size_t) n < errlen)
                        vsnprintf(err + n, errlen - (size_t) n, format, ap);
                va_end(ap);
        }
        return -EINVAL;
}

static size_t strv_length(char *const *v) {
        size_t n = 0;
        while (v && v[n])
                n++;
        return n;
}

/* Sets KEY=VALUE in *ENV: in place when KEY is there, else at the end. */
static int env_set(char ***env, const char *key, size_t key_len, const char *value) {
        char *entry;
        if (asprintf(&entry, "%.*s=%s", (int) key_len, key, value ?: "") < 0)
                return -ENOMEM;
        size_t n = strv_length(*env);
        for (size_t i = 0; i < n; i++)
                if (strncmp((*env)[i], entry, key_len + 1) == 0) {
                        free((*env)[i]);
                        (*env)[i] = entry;
                        return 0;
                }
        char **p = reallocarray(*env, n + 2, sizeof(char *));
        if (!p) {
                free(entry);
                return -ENOMEM;
        }
        p[n] = entry;
        p[n + 1] = NULL;
        *env = p;
        return 0;
}

static bool blank(char c) {
        return c == ' ' || c == '\t' || c == '\r';
}

/* The value after '=' up to the end of its (last) line; *I and *LINE advance past it. */
static int parse_value(const char *text, size_t size, size_t *i, unsigned *line, struct buffer *v, const char *path,
                       char *err, size_t errlen) {
        size_t keep = 0; /* a bare value ends at its last byte that is not a trailing blank */
        size_t p = *i;
        int r = 0;
        while (p < size && text[p] != '\n' && r >= 0) {
                char c = text[p];
                if (c == '\'' || c == '"') {
                        unsigned opened = *line;
                        p++;
                        for (;;) {
                                if (p >= size)
                                        return error(err, errlen, path, opened, "unterminated %s quote",
                                                     c == '\'' ? "single" : "double");
                                char d = text[p];
                                if (d == c) {
                                        p++;
                                        break;
                                }
                                if (c == '"' && d == '\\' && p + 1 < size && strchr("\"\\`$\n", text[p + 1])) {
                                        if (text[p + 1] == '\n')
                                                (*line)++; /* a continuation: neither byte stays */
                                        else
                                                r = buffer_add(v, text[p + 1]);
                                        p += 2;
                                } else {
                                        if (d == '\n')
                                                (*line)++;
                                        r = buffer_add(v, d);
                                        p++;
                                }
                                if (r < 0)
                                        return r;
                        }
                        keep = v->len;
                } else if (c == '\\') {
                        if (p + 1 < size && text[p + 1] == '\n')
                                (*line)++;
                        else if (p + 1 < size) {
                                r = buffer_add(v, text[p + 1]);
                                keep = v->len;
                        }
                        p += 2;
                } else {
                        r = buffer_add(v, c);
                        if (!blank(c))
                                keep = v->len;
                        p++;
                }
        }
        if (r < 0)
                return r;
        if (v->data)
                v->data[v->len = keep] = 0;
        *i = p > size ? size : p;
        return 0;
}

int envfile_parse(const char *text, size_t size, const char *path, char ***env, char *err, size_t errlen) {
        if (memchr(text, 0, size))
                return error(err, errlen, path, 1, "contains a NUL byte: not a text file of KEY=VALUE lines");
        _cleanup_strv_free_ char **out = NULL;
        if (*env && !(out = calloc(strv_length(*env) + 1, sizeof(char *))))
                return -ENOMEM;
        for (size_t k = 0; *env && (*env)[k]; k++)
                if (!(out[k] = strdup((*env)[k])))
                        return -ENOMEM;

        unsigned line = 1;
        for (size_t i = 0; i < size;) {
                while (i < size && blank(text[i]))
                        i++;
                if (i >= size)
                        break;
                if (text[i] == '\n') {
                        line++;
                        i++;
                        continue;
                }
                if (text[i] == '#' || text[i] == ';') {
                        while (i < size && text[i] != '\n')
                                i++;
                        continue;
                }
                size_t key = i;
                while (i < size && (isalnum((unsigned char) text[i]) || text[i] == '_'))
                        i++;
                size_t key_len = i - key;
                while (i < size && blank(text[i]))
                        i++;
                if (key_len == 0 || isdigit((unsigned char) text[key]) || i >= size || text[i] != '=')
                        return error(err, errlen, path, line,
                                     "expected KEY=VALUE, the key made of letters, digits and '_', not starting "
                                     "with a digit");
                if (config_variable_reserved(text + key, key_len))
                        return error(err, errlen, path, line,
                                     "%.*s is set by liveswap for each worker and cannot be set here", (int) key_len,
                                     text + key);
                i++;
                while (i < size && blank(text[i]))
                        i++;
                struct buffer value = {};
                int r = parse_value(text, size, &i, &line, &value, path, err, errlen);
                if (r >= 0)
                        r = env_set(&out, text + key, key_len, value.data);
                free(value.data);
                if (r < 0)
                        return r;
        }
        if (!out && !(out = calloc(1, sizeof(char *))))
                return -ENOMEM;
        strv_free(*env);
        *env = TAKE_PTR(out);
        return 0;
}

static int read_file(const char *path, char **ret, size_t *ret_size, char *err, size_t errlen) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode)) {
                snprintf(err, errlen, "%s: not a regular file", path);
                return -EINVAL;
        }
        if (st.st_size > ENVFILE_MAX) {
                snprintf(err, errlen, "%s: larger than %d MiB", path, ENVFILE_MAX >> 20);
                return -EFBIG;
        }
        _cleanup_free_ char *data = malloc((size_t) st.st_size + 1);
        if (!data)
                return -ENOMEM;
        size_t n = 0;
        while (n < (size_t) st.st_size) {
                ssize_t k = read(fd, data + n, (size_t) st.st_size - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break; /* it shrank while we read: what we have is the file */
                n += (size_t) k;
        }
        data[n] = 0;
        *ret = TAKE_PTR(data);
        *ret_size = n;
        return 0;
}

int envfile_load_all(char *const *specs, char ***ret, char *err, size_t errlen) {
        _cleanup_strv_free_ char **env = calloc(1, sizeof(char *));
        if (!env)
                return -ENOMEM;
        for (char *const *s = specs; s && *s; s++) {
                bool optional = (*s)[0] == '-';
                const char *path = *s + optional;
                _cleanup_free_ char *text = NULL;
                size_t size = 0;
                err[0] = 0;
                int r = read_file(path, &text, &size, err, errlen);
                if (r == -ENOENT && optional)
                        continue;
                if (r == -ENOENT) {
                        snprintf(err, errlen,
                                 "%s: no such file (environment_file=; write it as -%s if it may be missing)", path,
                                 path);
                        return r;
                }
                if (r < 0) {
                        if (!err[0])
                                snprintf(err, errlen, "%s: %s", path, strerror(-r));
                        return r;
                }
                r = envfile_parse(text, size, path, &env, err, errlen);
                if (r < 0) {
                        if (r == -ENOMEM)
                                snprintf(err, errlen, "%s: out of memory", path);
                        return r;
                }
        }
        strv_free(*ret);
        *ret = TAKE_PTR(env);
        return 0;
}

char **envfile_overlay(char *const *lower, char *const *upper) {
        _cleanup_strv_free_ char **out = calloc(1, sizeof(char *));
        if (!out)
                return NULL;
        for (int pass = 0; pass < 2; pass++)
                for (char *const *e = pass ? upper : lower; e && *e; e++) {
                        const char *eq = strchr(*e, '=');
                        size_t len = eq ? (size_t) (eq - *e) : strlen(*e);
                        if (env_set(&out, *e, len, eq ? eq + 1 : "") < 0)
                                return NULL;
                }
        return TAKE_PTR(out);
}

int envfile_resolve(struct config *c, char *err, size_t errlen) {
        _cleanup_strv_free_ char **files = NULL;
        int r = envfile_load_all(c->environment_files, &files, err, errlen);
        if (r < 0)
                return r;
        char **merged = envfile_overlay(files, c->environment);
        if (!merged) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        strv_free(c->worker_environment);
        c->worker_environment = merged;
        return 0;
}
