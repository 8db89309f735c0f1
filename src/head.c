/* head.c: the HEAD and PREVIOUS state files, each one absolute path and a newline. A
 * write goes to a temp file in the same directory, is synced, renamed over the old file,
 * and the directory is synced: a crash or a full disk leaves the old content or the new,
 * never a torn file. Never logs; callers say what failed. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "head.h"
#include "macro.h"

/* Room for the longest valid path plus blanks around it; a longer file is not ours. */
#define HEAD_FILE_MAX (2 * (size_t) PATH_MAX)

static bool is_blank(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* What head_read() gives back must be what head_write() wrote, so both check paths
 * the same way. */
static bool valid_target(const char *s, size_t len) {
        return len > 0 && len < PATH_MAX && s[0] == '/' && !is_blank(s[len - 1]) && !memchr(s, '\n', len) &&
               !memchr(s, '\r', len) && !memchr(s, 0, len);
}

int head_read(const char *path, char **ret) {
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

        const char *start = buf, *end = buf + len;
        while (start < end && is_blank(*start))
                start++;
        while (end > start && is_blank(end[-1]))
                end--;
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

static int mkdir_parents(const char *dir) {
        _cleanup_free_ char *p = strdup(dir);
        if (!p)
                return -ENOMEM;
        /* Each prefix in turn; EEXIST is fine, and a component that is not a directory
         * shows up as ENOTDIR on the next one or on the final open. */
        for (char *slash = p + 1; (slash = strchr(slash, '/')); slash++) {
                *slash = 0;
                if (mkdir(p, 0755) < 0 && errno != EEXIST)
                        return -errno;
                *slash = '/';
        }
        if (mkdir(p, 0755) < 0 && errno != EEXIST)
                return -errno;
        return 0;
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

/* Writes the temp file completely; the caller renames it or removes it. */
static int write_temp(int fd, const char *target) {
        _cleanup_free_ char *content = NULL;
        if (asprintf(&content, "%s\n", target) < 0)
                return -ENOMEM;
        /* mkostemp() creates 0600; HEAD is meant to be read by deploy tools. */
        if (fchmod(fd, 0644) < 0)
                return -errno;
        int r = write_all(fd, content, strlen(content));
        if (r < 0)
                return r;
        return fsync(fd) < 0 ? -errno : 0;
}

/* Creates a temp file beside PATH holding TARGET, synced to disk. Returns 0 with its name
 * and PATH's directory; on failure nothing is left behind. */
static int prepare_temp(const char *path, const char *target, char **ret_temp, char **ret_dir) {
        if (!path || !*path || !target || !valid_target(target, strlen(target)))
                return -EINVAL;

        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        if (!*base)
                return -EISDIR; /* "dir/": no file name to replace */

        _cleanup_free_ char *dir = directory_of(path), *temp = NULL;
        if (!dir)
                return -ENOMEM;
        int r = mkdir_parents(dir);
        if (r < 0)
                return r;
        if (asprintf(&temp, "%.*s.%s.XXXXXX", (int) (base - path), path, base) < 0)
                return -ENOMEM;
        int fd = mkostemp(temp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        r = write_temp(fd, target);
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

int head_write(const char *path, const char *target) {
        _cleanup_free_ char *temp = NULL, *dir = NULL;
        int r = prepare_temp(path, target, &temp, &dir);
        if (r < 0)
                return r;
        if (rename(temp, path) < 0) {
                r = -errno;
                (void) unlink(temp);
                return r;
        }
        /* The new content is in place; this makes the rename itself durable. */
        return fsync_directory(dir);
}

int head_probe(const char *path, const char *target) {
        _cleanup_free_ char *temp = NULL, *dir = NULL;
        int r = prepare_temp(path, target, &temp, &dir);
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

int head_commit(const char *head_path, const char *previous, const char *current) {
        if (previous && *previous) {
                _cleanup_free_ char *p = head_previous_path(head_path);
                if (!p)
                        return -ENOMEM;
                int r = head_write(p, previous);
                if (r < 0)
                        return r;
        }
        return head_write(head_path, current);
}
