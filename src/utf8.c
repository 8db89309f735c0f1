/* utf8.c: checking and escaping strings for D-Bus (see utf8.h). Paths and a hook's output
 * are arbitrary bytes, and one invalid byte in a property or a reply makes sd-bus refuse
 * the whole message, which would leave an instance that cannot be controlled. Pure. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

size_t utf8_character_length(const char *text, bool for_dbus) {
        const unsigned char *s = (const unsigned char *) text;
        uint32_t c;
        size_t n;
        if (s[0] < 0x80)
                return 1;
        if (s[0] < 0xc2) /* a continuation byte, or C0/C1: an overlong two-byte form */
                return 0;
        if (s[0] < 0xe0) {
                n = 2;
                c = s[0] & 0x1f;
        } else if (s[0] < 0xf0) {
                n = 3;
                c = s[0] & 0x0f;
        } else if (s[0] < 0xf5) {
                n = 4;
                c = s[0] & 0x07;
        } else
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                c = c << 6 | (s[i] & 0x3f);
        }
        static const uint32_t smallest[] = { 0, 0, 0x80, 0x800, 0x10000 };
        if (c < smallest[n] || c > 0x10ffff) /* overlong, or beyond Unicode */
                return 0;
        if (c >= 0xd800 && c <= 0xdfff) /* UTF-16 surrogates */
                return 0;
        if (for_dbus && ((c >= 0xfdd0 && c <= 0xfdef) || (c & 0xfffe) == 0xfffe)) /* noncharacters */
                return 0;
        return n;
}

bool utf8_is_valid(const char *s) {
        const unsigned char *p = (const unsigned char *) s;
        while (*p) {
                size_t n = utf8_character_length((const char *) p, true);
                if (n == 0)
                        return false;
                p += n;
        }
        return true;
}

char *utf8_escape_invalid(const char *s) {
        static const char hex[] = "0123456789abcdef";
        /* At worst every byte becomes four. */
        char *out = malloc(strlen(s) * 4 + 1), *o = out;
        if (!out)
                return NULL;
        const unsigned char *p = (const unsigned char *) s;
        while (*p) {
                size_t n = utf8_character_length((const char *) p, true);
                if (n > 0) {
                        memcpy(o, p, n);
                        o += n;
                        p += n;
                } else {
                        *o++ = '\\';
                        *o++ = 'x';
                        *o++ = hex[*p >> 4];
                        *o++ = hex[*p & 15];
                        p++;
                }
        }
        *o = 0;
        return out;
}

void utf8_sanitize_buffer(char *buf, size_t size) {
        static const char hex[] = "0123456789abcdef";
        if (size == 0)
                return;
        buf[size - 1] = 0;
        if (utf8_is_valid(buf))
                return;
        /* Escaping grows the string: build it beside the original. */
        char *out = malloc(size);
        const unsigned char *p = (const unsigned char *) buf;
        size_t o = 0;
        while (*p) {
                size_t n = utf8_character_length((const char *) p, true);
                if (!out) {
                        if (n == 0) /* out of memory: cut at the first invalid byte */
                                break;
                        p += n;
                        o += n;
                        continue;
                }
                size_t need = n > 0 ? n : 4;
                if (o + need >= size)
                        break;
                if (n > 0) {
                        memcpy(out + o, p, n);
                        p += n;
                } else {
                        out[o] = '\\';
                        out[o + 1] = 'x';
                        out[o + 2] = hex[*p >> 4];
                        out[o + 3] = hex[*p & 15];
                        p++;
                }
                o += need;
        }
        if (out)
                memcpy(buf, out, o);
        buf[o] = 0;
        free(out);
}
