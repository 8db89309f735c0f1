/* test-journal.c: the pure parts of per-worker logs: $JOURNAL_STREAM parsing, the stream
 * header journald reads, and the journalctl command lines of liveswapctl logs. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "journal-stream.h"
#include "macro.h"

Test(journal, parse) {
        dev_t dev;
        ino_t ino;
        cr_assert_eq(journal_stream_parse("9:124137614", &dev, &ino), 0);
        cr_assert_eq(dev, 9);
        cr_assert_eq(ino, 124137614);
        const char *bad[] = { "", ":", "9:", ":5", "9:5x", "-1:5", "9:-5", "9 5", "99999999999999999999:1" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                cr_assert_eq(journal_stream_parse(bad[i], &dev, &ino), -EINVAL, "%s", bad[i]);
        cr_assert_eq(journal_stream_parse(NULL, &dev, &ino), -EINVAL);
}

Test(journal, header) {
        char buf[64];
        cr_assert_eq(journal_stream_header(buf, sizeof(buf), "web", 6, true), 15);
        cr_assert_str_eq(buf, "web\n\n6\n1\n0\n0\n0\n");
        cr_assert_eq(journal_stream_header(buf, sizeof(buf), "a\nb", 6, true), -EINVAL);
        cr_assert_eq(journal_stream_header(buf, sizeof(buf), "web", 8, true), -EINVAL);
        cr_assert_eq(journal_stream_header(buf, 15, "web", 6, true), -ENOBUFS);
}

static void check_argv(char **argv, const char *const *expected) {
        size_t i = 0;
        for (; expected[i]; i++) {
                cr_assert(argv[i], "argument %zu missing, wanted %s", i, expected[i]);
                cr_assert_str_eq(argv[i], expected[i]);
        }
        cr_assert_null(argv[i], "extra argument %s", argv[i]);
        strv_free(argv);
}

Test(journal, logs_argv) {
        char **argv;
        struct client_logs_options o = {};
        cr_assert_eq(client_logs_argv("liveswap@web.service", false, &o, false, NULL, 0, &argv), 0);
        check_argv(argv, (const char *const[]){ "journalctl", "--unit", "liveswap@web.service", NULL });

        o = (struct client_logs_options){ .follow = true, .pid = 42 };
        cr_assert_eq(client_logs_argv("app.service", true, &o, false, NULL, 0, &argv), 0);
        check_argv(argv,
                   (const char *const[]){ "journalctl", "--user-unit", "app.service", "--follow", "_PID=42", NULL });

        pid_t pids[] = { 7, 9 };
        o = (struct client_logs_options){ .has_generation = true, .generation = 3 };
        cr_assert_eq(client_logs_argv("u.service", false, &o, false, pids, 2, &argv), 0);
        check_argv(argv, (const char *const[]){ "journalctl", "--unit", "u.service", "_PID=7", "_PID=9", "+",
                                                "LIVESWAP_GENERATION=3", NULL });
        /* No worker known: the entries about the generation only, no dangling "+". */
        cr_assert_eq(client_logs_argv("u.service", false, &o, false, NULL, 0, &argv), 0);
        check_argv(argv, (const char *const[]){ "journalctl", "--unit", "u.service", "LIVESWAP_GENERATION=3", NULL });

        cr_assert_eq(client_logs_argv("u.service", false, &o, true, NULL, 0, &argv), 0);
        check_argv(argv,
                   (const char *const[]){ "journalctl", "--unit", "u.service", "LIVESWAP_GENERATION=3", "--output=json",
                                          "--output-fields=WORKER_PID", "--no-pager", "--quiet", NULL });
}

Test(journal, logs_parse_pids) {
        _cleanup_free_ pid_t *pids = NULL;
        size_t n = 0;
        cr_assert_eq(client_logs_add_pid(&pids, &n, 5), 0);
        const char *json = "{\"__CURSOR\":\"s=1\",\"WORKER_PID\":\"12\"}\n"
                           "{\"WORKER_PID\" : \"5\"}\n"
                           "{\"WORKER_PID\":\"12\"}\n"
                           "{\"WORKER_PID\":\"-3\"}\n{\"WORKER_PID\":\"x\"}\n{\"WORKER_PID\":[1,2]}\n"
                           "{\"MESSAGE\":\"WORKER_PID=77\",\"WORKER_PID\":\"99\"}\n";
        cr_assert_eq(client_logs_parse_pids(json, &pids, &n), 0);
        cr_assert_eq(n, 3);
        cr_assert_eq(pids[0], 5);
        cr_assert_eq(pids[1], 12);
        cr_assert_eq(pids[2], 99);
}
