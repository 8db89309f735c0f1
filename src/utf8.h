/* utf8.h: what D-Bus can carry. Every string on the bus must be valid UTF-8 in sd-bus's
 * sense; a path or a hook's output is any bytes. Pure: no syscalls, no logging. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Whether S is a string sd-bus accepts: well-formed UTF-8 (no overlong encodings, no
 * UTF-16 surrogates, nothing above U+10FFFF, no truncated sequence) without the
 * noncharacters U+FDD0..U+FDEF and U+xxFFFE/U+xxFFFF, which sd-bus refuses as well. */
bool utf8_is_valid(const char *s);

/* The length (1 to 4) of the well-formed UTF-8 character that starts at TEXT, or 0 when
 * the bytes there are not one; with FOR_DBUS also 0 for the noncharacters sd-bus refuses
 * (JSON takes them). Never reads past a NUL: a truncated sequence stops at it. */
size_t utf8_character_length(const char *text, bool for_dbus);

/* A copy of S in which every byte that is not part of such a character is written as
 * "\xNN" (lower-case hex), so that the result is always valid and still shows what the
 * bytes were. Valid input comes back unchanged. NULL only when out of memory. */
char *utf8_escape_invalid(const char *s);

/* Makes the string in BUF (SIZE bytes, NUL-terminated) valid in place: invalid bytes are
 * written as "\xNN" as above, and what no longer fits is cut at a character boundary, so
 * a line cut to a fixed buffer never ends inside a character. Never allocates. */
void utf8_sanitize_buffer(char *buf, size_t size);
