/* json.c: JSON string escaping for --json output. Bytes that are not valid UTF-8 are
 * written as U+FFFD so that the output always parses. */
#include <stdbool.h>
#include <stdint.h>

#include "json.h"

/* Length of the valid UTF-8 sequence at s, or 0 when it is not one. */
static int utf8_length(const unsigned char *s) {
        int n;
        uint32_t c;
        if (s[0] < 0x80)
                return 1;
        if ((s[0] & 0xe0) == 0xc0) {
                n = 2;
                c = s[0] & 0x1f;
        } else if ((s[0] & 0xf0) == 0xe0) {
                n = 3;
                c = s[0] & 0x0f;
        } else if ((s[0] & 0xf8) == 0xf0) {
                n = 4;
                c = s[0] & 0x07;
        } else
                return 0;
        for (int i = 1; i < n; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                c = c << 6 | (s[i] & 0x3f);
        }
        /* Overlong forms, surrogates and values past U+10FFFF are not valid. */
        static const uint32_t min[] = { 0, 0, 0x80, 0x800, 0x10000 };
        if (c < min[n] || (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
                return 0;
        return n;
}

void json_write_string(FILE *f, const char *s) {
        if (!s) {
                fputs("null", f);
                return;
        }
        fputc('"', f);
        for (const unsigned char *p = (const unsigned char *) s; *p;) {
                int n = utf8_length(p);
                if (n == 0) {
                        fputs("\\ufffd", f);
                        p++;
                        continue;
                }
                if (n > 1) {
                        fwrite(p, 1, (size_t) n, f);
                        p += n;
                        continue;
                }
                switch (*p) {
                case '"':
                        fputs("\\\"", f);
                        break;
                case '\\':
                        fputs("\\\\", f);
                        break;
                case '\n':
                        fputs("\\n", f);
                        break;
                case '\t':
                        fputs("\\t", f);
                        break;
                default:
                        if (*p < 0x20 || *p == 0x7f)
                                fprintf(f, "\\u%04x", *p);
                        else
                                fputc(*p, f);
                }
                p++;
        }
        fputc('"', f);
}
