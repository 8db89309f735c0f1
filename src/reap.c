/* reap.c: see reap.h. Polls the child's pidfd between attempts: it turns readable when
 * the process exits, but a traced zombie is readable and still not reapable, so each wake
 * is followed by a try, and the wait for the next one is bounded too (no busy loop). */
#include <errno.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "macro.h"
#include "proc-describe.h"
#include "reap.h"

#define RETRY_USEC (10 * 1000ULL)

/* True when PID is reaped now, or cannot be ours to reap (ECHILD). */
static bool try_reap(pid_t pid) {
        pid_t r;
        do
                r = waitpid(pid, NULL, WNOHANG | __WALL);
        while (r < 0 && errno == EINTR);
        return r == pid || (r < 0 && errno == ECHILD);
}

bool reap_killed(pid_t pid, uint64_t timeout_usec, const char *what) {
        if (try_reap(pid))
                return true;
        _cleanup_close_ int pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        uint64_t deadline = now_usec() + timeout_usec;
        bool exited = false; /* the pidfd said so: what is left is waiting for a tracer */
        for (;;) {
                uint64_t now = now_usec();
                if (now >= deadline)
                        break;
                uint64_t wait = deadline - now;
                if (exited || pidfd < 0)
                        wait = wait < RETRY_USEC ? wait : RETRY_USEC;
                if (pidfd >= 0 && !exited) {
                        struct pollfd p = { .fd = pidfd, .events = POLLIN };
                        int n = poll(&p, 1, (int) ((wait + 999) / 1000));
                        if (n < 0 && errno != EINTR) {
                                close(pidfd);
                                pidfd = -1;
                        }
                        exited = n > 0;
                } else {
                        struct timespec ts = { .tv_sec = (time_t) (wait / USEC_PER_SEC),
                                               .tv_nsec = (long) (wait % USEC_PER_SEC) * 1000 };
                        (void) nanosleep(&ts, NULL);
                }
                if (try_reap(pid))
                        return true;
        }
        char doing[256];
        proc_describe(pid, doing, sizeof(doing));
        log_warning("%s (pid %d) is still there %llu ms after SIGKILL (%s): not waiting for it", what, (int) pid,
                    (unsigned long long) (timeout_usec / USEC_PER_MSEC), doing);
        return false;
}
