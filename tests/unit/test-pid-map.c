/* test-pid-map.c: the engine's and the shell's indexes (pid-map.c, min-heap.c) against
 * plain arrays, over long runs of random inserts and removals: a removal that shifts the
 * wrong entry back, or a heap that loses its order, shows as a lookup or a minimum that
 * differs from the array's. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>

#include "min-heap.h"
#include "pid-map.h"

#define RANGE 3000

Test(pid_map, matches_an_array_through_inserts_and_removals) {
        static uint64_t reference[RANGE]; /* 0 = absent, else value + 1 */
        struct pid_map m = {};
        unsigned seed = 1;
        for (int step = 0; step < 200000; step++) {
                pid_t pid = 1 + (pid_t) (rand_r(&seed) % (RANGE - 1));
                if (rand_r(&seed) % 3 == 0) {
                        pid_map_remove(&m, pid);
                        reference[pid] = 0;
                } else {
                        uint64_t value = (uint64_t) rand_r(&seed);
                        cr_assert_eq(pid_map_put(&m, pid, value), 0);
                        reference[pid] = value + 1;
                }
                pid_t probe = 1 + (pid_t) (rand_r(&seed) % (RANGE - 1));
                uint64_t got;
                bool found = pid_map_get(&m, probe, &got);
                cr_assert_eq(found, reference[probe] != 0, "step %d: pid %d", step, (int) probe);
                if (found)
                        cr_assert_eq(got + 1, reference[probe]);
        }
        size_t n = 0;
        for (pid_t pid = 1; pid < RANGE; pid++) {
                uint64_t got;
                cr_assert_eq(pid_map_get(&m, pid, &got), reference[pid] != 0);
                n += reference[pid] != 0;
        }
        cr_assert_eq(m.n, n);
        cr_assert_eq(pid_map_put(&m, 0, 1), -EINVAL);
        cr_assert_not(pid_map_get(&m, -1, &(uint64_t){ 0 }));
        pid_map_clear(&m);
        cr_assert_not(pid_map_get(&m, 1, &(uint64_t){ 0 }));
}

Test(min_heap, pops_in_order_of_key_then_id) {
        struct min_heap h = {};
        unsigned seed = 7;
        for (uint64_t id = 0; id < 5000; id++)
                cr_assert_eq(min_heap_push(&h, (uint64_t) (rand_r(&seed) % 100), id), 0);
        struct min_heap_entry last = { 0, 0 }, e;
        size_t n = 0;
        for (; min_heap_top(&h, &e); min_heap_pop(&h), n++) {
                cr_assert(e.key > last.key || (e.key == last.key && (n == 0 || e.id > last.id)),
                          "entry %zu out of order", n);
                last = e;
        }
        cr_assert_eq(n, 5000);
        min_heap_clear(&h);
}
