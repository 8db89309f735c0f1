/* min-heap.h: a binary min-heap of (key, id) pairs, the smallest key (then id) on top.
 * The engine keeps its deadlines in such heaps, and finds the newest worker of a state
 * with keys that count down, so that neither needs a walk over every worker. The heap
 * does not know the workers: an entry may be stale (the worker is gone, or its deadline
 * moved), and whoever pops checks it against the worker. Pure memory, no syscalls. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct min_heap_entry {
        uint64_t key, id;
};

struct min_heap {
        struct min_heap_entry *entries;
        size_t n, allocated;
};

/* -ENOMEM, and the heap unchanged, when it cannot grow. */
int min_heap_push(struct min_heap *h, uint64_t key, uint64_t id);
/* The smallest entry, false when empty. */
bool min_heap_top(const struct min_heap *h, struct min_heap_entry *ret);
void min_heap_pop(struct min_heap *h);
void min_heap_clear(struct min_heap *h);
