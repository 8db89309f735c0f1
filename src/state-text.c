/* state-text.c: writes and reads the hand-over's line format (state-text.h). Pure: no
 * I/O, no syscalls. The reader trusts nothing: every line, length, number and escape is
 * checked, and the first problem is reported with its line number. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "state-text.h"

/* ---- writing ---- */

static void append(struct state_writer *w, const char *s, size_t n) {
        if (w->failed)
                return;
        if (w->length + n + 1 > w->allocated) {
                size_t want = w->allocated ? w->allocated : 1024;
                while (want < w->length + n + 1)
                        want *= 2;
                char *p = realloc(w->text, want);
                if (!p) {
                        w->failed = true;
                        return;
                }
                w->text = p;
                w->allocated = want;
        }
        memcpy(w->text + w->length, s, n);
        w->length += n;
        w->text[w->length] = 0;
}

static void appendf(struct state_writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void appendf(struct state_writer *w, const char *fmt, ...) {
        char buf[64];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t) n >= sizeof(buf)) {
                w->failed = true; /* only numbers and names come here: cannot happen */
                return;
        }
        append(w, buf, (size_t) n);
}

static void append_string(struct state_writer *w, const char *s) {
        append(w, "\"", 1);
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                if (*p == '\\' || *p == '"')
                        appendf(w, "\\%c", *p);
                else if (*p == '\n')
                        append(w, "\\n", 2);
                else if (*p == '\t')
                        append(w, "\\t", 2);
                else if (*p < 0x20 || *p >= 0x7f)
                        appendf(w, "\\x%02x", *p);
                else
                        append(w, (const char *) p, 1);
        }
        append(w, "\"", 1);
}

void state_write_header(struct state_writer *w, const char *magic, unsigned version) {
        appendf(w, "%s %u\n", magic, version);
}

void state_write_record(struct state_writer *w, const char *kind, const void *object, const struct state_field *fields,
                        size_t n_fields) {
        append(w, kind, strlen(kind));
        for (size_t i = 0; i < n_fields; i++) {
                const struct state_field *f = &fields[i];
                const char *at = (const char *) object + f->offset;
                appendf(w, " %s=", f->name);
                switch (f->type) {
                case STATE_UINT: {
                        uint64_t v;
                        if (f->size == sizeof(uint64_t))
                                memcpy(&v, at, sizeof(v));
                        else {
                                unsigned u;
                                memcpy(&u, at, sizeof(u));
                                v = u;
                        }
                        appendf(w, "%llu", (unsigned long long) v);
                        break;
                }
                case STATE_INT: {
                        int v;
                        memcpy(&v, at, sizeof(v));
                        appendf(w, "%d", v);
                        break;
                }
                case STATE_TIME: {
                        uint64_t v;
                        memcpy(&v, at, sizeof(v));
                        if (v == UINT64_MAX)
                                append(w, "infinity", 8);
                        else
                                appendf(w, "%llu", (unsigned long long) v);
                        break;
                }
                case STATE_BOOL: {
                        bool v;
                        memcpy(&v, at, sizeof(v));
                        appendf(w, "%s", v ? "yes" : "no");
                        break;
                }
                case STATE_ENUM: {
                        int v;
                        memcpy(&v, at, sizeof(v));
                        if (v >= 0 && (size_t) v < f->n_names && f->names[v])
                                appendf(w, "%s", f->names[v]);
                        else
                                appendf(w, "%d", v); /* read back as an error, never silently */
                        break;
                }
                case STATE_STRING: {
                        const char *s;
                        memcpy(&s, at, sizeof(s));
                        if (s)
                                append_string(w, s);
                        else
                                append(w, "-", 1);
                        break;
                }
                case STATE_BUFFER:
                        append_string(w, at);
                        break;
                }
        }
        append(w, "\n", 1);
}

int state_writer_finish(struct state_writer *w, char **ret) {
        append(w, "end\n", 4);
        if (w->failed) {
                free(w->text);
                *w = (struct state_writer){};
                return -ENOMEM;
        }
        *ret = TAKE_PTR(w->text);
        *w = (struct state_writer){};
        return 0;
}

/* ---- reading ---- */

void state_reader_init(struct state_reader *r, const char *text, size_t size, char *error, size_t error_size) {
        *r = (struct state_reader){ .text = text, .size = size, .error = error, .error_size = error_size };
        if (error_size > 0)
                error[0] = 0;
}

int state_fail(struct state_reader *r, int error, const char *fmt, ...) {
        if (r->error_size > 0) {
                int n = snprintf(r->error, r->error_size, "line %u: ", r->line);
                if (n >= 0 && (size_t) n < r->error_size) {
                        va_list ap;
                        va_start(ap, fmt);
                        vsnprintf(r->error + n, r->error_size - (size_t) n, fmt, ap);
                        va_end(ap);
                }
        }
        return error;
}

/* The next line, without its newline, which it must have: a document cut anywhere fails
 * here or at the missing "end". */
static int next_line(struct state_reader *r, const char **ret, size_t *ret_length) {
        if (r->pos >= r->size)
                return 0;
        r->line++;
        const char *start = r->text + r->pos;
        const char *nl = memchr(start, '\n', r->size - r->pos);
        if (!nl)
                return state_fail(r, -EINVAL, "the text ends without a newline (truncated?)");
        size_t length = (size_t) (nl - start);
        if (memchr(start, 0, length))
                return state_fail(r, -EINVAL, "NUL byte");
        r->pos += length + 1;
        *ret = start;
        *ret_length = length;
        return 1;
}

/* The length of S up to its first blank, within N bytes. The text is not NUL-terminated:
 * no str*() function may read it. */
static size_t blank_or_end(const char *s, size_t n) {
        const char *blank = memchr(s, ' ', n);
        return blank ? (size_t) (blank - s) : n;
}

/* Digits only, no sign, no blanks; at most MAX. */
static bool parse_number(const char *s, size_t n, uint64_t max, uint64_t *ret) {
        uint64_t v = 0;
        if (n == 0 || n > 20)
                return false;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                unsigned d = (unsigned) (s[i] - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return false;
                v = v * 10 + d;
        }
        if (v > max)
                return false;
        *ret = v;
        return true;
}

int state_read_header(struct state_reader *r, const char *magic, unsigned max_version, unsigned *ret_version) {
        /* Initialised only for gcc -O3, which cannot see that next_line() sets both
         * whenever it returns > 0 (the release build failed on -Wmaybe-uninitialized). */
        const char *line = NULL;
        size_t length = 0, m = strlen(magic);
        int k = next_line(r, &line, &length);
        if (k <= 0) {
                r->line = 1;
                return k < 0 ? k : state_fail(r, -EINVAL, "empty text, expected '%s VERSION'", magic);
        }
        uint64_t version;
        if (length <= m + 1 || memcmp(line, magic, m) != 0 || line[m] != ' ' ||
            !parse_number(line + m + 1, length - m - 1, UINT_MAX, &version) || version == 0)
                return state_fail(r, -EINVAL, "expected '%s VERSION' as the first line", magic);
        if (version > max_version)
                return state_fail(r, -EPROTONOSUPPORT,
                                  "format version %llu is newer than this program reads (at most %u): written by a "
                                  "newer liveswap",
                                  (unsigned long long) version, max_version);
        *ret_version = (unsigned) version;
        return 0;
}

int state_next_record(struct state_reader *r, char *kind, size_t kind_size) {
        const char *line = NULL; /* for gcc -O3, as in state_read_header() */
        size_t length = 0;
        if (r->ended)
                return 0;
        int k = next_line(r, &line, &length);
        if (k < 0)
                return k;
        if (k == 0) {
                r->line++;
                return state_fail(r, -EINVAL, "the text ends without its 'end' line (truncated?)");
        }
        size_t n = blank_or_end(line, length);
        if (n == 0 || n >= kind_size)
                return state_fail(r, -EINVAL, "expected a record kind at the start of the line");
        for (size_t i = 0; i < n; i++)
                if (!((line[i] >= 'a' && line[i] <= 'z') || line[i] == '_'))
                        return state_fail(r, -EINVAL, "expected a record kind at the start of the line");
        memcpy(kind, line, n);
        kind[n] = 0;
        if (strcmp(kind, "end") == 0) {
                if (n != length)
                        return state_fail(r, -EINVAL, "garbage after 'end'");
                if (r->pos != r->size)
                        return state_fail(r, -EINVAL, "text after the 'end' line");
                r->ended = true;
                return 0;
        }
        if (n == length)
                r->rest = line + n, r->rest_length = 0;
        else {
                r->rest = line + n + 1;
                r->rest_length = length - n - 1;
        }
        if (n < length && r->rest_length == 0)
                return state_fail(r, -EINVAL, "trailing blank");
        return 1;
}

/* A quoted string at S (S[0] is '"'), N bytes available: its decoded bytes (malloc'd) in
 * *RET and the length of its encoded form in *RET_USED. */
static int parse_string(struct state_reader *r, const char *name, const char *s, size_t n, char **ret,
                        size_t *ret_used) {
        _cleanup_free_ char *out = malloc(n); /* never longer than its encoded form */
        size_t k = 0;
        if (!out)
                return -ENOMEM;
        for (size_t i = 1; i < n; i++) {
                unsigned char c = (unsigned char) s[i];
                if (c == '"') {
                        out[k] = 0;
                        *ret = TAKE_PTR(out);
                        *ret_used = i + 1;
                        return 0;
                }
                if (c < 0x20 || c >= 0x7f)
                        return state_fail(r, -EINVAL, "%s: unescaped byte 0x%02x in a string", name, c);
                if (c != '\\') {
                        out[k++] = (char) c;
                        continue;
                }
                if (++i >= n)
                        break;
                switch (s[i]) {
                case '\\':
                case '"':
                        out[k++] = s[i];
                        break;
                case 'n':
                        out[k++] = '\n';
                        break;
                case 't':
                        out[k++] = '\t';
                        break;
                case 'x': {
                        unsigned v = 0;
                        for (int j = 0; j < 2; j++) {
                                char h = ++i < n ? s[i] : 0;
                                unsigned d = h >= '0' && h <= '9'   ? (unsigned) (h - '0')
                                             : h >= 'a' && h <= 'f' ? (unsigned) (h - 'a' + 10)
                                                                    : 16;
                                if (d == 16)
                                        return state_fail(r, -EINVAL, "%s: bad \\x escape in a string", name);
                                v = v * 16 + d;
                        }
                        if (v == 0)
                                return state_fail(r, -EINVAL, "%s: NUL byte in a string", name);
                        out[k++] = (char) v;
                        break;
                }
                default:
                        return state_fail(r, -EINVAL, "%s: unknown escape '\\%c' in a string", name, s[i]);
                }
        }
        return state_fail(r, -EINVAL, "%s: string without its closing quote", name);
}

static int parse_value(struct state_reader *r, const struct state_field *f, void *object, const char *v, size_t n,
                       size_t *ret_used) {
        char *at = (char *) object + f->offset;
        if (f->type == STATE_STRING || f->type == STATE_BUFFER) {
                char *s = NULL;
                if (f->type == STATE_STRING && n >= 1 && v[0] == '-' && (n == 1 || v[1] == ' ')) {
                        *ret_used = 1;
                        memcpy(at, &s, sizeof(s));
                        return 0;
                }
                if (n == 0 || v[0] != '"')
                        return state_fail(r, -EINVAL, "%s: expected a string in double quotes", f->name);
                int k = parse_string(r, f->name, v, n, &s, ret_used);
                if (k < 0)
                        return k;
                if (f->type == STATE_STRING) {
                        memcpy(at, &s, sizeof(s));
                        return 0;
                }
                size_t length = strlen(s);
                if (length >= f->size) {
                        free(s);
                        return state_fail(r, -EINVAL, "%s: string too long (%zu bytes, at most %zu)", f->name, length,
                                          f->size - 1);
                }
                memcpy(at, s, length + 1);
                free(s);
                return 0;
        }

        size_t len = blank_or_end(v, n);
        *ret_used = len;
        uint64_t x;
        switch (f->type) {
        case STATE_UINT: {
                uint64_t max = f->size == sizeof(uint64_t) ? UINT64_MAX : UINT_MAX;
                if (!parse_number(v, len, max, &x))
                        return state_fail(r, -EINVAL, "%s: expected a number from 0 to %llu, not '%.*s'", f->name,
                                          (unsigned long long) max, (int) len, v);
                if (f->size == sizeof(uint64_t))
                        memcpy(at, &x, sizeof(x));
                else {
                        unsigned u = (unsigned) x;
                        memcpy(at, &u, sizeof(u));
                }
                return 0;
        }
        case STATE_INT: {
                if (!parse_number(v, len, INT_MAX, &x))
                        return state_fail(r, -EINVAL, "%s: expected a number from 0 to %d, not '%.*s'", f->name,
                                          INT_MAX, (int) len, v);
                int i = (int) x;
                memcpy(at, &i, sizeof(i));
                return 0;
        }
        case STATE_TIME:
                if (len == 8 && memcmp(v, "infinity", 8) == 0)
                        x = UINT64_MAX;
                else if (!parse_number(v, len, UINT64_MAX - 1, &x))
                        return state_fail(r, -EINVAL, "%s: expected microseconds or 'infinity', not '%.*s'", f->name,
                                          (int) len, v);
                memcpy(at, &x, sizeof(x));
                return 0;
        case STATE_BOOL: {
                bool b;
                if (len == 3 && memcmp(v, "yes", 3) == 0)
                        b = true;
                else if (len == 2 && memcmp(v, "no", 2) == 0)
                        b = false;
                else
                        return state_fail(r, -EINVAL, "%s: expected yes or no, not '%.*s'", f->name, (int) len, v);
                memcpy(at, &b, sizeof(b));
                return 0;
        }
        case STATE_ENUM:
                for (size_t i = 0; i < f->n_names; i++)
                        if (f->names[i] && strlen(f->names[i]) == len && memcmp(f->names[i], v, len) == 0) {
                                int e = (int) i;
                                memcpy(at, &e, sizeof(e));
                                return 0;
                        }
                return state_fail(r, -EINVAL, "%s: unknown value '%.*s'", f->name, (int) len, v);
        case STATE_STRING:
        case STATE_BUFFER:
                break;
        }
        return state_fail(r, -EINVAL, "%s: internal error: unknown field type", f->name);
}

int state_read_fields(struct state_reader *r, void *object, const struct state_field *fields, size_t n_fields,
                      uint64_t *seen) {
        const char *p = r->rest, *end = r->rest + r->rest_length;
        while (p < end) {
                size_t n = (size_t) (end - p);
                size_t name_length = 0;
                while (name_length < n && ((p[name_length] >= 'a' && p[name_length] <= 'z') ||
                                           (p[name_length] >= '0' && p[name_length] <= '9') || p[name_length] == '_'))
                        name_length++;
                if (name_length == 0 || name_length == n || p[name_length] != '=')
                        return state_fail(r, -EINVAL, "expected NAME=VALUE at column %zu", (size_t) (p - r->rest) + 1);
                size_t i = 0;
                while (i < n_fields &&
                       !(strlen(fields[i].name) == name_length && memcmp(fields[i].name, p, name_length) == 0))
                        i++;
                if (i == n_fields)
                        return state_fail(r, -EINVAL, "unknown field '%.*s'", (int) name_length, p);
                if (i >= STATE_FIELDS_MAX || (*seen & (UINT64_C(1) << i)))
                        return state_fail(r, -EINVAL, "field '%s' given twice", fields[i].name);
                /* Marked before parsing: a string already allocated is then freed. */
                const char *v = p + name_length + 1;
                size_t used = 0;
                if (fields[i].type == STATE_STRING) {
                        char *none = NULL;
                        memcpy((char *) object + fields[i].offset, &none, sizeof(none));
                }
                int k = parse_value(r, &fields[i], object, v, (size_t) (end - v), &used);
                *seen |= UINT64_C(1) << i;
                if (k < 0)
                        return k;
                p = v + used;
                if (p < end) {
                        if (*p != ' ' || p + 1 == end)
                                return state_fail(r, -EINVAL, "%s: expected a blank after the value", fields[i].name);
                        p++;
                }
        }
        return 0;
}

int state_check_fields(struct state_reader *r, const char *kind, const struct state_field *fields, size_t n_fields,
                       uint64_t seen) {
        for (size_t i = 0; i < n_fields; i++)
                if (!(seen & (UINT64_C(1) << i)))
                        return state_fail(r, -EINVAL, "%s: field '%s' is missing", kind, fields[i].name);
        return 0;
}

void state_free_strings(void *object, const struct state_field *fields, size_t n_fields) {
        for (size_t i = 0; i < n_fields; i++)
                if (fields[i].type == STATE_STRING) {
                        char *s;
                        memcpy(&s, (char *) object + fields[i].offset, sizeof(s));
                        free(s);
                        s = NULL;
                        memcpy((char *) object + fields[i].offset, &s, sizeof(s));
                }
}
