/* test-json.c: --json output must always parse, whatever bytes a target path or a
 * worker's state holds: escaping of quotes, backslashes, control bytes, invalid UTF-8. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "json.h"
#include "macro.h"

static char *render(const char *s) {
        char *out = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&out, &size);
        cr_assert_not_null(f);
        json_write_string(f, s);
        cr_assert_eq(fclose(f), 0);
        return out;
}

static void check(const char *in, const char *expected) {
        _cleanup_free_ char *out = render(in);
        cr_assert_str_eq(out, expected, "for input \"%s\"", in ? in : "(null)");
}

Test(json, plain_and_null) {
        check("", "\"\"");
        check("/srv/app/releases/42", "\"/srv/app/releases/42\"");
        check(NULL, "null");
}

Test(json, escapes) {
        check("a\"b", "\"a\\\"b\"");
        check("a\\b", "\"a\\\\b\"");
        check("line\nnext\ttab", "\"line\\nnext\\ttab\"");
        check("\x01\x1f\x7f", "\"\\u0001\\u001f\\u007f\"");
}

Test(json, utf8_kept_and_invalid_replaced) {
        check("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\x80", "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\x80\"");
        check("\xff", "\"\\ufffd\"");
        check("a\xc3", "\"a\\ufffd\""); /* truncated sequence */
        check("\xc0\xaf", "\"\\ufffd\\ufffd\""); /* overlong '/' */
        check("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""); /* surrogate */
        check("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* past U+10FFFF */
}
