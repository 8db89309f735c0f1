/* test-leftovers.c: the pure half of leftovers.h: record parsing, and the decision which
 * processes are a previous run's leftovers (pid reuse, boot, zombies, the new supervisor
 * itself). /proc/PID/stat parsing: test-proc-stat.c. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "leftovers-match.h"

#define BOOT "0b6f6c4e-2a8e-4c3b-9a1f-5d2e7c9b1a00"
#define OTHER_BOOT "ffffffff-2a8e-4c3b-9a1f-5d2e7c9b1a00"

Test(leftovers_record, round_trip) {
        struct leftover_record r = { .pid = 1234, .start_time = 98765, .generation = 3, .boot_id = BOOT }, back;
        char buf[LEFTOVERS_RECORD_MAX];
        int n = leftovers_format_record(&r, buf, sizeof(buf));
        cr_assert_gt(n, 0);
        cr_assert_str_eq(buf, "98765 3 " BOOT "\n");
        cr_assert_eq(leftovers_parse_record("1234", buf, (size_t) n, &back), 0);
        cr_assert_eq(back.pid, 1234);
        cr_assert_eq(back.start_time, 98765);
        cr_assert_eq(back.generation, 3);
        cr_assert_str_eq(back.boot_id, BOOT);
        cr_assert_eq(leftovers_format_record(&r, buf, 10), -ENOBUFS);
}

Test(leftovers_record, malformed) {
        struct leftover_record r;
        const char *good = "5 1 " BOOT "\n";
        cr_assert_eq(leftovers_parse_record("12", good, strlen(good), &r), 0);
        const char *names[] = { "", "0", "012", "12a", "-12", "99999999999" };
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
                cr_expect_lt(leftovers_parse_record(names[i], good, strlen(good), &r), 0, "name %s", names[i]);
        const char *texts[] = { "",
                                "5 1 " BOOT,
                                "5 " BOOT "\n",
                                "5 1 " BOOT "\nx",
                                "5  1 " BOOT "\n",
                                "5 1 0b6f6c4e-2a8e-4c3b-9a1f-5d2e7c9b1a0\n",
                                "5 1 0B6F6C4E-2A8E-4C3B-9A1F-5D2E7C9B1A00\n",
                                "-5 1 " BOOT "\n" };
        for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
                cr_expect_lt(leftovers_parse_record("12", texts[i], strlen(texts[i]), &r), 0, "text %s", texts[i]);
}

Test(leftovers_slot, round_trip) {
        struct leftover_record r = { .pid = 2147483647,
                                     .start_time = UINT64_MAX,
                                     .generation = UINT64_MAX,
                                     .boot_id = BOOT },
                               back;
        char slot[LEFTOVERS_SLOT_SIZE];
        memset(slot, 'x', sizeof(slot));
        cr_assert_eq(leftovers_format_slot(&r, slot), 0); /* the longest record fits */
        const char *text = "2147483647 18446744073709551615 18446744073709551615 " BOOT "\n";
        cr_assert_eq(memcmp(slot, text, strlen(text)), 0);
        for (size_t i = strlen(text); i < sizeof(slot); i++)
                cr_assert_eq(slot[i], 0, "byte %zu is padding", i);
        cr_assert_eq(leftovers_parse_slot(slot, &back), 0);
        cr_assert_eq(back.pid, r.pid);
        cr_assert_eq(back.start_time, r.start_time);
        cr_assert_eq(back.generation, r.generation);
        cr_assert_str_eq(back.boot_id, BOOT);
}

static int parse_text(const char *text, struct leftover_record *r) {
        char slot[LEFTOVERS_SLOT_SIZE] = {};
        memcpy(slot, text, strlen(text) < sizeof(slot) ? strlen(text) : sizeof(slot));
        return leftovers_parse_slot(slot, r);
}

Test(leftovers_slot, free_and_malformed) {
        struct leftover_record r;
        char slot[LEFTOVERS_SLOT_SIZE] = {};
        cr_assert_eq(leftovers_parse_slot(slot, &r), -ENOENT);
        /* Freed by its first byte only: the rest of the old record stays behind. */
        struct leftover_record old = { .pid = 12, .start_time = 5, .generation = 1, .boot_id = BOOT };
        cr_assert_eq(leftovers_format_slot(&old, slot), 0);
        slot[0] = 0;
        cr_assert_eq(leftovers_parse_slot(slot, &r), -ENOENT);
        memset(slot, 0, sizeof(slot));
        cr_assert_eq(parse_text("12 5 1 " BOOT "\n", &r), 0);
        cr_assert_eq(r.pid, 12);
        const char *texts[] = { "12 5 1 " BOOT, /* cut short: no newline */
                                "12 5 1 " BOOT "\nx", /* garbage after it */
                                "0 5 1 " BOOT "\n",
                                "012 5 1 " BOOT "\n",
                                "12  5 1 " BOOT "\n",
                                "12 5 " BOOT "\n",
                                "x12 5 1 " BOOT "\n",
                                "99999999999 5 1 " BOOT "\n",
                                "12 5 1 0B6F6C4E-2A8E-4C3B-9A1F-5D2E7C9B1A00\n" };
        for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
                cr_expect_eq(parse_text(texts[i], &r), -EINVAL, "slot %s", texts[i]);
        /* A slot without a NUL anywhere (a torn write over a longer record). */
        memset(slot, '1', sizeof(slot));
        cr_assert_eq(leftovers_parse_slot(slot, &r), -EINVAL);
}

/* A snapshot: the old worker 100 (started at tick 500) left 101 and 102 in its session;
 * 102 changed its process group, which keeps its session. 200 is unrelated; 300 is the
 * new supervisor, in session 250. */
static const struct process_info table[] = {
        { .pid = 1, .session = 1, .state = 'S', .start_time = 1 },
        { .pid = 101, .session = 100, .state = 'S', .start_time = 510 },
        { .pid = 102, .session = 100, .state = 'R', .start_time = 520 },
        { .pid = 103, .session = 100, .state = 'Z', .start_time = 530 },
        { .pid = 200, .session = 200, .state = 'S', .start_time = 40 },
        { .pid = 300, .session = 250, .state = 'S', .start_time = 900 },
};
#define N (sizeof(table) / sizeof(table[0]))

static size_t select_for(pid_t pid, uint64_t start, const char *boot, const struct process_info *procs, size_t n,
                         size_t *indices) {
        struct leftover_record r = { .pid = pid, .start_time = start, .generation = 1 };
        strcpy(r.boot_id, boot);
        return leftovers_select(&r, BOOT, procs, n, 300, 250, indices);
}

Test(leftovers_select, a_dead_worker_leaves_its_session_members) {
        size_t idx[N];
        cr_assert_eq(select_for(100, 500, BOOT, table, N, idx), 2);
        cr_assert_eq(table[idx[0]].pid, 101);
        cr_assert_eq(table[idx[1]].pid, 102); /* not the zombie 103 */
}

Test(leftovers_select, a_surviving_worker_goes_with_its_session) {
        struct process_info procs[N + 1];
        memcpy(procs, table, sizeof(table));
        procs[N] = (struct process_info){ .pid = 100, .session = 100, .state = 'S', .start_time = 500 };
        size_t idx[N + 1];
        cr_assert_eq(select_for(100, 500, BOOT, procs, N + 1, idx), 3);
        cr_assert_eq(procs[idx[2]].pid, 100);
}

Test(leftovers_select, a_reused_pid_selects_nothing) {
        /* 200 started at 40, the record says 41: another process now has the pid, and
         * what is in its session is its own. */
        size_t idx[N];
        cr_assert_eq(select_for(200, 41, BOOT, table, N, idx), 0);
        struct process_info procs[N + 1];
        memcpy(procs, table, sizeof(table));
        procs[N] = (struct process_info){ .pid = 100, .session = 100, .state = 'S', .start_time = 501 };
        size_t idx2[N + 1];
        cr_assert_eq(select_for(100, 500, BOOT, procs, N + 1, idx2), 0);
}

Test(leftovers_select, another_boot_selects_nothing) {
        size_t idx[N];
        cr_assert_eq(select_for(100, 500, OTHER_BOOT, table, N, idx), 0);
}

Test(leftovers_select, never_the_new_supervisor_or_its_session) {
        size_t idx[N];
        /* A record naming our own session's (dead) leader, or our own pid reused. */
        cr_assert_eq(select_for(250, 7, BOOT, table, N, idx), 0);
        cr_assert_eq(select_for(300, 900, BOOT, table, N, idx), 0);
}

Test(leftovers_select, nothing_left) {
        size_t idx[N];
        cr_assert_eq(select_for(400, 5, BOOT, table, N, idx), 0);
}
