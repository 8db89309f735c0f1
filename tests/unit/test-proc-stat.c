/* test-proc-stat.c: the one parser of /proc/PID/stat (leftovers, worker figures): real
 * lines, command names that hold spaces and ')', signed fields, and lines to refuse. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "proc-stat.h"

/* Fields 7 to 24 and on, as a kernel writes them (tpgid -1, priority 20, nice 0). */
#define TAIL " 0 -1 4194304 100 0 0 0 7 3 5 2 20 0 1 0 1131537 3133440 408 18446744073709551615 0 0"

static int parse(const char *text, struct proc_stat *ret) {
        return proc_stat_parse(text, strlen(text), ret);
}

Test(proc_stat, every_field_used) {
        struct proc_stat s;
        cr_assert_eq(parse("24945 (cat) R 24942 24940 21279" TAIL "\n", &s), 0);
        cr_assert_eq(s.pid, 24945);
        cr_assert_eq(s.state, 'R');
        cr_assert_eq(s.pgrp, 24940);
        cr_assert_eq(s.session, 21279);
        cr_assert_eq(s.utime_ticks, 7);
        cr_assert_eq(s.stime_ticks, 3);
        cr_assert_eq(s.cutime_ticks, 5);
        cr_assert_eq(s.cstime_ticks, 2);
        cr_assert_eq(s.start_time, 1131537);
        cr_assert_eq(s.rss_pages, 408);
}

Test(proc_stat, command_with_spaces_and_parentheses) {
        /* A program can name itself anything: the fields start after the last ')'. */
        struct proc_stat s;
        cr_assert_eq(parse("7 (a) b (c) 9 9) Z 1 42 99" TAIL, &s), 0);
        cr_assert_eq(s.state, 'Z');
        cr_assert_eq(s.pgrp, 42);
        cr_assert_eq(s.session, 99);
        cr_assert_eq(s.rss_pages, 408);
}

Test(proc_stat, negative_priority_and_nice) {
        /* A real-time process: priority -2, nice -20. */
        struct proc_stat s;
        cr_assert_eq(parse("12 (rt) S 1 12 12 0 -1 0 0 0 0 0 0 0 0 0 -2 -20 1 0 55 0 7\n", &s), 0);
        cr_assert_eq(s.start_time, 55);
        cr_assert_eq(s.rss_pages, 7);
}

Test(proc_stat, refuses_what_is_not_a_user_process_stat_line) {
        struct proc_stat s;
        const char *bad[] = {
                "",
                "12 (x)",
                "x (a) S 1 2 3" TAIL,
                "12 a) S 1 2 3" TAIL,
                "12 (a S 1 2 3" TAIL,
                "0 (a) S 1 2 3" TAIL, /* pid 0 */
                "12 (x) S 1 0 1" TAIL, /* process group 0 */
                "2 (kthreadd) S 0 0 0" TAIL, /* a kernel thread */
                "12 (x) S 1 -3 1" TAIL, /* negative group */
                "12 (x) S 1 5 1 0 -1 4194304 100 0 0 0 x 3", /* not a number */
                "12 (x) S 1 5 1 0 -1 4194304 100 0 0 0 -7 3 5 2 20 0 1 0 5 0 1", /* negative time */
                "12 (x) S 1 5 1 0 -1 4194304 100 0 0 0 7 3 5", /* cut short */
                "12 (a) S 1 2 3 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99999999999999999999 0 1", /* overflow */
                "12 (a) S 1 2 3 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 1x", /* junk after a field */
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                cr_expect_eq(parse(bad[i], &s), -EINVAL, "accepted: %s", bad[i]);
}

Test(proc_stat, stops_at_len) {
        /* The text need not end in NUL: what is past LEN is not read. */
        const char line[] = "24945 (cat) R 24942 24940 21279" TAIL "\n";
        struct proc_stat s;
        cr_assert_eq(proc_stat_parse(line, strlen(line) - strlen(" 0 0\n") - strlen(" 18446744073709551615"), &s), 0);
        cr_assert_eq(s.rss_pages, 408);
        cr_assert_eq(proc_stat_parse(line, 20, &s), -EINVAL);
}

Test(proc_stat, this_process) {
        char buf[1024];
        FILE *f = fopen("/proc/self/stat", "re");
        cr_assert_not_null(f);
        size_t n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        struct proc_stat s;
        cr_assert_eq(proc_stat_parse(buf, n, &s), 0);
        cr_assert_eq(s.pid, getpid());
        cr_assert_eq(s.pgrp, getpgrp());
        cr_assert_eq(s.state, 'R');
}
