/* test-utf8.c: the check and the escaping that keep every string on the bus acceptable to
 * sd-bus: well-formed sequences of each length pass; overlong forms, surrogates, code
 * points beyond U+10FFFF, truncated sequences, stray continuation bytes and the
 * noncharacters sd-bus refuses do not, and come out escaped byte by byte. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "utf8.h"

static void valid(const char *s) {
        cr_assert(utf8_is_valid(s), "should be valid: %s", s);
        _cleanup_free_ char *e = utf8_escape_invalid(s);
        cr_assert_str_eq(e, s, "valid text must come back unchanged");
}

static void invalid(const char *s, const char *escaped) {
        cr_assert(!utf8_is_valid(s), "should be invalid: %s", escaped);
        _cleanup_free_ char *e = utf8_escape_invalid(s);
        cr_assert_str_eq(e, escaped);
        cr_assert(utf8_is_valid(e), "the escaped form must be valid");
}

Test(utf8, valid_text) {
        valid("");
        valid("/srv/app/releases/42");
        valid("caf\xc3\xa9"); /* U+00E9, two bytes */
        valid("\xc2\x80"); /* U+0080, the smallest two-byte */
        valid("\xe0\xa0\x80"); /* U+0800, the smallest three-byte */
        valid("\xe2\x82\xac"); /* U+20AC */
        valid("\xed\x9f\xbf"); /* U+D7FF, just below the surrogates */
        valid("\xee\x80\x80"); /* U+E000, just above them */
        valid("\xef\xbf\xbd"); /* U+FFFD */
        valid("\xf0\x90\x80\x80"); /* U+10000, the smallest four-byte */
        valid("\xf0\x9f\x98\x80"); /* U+1F600 */
        valid("\xf4\x8f\xbf\xbd"); /* U+10FFFD */
        valid("a\\xffb"); /* a literal backslash stays as it is */
}

Test(utf8, invalid_bytes) {
        invalid("/tmp/bad\xff\xfename", "/tmp/bad\\xff\\xfename");
        invalid("\x80", "\\x80"); /* a continuation byte alone */
        invalid("\xbf"
                "a",
                "\\xbfa");
        invalid("\xf5\x80\x80\x80", "\\xf5\\x80\\x80\\x80"); /* beyond U+10FFFF by its lead */
        invalid("\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"); /* U+110000 */
}

Test(utf8, overlong_encodings) {
        invalid("\xc0\xaf", "\\xc0\\xaf"); /* '/' in two bytes */
        invalid("\xc1\xbf", "\\xc1\\xbf");
        invalid("\xe0\x80\xaf", "\\xe0\\x80\\xaf");
        invalid("\xe0\x9f\xbf", "\\xe0\\x9f\\xbf"); /* U+07FF in three bytes */
        invalid("\xf0\x80\x80\xaf", "\\xf0\\x80\\x80\\xaf");
        invalid("\xf0\x8f\xbf\xbf", "\\xf0\\x8f\\xbf\\xbf"); /* U+FFFF in four bytes */
}

Test(utf8, surrogates) {
        invalid("\xed\xa0\x80", "\\xed\\xa0\\x80"); /* U+D800 */
        invalid("\xed\xbf\xbf", "\\xed\\xbf\\xbf"); /* U+DFFF */
        invalid("\xed\xa0\xbd\xed\xb8\x80", "\\xed\\xa0\\xbd\\xed\\xb8\\x80"); /* a CESU-8 pair */
}

Test(utf8, truncated_sequences) {
        invalid("\xc3", "\\xc3");
        invalid("caf\xc3", "caf\\xc3");
        invalid("\xe2\x82", "\\xe2\\x82");
        invalid("\xf0\x9f\x98", "\\xf0\\x9f\\x98");
        invalid("\xe2\x82"
                "x",
                "\\xe2\\x82x"); /* cut short by an ASCII byte */
        invalid("\xc3\xc3\xa9", "\\xc3\xc3\xa9"); /* by the next lead byte: that one is kept */
}

Test(utf8, noncharacters_refused_by_sd_bus) {
        invalid("\xef\xbf\xbf", "\\xef\\xbf\\xbf"); /* U+FFFF */
        invalid("\xef\xbf\xbe", "\\xef\\xbf\\xbe"); /* U+FFFE */
        invalid("\xef\xb7\x90", "\\xef\\xb7\\x90"); /* U+FDD0 */
        invalid("\xf4\x8f\xbf\xbf", "\\xf4\\x8f\\xbf\\xbf"); /* U+10FFFF */
        valid("\xef\xb7\xb0"); /* U+FDF0, just past them */
}

static void sanitized(const char *in, size_t size, const char *expected) {
        char buf[64];
        cr_assert_lt(size, sizeof(buf));
        snprintf(buf, sizeof(buf), "%s", in);
        utf8_sanitize_buffer(buf, size);
        cr_assert_str_eq(buf, expected, "sanitize(\"%s\", %zu)", in, size);
        cr_assert(utf8_is_valid(buf));
}

Test(utf8, sanitize_buffer_in_place) {
        sanitized("plain", 16, "plain");
        sanitized("caf\xc3\xa9", 16, "caf\xc3\xa9");
        sanitized("/tmp/bad\xff\xfename", 32, "/tmp/bad\\xff\\xfename");
        /* Escapes that no longer fit are dropped whole, never cut in half. */
        sanitized("ab\xff\xfe", 8, "ab\\xff");
        sanitized("ab\xff", 6, "ab");
        /* A valid character cut by the buffer is never left half there. */
        sanitized("abc\xe2\x82\xac", 6, "abc");
}
