/* test-handover.c: the hand-over document (handover-format.h): a round trip keeps every
 * field, and what a reader must refuse (another version, truncation, garbage, repeats)
 * is refused with a message and nothing allocated. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handover-format.h"

static char *argv_v[] = { "bin/server", "--flag with space", "a\\b\nc", NULL };
static struct handover_socket sockets[] = {
        { .fd = 3, .name = "http", .path = NULL, .dev = 0, .ino = 0 },
        { .fd = 4, .name = "unix", .path = "/run/x y.sock", .dev = 2049, .ino = 77 },
};
static struct handover_worker workers[] = {
        { .pid = 100,
          .control_fd = 12,
          .unpreloadable = true,
          .cgroup_path = "/sys/fs/cgroup/a/generation-3/worker-9" },
        { .pid = 101, .control_fd = -1 },
};

static struct handover_state sample(void) {
        return (struct handover_state){
                .writer_version = "0.1.0+test",
                .engine_text = "engine 1\nline two\nend\n",
                .engine_size = 22,
                .config_text = "config\n",
                .config_size = 7,
                .instance = "web",
                .config_path = NULL,
                .runtime_dir = "/run/liveswap/web",
                .notify_path = "/run/liveswap/web/notify",
                .head_path = "/var/lib/liveswap/web/HEAD",
                .head_seen = "",
                .adopt_library = "/usr/lib/liveswap/libliveswap-adopt.so",
                .adopt_library_searched = true,
                .notify_fd = 9,
                .bus_fd = 10,
                .lock_fd = -1,
                .exit_status = 1,
                .target = "/srv/app/releases/42",
                .directory = "/srv/app/releases/42",
                .argv = argv_v,
                .is_static = true,
                .sockets = sockets,
                .n_sockets = 2,
                .workers = workers,
                .n_workers = 2,
        };
}

static char *format(unsigned version, size_t *size) {
        struct handover_state st = sample();
        char *doc = NULL;
        cr_assert_eq(handover_format(&st, version, &doc, size), 0);
        return doc;
}

Test(handover, round_trip) {
        size_t size;
        char *doc = format(HANDOVER_VERSION, &size), err[256] = "";
        struct handover_state st;
        cr_assert_eq(handover_parse(doc, size, &st, err, sizeof(err)), 0, "%s", err);
        cr_expect_str_eq(st.writer_version, "0.1.0+test");
        cr_expect_eq(st.engine_size, 22);
        cr_expect_str_eq(st.engine_text, "engine 1\nline two\nend\n");
        cr_expect_str_eq(st.config_text, "config\n");
        cr_expect_str_eq(st.instance, "web");
        cr_expect_null(st.config_path);
        cr_expect_str_eq(st.head_seen, "");
        cr_expect(st.adopt_library_searched && st.is_static);
        cr_expect_eq(st.notify_fd, 9);
        cr_expect_eq(st.bus_fd, 10);
        cr_expect_eq(st.lock_fd, -1);
        cr_expect_eq(st.exit_status, 1);
        cr_expect_str_eq(st.argv[1], "--flag with space");
        cr_expect_str_eq(st.argv[2], "a\\b\nc");
        cr_expect_null(st.argv[3]);
        cr_assert_eq(st.n_sockets, 2);
        cr_expect_str_eq(st.sockets[1].path, "/run/x y.sock");
        cr_expect_eq(st.sockets[1].ino, 77);
        cr_assert_eq(st.n_workers, 2);
        cr_expect_eq(st.workers[0].pid, 100);
        cr_expect_eq(st.workers[0].control_fd, 12);
        cr_expect(st.workers[0].unpreloadable);
        cr_expect_str_eq(st.workers[0].cgroup_path, "/sys/fs/cgroup/a/generation-3/worker-9");
        cr_expect_null(st.workers[1].cgroup_v1_path);
        cr_expect_eq(st.workers[1].control_fd, -1);
        handover_state_done(&st);
        free(doc);
}

static void expect_refused(const char *doc, size_t size, const char *what) {
        struct handover_state st;
        char err[256] = "";
        cr_expect_eq(handover_parse(doc, size, &st, err, sizeof(err)), -EINVAL, "accepted: %s", what);
        cr_expect(strstr(err, what), "error '%s' does not say '%s'", err, what);
        cr_expect_null(st.instance);
}

Test(handover, newer_version_refused) {
        size_t size;
        char *doc = format(HANDOVER_VERSION + 1, &size);
        expect_refused(doc, size, "this program reads versions");
        free(doc);
}

Test(handover, truncation_refused_everywhere) {
        size_t size;
        char *doc = format(HANDOVER_VERSION, &size);
        for (size_t n = 0; n < size; n++) {
                struct handover_state st;
                char err[256] = "";
                cr_assert_lt(handover_parse(doc, n, &st, err, sizeof(err)), 0, "accepted %zu of %zu bytes", n, size);
                cr_assert(err[0]);
        }
        free(doc);
}

Test(handover, garbage_refused) {
        expect_refused("GET / HTTP/1.1\r\n\r\n", 18, "not a liveswap hand-over");
        const char *bad_fd =
                "liveswap-handover 1 =x\nsection engine 0\n\nsection config 0\n\nsection supervisor 12\nnotify-fd 1\n\nend\n";
        expect_refused(bad_fd, strlen(bad_fd), "bad notify-fd");
        const char *twice = "liveswap-handover 1 =x\nsection engine 0\n\nsection engine 0\n\nend\n";
        expect_refused(twice, strlen(twice), "two engine sections");
        const char *trailing = "liveswap-handover 1 =x\nsection engine 0\n\nend\nmore";
        expect_refused(trailing, strlen(trailing), "after the end");
        const char *huge = "liveswap-handover 1 =x\nsection engine 99999999999\n\nend\n";
        expect_refused(huge, strlen(huge), "truncated");
        /* A raw control byte or DEL in a string: the writer escapes those, and a reader that
         * took them would write back a longer document than it read. */
        const char *raw = "liveswap-handover 1 =x\x01y\nsection engine 0\n\nend\n";
        expect_refused(raw, strlen(raw), "malformed header");
        const char *del = "liveswap-handover 1 =x\x7f\nsection engine 0\n\nend\n";
        expect_refused(del, strlen(del), "malformed header");
}

Test(handover, unknown_sections_and_keys_skipped) {
        size_t size;
        char *doc = format(HANDOVER_VERSION, &size), err[256] = "";
        /* A later writer of the same version adds a section and a key: still read. */
        char *extended = NULL;
        const char *end = strstr(doc, "section supervisor");
        cr_assert(asprintf(&extended, "%.*ssection future 5\nhello\n%s", (int) (end - doc), doc, end) > 0);
        struct handover_state st;
        cr_expect_eq(handover_parse(extended, strlen(extended), &st, err, sizeof(err)), 0, "%s", err);
        handover_state_done(&st);
        free(extended);
        free(doc);
}
