/* test-hook.c: hook_last_line(), which picks what the supervisor takes from a
 * pre-upgrade hook's output: the last line of stdout (a replacement target) or of stderr
 * (the refusal reason). Trailing blank lines and line ends (LF or CRLF) do not count;
 * the buffer is the tail the hook runner kept, not a C string, and is never read past
 * its length. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "hook.h"
#include "macro.h"

/* The bytes in a heap block of exactly their size, with no NUL after them, so that
 * AddressSanitizer catches a read past LEN. */
static char *exact_copy(const char *s, size_t len) {
        char *p = malloc(len ? len : 1);
        cr_assert(p);
        memcpy(p, s, len);
        return p;
}

static void last_line(const char *output, const char *expected) {
        size_t len = strlen(output);
        _cleanup_free_ char *buf = exact_copy(output, len);
        _cleanup_free_ char *line = hook_last_line(buf, len);
        if (!expected) {
                cr_assert_null(line, "no line expected in '%s', got '%s'", output, line);
                return;
        }
        cr_assert_not_null(line, "expected '%s'", expected);
        cr_assert_str_eq(line, expected);
}

Test(hook, single_line) {
        last_line("/srv/app/releases/42\n", "/srv/app/releases/42");
        last_line("/srv/app/releases/42", "/srv/app/releases/42"); /* no newline at the end */
}

Test(hook, last_of_several_lines) {
        last_line("building\nchecking\n/srv/app/b\n", "/srv/app/b");
        last_line("building\nchecking\n/srv/app/b", "/srv/app/b");
        last_line("first\nsecond", "second");
}

Test(hook, crlf) {
        last_line("one\r\ntwo\r\n", "two");
        last_line("one\r\ntwo", "two");
        last_line("refused: tests failed\r\n\r\n", "refused: tests failed");
}

Test(hook, trailing_blank_lines_do_not_count) {
        last_line("/srv/app/b\n\n\n", "/srv/app/b");
        last_line("/srv/app/b\n  \n\t\n \r\n", "/srv/app/b");
        last_line("reason   \n", "reason");
}

Test(hook, inner_blanks_are_kept) {
        last_line("x\n  indented reason\n", "  indented reason");
        last_line("x\nmigration 12 of 30 failed\n", "migration 12 of 30 failed");
}

Test(hook, empty_output) {
        last_line("", NULL);
        _cleanup_free_ char *line = hook_last_line(NULL, 0);
        cr_assert_null(line);
}

Test(hook, only_blank_lines) {
        last_line("\n", NULL);
        last_line("\n\n\n", NULL);
        last_line(" \t\r\n\r\n  \n", NULL);
}

/* A line longer than the tail the runner keeps (HOOK_TAIL, 4096 bytes) arrives without
 * its beginning: what is kept of it is the line, up to exactly LEN bytes. */
Test(hook, line_longer_than_the_buffer) {
        enum { TAIL = 4096 };
        char *buf = malloc(TAIL);
        cr_assert(buf);
        memset(buf, 'a', TAIL - 1);
        buf[TAIL - 1] = 'z';
        _cleanup_free_ char *line = hook_last_line(buf, TAIL);
        cr_assert_not_null(line);
        cr_assert_eq(strlen(line), TAIL);
        cr_assert_eq(line[TAIL - 1], 'z');

        /* The same with its newline: the newline goes, the rest stays. */
        buf[TAIL - 1] = '\n';
        _cleanup_free_ char *line2 = hook_last_line(buf, TAIL);
        cr_assert_eq(strlen(line2), TAIL - 1);
        free(buf);
}

/* LEN bounds the search, whatever follows in memory. */
Test(hook, only_len_bytes_are_read) {
        const char *s = "old\nnew\nbeyond\n";
        _cleanup_free_ char *line = hook_last_line(s, strlen("old\nnew\n"));
        cr_assert_str_eq(line, "new");
        _cleanup_free_ char *part = hook_last_line(s, strlen("old\nne"));
        cr_assert_str_eq(part, "ne");
}
