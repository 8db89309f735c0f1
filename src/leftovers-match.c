/* leftovers-match.c: the pure half of leftovers.h: parsing worker records, and deciding
 * which processes are a previous run's leftovers. No syscalls, no allocation: the shell
 * reads the files (/proc/PID/stat through proc-stat.h) and performs the signals. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decimal.h"
#include "leftovers-match.h"

int leftovers_format_record(const struct leftover_record *r, char *buf, size_t size) {
        int n = snprintf(buf, size, "%" PRIu64 " %" PRIu64 " %s\n", r->start_time, r->generation, r->boot_id);
        if (n < 0 || (size_t) n >= size)
                return -ENOBUFS;
        return n;
}

static bool boot_id_valid(const char *s, size_t len) {
        if (len != LEFTOVERS_BOOT_ID_SIZE - 1)
                return false;
        for (size_t i = 0; i < len; i++) {
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;
                if (dash ? s[i] != '-' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        }
        return true;
}

/* "<start_time> <generation> <boot_id>\n", exactly, into R (whose pid is set). */
static int parse_fields(const char *text, size_t len, struct leftover_record *r) {
        const char *limit = text + len, *end;
        if (parse_decimal(text, limit, &r->start_time, &end) < 0 || end >= limit || *end != ' ')
                return -EINVAL;
        if (parse_decimal(end + 1, limit, &r->generation, &end) < 0 || end >= limit || *end != ' ')
                return -EINVAL;
        const char *id = end + 1;
        const char *newline = memchr(id, '\n', (size_t) (limit - id));
        if (!newline || newline + 1 != limit || !boot_id_valid(id, (size_t) (newline - id)))
                return -EINVAL;
        memcpy(r->boot_id, id, LEFTOVERS_BOOT_ID_SIZE - 1);
        r->boot_id[LEFTOVERS_BOOT_ID_SIZE - 1] = 0;
        return 0;
}

int leftovers_parse_record(const char *name, const char *text, size_t len, struct leftover_record *ret) {
        struct leftover_record r = {};
        const char *end, *name_end = name + strlen(name);
        if (parse_decimal_pid(name, name_end, &r.pid, &end) < 0 || end != name_end || name[0] == '0' ||
            parse_fields(text, len, &r) < 0)
                return -EINVAL;
        *ret = r;
        return 0;
}

int leftovers_format_slot(const struct leftover_record *r, char slot[static LEFTOVERS_SLOT_SIZE]) {
        char text[LEFTOVERS_SLOT_SIZE];
        int n = snprintf(text, sizeof(text), "%d ", (int) r->pid);
        int m = n > 0 ? leftovers_format_record(r, text + n, sizeof(text) - (size_t) n) : -ENOBUFS;
        if (m < 0)
                return -ENOBUFS;
        memset(slot, 0, LEFTOVERS_SLOT_SIZE);
        memcpy(slot, text, (size_t) (n + m));
        return 0;
}

int leftovers_parse_slot(const char slot[static LEFTOVERS_SLOT_SIZE], struct leftover_record *ret) {
        if (slot[0] == 0)
                return -ENOENT;
        const char *limit = slot + LEFTOVERS_SLOT_SIZE;
        const char *newline = memchr(slot, '\n', LEFTOVERS_SLOT_SIZE);
        if (!newline)
                return -EINVAL;
        for (const char *p = newline + 1; p < limit; p++)
                if (*p != 0)
                        return -EINVAL;
        struct leftover_record r = {};
        const char *end;
        if (slot[0] == '0' || parse_decimal_pid(slot, newline, &r.pid, &end) < 0 || end >= newline || *end != ' ' ||
            parse_fields(end + 1, (size_t) (newline + 1 - (end + 1)), &r) < 0)
                return -EINVAL;
        *ret = r;
        return 0;
}

size_t leftovers_select(const struct leftover_record *r, const char *boot_id, const struct process_info *procs,
                        size_t n, pid_t self, pid_t own_session, size_t *ret_indices) {
        /* Start times count from boot: a record of another boot says nothing. */
        if (strcmp(r->boot_id, boot_id) != 0)
                return 0;
        bool leader_alive = false;
        for (size_t i = 0; i < n; i++)
                if (procs[i].pid == r->pid) {
                        /* Reused pid: session P (if any) belongs to the new process. */
                        if (procs[i].start_time != r->start_time)
                                return 0;
                        leader_alive = true;
                }
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                const struct process_info *p = &procs[i];
                if (p->state == 'Z' || p->state == 'X' || p->pid == self || p->session == own_session)
                        continue;
                if ((leader_alive && p->pid == r->pid) || p->session == r->pid)
                        ret_indices[k++] = i;
        }
        return k;
}
