/* hook.c: runs the pre-upgrade hook with the target as its argument, collects the last
 * line of its stdout (an optional replacement target) and stderr (the refusal reason),
 * and bounds it with a timeout. The hook never blocks the event loop. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child-watch.h"
#include "hook.h"
#include "log.h"
#include "macro.h"
#include "reap.h"
#include "spawn.h"

#define HOOK_TAIL 4096 /* bytes of each stream kept: enough for the last line */

struct output {
        int fd;
        sd_event_source *source;
        char buf[HOOK_TAIL];
        size_t len;
};

struct hook {
        pid_t pid;
        struct child_watch *child;
        sd_event_source *timer;
        struct output out, err;
        uint64_t timeout_usec;
        hook_done_t done;
        void *userdata;
};

char *hook_last_line(const char *buf, size_t len) {
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' || buf[len - 1] == '\t'))
                len--;
        if (len == 0)
                return NULL;
        size_t start = len;
        while (start > 0 && buf[start - 1] != '\n')
                start--;
        return strndup(buf + start, len - start);
}

static void output_close(struct output *o) {
        o->source = sd_event_source_disable_unref(o->source);
        if (o->fd >= 0)
                close(o->fd);
        o->fd = -1;
}

static void output_read(struct output *o) {
        for (int i = 0; i < 64 && o->fd >= 0; i++) {
                char chunk[1024];
                ssize_t n = read(o->fd, chunk, sizeof(chunk));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        if (n == 0 || errno != EAGAIN)
                                output_close(o);
                        return;
                }
                /* Keep only the tail: the last line is all we need (chunk < buf). */
                if (o->len + n > sizeof(o->buf)) {
                        size_t drop = o->len + n - sizeof(o->buf);
                        memmove(o->buf, o->buf + drop, o->len - drop);
                        o->len -= drop;
                }
                memcpy(o->buf + o->len, chunk, n);
                o->len += n;
        }
}

static int on_output(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        output_read(userdata);
        return 0;
}

static void hook_free(struct hook *h) {
        h->child = child_watch_free(h->child);
        h->timer = sd_event_source_disable_unref(h->timer);
        output_close(&h->out);
        output_close(&h->err);
        free(h);
}

static void finish(struct hook *h, bool success, const char *reason) {
        _cleanup_free_ char *line = success ? hook_last_line(h->out.buf, h->out.len) : NULL;
        const char *target =
                line && (line[0] == '/' || strncmp(line, "./", 2) == 0 || strncmp(line, "../", 3) == 0) ? line : NULL;
        h->done(h->userdata, success, reason, target);
        hook_free(h);
}

static void on_hook_exit(struct child_watch *w, const siginfo_t *si, void *userdata) {
        struct hook *h = userdata;
        /* Whatever the hook left running goes with it, as on a timeout: it would outlive
         * the upgrade it was run for. (The hook is reaped after this callback, so its
         * process group cannot have been reused.) */
        (void) kill(-h->pid, SIGKILL);
        output_read(&h->out);
        output_read(&h->err);
        if (si->si_code == CLD_EXITED && si->si_status == 0) {
                finish(h, true, NULL);
                return;
        }
        _cleanup_free_ char *last = hook_last_line(h->err.buf, h->err.len);
        char reason[600];
        if (last)
                snprintf(reason, sizeof(reason), "pre-upgrade hook failed: %s", last);
        else if (si->si_code == CLD_EXITED)
                snprintf(reason, sizeof(reason), "pre-upgrade hook exited with status %d", si->si_status);
        else
                snprintf(reason, sizeof(reason), "pre-upgrade hook was killed by signal %s",
                         sigabbrev_np(si->si_status) ?: "unknown");
        finish(h, false, reason);
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        struct hook *h = userdata;
        char reason[128];
        (void) kill(-h->pid, SIGKILL);
        /* Reap now: the exit callback must not run after this. */
        (void) reap_killed(h->pid, REAP_KILLED_USEC, "The pre-upgrade hook");
        snprintf(reason, sizeof(reason), "pre-upgrade hook timed out after %llu ms",
                 (unsigned long long) (h->timeout_usec / USEC_PER_MSEC));
        finish(h, false, reason);
        return 0;
}

void hook_cancel(struct hook *h) {
        if (!h)
                return;
        (void) kill(-h->pid, SIGKILL);
        (void) reap_killed(h->pid, REAP_KILLED_USEC, "The pre-upgrade hook");
        hook_free(h);
}

int hook_start(sd_event *event, const char *program, const char *target, const char *instance, const char *previous,
               uint64_t timeout_usec, hook_done_t done, void *userdata, struct hook **ret) {
        int out[2] = { -1, -1 }, err[2] = { -1, -1 };
        struct hook *h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        *h = (struct hook){
                .out.fd = -1, .err.fd = -1, .timeout_usec = timeout_usec, .done = done, .userdata = userdata
        };

        char *extra[4] = {};
        _cleanup_strv_free_ char **env = NULL; /* declared before any goto that passes it */
        int r = -ENOMEM;
        if (asprintf(&extra[0], "LIVESWAP_INSTANCE=%s", instance) < 0 ||
            asprintf(&extra[1], "LIVESWAP_TARGET=%s", target) < 0 ||
            asprintf(&extra[2], "LIVESWAP_PREVIOUS=%s", previous ?: "") < 0)
                goto fail;
        env = spawn_build_environment(extra, 0);
        if (!env)
                goto fail;
        if (pipe2(out, O_CLOEXEC | O_NONBLOCK) < 0 || pipe2(err, O_CLOEXEC | O_NONBLOCK) < 0) {
                r = -errno;
                goto fail;
        }

        pid_t parent = getpid();
        h->pid = fork();
        if (h->pid < 0) {
                r = -errno;
                goto fail;
        }
        if (h->pid == 0) {
                int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (spawn_child_reset(parent, false) < 0 || null < 0 || dup2(null, 0) < 0 || dup2(out[1], 1) < 0 ||
                    dup2(err[1], 2) < 0)
                        _exit(127);
                /* Blocking pipes for the hook: O_NONBLOCK is shared with our end otherwise. */
                (void) fcntl(1, F_SETFL, 0);
                (void) fcntl(2, F_SETFL, 0);
                execve(program, (char *[]){ (char *) program, (char *) target, NULL }, env);
                dprintf(2, "cannot run %s: %s\n", program, strerror(errno));
                _exit(127);
        }
        (void) setpgid(h->pid, h->pid);
        close(out[1]);
        close(err[1]);
        out[1] = err[1] = -1;
        h->out.fd = out[0];
        h->err.fd = err[0];
        out[0] = err[0] = -1;

        if ((r = sd_event_add_io(event, &h->out.source, h->out.fd, EPOLLIN, on_output, &h->out)) < 0 ||
            (r = sd_event_add_io(event, &h->err.source, h->err.fd, EPOLLIN, on_output, &h->err)) < 0 ||
            (r = child_watch_add(event, &h->child, h->pid, on_hook_exit, h)) < 0 ||
            (r = sd_event_add_time_relative(event, &h->timer, CLOCK_MONOTONIC, timeout_usec, TIMER_ACCURACY_USEC,
                                            on_timeout, h)) < 0) {
                hook_cancel(h);
                h = NULL;
                goto fail;
        }
        for (size_t i = 0; i < 3; i++)
                free(extra[i]);
        *ret = h;
        return 0;
fail:
        for (size_t i = 0; i < 3; i++)
                free(extra[i]);
        for (int i = 0; i < 2; i++) {
                if (out[i] >= 0)
                        close(out[i]);
                if (err[i] >= 0)
                        close(err[i]);
        }
        free(h);
        return r;
}
