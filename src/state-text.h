/* state-text.h: the text form of a reexec's hand-over, shared by engine-state.c and
 * config-state.c. A document is a header line "MAGIC VERSION", then records, one per
 * line, then a line "end" (so that a truncated document is never taken for a whole one):
 *
 *     KIND NAME=VALUE NAME=VALUE ...
 *
 * A VALUE is a decimal number, "infinity" (a time that never comes), yes or no, the name
 * of an enum value, "-" (a string that is not set) or a string in double quotes, where
 * every byte outside printable ASCII, the quote and the backslash are escaped (\\ \" \n
 * \t \xHH), so that a target holding spaces, newlines or any other byte comes back
 * exactly. A table of struct state_field says which member of a struct each NAME is, so
 * that the writer and the reader of a record cannot disagree. Pure: no I/O, no syscalls;
 * everything read is untrusted and checked. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum state_type {
        STATE_UINT, /* an unsigned integer member of 4 or 8 bytes */
        STATE_INT, /* an int or pid_t, 0 ... INT_MAX */
        STATE_TIME, /* uint64_t microseconds; UINT64_MAX is written "infinity" */
        STATE_BOOL,
        STATE_ENUM, /* an enum (int-sized), written by name */
        STATE_STRING, /* char *, NULL written "-" */
        STATE_BUFFER, /* char[size], always NUL-terminated */
};

struct state_field {
        const char *name;
        enum state_type type;
        size_t offset;
        size_t size;
        const char *const *names; /* STATE_ENUM: indexed by value */
        size_t n_names;
};

#define STATE_MEMBER_SIZE(type, member) sizeof(((type *) 0)->member)
#define STATE_FIELD(type, member, kind) \
        { #member, kind, offsetof(type, member), STATE_MEMBER_SIZE(type, member), NULL, 0 }
/* A field named NAME stored at MEMBER (for a member of a nested struct). */
#define STATE_FIELD_AS(name, type, member, kind) \
        { name, kind, offsetof(type, member), STATE_MEMBER_SIZE(type, member), NULL, 0 }
#define STATE_ENUM_FIELD(type, member, table)                                                        \
        {                                                                                            \
#member, STATE_ENUM, offsetof(type, member), STATE_MEMBER_SIZE(type, member), table, \
                        sizeof(table) / sizeof(table[0])                                             \
        }
#define STATE_ENUM_FIELD_AS(name, type, member, table)                                            \
        {                                                                                         \
                name, STATE_ENUM, offsetof(type, member), STATE_MEMBER_SIZE(type, member), table, \
                        sizeof(table) / sizeof(table[0])                                          \
        }

/* Every table has at most this many fields (a record's fields seen are a bit mask). */
#define STATE_FIELDS_MAX 64

/* ---- writing ---- */

struct state_writer {
        char *text;
        size_t length, allocated;
        bool failed; /* out of memory: state_writer_finish() says so */
};

void state_write_header(struct state_writer *w, const char *magic, unsigned version);
/* One record line: KIND and FIELDS of OBJECT. */
void state_write_record(struct state_writer *w, const char *kind, const void *object, const struct state_field *fields,
                        size_t n_fields);
/* The "end" line; then the text (malloc'd, NUL-terminated) in *RET, or -ENOMEM. */
int state_writer_finish(struct state_writer *w, char **ret);

/* ---- reading ---- */

struct state_reader {
        const char *text;
        size_t size, pos;
        unsigned line; /* of the current record, from 1 */
        const char *rest; /* the current line after its kind */
        size_t rest_length;
        bool ended; /* the "end" line was read */
        char *error;
        size_t error_size;
};

void state_reader_init(struct state_reader *r, const char *text, size_t size, char *error, size_t error_size);
/* Writes "line N: MESSAGE" (the current line) to the error buffer; returns ERROR. */
int state_fail(struct state_reader *r, int error, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The header: 0 and its version, -EINVAL when it is not "MAGIC N", -EPROTONOSUPPORT when N
 * is above MAX_VERSION. */
int state_read_header(struct state_reader *r, const char *magic, unsigned max_version, unsigned *ret_version);
/* The next record: 1 and its kind (at most KIND_SIZE - 1 bytes), 0 after the "end" line
 * (which must be the last), -EINVAL for a malformed line or a text without "end". */
int state_next_record(struct state_reader *r, char *kind, size_t kind_size);
/* Parses the current record's fields into OBJECT. A field not in FIELDS, or one already
 * in *SEEN (a bit per index in FIELDS), is refused; each parsed field is added to *SEEN.
 * Strings are malloc'd into OBJECT even on failure: state_free_strings() frees them. */
int state_read_fields(struct state_reader *r, void *object, const struct state_field *fields, size_t n_fields,
                      uint64_t *seen);
/* -EINVAL naming the first field of FIELDS missing from SEEN, 0 when none is. */
int state_check_fields(struct state_reader *r, const char *kind, const struct state_field *fields, size_t n_fields,
                       uint64_t seen);
void state_free_strings(void *object, const struct state_field *fields, size_t n_fields);
