/* head.c: the HEAD and PREVIOUS state files. A write is atomic (temp file, fsync,
 * rename, fsync of the directory), so a crash or a full disk leaves either the old or the
 * new content, never a torn file. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "head.h"
#include "macro.h"

#define HEAD_MAX (PATH_MAX + 16)

int head_read(const char *path, char **ret) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        char buf[HEAD_MAX + 1];
        size_t len = 0;
        for (;;) {
                ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len >= sizeof(buf) - 1)
                        return -EINVAL; /* longer than any path */
        }
        buf[len] = 0;
        if (memchr(buf, 0, len))
                return -EINVAL;
        /* Trim surrounding blanks and newlines; what is left must be one absolute path. */
        char *start = buf, *end = buf + len;
        while (start < end && (*start == ' ' || *start == '\t' || *start == '\n' || *start == '\r'))
                start++;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
                end--;
        if (start == end || memchr(start, '\n', end - start) || *start != '/' || end - start >= PATH_MAX)
                return -EINVAL;
        char *s = strndup(start, end - start);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int mkdir_parents_of(const char *path) {
        _cleanup_free_ char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        char *last = strrchr(p, '/');
        if (!last || last == p)
                return 0;
        *last = 0;
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

static int fsync_directory_of(const char *path) {
        _cleanup_free_ char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        char *last = strrchr(p, '/');
        const char *dir = ".";
        if (last == p)
                dir = "/";
        else if (last) {
                *last = 0;
                dir = p;
        }
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return fsync(fd) < 0 ? -errno : 0;
}

int head_write(const char *path, const char *target) {
        int r = mkdir_parents_of(path);
        if (r < 0)
                return r;
        _cleanup_free_ char *tmp = NULL;
        const char *slash = strrchr(path, '/');
        if (asprintf(&tmp, "%.*s.%s.XXXXXX", slash ? (int) (slash - path + 1) : 0, path, slash ? slash + 1 : path) < 0)
                return -ENOMEM;
        _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        size_t len = strlen(target);
        if (fchmod(fd, 0644) < 0 || write(fd, target, len) != (ssize_t) len || write(fd, "\n", 1) != 1 ||
            fsync(fd) < 0) {
                r = errno ? -errno : -EIO;
                (void) unlink(tmp);
                return r;
        }
        if (rename(tmp, path) < 0) {
                r = -errno;
                (void) unlink(tmp);
                return r;
        }
        return fsync_directory_of(path);
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
