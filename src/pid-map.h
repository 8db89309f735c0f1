/* pid-map.h: a hash table from a process id to a number (a worker's id in the engine, an
 * index in the shell's table of worker I/O), so that an event naming a pid finds its
 * worker in O(1) instead of a walk over every worker. Pure memory, no syscalls. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct pid_map_entry {
        pid_t pid; /* 0 = empty */
        uint64_t value;
};

struct pid_map {
        struct pid_map_entry *entries;
        size_t n, capacity; /* capacity is 0 or a power of two */
};

/* Sets PID (> 0) to VALUE, replacing an earlier value. -EINVAL for a pid <= 0, -ENOMEM. */
int pid_map_put(struct pid_map *m, pid_t pid, uint64_t value);
/* False when PID is not in the map. */
bool pid_map_get(const struct pid_map *m, pid_t pid, uint64_t *ret);
/* Nothing happens when PID is not in the map. */
void pid_map_remove(struct pid_map *m, pid_t pid);
/* Empties the map and frees its memory. */
void pid_map_clear(struct pid_map *m);
