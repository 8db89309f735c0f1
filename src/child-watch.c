/* child-watch.c: the pidfd watch of child-watch.h. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child-watch.h"
#include "clock.h"

#define RETRY_FIRST_USEC (10 * USEC_PER_MSEC)
#define RETRY_MAX_USEC USEC_PER_SEC

struct child_watch {
        pid_t pid;
        sd_event_source *io; /* owns the pidfd */
        sd_event_source *child; /* instead, where there is no pidfd_open() (valgrind) */
        sd_event_source *retry; /* made on the first early wake-up only */
        uint64_t retry_usec;
        child_watch_handler_t handler;
        void *userdata;
};

static int on_retry(sd_event_source *source, uint64_t usec, void *userdata) {
        struct child_watch *w = userdata;
        /* Level-triggered: if the pidfd is still readable, on_pidfd() runs at once. */
        (void) sd_event_source_set_enabled(w->io, SD_EVENT_ON);
        return 0;
}

static int on_pidfd(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        struct child_watch *w = userdata;
        pid_t pid = w->pid;
        siginfo_t si = {};
        if (waitid(P_PID, (id_t) pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
                /* ECHILD: reaped by someone else, which this process never does; count
                 * it as killed rather than watch a pidfd that stays readable. */
                si = (siginfo_t){ .si_signo = SIGCHLD, .si_code = CLD_KILLED };
                si.si_pid = pid;
                si.si_status = SIGKILL;
        } else if (si.si_pid == 0) {
                /* Woken before it can be reaped (a tracer holds it): look again later. */
                w->retry_usec = w->retry_usec == 0                ? RETRY_FIRST_USEC
                                : w->retry_usec >= RETRY_MAX_USEC ? RETRY_MAX_USEC
                                                                  : w->retry_usec * 2;
                (void) sd_event_source_set_enabled(w->io, SD_EVENT_OFF);
                int r = w->retry ? sd_event_source_set_time_relative(w->retry, w->retry_usec)
                                 : sd_event_add_time_relative(sd_event_source_get_event(source), &w->retry,
                                                              CLOCK_MONOTONIC, w->retry_usec, TIMER_ACCURACY_USEC,
                                                              on_retry, w);
                if (r >= 0)
                        r = sd_event_source_set_enabled(w->retry, SD_EVENT_ONESHOT);
                if (r < 0) /* without a timer, a busy wait is still better than a lost exit */
                        (void) sd_event_source_set_enabled(w->io, SD_EVENT_ON);
                return 0;
        }
        (void) sd_event_source_set_enabled(w->io, SD_EVENT_OFF);
        w->handler(w, &si, w->userdata); /* may free W */
        (void) waitid(P_PID, (id_t) pid, &si, WEXITED | WNOHANG);
        return 0;
}

/* Without a pidfd sd-event waits on SIGCHLD, looking at every child it watches each
 * time, so an exit that comes later is seen then: the lost exit is a pidfd's only. */
static int on_child(sd_event_source *source, const siginfo_t *si, void *userdata) {
        struct child_watch *w = userdata;
        w->handler(w, si, w->userdata); /* may free W; sd-event reaps the child after this */
        return 0;
}

int child_watch_add(sd_event *event, struct child_watch **ret, pid_t pid, child_watch_handler_t handler,
                    void *userdata) {
        struct child_watch *w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        *w = (struct child_watch){ .pid = pid, .handler = handler, .userdata = userdata };
        int fd = (int) syscall(SYS_pidfd_open, pid, 0);
        if (fd < 0 && (errno == ENOSYS || errno == EPERM || errno == EACCES)) {
                /* An old kernel, a seccomp filter, or valgrind, which does not know it. */
                int r = sd_event_add_child(event, &w->child, pid, WEXITED, on_child, w);
                if (r < 0) {
                        free(w);
                        return r;
                }
                *ret = w;
                return 0;
        }
        if (fd < 0) {
                free(w);
                return -errno;
        }
        int r = sd_event_add_io(event, &w->io, fd, EPOLLIN, on_pidfd, w);
        if (r < 0) {
                close(fd);
                free(w);
                return r;
        }
        (void) sd_event_source_set_io_fd_own(w->io, true);
        *ret = w;
        return 0;
}

struct child_watch *child_watch_free(struct child_watch *w) {
        if (!w)
                return NULL;
        sd_event_source_disable_unref(w->io);
        sd_event_source_disable_unref(w->retry);
        sd_event_source_disable_unref(w->child);
        free(w);
        return NULL;
}
