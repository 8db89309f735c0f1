/* head.c: the HEAD and PREVIOUS state files, each one absolute path and a newline,
 * HEAD.origin, which says from which configuration liveswap wrote HEAD, and GENERATION,
 * the highest generation number used. A write goes to a temp file in the same directory,
 * is synced, renamed over the old file, and the directory is synced: a crash or a full
 * disk leaves the old content or the new, never a torn file. Never logs; callers say
 * what failed. Parsing, formatting and the decision whether a HEAD applies are pure
 * functions. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs-util.h"
#include "head.h"
#include "macro.h"

/* Room for the longest valid path plus blanks around it; a longer file is not ours. */
#define HEAD_FILE_MAX (2 * (size_t) PATH_MAX)

static bool is_blank(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Narrows [*start, *end) to what is left without surrounding blanks. */
static void trim_blanks(const char **start, const char **end) {
        while (*start < *end && is_blank(**start))
                (*start)++;
        while (*end > *start && is_blank((*end)[-1]))
                (*end)--;
}

/* What head_read() gives back must be what head_write() wrote, so both check paths
 * the same way. */
static bool valid_target(const char *s, size_t len) {
        return len > 0 && len < PATH_MAX && s[0] == '/' && !is_blank(s[len - 1]) && !memchr(s, '\n', len) &&
               !memchr(s, '\r', len) && !memchr(s, 0, len);
}

/* Reads a small regular file whole into a new NUL-terminated buffer; longer than
 * HEAD_FILE_MAX = -EINVAL. */
static int read_small_file(const char *path, char **ret, size_t *ret_len) {
        /* O_NONBLOCK: a FIFO planted at the path must not hang the supervisor. */
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (!S_ISREG(st.st_mode))
                return -EINVAL;

        _cleanup_free_ char *buf = malloc(HEAD_FILE_MAX + 1);
        if (!buf)
                return -ENOMEM;
        size_t len = 0;
        for (;;) {
                ssize_t n = read(fd, buf + len, HEAD_FILE_MAX + 1 - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len > HEAD_FILE_MAX)
                        return -EINVAL;
        }
        buf[len] = 0;
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

int head_read(const char *path, char **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t len;
        int r = read_small_file(path, &buf, &len);
        if (r < 0)
                return r;

        const char *start = buf, *end = buf + len;
        trim_blanks(&start, &end);
        if (!valid_target(start, (size_t) (end - start)) || memchr(buf, 0, len))
                return -EINVAL;
        char *target = strndup(start, (size_t) (end - start));
        if (!target)
                return -ENOMEM;
        *ret = target;
        return 0;
}

/* The directory part of path ("." when there is none, "/" for "/HEAD"). */
static char *directory_of(const char *path) {
        const char *slash = strrchr(path, '/');
        if (!slash)
                return strdup(".");
        if (slash == path)
                return strdup("/");
        return strndup(path, (size_t) (slash - path));
}

static int write_all(int fd, const char *data, size_t len) {
        while (len > 0) {
                ssize_t n = write(fd, data, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                data += n;
                len -= (size_t) n;
        }
        return 0;
}

static int fsync_directory(const char *dir) {
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return fsync(fd) < 0 ? -errno : 0;
}

/* Writes the temp file completely (and to disk with DURABLE); the caller renames it or
 * removes it. */
static int write_temp(int fd, const char *content, bool durable) {
        /* mkostemp() creates 0600; HEAD is meant to be read by deploy tools. */
        if (fchmod(fd, 0644) < 0)
                return -errno;
        int r = write_all(fd, content, strlen(content));
        if (r < 0)
                return r;
        return durable && fsync(fd) < 0 ? -errno : 0;
}

/* Creates a temp file beside PATH holding CONTENT, synced to disk with DURABLE. Returns 0
 * with its name and PATH's directory; on failure nothing is left behind. */
static int prepare_temp(const char *path, const char *content, bool durable, char **ret_temp, char **ret_dir) {
        if (!path || !*path)
                return -EINVAL;

        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        if (!*base)
                return -EISDIR; /* "dir/": no file name to replace */

        _cleanup_free_ char *dir = directory_of(path), *temp = NULL;
        if (!dir)
                return -ENOMEM;
        if (asprintf(&temp, "%.*s.%s.XXXXXX", (int) (base - path), path, base) < 0)
                return -ENOMEM;
        size_t template_at = strlen(temp) - 6;
        int fd = mkostemp(temp, O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) {
                /* The directory is made on first use only, not tried at every write:
                 * that was a failing mkdir() per path component, 15 per upgrade. */
                int r = mkdir_parents(dir, 0755);
                if (r < 0)
                        return r;
                memcpy(temp + template_at, "XXXXXX", 6);
                fd = mkostemp(temp, O_CLOEXEC);
        }
        if (fd < 0)
                return -errno;
        int r = write_temp(fd, content, durable);
        /* close() can report a write-back error on some file systems. */
        if (close(fd) < 0 && r >= 0)
                r = -errno;
        if (r < 0) {
                (void) unlink(temp);
                return r;
        }
        *ret_temp = TAKE_PTR(temp);
        *ret_dir = TAKE_PTR(dir);
        return 0;
}

/* "TARGET\n", or NULL (errno set) when TARGET is not what head_read() accepts. */
static char *head_content(const char *target) {
        char *content;
        if (!target || !valid_target(target, strlen(target))) {
                errno = EINVAL;
                return NULL;
        }
        if (asprintf(&content, "%s\n", target) < 0) {
                errno = ENOMEM;
                return NULL;
        }
        return content;
}

/* Replaces PATH by a rename, so that a reader sees the old content or the new one; with
 * DURABLE, synced so that a power loss cannot take the new content back either. */
static int replace_file(const char *path, const char *content, bool durable) {
        _cleanup_free_ char *temp = NULL, *dir = NULL;
        int r = prepare_temp(path, content, durable, &temp, &dir);
        if (r < 0)
                return r;
        if (rename(temp, path) < 0) {
                r = -errno;
                (void) unlink(temp);
                return r;
        }
        /* The new content is in place; this makes the rename itself durable. */
        return durable ? fsync_directory(dir) : 0;
}

int head_write(const char *path, const char *target) {
        _cleanup_free_ char *content = head_content(target);
        if (!content)
                return -errno;
        return replace_file(path, content, true);
}

int head_probe(const char *path, const char *target) {
        _cleanup_free_ char *temp = NULL, *dir = NULL, *content = head_content(target);
        if (!content)
                return -errno;
        /* Whether the file can be written, not synced: fsync would only slow the
         * upgrade that asked (a few ms on a busy disk). */
        int r = prepare_temp(path, content, false, &temp, &dir);
        if (r < 0)
                return r;
        return unlink(temp) < 0 ? -errno : 0;
}

char *head_previous_path(const char *head_path) {
        const char *slash = strrchr(head_path, '/');
        char *p;
        if (asprintf(&p, "%.*sPREVIOUS", slash ? (int) (slash - head_path + 1) : 0, head_path) < 0)
                return NULL;
        return p;
}

/* ---- GENERATION ---- */

char *head_generation_path(const char *head_path) {
        const char *slash = strrchr(head_path, '/');
        char *p;
        if (asprintf(&p, "%.*sGENERATION", slash ? (int) (slash - head_path + 1) : 0, head_path) < 0)
                return NULL;
        return p;
}

static bool valid_generation(uint64_t g) {
        return g >= 1 && g < INT64_MAX;
}

int head_generation_read(const char *path, uint64_t *ret) {
        _cleanup_free_ char *buf = NULL;
        size_t len;
        int r = read_small_file(path, &buf, &len);
        if (r < 0)
                return r;

        const char *p = buf, *end = buf + len;
        trim_blanks(&p, &end);
        /* Digits only: strtoull() alone would take a sign, blanks inside or a NUL. */
        if (p == end || end - p > 19 || memchr(buf, 0, len))
                return -EINVAL;
        uint64_t g = 0;
        for (; p < end; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                g = g * 10 + (uint64_t) (*p - '0'); /* 19 digits cannot overflow 64 bits */
        }
        if (!valid_generation(g))
                return -EINVAL;
        *ret = g;
        return 0;
}

int head_generation_write(const char *path, uint64_t generation) {
        if (!valid_generation(generation))
                return -EINVAL;
        char content[32];
        snprintf(content, sizeof(content), "%llu\n", (unsigned long long) generation);
        /* Not synced: it is written before each upgrade's first spawn, where two fsyncs
         * cost milliseconds on a busy disk, and it only has to outlive the supervisor: a
         * power loss that took the write back took every worker of that generation too
         * (and the records of leftovers.h tell boots apart). */
        return replace_file(path, content, false);
}

int head_commit(const char *head_path, const char *previous, const char *current, const char *instance,
                const char *configured) {
        int r;
        if (previous && *previous) {
                _cleanup_free_ char *p = head_previous_path(head_path);
                if (!p)
                        return -ENOMEM;
                r = head_write(p, previous);
                if (r < 0)
                        return r;
        }
        r = head_write(head_path, current);
        if (r < 0)
                return r;
        /* After HEAD, not before: a crash in between leaves an origin that names other
         * content, which reads as a deploy tool's HEAD, so the new HEAD still wins at the
         * next start. The other order could pair our new origin with another
         * configuration's HEAD and start that. */
        _cleanup_free_ char *origin_path = head_origin_path(head_path), *text = NULL;
        const struct head_origin origin = { .instance = (char *) instance,
                                            .target = (char *) (configured ?: ""),
                                            .head = (char *) current };
        if (!origin_path)
                return -ENOMEM;
        r = head_origin_format(&origin, &text);
        if (r < 0)
                return r;
        return replace_file(origin_path, text, true);
}

/* ---- HEAD.origin ---- */

char *head_origin_path(const char *head_path) {
        char *p;
        if (asprintf(&p, "%s.origin", head_path) < 0)
                return NULL;
        return p;
}

void head_origin_done(struct head_origin *o) {
        free(o->instance);
        free(o->target);
        free(o->head);
        *o = (struct head_origin){};
}

/* Values are one line each: a backslash and a newline (a configured path may hold one)
 * are written as \\ and \n. */
static int append_value(FILE *f, const char *key, const char *value) {
        fprintf(f, "%s=", key);
        for (const char *p = value; *p; p++) {
                if (*p == '\\')
                        fputs("\\\\", f);
                else if (*p == '\n')
                        fputs("\\n", f);
                else
                        fputc(*p, f);
        }
        fputc('\n', f);
        return 0;
}

int head_origin_format(const struct head_origin *o, char **ret) {
        if (!o->instance || !*o->instance || !o->target || !o->head || !*o->head)
                return -EINVAL;
        char *text = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&text, &size);
        if (!f)
                return -ENOMEM;
        fputs("# Written by liveswap with HEAD: the configuration that deployed it (liveswap(8)).\n", f);
        append_value(f, "instance", o->instance);
        append_value(f, "target", o->target);
        append_value(f, "head", o->head);
        if (fclose(f) != 0 || !text) {
                free(text);
                return -ENOMEM;
        }
        *ret = text;
        return 0;
}

/* Undoes append_value()'s escaping of LEN bytes at S; NULL on a stray backslash. */
static char *unescape_value(const char *s, size_t len) {
        _cleanup_free_ char *out = malloc(len + 1);
        if (!out)
                return NULL;
        size_t n = 0;
        for (size_t i = 0; i < len; i++) {
                if (s[i] != '\\') {
                        out[n++] = s[i];
                        continue;
                }
                if (++i == len || (s[i] != '\\' && s[i] != 'n'))
                        return NULL;
                out[n++] = s[i] == 'n' ? '\n' : '\\';
        }
        out[n] = 0;
        return TAKE_PTR(out);
}

int head_origin_parse(const char *text, struct head_origin *ret) {
        struct head_origin o = {};
        for (const char *line = text; *line;) {
                size_t len = strcspn(line, "\n");
                const char *eq = memchr(line, '=', len), *next = line + len + (line[len] == '\n');
                if (len == 0 || line[0] == '#') {
                        line = next;
                        continue;
                }
                if (!eq)
                        goto invalid;
                char **slot = NULL;
                size_t klen = (size_t) (eq - line);
                if (klen == 8 && strncmp(line, "instance", 8) == 0)
                        slot = &o.instance;
                else if (klen == 6 && strncmp(line, "target", 6) == 0)
                        slot = &o.target;
                else if (klen == 4 && strncmp(line, "head", 4) == 0)
                        slot = &o.head;
                if (slot) { /* other keys: from a newer liveswap, skipped */
                        if (*slot)
                                goto invalid; /* twice: which one would be meant? */
                        *slot = unescape_value(eq + 1, len - klen - 1);
                        if (!*slot)
                                goto invalid;
                }
                line = next;
        }
        if (!o.instance || !*o.instance || !o.target || !o.head || !*o.head)
                goto invalid;
        *ret = o;
        return 0;
invalid:
        head_origin_done(&o);
        return -EINVAL;
}

int head_origin_read(const char *path, struct head_origin *ret) {
        _cleanup_free_ char *buf = NULL;
        size_t len;
        int r = read_small_file(path, &buf, &len);
        if (r < 0)
                return r;
        if (memchr(buf, 0, len))
                return -EINVAL;
        return head_origin_parse(buf, ret);
}

char *head_absolute_path(const char *cwd, const char *path) {
        if (!path || !*path || (path[0] != '/' && (!cwd || cwd[0] != '/'))) {
                errno = EINVAL;
                return NULL;
        }
        _cleanup_free_ char *joined = NULL;
        if (asprintf(&joined, "%s/%s", path[0] == '/' ? "" : cwd, path) < 0)
                return NULL;
        /* Component by component into out, which only shrinks: "." and empty components
         * go, ".." takes the last one back (never above "/"). */
        char *out = malloc(strlen(joined) + 2);
        if (!out)
                return NULL;
        size_t n = 0;
        for (char *c = joined; *c;) {
                size_t len = strcspn(c, "/");
                if ((len == 1 && c[0] == '.') || len == 0) {
                } else if (len == 2 && c[0] == '.' && c[1] == '.') {
                        while (n > 0 && out[n - 1] != '/')
                                n--;
                        if (n > 0)
                                n--; /* the slash before it */
                } else {
                        out[n++] = '/';
                        memcpy(out + n, c, len);
                        n += len;
                }
                c += len + (c[len] == '/');
        }
        if (n == 0)
                out[n++] = '/';
        out[n] = 0;
        return out;
}

char *head_configured_target(const char *target) {
        if (!target || !*target)
                return strdup("");
        _cleanup_free_ char *cwd = target[0] == '/' ? NULL : getcwd(NULL, 0);
        if (target[0] != '/' && !cwd)
                return NULL;
        return head_absolute_path(cwd, target);
}

enum head_verdict head_judge(const struct head_origin *origin, const char *head, const char *instance,
                             const char *configured) {
        if (!origin || strcmp(origin->head, head) != 0)
                return HEAD_FROM_DEPLOY_TOOL;
        if (strcmp(origin->instance, instance) != 0)
                return HEAD_FROM_ELSEWHERE;
        /* Without a configured target, now or then, there is nothing to tell apart. */
        if (configured && *configured && *origin->target && strcmp(origin->target, configured) != 0)
                return HEAD_FROM_ELSEWHERE;
        return HEAD_FROM_HERE;
}
