/* min-heap.c: the usual array heap (children of i at 2i+1 and 2i+2). */
#include <errno.h>
#include <stdlib.h>

#include "min-heap.h"

static bool less(const struct min_heap_entry *a, const struct min_heap_entry *b) {
        return a->key < b->key || (a->key == b->key && a->id < b->id);
}

int min_heap_push(struct min_heap *h, uint64_t key, uint64_t id) {
        if (h->n == h->allocated) {
                size_t n = h->allocated ? h->allocated * 2 : 16;
                struct min_heap_entry *p = reallocarray(h->entries, n, sizeof(*p));
                if (!p)
                        return -ENOMEM;
                h->entries = p;
                h->allocated = n;
        }
        struct min_heap_entry e = { .key = key, .id = id };
        size_t i = h->n++;
        while (i > 0 && less(&e, &h->entries[(i - 1) / 2])) {
                h->entries[i] = h->entries[(i - 1) / 2];
                i = (i - 1) / 2;
        }
        h->entries[i] = e;
        return 0;
}

bool min_heap_top(const struct min_heap *h, struct min_heap_entry *ret) {
        if (h->n == 0)
                return false;
        *ret = h->entries[0];
        return true;
}

void min_heap_pop(struct min_heap *h) {
        if (h->n == 0)
                return;
        struct min_heap_entry last = h->entries[--h->n];
        size_t i = 0;
        for (;;) {
                size_t child = 2 * i + 1;
                if (child >= h->n)
                        break;
                if (child + 1 < h->n && less(&h->entries[child + 1], &h->entries[child]))
                        child++;
                if (!less(&h->entries[child], &last))
                        break;
                h->entries[i] = h->entries[child];
                i = child;
        }
        if (h->n > 0)
                h->entries[i] = last;
}

void min_heap_clear(struct min_heap *h) {
        free(h->entries);
        *h = (struct min_heap){};
}
