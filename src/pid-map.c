/* pid-map.c: open addressing with linear probing, kept at most half full, and removal by
 * shifting the following entries back (no tombstones, so that a long run of spawns and
 * exits never slows the lookups down). */
#include <errno.h>
#include <stdlib.h>

#include "pid-map.h"

static size_t slot_of(const struct pid_map *m, pid_t pid) {
        /* Pids come in runs; a multiplicative hash spreads them over the table. */
        uint32_t h = (uint32_t) pid * 2654435761u;
        return (size_t) h & (m->capacity - 1);
}

static int resize(struct pid_map *m, size_t capacity) {
        struct pid_map_entry *entries = calloc(capacity, sizeof(*entries));
        if (!entries)
                return -ENOMEM;
        struct pid_map old = *m;
        m->entries = entries;
        m->capacity = capacity;
        for (size_t i = 0; i < old.capacity; i++) {
                if (old.entries[i].pid <= 0)
                        continue;
                size_t j = slot_of(m, old.entries[i].pid);
                while (m->entries[j].pid > 0)
                        j = (j + 1) & (capacity - 1);
                m->entries[j] = old.entries[i];
        }
        free(old.entries);
        return 0;
}

int pid_map_put(struct pid_map *m, pid_t pid, uint64_t value) {
        if (pid <= 0)
                return -EINVAL;
        if ((m->n + 1) * 2 > m->capacity) {
                int r = resize(m, m->capacity ? m->capacity * 2 : 16);
                if (r < 0)
                        return r;
        }
        size_t i = slot_of(m, pid);
        while (m->entries[i].pid > 0 && m->entries[i].pid != pid)
                i = (i + 1) & (m->capacity - 1);
        if (m->entries[i].pid != pid)
                m->n++;
        m->entries[i] = (struct pid_map_entry){ .pid = pid, .value = value };
        return 0;
}

static struct pid_map_entry *find(const struct pid_map *m, pid_t pid) {
        if (pid <= 0 || m->capacity == 0)
                return NULL;
        for (size_t i = slot_of(m, pid);; i = (i + 1) & (m->capacity - 1)) {
                if (m->entries[i].pid == pid)
                        return &m->entries[i];
                if (m->entries[i].pid <= 0)
                        return NULL;
        }
}

bool pid_map_get(const struct pid_map *m, pid_t pid, uint64_t *ret) {
        const struct pid_map_entry *e = find(m, pid);
        if (!e)
                return false;
        *ret = e->value;
        return true;
}

void pid_map_remove(struct pid_map *m, pid_t pid) {
        struct pid_map_entry *e = find(m, pid);
        if (!e)
                return;
        size_t mask = m->capacity - 1, hole = (size_t) (e - m->entries);
        m->entries[hole].pid = 0;
        m->n--;
        /* Every entry after the hole up to the next empty one moves back into the hole
         * when the hole lies between its home slot and where it sits. */
        for (size_t i = (hole + 1) & mask; m->entries[i].pid > 0; i = (i + 1) & mask) {
                size_t home = slot_of(m, m->entries[i].pid);
                if (((i - home) & mask) >= ((i - hole) & mask)) {
                        m->entries[hole] = m->entries[i];
                        m->entries[i].pid = 0;
                        hole = i;
                }
        }
}

void pid_map_clear(struct pid_map *m) {
        free(m->entries);
        *m = (struct pid_map){};
}
