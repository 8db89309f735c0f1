/* fuzz-handover.c: libFuzzer target for the reexec hand-over's readers, engine_restore()
 * and config_restore() (a text starting "liveswap-config" goes to the latter): they read
 * bytes that a new program must not trust. Whatever restores must
 *   - serialise again, and that text must restore to the same text (nothing read is
 *     lost or changed on the way through);
 *   - for an engine, survive being driven on: its timers, READY=1 and the exit of every
 *     worker, a stop (the checks in engine-state.c must leave no state that makes the
 *     engine crash, divide by zero or allocate without bound).
 * Refusals must leak nothing (LeakSanitizer). */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "config-state.h"
#include "engine-state.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void drain_actions(struct engine *e, uint64_t now, pid_t *next_pid) {
        struct engine_action a;
        for (unsigned i = 0; engine_next_action(e, &a) && i < 100000; i++)
                if (a.type == ACTION_SPAWN)
                        engine_worker_spawned(e, a.worker_id, (*next_pid)++, now);
}

static void drive(struct engine *e) {
        pid_t next_pid = 1 << 30;
        uint64_t now = 0;
        struct engine_worker w;
        for (size_t i = 0; engine_get_worker_at(e, i, &w); i++)
                if (w.started_usec > now)
                        now = w.started_usec;
        for (int round = 0; round < 4; round++) {
                uint64_t d = engine_next_deadline(e);
                if (d != USEC_INFINITY && d > now)
                        now = d;
                engine_timer(e, now);
                drain_actions(e, now, &next_pid);
                for (size_t i = 0; engine_get_worker_at(e, i, &w) && i < 64; i++) {
                        engine_worker_ready(e, w.pid, now);
                        engine_worker_watchdog(e, w.pid, now);
                        engine_worker_memory(e, w.pid, UINT64_MAX / 2, now);
                        drain_actions(e, now, &next_pid);
                }
                if (round == 2)
                        engine_stop(e, now);
                if (round >= 1)
                        while (engine_get_worker_at(e, 0, &w) && w.pid > 0) {
                                engine_worker_exited(e, w.pid, true, SIGKILL, now);
                                drain_actions(e, now, &next_pid);
                        }
                drain_actions(e, now, &next_pid);
                char status[1024];
                engine_format_status(e, now, status, sizeof(status));
        }
}

static void engine_case(const char *text, size_t size) {
        struct engine *e = NULL, *again = NULL;
        char error[256];
        int r = engine_restore(text, size, &e, error, sizeof(error));
        if (r < 0) {
                CHECK(r == -EINVAL || r == -EPROTONOSUPPORT || r == -ENOMEM);
                CHECK(!e);
                CHECK(strncmp(error, "line ", 5) == 0);
                return;
        }
        _cleanup_free_ char *first = NULL, *second = NULL;
        CHECK(engine_serialize(e, &first) == 0);
        r = engine_restore(first, strlen(first), &again, error, sizeof(error));
        if (r < 0)
                fprintf(stderr, "%s\n%s", error, first);
        CHECK(r == 0);
        CHECK(engine_serialize(again, &second) == 0);
        CHECK(strcmp(first, second) == 0);
        engine_free(again);
        drive(e);
        engine_free(e);
}

static void config_case(const char *text, size_t size) {
        struct config c, again;
        char error[256];
        int r = config_restore(text, size, &c, error, sizeof(error));
        if (r < 0) {
                CHECK(r == -EINVAL || r == -EPROTONOSUPPORT || r == -ENOMEM);
                CHECK(strncmp(error, "line ", 5) == 0);
                return;
        }
        _cleanup_free_ char *first = NULL, *second = NULL;
        CHECK(config_serialize(&c, &first) == 0);
        r = config_restore(first, strlen(first), &again, error, sizeof(error));
        if (r < 0)
                fprintf(stderr, "%s\n%s", error, first);
        CHECK(r == 0);
        CHECK(config_equal(&c, &again));
        CHECK(config_serialize(&again, &second) == 0);
        CHECK(strcmp(first, second) == 0);
        config_done(&again);
        config_done(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *text = (const char *) data;
        if (size >= 15 && memcmp(text, "liveswap-config", 15) == 0)
                config_case(text, size);
        else
                engine_case(text, size);
        return 0;
}
