/* reap.c: see reap.h. Tries, then sleeps, doubling from 100 µs to 10 ms: a killed process
 * is usually gone within the first pauses, and one that a tracer holds costs the loop at
 * most a hundred wake-ups a second until the bound. No pidfd: it turns readable at the
 * exit, which for a traced zombie is not when it can be reaped, so it could not replace
 * the pauses anyway. */
#include <errno.h>
#include <sys/wait.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "proc-describe.h"
#include "reap.h"

#define FIRST_PAUSE_USEC 100ULL
#define LONGEST_PAUSE_USEC (10 * 1000ULL)

/* True when PID is reaped now, or cannot be ours to reap (ECHILD). */
static bool try_reap(pid_t pid) {
        pid_t r;
        do
                r = waitpid(pid, NULL, WNOHANG | __WALL);
        while (r < 0 && errno == EINTR);
        return r == pid || (r < 0 && errno == ECHILD);
}

bool reap_killed(pid_t pid, uint64_t timeout_usec, const char *what) {
        uint64_t deadline = now_usec() + timeout_usec, pause = FIRST_PAUSE_USEC;
        while (!try_reap(pid)) {
                uint64_t now = now_usec();
                if (now >= deadline) {
                        char doing[256];
                        proc_describe(pid, doing, sizeof(doing));
                        log_warning("%s (pid %d) is still there %llu ms after SIGKILL (%s): not waiting for it", what,
                                    (int) pid, (unsigned long long) (timeout_usec / USEC_PER_MSEC), doing);
                        return false;
                }
                uint64_t wait = deadline - now < pause ? deadline - now : pause;
                struct timespec ts = { .tv_sec = (time_t) (wait / USEC_PER_SEC),
                                       .tv_nsec = (long) (wait % USEC_PER_SEC) * 1000 };
                (void) nanosleep(&ts, NULL);
                pause = pause * 2 < LONGEST_PAUSE_USEC ? pause * 2 : LONGEST_PAUSE_USEC;
        }
        return true;
}
