/* leftovers-match.h: the pure half of leftovers.h: parsing worker records, and deciding
 * which processes a record points at (the rules are in leftovers.h). No syscalls:
 * unit-tested on made-up snapshots. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LEFTOVERS_BOOT_ID_SIZE 37 /* a UUID in text and its NUL */
#define LEFTOVERS_RECORD_MAX 128
/* A record in <runtime_dir>/workers/slots: "<pid> " and the text of a record, padded
 * with NULs. A slot whose first byte is NUL is free. */
#define LEFTOVERS_SLOT_SIZE 128

/* One worker, as recorded in a slot of <runtime_dir>/workers/slots (or, by earlier
 * versions, in a file <runtime_dir>/workers/<pid> of its own). */
struct leftover_record {
        pid_t pid;
        uint64_t start_time; /* clock ticks after boot: field 22 of /proc/PID/stat */
        uint64_t generation; /* for the log only */
        char boot_id[LEFTOVERS_BOOT_ID_SIZE]; /* start times only compare within one boot */
};

/* What the decision needs of one process in /proc. */
struct process_info {
        pid_t pid;
        pid_t session;
        char state; /* 'Z' (zombie) and 'X' (dead) cannot be stopped: they are gone */
        uint64_t start_time;
};

/* "<start_time> <generation> <boot_id>\n" into BUF; the length, or -ENOBUFS. */
int leftovers_format_record(const struct leftover_record *r, char *buf, size_t size);

/* NAME is the file's name (the pid), TEXT its content. -EINVAL on anything malformed. */
int leftovers_parse_record(const char *name, const char *text, size_t len, struct leftover_record *ret);

/* R as a slot: "<pid> <start_time> <generation> <boot_id>\n" and NULs, LEFTOVERS_SLOT_SIZE
 * bytes in all. 0, or -ENOBUFS (never for a valid record: the longest takes 80 bytes). */
int leftovers_format_slot(const struct leftover_record *r, char slot[static LEFTOVERS_SLOT_SIZE]);

/* A slot as leftovers_format_slot() writes it: 0 with the record, -ENOENT for a free slot
 * (its first byte NUL), -EINVAL for anything else (a write cut short, or not ours). */
int leftovers_parse_slot(const char slot[static LEFTOVERS_SLOT_SIZE], struct leftover_record *ret);

/* Which processes of PROCS (a snapshot of /proc) to stop for record R, by the rules in
 * the comment at the top: their indices go to RET_INDICES (room for N), the count is
 * returned. BOOT_ID is the running kernel's: a record of another boot selects nothing.
 * Never selects zombies, SELF, or anything in OWN_SESSION (the new supervisor's own). */
size_t leftovers_select(const struct leftover_record *r, const char *boot_id, const struct process_info *procs,
                        size_t n, pid_t self, pid_t own_session, size_t *ret_indices);
