/* journal-stream.c: journald's stream protocol (see journal-stream.h). The connecting
 * half runs in a forked worker before exec, so it must not allocate, use stdio or wait. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "journal-stream.h"
#include "macro.h"

int journal_stream_parse(const char *value, dev_t *ret_dev, ino_t *ret_ino) {
        if (!value || !*value)
                return -EINVAL;
        char *end;
        errno = 0;
        unsigned long long dev = strtoull(value, &end, 10);
        if (errno || end == value || *end != ':' || value[0] == '-')
                return -EINVAL;
        const char *i = end + 1;
        unsigned long long ino = strtoull(i, &end, 10);
        if (errno || end == i || *end || i[0] == '-' || (dev_t) dev != dev || (ino_t) ino != ino)
                return -EINVAL;
        *ret_dev = (dev_t) dev;
        *ret_ino = (ino_t) ino;
        return 0;
}

bool journal_stream_is(int fd) {
        dev_t dev;
        ino_t ino;
        struct stat st;
        if (journal_stream_parse(getenv("JOURNAL_STREAM"), &dev, &ino) < 0 || fstat(fd, &st) < 0)
                return false;
        return st.st_dev == dev && st.st_ino == ino;
}

/* Appends S to BUF at *P; false when it does not fit (with room for the final NUL). */
static bool append(char *buf, size_t size, size_t *p, const char *s) {
        size_t n = strlen(s);
        if (*p + n >= size)
                return false;
        memcpy(buf + *p, s, n);
        *p += n;
        buf[*p] = 0;
        return true;
}

int journal_stream_header(char *buf, size_t size, const char *identifier, int priority, bool level_prefix) {
        if (strchr(identifier, '\n') || priority < 0 || priority > 7)
                return -EINVAL;
        char prio[] = { (char) ('0' + priority), '\n', 0 };
        size_t p = 0;
        if (!append(buf, size, &p, identifier) || !append(buf, size, &p, "\n\n") || !append(buf, size, &p, prio) ||
            !append(buf, size, &p, level_prefix ? "1\n" : "0\n") || !append(buf, size, &p, "0\n0\n0\n"))
                return -ENOBUFS;
        return (int) p;
}

int journal_stream_path(char *buf, size_t size) {
        const char *ns = getenv("LOG_NAMESPACE");
        size_t p = 0;
        if (!append(buf, size, &p, "/run/systemd/journal") ||
            (ns && *ns && (!append(buf, size, &p, ".") || !append(buf, size, &p, ns))) ||
            !append(buf, size, &p, "/stdout"))
                return -ENOBUFS;
        return 0;
}

int journal_stream_connect(const char *path, const char *identifier, int priority, bool level_prefix) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char header[512];
        int n = journal_stream_header(header, sizeof(header), identifier, priority, level_prefix);
        if (n < 0)
                return n;
        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, strlen(path) + 1);

        /* Non-blocking: a unix stream connect then either completes or fails at once
         * (EAGAIN with a full backlog), and the header fits any fresh socket's buffer. The
         * supervisor waits for this child's exec, so nothing here may wait on journald. */
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        /* journald never writes to us; as sd_journal_stream_fd() does. */
        (void) shutdown(fd, SHUT_RD);
        ssize_t w = send(fd, header, (size_t) n, MSG_NOSIGNAL);
        if (w < 0)
                return -errno;
        if (w != n)
                return -EIO;
        /* The worker's writes block like on any stdout: journald applies back-pressure. */
        int flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
                return -errno;
        return TAKE_FD(fd);
}

/* Decimal digits of V at BUF + *P, without stdio. */
static bool append_number(char *buf, size_t size, size_t *p, uint64_t v) {
        char tmp[24];
        int n = 0;
        do
                tmp[n++] = (char) ('0' + v % 10);
        while ((v /= 10) > 0);
        char s[24];
        for (int i = 0; i < n; i++)
                s[i] = tmp[n - 1 - i];
        s[n] = 0;
        return append(buf, size, p, s);
}

int journal_stream_format(int fd, char *buf, size_t size) {
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        size_t p = 0;
        if (!append_number(buf, size, &p, (uint64_t) st.st_dev) || !append(buf, size, &p, ":") ||
            !append_number(buf, size, &p, (uint64_t) st.st_ino))
                return -ENOBUFS;
        return 0;
}
