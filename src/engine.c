/* engine.c: the upgrade state machine. No syscalls, no clock, no I/O: every decision
 * about generations and workers is made here and handed to the shell as actions, so that
 * the unit tests can check each decision without forking anything. An allocation failure
 * is never ignored: the action queue is the shell's only view of the engine's decisions,
 * so a failed allocation aborts (oom()) rather than lose or fake one. */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-internal.h"
#include "engine.h"
#include "macro.h"
#include "utf8.h"

static void set_reason(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_reason(char *buf, size_t size, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, size, fmt, ap);
        va_end(ap);
}

bool engine_grow(void **array, size_t *allocated, size_t needed, size_t element) {
        if (needed <= *allocated)
                return true;
        size_t n = *allocated ? *allocated * 2 : 8;
        while (n < needed)
                n *= 2;
        void *p = reallocarray(*array, n, element);
        if (!p)
                return false;
        *array = p;
        *allocated = n;
        return true;
}

/* Out of memory while queueing an action: the queue is the shell's only view of our
 * decisions, so losing one would desynchronise it. Nothing sane is left to do. */
static void oom(void) {
        abort();
}

/* Moves the pending action to the queue in short form: its fixed fields and a heap copy
 * of its text, if it has one. */
static void queue_pending(struct engine *e) {
        if (!e->has_pending)
                return;
        if (e->first_action > 0 && e->first_action == e->n_actions)
                e->first_action = e->n_actions = 0;
        if (!engine_grow((void **) &e->actions, &e->allocated_actions, e->n_actions + 1, sizeof(*e->actions)))
                oom();
        struct queued_action *q = &e->actions[e->n_actions];
        const struct engine_action *a = &e->pending;
        const char *text = a->type == ACTION_NOTIFY ? (a->notify.has_status ? a->notify.status : NULL)
                                                    : (a->reason[0] ? a->reason : NULL);
        memcpy(q->head, a, sizeof(q->head));
        q->text = NULL;
        if (text && !(q->text = strdup(text)))
                oom();
        e->n_actions++;
        e->has_pending = false;
}

/* The new action, for the caller to fill in until the next push. */
static struct engine_action *push_action(struct engine *e, enum action_type type) {
        queue_pending(e);
        e->pending = (struct engine_action){ .type = type };
        e->has_pending = true;
        return &e->pending;
}

static struct engine_action *push_signal(struct engine *e, pid_t pid, int sig, bool group,
                                         enum signal_purpose purpose) {
        if (pid <= 0)
                return NULL;
        struct engine_action *a = push_action(e, ACTION_SIGNAL);
        a->pid = pid;
        a->signal = sig;
        a->group = group;
        a->purpose = purpose;
        return a;
}

/* SIGCONT, then the drain signal: a worker stopped with SIGSTOP still counts as ready,
 * and would otherwise sit out the whole drain_timeout and be SIGKILLed instead of
 * draining. systemd sends its SIGCONT after SIGTERM; a stopped process runs and drains
 * either way, but a SIGCONT sent after the drain signal can arrive while the worker is
 * already exiting, and there it cancels the SIGSTOP of a ptrace attach in progress
 * (LeakSanitizer's leak check at exit then waited forever for its stop: 3 exits in 300
 * under load). First, it cannot. Both go where kill_mode says. */
static void signal_drain(struct engine *e, const struct engine_worker *w) {
        bool group = w->kill_mode == KILL_MODE_GROUP;
        if (w->drain_signal != SIGCONT && w->drain_signal != SIGKILL)
                push_signal(e, w->pid, SIGCONT, group, SIGNAL_RESUME);
        push_signal(e, w->pid, w->drain_signal, group, SIGNAL_DRAIN);
}

/* SIGKILL always reaches the whole process group, whatever kill_mode says: nothing of a
 * worker may survive it (systemd's KillMode=mixed does the same). */
static void kill_worker(struct engine *e, struct engine_worker *w, const char *why) {
        w->killed = true;
        struct engine_action *a = push_signal(e, w->pid, SIGKILL, true, SIGNAL_KILL);
        if (a)
                set_reason(a->reason, sizeof(a->reason), "%s", why);
}

/* Queues what systemd is told; STATUS= goes with READY=1 and RELOADING=1 so that
 * `systemctl show -p StatusText` is current when `systemctl reload` returns. */
static struct engine_notify *push_notify(struct engine *e, bool with_status) {
        struct engine_action *a = push_action(e, ACTION_NOTIFY);
        if (with_status) {
                a->notify.has_status = true;
                engine_format_status(e, e->now, a->notify.status, sizeof(a->notify.status));
                memcpy(e->status_sent, a->notify.status, sizeof(e->status_sent));
        }
        return &a->notify;
}

static void notify_ready(struct engine *e) {
        e->ready_sent = true;
        push_notify(e, true)->ready = true;
}

/* STOPPING=1, and more time from systemd for the drain: the longest drain timeout of
 * any worker, plus a margin for the exits to be reaped. */
static void notify_stopping(struct engine *e) {
        uint64_t max = 0;
        e->worker_visits += e->n_workers;
        for (size_t i = 0; i < e->n_workers; i++)
                if (e->workers[i].drain_timeout_usec > max)
                        max = e->workers[i].drain_timeout_usec;
        struct engine_notify *n = push_notify(e, true);
        n->stopping = true;
        n->extend_timeout_usec = max + 5 * USEC_PER_SEC;
}

void engine_update_status(struct engine *e, uint64_t now) {
        char status[sizeof(e->status_sent)];
        e->now = now;
        engine_format_status(e, now, status, sizeof(status));
        if (strcmp(status, e->status_sent) != 0)
                push_notify(e, true);
}

bool engine_next_action(struct engine *e, struct engine_action *ret) {
        queue_pending(e);
        if (e->first_action >= e->n_actions)
                return false;
        struct queued_action *q = &e->actions[e->first_action++];
        *ret = (struct engine_action){};
        memcpy(ret, q->head, sizeof(q->head));
        if (q->text) {
                char *to = ret->type == ACTION_NOTIFY ? ret->notify.status : ret->reason;
                size_t size = ret->type == ACTION_NOTIFY ? sizeof(ret->notify.status) : sizeof(ret->reason);
                /* It came from a buffer of this size: it fits. */
                memcpy(to, q->text, strnlen(q->text, size - 1));
                free(q->text);
                q->text = NULL;
        }
        /* Empty again: a queue that grew for a big upgrade does not keep its memory. */
        if (e->first_action == e->n_actions && e->allocated_actions > 64) {
                free(e->actions);
                e->actions = NULL;
                e->first_action = e->n_actions = e->allocated_actions = 0;
        }
        return true;
}

int engine_new(struct engine **ret) {
        struct engine *e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->state = ENGINE_STOPPED;
        e->next_worker_id = 1;
        e->start_deadline_usec = USEC_INFINITY;
        *ret = e;
        return 0;
}

static void clear_indexes(struct engine *e);

static void generation_clear(struct generation *g) {
        free(g->target);
        *g = (struct generation){};
}

struct engine *engine_free(struct engine *e) {
        if (!e)
                return NULL;
        for (size_t i = 0; i < e->n_workers; i++)
                free(e->workers[i].target);
        free(e->workers);
        free(e->respawns);
        free(e->failures);
        free(e->health);
        for (size_t i = e->first_action; i < e->n_actions; i++)
                free(e->actions[i].text);
        free(e->actions);
        free(e->previous_target);
        generation_clear(&e->current);
        generation_clear(&e->candidate);
        clear_indexes(e);
        free(e);
        return NULL;
}

static bool settings_valid(const struct engine_settings *s) {
        return s && s->workers > 0 && s->batch > 0 && s->drain_signal > 0;
}

/* ---- workers and their indexes ---- */

/* The workers stay in spawn order, which is the order of their ids: a binary search. */
static struct engine_worker *find_by_id(struct engine *e, uint64_t id) {
        size_t low = 0, high = e->n_workers;
        while (low < high) {
                size_t mid = low + (high - low) / 2;
                e->worker_visits++;
                if (e->workers[mid].id == id)
                        return &e->workers[mid];
                if (e->workers[mid].id < id)
                        low = mid + 1;
                else
                        high = mid;
        }
        return NULL;
}

static struct engine_worker *find_by_pid(struct engine *e, pid_t pid) {
        uint64_t id;
        if (pid <= 0 || !pid_map_get(&e->by_pid, pid, &id))
                return NULL;
        return find_by_id(e, id);
}

static struct generation_index *index_of(struct engine *e, uint64_t generation) {
        for (size_t i = 0; i < e->allocated_generations; i++)
                if (e->generations[i].generation == generation)
                        return &e->generations[i];
        return NULL;
}

static const struct generation_index *index_of_const(const struct engine *e, uint64_t generation) {
        return index_of((struct engine *) e, generation);
}

static struct generation_index *index_of_new(struct engine *e, uint64_t generation) {
        struct generation_index *g = index_of(e, generation);
        if (g)
                return g;
        size_t i = 0;
        while (i < e->allocated_generations && e->generations[i].generation != 0)
                i++;
        if (i == e->allocated_generations) {
                size_t n = e->allocated_generations;
                if (!engine_grow((void **) &e->generations, &e->allocated_generations, n + 1, sizeof(*g)))
                        oom();
                memset(e->generations + n, 0, (e->allocated_generations - n) * sizeof(*g));
        }
        e->generations[i] = (struct generation_index){ .generation = generation };
        return &e->generations[i];
}

static void push_or_die(struct min_heap *h, uint64_t key, uint64_t id) {
        if (min_heap_push(h, key, id) < 0)
                oom();
}

/* W entered its state: counted, and findable as the newest of it. */
static void index_enter(struct engine *e, const struct engine_worker *w) {
        struct generation_index *g = index_of_new(e, w->generation);
        g->in_state[w->state]++;
        if (w->state != WORKER_DRAINING)
                push_or_die(&g->newest[w->state], UINT64_MAX - w->id, w->id);
}

/* W leaves its state (its heap entry goes stale); a generation with no worker left
 * loses its entry. */
static void index_leave(struct engine *e, const struct engine_worker *w) {
        struct generation_index *g = index_of(e, w->generation);
        assert(g && g->in_state[w->state] > 0);
        g->in_state[w->state]--;
        if (g->in_state[WORKER_STARTING] + g->in_state[WORKER_READY] + g->in_state[WORKER_DRAINING] == 0) {
                min_heap_clear(&g->newest[0]);
                min_heap_clear(&g->newest[1]);
                *g = (struct generation_index){};
        }
}

/* Workers started to restore the old generation's strength that are still starting:
 * the rollback ends when none is left (rollback_progress()). */
static void leave_rollback_starting(struct engine *e, const struct engine_worker *w) {
        if (w->for_rollback && w->state == WORKER_STARTING) {
                assert(e->rollback_starting > 0);
                e->rollback_starting--;
        }
}

static void set_state(struct engine *e, struct engine_worker *w, enum worker_state state) {
        if (w->state == state)
                return;
        leave_rollback_starting(e, w);
        index_leave(e, w);
        w->state = state;
        index_enter(e, w);
}

/* Whether the timer heaps should hold W's deadlines at all. */
static bool has_deadlines(const struct engine_worker *w) {
        return !w->killed && w->pid > 0;
}

/* Stale entries are dropped when they reach the top; a heap that holds many more
 * entries than there are workers is built again, so that it stays O(N) in size (once
 * per N pushes or more: O(1) per push on average). */
static void compact_heap(struct engine *e, struct min_heap *h, bool watchdog) {
        if (h->n <= 2 * e->n_workers + 64)
                return;
        min_heap_clear(h);
        for (size_t i = 0; i < e->n_workers; i++) {
                const struct engine_worker *w = &e->workers[i];
                uint64_t key = watchdog ? w->watchdog_deadline_usec : w->deadline_usec;
                e->worker_visits++;
                if (has_deadlines(w) && key != USEC_INFINITY)
                        push_or_die(h, key, w->id);
        }
}

/* After any change of W's deadline_usec, watchdog_deadline_usec or pid: the heaps get
 * the new values; the old entries go stale. */
static void deadlines_changed(struct engine *e, const struct engine_worker *w) {
        if (!has_deadlines(w))
                return;
        if (w->deadline_usec != USEC_INFINITY) {
                push_or_die(&e->deadlines, w->deadline_usec, w->id);
                compact_heap(e, &e->deadlines, false);
        }
        if (w->watchdog_deadline_usec != USEC_INFINITY) {
                push_or_die(&e->watchdogs, w->watchdog_deadline_usec, w->id);
                compact_heap(e, &e->watchdogs, true);
        }
}

static void set_deadline(struct engine *e, struct engine_worker *w, uint64_t usec) {
        w->deadline_usec = usec;
        deadlines_changed(e, w);
}

static void set_watchdog_deadline(struct engine *e, struct engine_worker *w, uint64_t usec) {
        w->watchdog_deadline_usec = usec;
        deadlines_changed(e, w);
}

/* The worker of the top entry of H when that entry is current (WATCHDOG: of the
 * watchdog heap), after dropping the stale ones above it; NULL when none is left. */
static struct engine_worker *heap_first(struct engine *e, struct min_heap *h, bool watchdog) {
        struct min_heap_entry top;
        while (min_heap_top(h, &top)) {
                struct engine_worker *w = find_by_id(e, top.id);
                if (w && has_deadlines(w) && (watchdog ? w->watchdog_deadline_usec : w->deadline_usec) == top.key)
                        return w;
                min_heap_pop(h);
        }
        return NULL;
}

/* The newest worker of GENERATION in STATE (starting or ready), NULL when none. */
static struct engine_worker *newest_in_state(struct engine *e, uint64_t generation, enum worker_state state) {
        struct generation_index *g = index_of(e, generation);
        if (!g)
                return NULL;
        struct min_heap_entry top;
        while (min_heap_top(&g->newest[state], &top)) {
                struct engine_worker *w = find_by_id(e, top.id);
                if (w && w->generation == generation && w->state == state)
                        return w;
                min_heap_pop(&g->newest[state]);
        }
        return NULL;
}

static void clear_indexes(struct engine *e) {
        pid_map_clear(&e->by_pid);
        for (size_t i = 0; i < e->allocated_generations; i++) {
                min_heap_clear(&e->generations[i].newest[0]);
                min_heap_clear(&e->generations[i].newest[1]);
        }
        free(e->generations);
        e->generations = NULL;
        e->allocated_generations = 0;
        min_heap_clear(&e->deadlines);
        min_heap_clear(&e->watchdogs);
}

static void remove_worker(struct engine *e, struct engine_worker *w) {
        size_t i = (size_t) (w - e->workers);
        e->workers_version++;
        leave_rollback_starting(e, w);
        e->n_replacing -= w->replaces != 0;
        index_leave(e, w);
        if (w->pid > 0)
                pid_map_remove(&e->by_pid, w->pid);
        free(w->target);
        /* Keeps the spawn order that find_by_id() relies on: a copy of the records after
         * it (memory bandwidth, no record is looked at). */
        memmove(&e->workers[i], &e->workers[i + 1], (e->n_workers - i - 1) * sizeof(*w));
        e->n_workers--;
}

static const struct generation *generation_of(const struct engine *e, uint64_t number) {
        if (e->candidate.number == number)
                return &e->candidate;
        if (e->current.number == number)
                return &e->current;
        return NULL;
}

static struct engine_worker *spawn_worker(struct engine *e, const struct generation *g, unsigned slot, uint64_t now) {
        if (!engine_grow((void **) &e->workers, &e->allocated_workers, e->n_workers + 1, sizeof(*e->workers)))
                oom();
        char *target = strdup(g->target);
        if (!target)
                oom();
        e->workers_version++;
        struct engine_worker *w = &e->workers[e->n_workers++];
        *w = (struct engine_worker){
                .id = e->next_worker_id++,
                .generation = g->number,
                .slot = slot,
                .state = WORKER_STARTING,
                .target = target,
                .started_usec = now,
                .deadline_usec = now + (g->settings.ready == READY_DELAY ? g->settings.ready_delay_usec
                                                                         : g->settings.ready_timeout_usec),
                .drain_signal = g->settings.drain_signal,
                .drain_timeout_usec = g->settings.drain_timeout_usec,
                .kill_mode = g->settings.kill_mode,
                .watchdog_usec = g->settings.watchdog_usec,
                .watchdog_deadline_usec = USEC_INFINITY, /* from the spawn report on */
        };
        index_enter(e, w); /* no pid yet: no deadline in the heaps until the spawn report */
        struct engine_action *a = push_action(e, ACTION_SPAWN);
        a->worker_id = w->id;
        a->generation = g->number;
        a->slot = slot;
        a->candidate = g == &e->candidate;
        return w;
}

/* Every replacement of a worker of the current generation by a new one in its slot comes
 * through here, whatever removed the old one (a crash, a kill, Restart(), a watchdog or a
 * memory limit), so that the count of restarts shown per worker is kept in one place.
 * PREVIOUS is the restarts of the worker being replaced. */
static struct engine_worker *refill_slot(struct engine *e, unsigned slot, unsigned previous, uint64_t now) {
        struct engine_worker *w = spawn_worker(e, &e->current, slot, now);
        w->restarts = previous < UINT_MAX ? previous + 1 : UINT_MAX;
        return w;
}

static void drain_worker(struct engine *e, struct engine_worker *w, uint64_t now) {
        if (w->state == WORKER_DRAINING)
                return;
        set_state(e, w, WORKER_DRAINING);
        w->respawn_now = false;
        e->workers_version++;
        w->for_rollback = false;
        set_deadline(e, w, now + w->drain_timeout_usec);
        signal_drain(e, w);
}

/* The candidate's next slot: its workers hold 0 ... candidate_slots - 1 (engine-internal.h). */
static unsigned next_candidate_slot(struct engine *e) {
        e->slot_steps++;
        return e->candidate_slots++;
}

/* The N lowest slots of the current generation that no worker holds (draining ones
 * aside) and no respawn waits for, into OUT: one pass over the workers for a whole batch
 * (a rollback's, a scale's), not one per slot tried. At most ACTIVE distinct slots are
 * taken, so the N lowest free ones are all below ACTIVE + N. */
static void free_current_slots(struct engine *e, unsigned active, unsigned n, unsigned *out) {
        e->worker_visits += e->n_workers;
        size_t size = (size_t) active + n;
        bool *taken = calloc(size ?: 1, sizeof(*taken));
        if (!taken)
                oom();
        uint64_t generation = e->current.number;
        for (size_t i = 0; i < e->n_workers; i++) {
                const struct engine_worker *w = &e->workers[i];
                if (w->generation == generation && w->state != WORKER_DRAINING && w->slot < size)
                        taken[w->slot] = true;
        }
        for (size_t i = 0; i < e->n_respawns; i++)
                if (e->respawns[i].slot < size)
                        taken[e->respawns[i].slot] = true;
        unsigned k = 0;
        for (unsigned slot = 0; slot < size && k < n; slot++)
                if (!taken[slot])
                        out[k++] = slot;
        e->slot_steps += e->n_workers + e->n_respawns + size;
        free(taken);
}

/* Starts COUNT - ACTIVE workers of the current generation in its lowest free slots. */
static void fill_current(struct engine *e, unsigned active, unsigned count, bool for_rollback, uint64_t now) {
        if (count <= active)
                return;
        unsigned n = count - active;
        unsigned *slots = reallocarray(NULL, n, sizeof(*slots));
        if (!slots)
                oom();
        free_current_slots(e, active, n, slots);
        for (unsigned i = 0; i < n; i++)
                spawn_worker(e, &e->current, slots[i], now)->for_rollback = for_rollback;
        if (for_rollback)
                e->rollback_starting += n;
        free(slots);
}

static unsigned count_in_state(const struct engine *e, uint64_t generation, enum worker_state state) {
        const struct generation_index *g = index_of_const(e, generation);
        return g ? g->in_state[state] : 0;
}

/* Workers of a generation that serve or will serve: not draining; for the current
 * generation, slots waiting for a respawn count too. */

static unsigned count_active(const struct engine *e, uint64_t generation) {
        unsigned n = count_in_state(e, generation, WORKER_STARTING) + count_in_state(e, generation, WORKER_READY);
        if (generation == e->current.number)
                n += (unsigned) e->n_respawns;
        return n;
}

static unsigned count_generation(const struct engine *e, uint64_t generation) {
        return count_active(e, generation) - (generation == e->current.number ? (unsigned) e->n_respawns : 0) +
               count_in_state(e, generation, WORKER_DRAINING);
}

/* Drains up to n active workers of the current generation: queued respawns first (they
 * serve nobody), then workers still starting, then the newest ready ones (the highest
 * id: ids grow with the spawn order). */
static unsigned drain_current(struct engine *e, unsigned n, uint64_t now) {
        unsigned done = 0;
        while (done < n && e->n_respawns > 0) {
                e->n_respawns--;
                done++;
        }
        for (int pass = 0; pass < 2 && done < n; pass++) {
                enum worker_state want = pass == 0 ? WORKER_STARTING : WORKER_READY;
                while (done < n) {
                        struct engine_worker *pick = newest_in_state(e, e->current.number, want);
                        if (!pick)
                                break;
                        drain_worker(e, pick, now);
                        done++;
                }
        }
        return done;
}

/* ---- crash back-off ---- */

static unsigned *failures_of(struct engine *e, unsigned slot) {
        if (slot >= e->n_failures) {
                unsigned *p = reallocarray(e->failures, slot + 1, sizeof(*p));
                if (!p)
                        oom();
                memset(p + e->n_failures, 0, (slot + 1 - e->n_failures) * sizeof(*p));
                e->failures = p;
                e->n_failures = slot + 1;
        }
        return &e->failures[slot];
}

static void reset_failures(struct engine *e) {
        free(e->failures);
        e->failures = NULL;
        e->n_failures = 0;
        e->worst_failures = e->worst_failure_slot = 0;
}

/* The slot with the most crashes in a row, for the status line: found again at each
 * crash (a count may drop to 0 then), not at each status line. */
static void find_worst_failures(struct engine *e) {
        e->worst_failures = e->worst_failure_slot = 0;
        for (size_t i = 0; i < e->n_failures; i++)
                if (e->failures[i] > e->worst_failures) {
                        e->worst_failures = e->failures[i];
                        e->worst_failure_slot = (unsigned) i;
                }
}

static uint64_t backoff_for(unsigned failures) {
        uint64_t d = BACKOFF_MIN_USEC;
        for (unsigned i = 1; i < failures && d < BACKOFF_MAX_USEC; i++)
                d *= 2;
        return d < BACKOFF_MAX_USEC ? d : BACKOFF_MAX_USEC;
}

/* ---- slot health (watchdog, memory_max) ---- */

static struct slot_health *health_of(struct engine *e, unsigned slot) {
        if (slot >= e->n_health) {
                struct slot_health *p = reallocarray(e->health, slot + 1, sizeof(*p));
                if (!p)
                        oom();
                memset(p + e->n_health, 0, (slot + 1 - e->n_health) * sizeof(*p));
                e->health = p;
                e->n_health = slot + 1;
        }
        return &e->health[slot];
}

static void reset_health(struct engine *e) {
        free(e->health);
        e->health = NULL;
        e->n_health = 0;
        e->health_notable = 0;
}

/* Whether the status line may say something about this slot's health. */
static bool health_notable(const struct slot_health *h) {
        return h->watchdog_pid > 0 || h->memory_failed > 0 || h->memory_loop;
}

/* Around every change of a slot's health: keeps health_notable, so that the status line
 * looks at the slots only while one of them has something to show. */
static void health_changed(struct engine *e, bool was_notable, const struct slot_health *h) {
        e->health_notable = e->health_notable - was_notable + health_notable(h);
}

/* memory_max: W is (ID != 0) or is no longer (ID = 0) the replacement for worker ID.
 * Counted, so that the searches below cost nothing while no replacement runs. */
static void set_replaces(struct engine *e, struct engine_worker *w, uint64_t id) {
        e->n_replacing = e->n_replacing - (w->replaces != 0) + (id != 0);
        w->replaces = id;
}

/* The worker starting in place of worker ID (memory_max), if any. */
static struct engine_worker *replacement_of(struct engine *e, uint64_t id) {
        if (e->n_replacing == 0)
                return NULL;
        e->worker_visits += e->n_workers;
        for (size_t i = 0; i < e->n_workers; i++)
                if (e->workers[i].replaces == id && e->workers[i].state != WORKER_DRAINING)
                        return &e->workers[i];
        return NULL;
}

/* Before anything that counts or replaces the current generation's workers (an upgrade,
 * a restart, scaling): a replacement still starting would be one worker too many. It
 * drains, and the worker it was for serves on (an upgrade replaces it anyway; otherwise
 * the next sample asks again). */
static void abandon_replacements(struct engine *e, uint64_t now) {
        if (e->n_replacing == 0)
                return;
        e->worker_visits += e->n_workers;
        for (size_t i = 0; i < e->n_workers; i++) {
                struct engine_worker *w = &e->workers[i];
                if (w->replaces == 0)
                        continue;
                set_replaces(e, w, 0);
                drain_worker(e, w, now);
        }
}

/* WHY is the failure, kept for the start timeout's reason while the first generation has
 * never been fully ready. */
static void schedule_respawn(struct engine *e, const struct engine_worker *w, const char *why, uint64_t now) {
        unsigned *f = failures_of(e, w->slot);
        if (w->state == WORKER_READY && now - w->ready_usec >= BACKOFF_RESET_USEC)
                *f = 0;
        (*f)++;
        find_worst_failures(e);
        if (!e->ready_sent) {
                e->start_failures++;
                set_reason(e->start_last_failure, sizeof(e->start_last_failure), "%s", why);
        }
        if (!engine_grow((void **) &e->respawns, &e->allocated_respawns, e->n_respawns + 1, sizeof(*e->respawns)))
                oom();
        e->respawns[e->n_respawns++] =
                (struct respawn){ .slot = w->slot, .at_usec = now + backoff_for(*f), .restarts = w->restarts };
}

/* ---- upgrades ---- */

static void finish_upgrade(struct engine *e, bool success, const char *reason) {
        uint64_t generation = e->candidate.number;
        if (success) {
                free(e->previous_target);
                e->previous_target = TAKE_PTR(e->current.target);
                generation_clear(&e->current);
                e->current = e->candidate;
                e->candidate = (struct generation){};
                reset_failures(e);
                reset_health(e);
                e->n_respawns = 0;
                e->failure_status[0] = 0;
                set_reason(e->last_result, sizeof(e->last_result), "success");
                e->state = ENGINE_RUNNING;
        } else {
                set_reason(e->last_result, sizeof(e->last_result), "failed: %s", reason);
                set_reason(e->failure_status, sizeof(e->failure_status), "Upgrade to generation %llu failed: %s; ",
                           (unsigned long long) generation, reason);
                generation_clear(&e->candidate);
                e->state = e->ready_sent ? ENGINE_RUNNING : ENGINE_STARTING;
        }
        /* READY=1 ends systemd's reloading state, success or not, and goes before the
         * finished action so that the status is current when a waiting caller returns.
         * While the first generation is still starting, the service is not ready yet,
         * whatever became of this upgrade. */
        if (e->state == ENGINE_RUNNING && !e->ready_sent)
                push_action(e, ACTION_READY); /* the first time any generation is fully ready */
        if (e->state == ENGINE_RUNNING)
                notify_ready(e);
        else
                push_notify(e, true);
        struct engine_action *a = push_action(e, ACTION_UPGRADE_FINISHED);
        a->generation = generation;
        a->success = success;
        a->hook_failed = !success && e->hook_failed;
        e->hook_failed = false;
        if (!success)
                set_reason(a->reason, sizeof(a->reason), "%s", reason);
}

static void check_started(struct engine *e);

static void rollback_progress(struct engine *e) {
        if (e->state != ENGINE_ROLLING_BACK)
                return;
        if (e->rollback_starting > 0)
                return;
        /* Once per rollback: the rest of them are ready by now. */
        for (size_t i = 0; i < e->n_workers; i++) {
                e->worker_visits++;
                e->workers[i].for_rollback = false;
        }
        finish_upgrade(e, false, e->rollback_reason);
        /* The first generation may have become ready while the upgrade ran. */
        check_started(e);
}

static void rollback(struct engine *e, uint64_t now, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void rollback(struct engine *e, uint64_t now, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->rollback_reason, sizeof(e->rollback_reason), fmt, ap);
        va_end(ap);

        e->state = ENGINE_ROLLING_BACK;
        e->worker_visits += e->n_workers;
        for (size_t i = 0; i < e->n_workers; i++)
                if (e->workers[i].generation == e->candidate.number)
                        drain_worker(e, &e->workers[i], now);

        fill_current(e, count_active(e, e->current.number), e->current.settings.workers, true, now);
        rollback_progress(e);
}

/* The canary is the first batch of the candidate: while every one of its workers is
 * ready but not yet for stable_time, nothing old drains and no next batch starts. Returns
 * the instant the wait ends, USEC_INFINITY when there is no such wait now (no upgrade,
 * the batch still starting, or the canary already passed). */
static uint64_t canary_until(const struct engine *e) {
        if (e->state != ENGINE_UPGRADING || e->preparing || e->canary_passed)
                return USEC_INFINITY;
        uint64_t cand = e->candidate.number;
        unsigned started = count_active(e, cand), ready = count_in_state(e, cand, WORKER_READY);
        if (started == 0 || ready < started)
                return USEC_INFINITY;
        /* A candidate's ready worker that leaves fails the upgrade: the latest ready_usec
         * ever seen is the latest of those ready now. */
        return e->candidate_last_ready + e->candidate.settings.stable_time_usec;
}

static void upgrade_progress(struct engine *e, uint64_t now) {
        if (e->state != ENGINE_UPGRADING || e->preparing)
                return;
        const struct engine_settings *s = &e->candidate.settings;
        uint64_t cand = e->candidate.number;
        unsigned started = count_active(e, cand);
        unsigned ready = count_in_state(e, cand, WORKER_READY);
        unsigned batch = s->strategy == STRATEGY_ROLLING ? s->batch : s->workers;

        if (s->strategy == STRATEGY_RESTART && count_generation(e, e->current.number) > 0)
                return; /* the old code must be gone before the new one starts */

        if (ready < started)
                return; /* a batch is still starting */

        /* A release that says READY=1 and dies a moment later must be caught while the
         * old workers still serve at full strength. The timer brings us back. */
        if (started > 0 && !e->canary_passed) {
                if (now < canary_until(e))
                        return;
                e->canary_passed = true;
        }

        if (s->strategy == STRATEGY_ROLLING && ready > e->credited) {
                drain_current(e, (unsigned) (ready - e->credited), now);
                e->credited = ready;
        }

        if (ready >= s->workers) {
                drain_current(e, count_active(e, e->current.number), now);
                finish_upgrade(e, true, NULL);
                return;
        }

        unsigned n = s->workers - started < batch ? s->workers - started : batch;
        for (unsigned i = 0; i < n; i++)
                spawn_worker(e, &e->candidate, next_candidate_slot(e), now);
}

int64_t engine_check_upgrade(const struct engine *e) {
        if (e->state == ENGINE_STOPPING || e->state == ENGINE_STOPPED)
                return -ESHUTDOWN;
        /* Allowed while the first generation is still starting too: when the deployed code
         * crash-loops, an upgrade to a fixed version is the way out. */
        if (e->state != ENGINE_RUNNING && e->state != ENGINE_STARTING)
                return -EBUSY;
        if (e->last_generation >= INT64_MAX)
                return -EOVERFLOW;
        return (int64_t) (e->last_generation + 1);
}

int64_t engine_prepare_upgrade(struct engine *e) {
        return engine_prepare_upgrade_at(e, e->now);
}

int64_t engine_prepare_upgrade_at(struct engine *e, uint64_t now) {
        int64_t r = engine_check_upgrade(e);
        if (r < 0)
                return r;
        e->state = ENGINE_UPGRADING;
        e->preparing = true;
        e->hook_failed = false;
        e->failure_status[0] = 0;
        /* systemd's reloading state covers the whole request, the hook included. */
        e->now = now;
        struct engine_notify *n = push_notify(e, false);
        n->reloading = true;
        n->reloading_usec = now;
        return r;
}

void engine_abort_upgrade(struct engine *e, const char *reason) {
        if (!e->preparing)
                return;
        e->preparing = false;
        e->candidate.number = e->last_generation + 1; /* for the finished action; not used up */
        finish_upgrade(e, false, reason);
        check_started(e);
}

void engine_hook_failed(struct engine *e, const char *reason) {
        if (!e->preparing)
                return;
        e->hook_failed = true;
        engine_abort_upgrade(e, reason);
}

void engine_upgrade_refused(struct engine *e, const char *reason) {
        engine_upgrade_refused_at(e, e->now, reason);
}

void engine_upgrade_refused_at(struct engine *e, uint64_t now, const char *reason) {
        e->now = now;
        if (e->state == ENGINE_STOPPING || e->state == ENGINE_STOPPED)
                return;
        set_reason(e->failure_status, sizeof(e->failure_status), "%s; ", reason);
        /* It leads the status line: a sentence. */
        if (e->failure_status[0] >= 'a' && e->failure_status[0] <= 'z')
                e->failure_status[0] = (char) (e->failure_status[0] - 'a' + 'A');
        /* With Type=notify-reload, a SIGHUP that sends no RELOADING=1 and READY=1 would
         * leave the unit reloading until its timeout. But READY=1 before the first
         * generation is ready would tell systemd the service started with no worker
         * ready: then only the status changes. */
        struct engine_notify *n = push_notify(e, false);
        n->reloading = true;
        n->reloading_usec = now;
        if (e->ready_sent)
                notify_ready(e);
        else
                push_notify(e, true);
}

int engine_start_upgrade(struct engine *e, uint64_t now, const char *target, const struct engine_settings *settings) {
        e->now = now;
        if (!e->preparing)
                return -EBUSY;
        if (!target || !settings_valid(settings))
                return -EINVAL;
        char *t = strdup(target);
        if (!t)
                return -ENOMEM;
        e->preparing = false;
        abandon_replacements(e, now);
        e->candidate = (struct generation){ .number = ++e->last_generation, .target = t, .settings = *settings };
        e->candidate_slots = 0;
        e->candidate_last_ready = 0;
        e->credited = 0;
        e->canary_passed = settings->stable_time_usec == 0;
        struct engine_action *a = push_action(e, ACTION_UPGRADE_STARTED);
        a->generation = e->candidate.number;

        if (settings->strategy == STRATEGY_RESTART)
                drain_current(e, count_active(e, e->current.number), now);
        upgrade_progress(e, now);
        return 0;
}

int engine_cancel(struct engine *e, uint64_t now) {
        e->now = now;
        if (e->state != ENGINE_UPGRADING)
                return -ENOENT;
        if (e->preparing)
                push_action(e, ACTION_CANCEL_HOOK);
        else
                rollback(e, now, "cancelled");
        return 0;
}

/* ---- lifecycle ---- */

int engine_start(struct engine *e, uint64_t now, uint64_t generation, const char *target,
                 const struct engine_settings *settings) {
        e->now = now;
        if (e->state != ENGINE_STOPPED || e->current.number != 0)
                return -EBUSY;
        if (!target || !settings_valid(settings) || generation == 0 || generation > INT64_MAX)
                return -EINVAL;
        char *t = strdup(target);
        if (!t)
                return -ENOMEM;
        e->current = (struct generation){ .number = generation, .target = t, .settings = *settings };
        e->last_generation = generation;
        e->state = ENGINE_STARTING;
        e->start_deadline_usec = settings->start_timeout_usec > 0 ? now + settings->start_timeout_usec : USEC_INFINITY;
        for (unsigned i = 0; i < settings->workers; i++)
                spawn_worker(e, &e->current, i, now);
        return 0;
}

static void check_started(struct engine *e) {
        if (e->state == ENGINE_STARTING &&
            count_in_state(e, e->current.number, WORKER_READY) >= e->current.settings.workers) {
                e->state = ENGINE_RUNNING;
                set_reason(e->last_result, sizeof(e->last_result), "success");
                push_action(e, ACTION_READY);
                notify_ready(e);
        }
}

static void check_stopped(struct engine *e) {
        if (e->state == ENGINE_STOPPING && e->n_workers == 0) {
                e->state = ENGINE_STOPPED;
                struct engine_action *a = push_action(e, ACTION_EXIT);
                a->success = !e->exit_reason[0];
                set_reason(a->reason, sizeof(a->reason), "%s", e->exit_reason);
        }
}

/* "90s", "1500ms": the start bound as the user wrote it, near enough. */
static void format_duration(char *buf, size_t size, uint64_t usec) {
        if (usec % USEC_PER_SEC == 0)
                set_reason(buf, size, "%llus", (unsigned long long) (usec / USEC_PER_SEC));
        else
                set_reason(buf, size, "%llums", (unsigned long long) (usec / USEC_PER_MSEC));
}

/* The first generation missed start_timeout: give up, as systemd gives up on a service
 * that is not ready within TimeoutStartSec=, so that the supervisor exits non-zero and
 * releases the sockets (clients are refused instead of waiting in the backlog forever,
 * and a service manager may restart us). Workers that said they were ready may be
 * serving requests: they drain, bounded by their drain_timeout as in any stop. Workers
 * still starting have not said so, and are crashing or stuck: SIGKILL. */
static void start_timed_out(struct engine *e, uint64_t now) {
        const struct generation *g = &e->current;
        char after[32];
        format_duration(after, sizeof(after), g->settings.start_timeout_usec);
        set_reason(e->exit_reason, sizeof(e->exit_reason),
                   "Start timed out: generation %llu not ready after %s (%u/%u ready, %u crash%s%s%s)",
                   (unsigned long long) g->number, after, count_in_state(e, g->number, WORKER_READY),
                   g->settings.workers, e->start_failures, e->start_failures == 1 ? "" : "es",
                   e->start_last_failure[0] ? "; last: " : "", e->start_last_failure);
        set_reason(e->last_result, sizeof(e->last_result), "failed: %s", e->exit_reason);
        struct engine_action *a = push_action(e, ACTION_START_FAILED);
        a->generation = g->number;
        set_reason(a->reason, sizeof(a->reason), "%s", e->exit_reason);

        e->state = ENGINE_STOPPING;
        e->n_respawns = 0;
        e->worker_visits += e->n_workers;
        for (size_t i = 0; i < e->n_workers; i++) {
                struct engine_worker *w = &e->workers[i];
                /* One not forked yet drains instead: the drain signal follows its spawn
                 * report, and the SIGKILL its drain deadline. */
                if (w->state == WORKER_STARTING && w->pid > 0) {
                        set_state(e, w, WORKER_DRAINING);
                        set_deadline(e, w, now + w->drain_timeout_usec);
                        e->workers_version++;
                        kill_worker(e, w, "it was not ready when the start timed out");
                } else
                        drain_worker(e, w, now);
        }
        notify_stopping(e);
        check_stopped(e);
}

void engine_stop(struct engine *e, uint64_t now) {
        e->now = now;
        if (e->state == ENGINE_STOPPING || e->state == ENGINE_STOPPED)
                return;
        if (e->state == ENGINE_UPGRADING && e->preparing) {
                push_action(e, ACTION_CANCEL_HOOK);
                e->preparing = false;
                e->candidate.number = e->last_generation + 1;
        }
        if (e->state == ENGINE_UPGRADING || e->state == ENGINE_ROLLING_BACK)
                finish_upgrade(e, false, "the supervisor is stopping");
        e->state = ENGINE_STOPPING;
        e->n_respawns = 0;
        e->worker_visits += e->n_workers;
        for (size_t i = 0; i < e->n_workers; i++)
                drain_worker(e, &e->workers[i], now);
        notify_stopping(e);
        check_stopped(e);
}

int engine_restart(struct engine *e, uint64_t now) {
        e->now = now;
        if (e->state != ENGINE_RUNNING)
                return -EBUSY;
        abandon_replacements(e, now);
        e->worker_visits += e->n_workers;
        for (size_t i = 0; i < e->n_workers; i++) {
                struct engine_worker *w = &e->workers[i];
                if (w->generation != e->current.number || w->state == WORKER_DRAINING)
                        continue;
                w->respawn_now = true;
                kill_worker(e, w, "restart requested");
        }
        reset_failures(e);
        reset_health(e);
        while (e->n_respawns > 0) {
                struct respawn r = e->respawns[--e->n_respawns];
                refill_slot(e, r.slot, r.restarts, now);
        }
        return 0;
}

int engine_set_workers(struct engine *e, uint64_t now, unsigned count) {
        e->now = now;
        if (count == 0)
                return -EINVAL;
        if (e->state != ENGINE_RUNNING)
                return -EBUSY;
        abandon_replacements(e, now);
        unsigned active = count_active(e, e->current.number);
        e->current.settings.workers = count;
        if (count > active)
                fill_current(e, active, count, false, now);
        else if (count < active)
                drain_current(e, active - count, now);
        return 0;
}

/* ---- health: watchdog and memory_max ---- */

static struct engine_action *push_health(struct engine *e, const struct engine_worker *w) {
        struct engine_action *a = push_action(e, ACTION_WORKER_HEALTH);
        a->pid = w->pid;
        a->generation = w->generation;
        a->slot = w->slot;
        return a;
}

/* "256 MiB", "256.5 MiB", "900 KiB": what a user wrote as memory_max, near enough. */
static void format_size(char *buf, size_t size, uint64_t bytes) {
        if (bytes >= (1ULL << 20) && bytes % (1ULL << 20) == 0)
                set_reason(buf, size, "%llu MiB", (unsigned long long) (bytes >> 20));
        else if (bytes >= (1ULL << 20))
                set_reason(buf, size, "%.1f MiB", (double) bytes / (1ULL << 20));
        else if (bytes >= 1024)
                set_reason(buf, size, "%llu KiB", (unsigned long long) (bytes >> 10));
        else
                set_reason(buf, size, "%llu B", (unsigned long long) bytes);
}

/* DEAD (a copy, taken before it changed) leaves its slot: a replacement already starting
 * for it takes the slot over; else the slot is respawned with the crash back-off. */
static void leave_slot(struct engine *e, const struct engine_worker *dead, const char *why, uint64_t now) {
        struct engine_worker *r = replacement_of(e, dead->id);
        if (r)
                set_replaces(e, r, 0);
        else
                schedule_respawn(e, dead, why, now);
}

/* A replacement for memory_max never became ready: the worker it was for serves on (a
 * leak is no reason for a gap), and the slot waits before the next try. */
static void replacement_failed(struct engine *e, const struct engine_worker *dead, const char *why, uint64_t now) {
        struct slot_health *h = health_of(e, dead->slot);
        bool was_notable = health_notable(h);
        uint64_t wait = MEMORY_RETRY_USEC;
        for (unsigned i = 0; i < h->memory_failed && wait < MEMORY_HOLDOFF_USEC; i++)
                wait *= 2;
        if (wait > MEMORY_HOLDOFF_USEC)
                wait = MEMORY_HOLDOFF_USEC;
        h->memory_failed++;
        h->memory_holdoff_until = now + wait;
        h->memory_loop = false;
        health_changed(e, was_notable, h);
        const struct engine_worker *old = find_by_id(e, dead->replaces);
        char after[32];
        format_duration(after, sizeof(after), wait);
        struct engine_action *a = push_health(e, dead);
        set_reason(a->reason, sizeof(a->reason),
                   "memory_max: the replacement for worker %d failed (%s); it keeps serving, next try in %s",
                   old ? (int) old->pid : 0, why, after);
}

/* W missed its watchdog (or asked for it with WATCHDOG=trigger). SIGABRT and SIGCONT (a
 * stopped process does not die of SIGABRT until it is continued) go where kill_mode
 * says, SIGKILL to the group WATCHDOG_KILL_USEC later. The worker stops counting as
 * ready: a candidate fails its upgrade, a worker of the current generation has its slot
 * refilled as after a crash (with the crash back-off). A draining worker keeps its
 * watchdog, as systemd keeps a service's while it stops: one that hangs on its way out
 * is found before drain_timeout, with a stack trace. */
static void watchdog_missed(struct engine *e, struct engine_worker *w, bool triggered, uint64_t now) {
        char why[256], after[32];
        format_duration(after, sizeof(after), w->watchdog_usec);
        set_reason(why, sizeof(why), "watchdog timeout: worker %d (generation %llu, slot %u) %s%s", (int) w->pid,
                   (unsigned long long) w->generation, w->slot,
                   triggered ? "sent WATCHDOG=trigger" : "sent no WATCHDOG=1 for ", triggered ? "" : after);
        bool group = w->kill_mode == KILL_MODE_GROUP;
        set_watchdog_deadline(e, w, USEC_INFINITY);
        w->aborted = true;
        struct engine_action *a = push_signal(e, w->pid, SIGABRT, group, SIGNAL_ABORT);
        if (a)
                set_reason(a->reason, sizeof(a->reason), "%s", why);
        push_signal(e, w->pid, SIGCONT, group, SIGNAL_RESUME);

        uint64_t kill_at = now + WATCHDOG_KILL_USEC;
        if (w->state == WORKER_DRAINING) {
                if (kill_at < w->deadline_usec)
                        set_deadline(e, w, kill_at);
                return;
        }
        struct engine_worker dead = *w; /* as it was, for the back-off; target is not used */
        set_state(e, w, WORKER_DRAINING);
        w->respawn_now = w->for_rollback = false;
        e->workers_version++;
        set_deadline(e, w, kill_at);
        set_replaces(e, w, 0);

        const struct generation *g = generation_of(e, dead.generation);
        if (g && g == &e->candidate && e->state == ENGINE_UPGRADING) {
                rollback(e, now, "%s", why);
                return;
        }
        if (dead.replaces)
                replacement_failed(e, &dead, why, now);
        else if (g == &e->current && e->state != ENGINE_STOPPING) {
                struct slot_health *h = health_of(e, dead.slot);
                bool was_notable = health_notable(h);
                h->watchdog_pid = dead.pid;
                health_changed(e, was_notable, h);
                leave_slot(e, &dead, why, now);
        }
        rollback_progress(e);
        upgrade_progress(e, now);
}

void engine_worker_watchdog(struct engine *e, pid_t pid, uint64_t now) {
        e->now = now;
        struct engine_worker *w = find_by_pid(e, pid);
        if (w && w->watchdog_deadline_usec != USEC_INFINITY && !w->aborted && !w->killed)
                set_watchdog_deadline(e, w, now + w->watchdog_usec);
}

void engine_worker_watchdog_trigger(struct engine *e, pid_t pid, uint64_t now) {
        e->now = now;
        struct engine_worker *w = find_by_pid(e, pid);
        if (w && w->watchdog_usec > 0 && !w->aborted && !w->killed)
                watchdog_missed(e, w, true, now);
}

/* systemd's WATCHDOG_USEC=: the worker's own timeout from now on; 0 turns its watchdog
 * off. Only for a generation with a watchdog: watchdog = 0 must leave no deadline. */
void engine_worker_watchdog_usec(struct engine *e, pid_t pid, uint64_t usec, uint64_t now) {
        e->now = now;
        struct engine_worker *w = find_by_pid(e, pid);
        if (!w || w->watchdog_usec == 0 || w->aborted || w->killed)
                return;
        if (usec == 0) {
                set_watchdog_deadline(e, w, USEC_INFINITY);
                return;
        }
        w->watchdog_usec = usec < WATCHDOG_MAX_USEC ? usec : WATCHDOG_MAX_USEC;
        set_watchdog_deadline(e, w, now + w->watchdog_usec);
}

/* memory_max acts only while the current generation serves: during the start there is
 * nothing to keep serving in its place, and during an upgrade the old workers drain
 * anyway while the candidates' memory is judged once they are the current generation. */
bool engine_wants_memory(const struct engine *e) {
        return e->state == ENGINE_RUNNING && e->current.settings.memory_max > 0;
}

uint64_t engine_get_memory_replacements(const struct engine *e) {
        return e->memory_replacements;
}

/* A fat worker is replaced without a gap, the other way round from PM2's
 * max_memory_restart: a new worker for the same slot starts first, and the fat one
 * drains only when the new one is ready (mark_ready()). */
void engine_worker_memory(struct engine *e, pid_t pid, uint64_t bytes, uint64_t now) {
        e->now = now;
        struct engine_worker *w = find_by_pid(e, pid);
        uint64_t max = e->current.settings.memory_max;
        if (!w || !engine_wants_memory(e) || w->generation != e->current.number || w->state != WORKER_READY ||
            bytes <= max || replacement_of(e, w->id))
                return;
        struct slot_health *h = health_of(e, w->slot);
        if (now < h->memory_holdoff_until)
                return;
        bool was_notable = health_notable(h);
        if (h->memory_attempts == 0 || now - h->memory_window_start >= MEMORY_WINDOW_USEC) {
                h->memory_window_start = now;
                h->memory_attempts = 0;
        }
        char used[32], limit[32], window[32];
        format_size(used, sizeof(used), bytes);
        format_size(limit, sizeof(limit), max);
        format_duration(window, sizeof(window), MEMORY_WINDOW_USEC);
        struct engine_action *a = push_health(e, w);
        if (h->memory_attempts >= MEMORY_BURST) {
                char holdoff[32];
                format_duration(holdoff, sizeof(holdoff), MEMORY_HOLDOFF_USEC);
                set_reason(a->reason, sizeof(a->reason),
                           "memory_max exceeded: %s > %s, but slot %u was replaced %u times within %s: not "
                           "replacing worker %d for %s (is memory_max too low for this release?)",
                           used, limit, w->slot, h->memory_attempts, window, (int) w->pid, holdoff);
                h->memory_holdoff_until = now + MEMORY_HOLDOFF_USEC;
                h->memory_loop = true;
                h->memory_attempts = 0;
                health_changed(e, was_notable, h);
                return;
        }
        h->memory_attempts++;
        h->memory_loop = false;
        health_changed(e, was_notable, h);
        e->memory_replacements++;
        set_reason(a->reason, sizeof(a->reason),
                   "memory_max exceeded: %s > %s, replacing worker %d (slot %u, replacement %u within %s)", used, limit,
                   (int) w->pid, w->slot, h->memory_attempts, window);
        uint64_t fat = w->id;
        set_replaces(e, refill_slot(e, w->slot, w->restarts, now), fat); /* w may have moved */
}

/* ---- events ---- */

void engine_worker_spawned(struct engine *e, uint64_t worker_id, pid_t pid, uint64_t now) {
        e->now = now;
        struct engine_worker *w = find_by_id(e, worker_id);
        if (!w)
                return;
        if (w->pid > 0)
                pid_map_remove(&e->by_pid, w->pid);
        w->pid = pid;
        if (pid > 0 && pid_map_put(&e->by_pid, pid, w->id) < 0)
                oom();
        e->workers_version++;
        /* systemd starts a service's watchdog at exec, before READY=1. */
        if (w->watchdog_usec > 0)
                w->watchdog_deadline_usec = now + w->watchdog_usec;
        deadlines_changed(e, w); /* with a pid, its deadlines count */
        /* Stopped, drained or rolled back before the fork happened: tell it now. */
        if (w->state == WORKER_DRAINING)
                signal_drain(e, w);
}

static void describe_exit(char *buf, size_t size, const struct engine_worker *w, bool signaled, int status) {
        if (signaled)
                set_reason(buf, size, "worker %d (generation %llu) was killed by signal %d (%s)", (int) w->pid,
                           (unsigned long long) w->generation, status, sigabbrev_np(status) ?: "unknown");
        else
                set_reason(buf, size, "worker %d (generation %llu) exited with status %d", (int) w->pid,
                           (unsigned long long) w->generation, status);
}

/* HINT, when not NULL, explains a worker that died before it was ready (the shell knows
 * things the engine does not, e.g. that the program cannot be preloaded). */
static void worker_gone(struct engine *e, struct engine_worker *w, const char *why, const char *hint, uint64_t now) {
        struct engine_worker dead = *w;
        bool candidate = e->candidate.number != 0 && dead.generation == e->candidate.number;
        remove_worker(e, w); /* frees dead.target; only scalar fields are used below */

        if (dead.state == WORKER_DRAINING) {
                /* Expected: nothing to replace. */
        } else if (candidate && e->state == ENGINE_UPGRADING) {
                bool starting = dead.state == WORKER_STARTING;
                rollback(e, now, "%s%s%s%s", why, starting ? " before it was ready" : "", starting && hint ? ": " : "",
                         starting && hint ? hint : "");
                return;
        } else if (dead.replaces) {
                replacement_failed(e, &dead, why, now);
        } else if (dead.generation == e->current.number && e->state != ENGINE_STOPPING) {
                if (dead.respawn_now)
                        refill_slot(e, dead.slot, dead.restarts, now);
                else
                        leave_slot(e, &dead, why, now);
        }
        rollback_progress(e);
        upgrade_progress(e, now);
        check_stopped(e);
}

void engine_worker_spawn_failed(struct engine *e, uint64_t worker_id, const char *why, uint64_t now) {
        e->now = now;
        struct engine_worker *w = find_by_id(e, worker_id);
        if (!w)
                return;
        char reason[512];
        set_reason(reason, sizeof(reason), "worker of generation %llu could not be started: %s",
                   (unsigned long long) w->generation, why);
        set_state(e, w, w->state == WORKER_DRAINING ? WORKER_DRAINING : WORKER_STARTING);
        worker_gone(e, w, reason, NULL, now);
}

void engine_worker_exited(struct engine *e, pid_t pid, bool signaled, int status, uint64_t now) {
        engine_worker_exited_hint(e, pid, signaled, status, NULL, now);
}

void engine_worker_exited_hint(struct engine *e, pid_t pid, bool signaled, int status, const char *hint, uint64_t now) {
        e->now = now;
        struct engine_worker *w = find_by_pid(e, pid);
        if (!w)
                return;
        char reason[512];
        describe_exit(reason, sizeof(reason), w, signaled, status);
        worker_gone(e, w, reason, hint, now);
}

static void mark_ready(struct engine *e, struct engine_worker *w, uint64_t now) {
        set_state(e, w, WORKER_READY);
        w->ready_usec = now;
        if (w->generation == e->candidate.number && now > e->candidate_last_ready)
                e->candidate_last_ready = now;
        e->workers_version++;
        set_deadline(e, w, USEC_INFINITY);
        struct engine_action *a = push_action(e, ACTION_WORKER_READY);
        a->pid = w->pid;
        a->generation = w->generation;
        a->slot = w->slot;
        if (w->generation == e->current.number) {
                /* A slot without a health record has nothing to clear: only slots that
                 * had a health event get one, so that the status line has few to look at. */
                if (w->slot < e->n_health) {
                        struct slot_health *h = &e->health[w->slot];
                        bool was_notable = health_notable(h);
                        h->watchdog_pid = 0;
                        if (w->replaces)
                                h->memory_failed = 0;
                        health_changed(e, was_notable, h);
                }
                if (w->replaces) {
                        /* The new worker serves: now the fat one may drain. */
                        struct engine_worker *fat = find_by_id(e, w->replaces);
                        set_replaces(e, w, 0);
                        if (fat && fat->state != WORKER_DRAINING) {
                                set_reason(push_health(e, w)->reason, sizeof(a->reason),
                                           "memory_max: worker %d is ready in place of worker %d, which drains now",
                                           (int) w->pid, (int) fat->pid);
                                drain_worker(e, fat, now);
                        }
                }
        }
        rollback_progress(e);
        upgrade_progress(e, now);
        check_started(e);
}

void engine_worker_ready(struct engine *e, pid_t pid, uint64_t now) {
        e->now = now;
        struct engine_worker *w = find_by_pid(e, pid);
        if (!w || w->state != WORKER_STARTING)
                return;
        const struct generation *g = generation_of(e, w->generation);
        if (!g || (g->settings.ready != READY_NOTIFY && g->settings.ready != READY_LISTEN))
                return;
        mark_ready(e, w, now);
}

static int compare_ids(const void *a, const void *b) {
        const struct engine_worker *x = a, *y = b;
        return x->id < y->id ? -1 : x->id > y->id;
}

void engine_rebuild_indexes(struct engine *e) {
        clear_indexes(e);
        /* The spawn order is the id order; a hand-over keeps it, but find_by_id() must be
         * able to rely on it whatever came in. */
        for (size_t i = 1; i < e->n_workers; i++)
                if (e->workers[i - 1].id > e->workers[i].id) {
                        qsort(e->workers, e->n_workers, sizeof(*e->workers), compare_ids);
                        break;
                }
        e->candidate_slots = 0;
        e->candidate_last_ready = 0;
        e->rollback_starting = 0;
        e->n_replacing = 0;
        for (size_t i = 0; i < e->n_workers; i++) {
                const struct engine_worker *w = &e->workers[i];
                bool candidate = e->candidate.number != 0 && w->generation == e->candidate.number;
                if (candidate && w->slot >= e->candidate_slots)
                        e->candidate_slots = w->slot + 1;
                if (candidate && w->state == WORKER_READY && w->ready_usec > e->candidate_last_ready)
                        e->candidate_last_ready = w->ready_usec;
                index_enter(e, w);
                e->rollback_starting += w->for_rollback && w->state == WORKER_STARTING;
                e->n_replacing += w->replaces != 0;
                if (w->pid > 0 && pid_map_put(&e->by_pid, w->pid, w->id) < 0)
                        oom();
                deadlines_changed(e, w);
        }
        find_worst_failures(e);
        e->health_notable = 0;
        for (size_t i = 0; i < e->n_health; i++)
                e->health_notable += health_notable(&e->health[i]);
        e->workers_version++;
}

uint64_t engine_get_workers_version(const struct engine *e) {
        return e->workers_version;
}

uint64_t engine_get_slot_steps(const struct engine *e) {
        return e->slot_steps;
}

uint64_t engine_get_worker_visits(const struct engine *e) {
        return e->worker_visits;
}

unsigned engine_count_upgrade(const struct engine *e, enum worker_state state) {
        if (e->candidate.number == 0 || e->preparing)
                return 0;
        return count_in_state(e, e->candidate.number, state);
}

uint64_t engine_get_upgrade_generation(const struct engine *e) {
        return e->preparing ? e->last_generation + 1 : e->candidate.number;
}

uint64_t engine_next_deadline(const struct engine *e) {
        uint64_t next = e->state == ENGINE_STARTING ? e->start_deadline_usec : USEC_INFINITY;
        /* Dropping stale heap entries changes no answer of the engine's: a const view. */
        struct engine *m = (struct engine *) e;
        const struct engine_worker *w = heap_first(m, &m->deadlines, false);
        if (w && w->deadline_usec < next)
                next = w->deadline_usec;
        w = heap_first(m, &m->watchdogs, true);
        if (w && w->watchdog_deadline_usec < next)
                next = w->watchdog_deadline_usec;
        for (size_t i = 0; i < e->n_respawns; i++)
                if (e->respawns[i].at_usec < next)
                        next = e->respawns[i].at_usec;
        uint64_t canary = canary_until(e);
        return canary < next ? canary : next;
}

void engine_timer(struct engine *e, uint64_t now) {
        e->now = now;
        /* Only in ENGINE_STARTING: an upgrade begun meanwhile (to replace crash-looping
         * code) runs to its end under its own bounds; if it fails, the engine is back
         * here with the deadline passed and gives up then. */
        if (e->state == ENGINE_STARTING && now >= e->start_deadline_usec)
                start_timed_out(e, now);

        /* Respawns first: they only add workers, which the loop below must then see. */
        for (size_t i = 0; i < e->n_respawns;) {
                if (e->respawns[i].at_usec > now) {
                        i++;
                        continue;
                }
                struct respawn r = e->respawns[i];
                e->respawns[i] = e->respawns[--e->n_respawns];
                refill_slot(e, r.slot, r.restarts, now);
        }

        /* Missed watchdogs before the deadlines below: a hung worker is not to be found
         * ready by its ready_delay. The earliest first; each clears its deadline. */
        for (struct engine_worker *w; (w = heap_first(e, &e->watchdogs, true)) && w->watchdog_deadline_usec <= now;)
                watchdog_missed(e, w, false, now);

        /* The earliest expiry first, one at a time: handling it may add or remove workers.
         * Each is taken off the heap; one that is left as it was (nothing to do for it)
         * goes back after the loop. */
        struct min_heap kept = {};
        for (struct engine_worker *w; (w = heap_first(e, &e->deadlines, false)) && w->deadline_usec <= now;) {
                min_heap_pop(&e->deadlines);
                const struct generation *g = generation_of(e, w->generation);
                if (w->state == WORKER_DRAINING) {
                        kill_worker(e, w,
                                    w->aborted ? "watchdog timeout: still there after SIGABRT"
                                               : "it did not exit in time");
                        continue;
                }
                if (w->state == WORKER_STARTING && g && g->settings.ready == READY_DELAY &&
                    now - w->started_usec >= g->settings.ready_delay_usec) {
                        mark_ready(e, w, now);
                        continue;
                }
                if (w->state != WORKER_STARTING) {
                        push_or_die(&kept, w->deadline_usec, w->id);
                        continue;
                }
                /* Not ready in time. */
                uint64_t timeout = g ? g->settings.ready_timeout_usec : 0;
                char why[256];
                set_reason(why, sizeof(why), "worker %d (generation %llu) was not ready within %llu ms", (int) w->pid,
                           (unsigned long long) w->generation, (unsigned long long) (timeout / USEC_PER_MSEC));
                if (g && g == &e->candidate && e->state == ENGINE_UPGRADING) {
                        rollback(e, now, "%s", why);
                } else {
                        /* Outside an upgrade there is nothing to roll back to: replace it. */
                        struct engine_worker dead = *w;
                        drain_worker(e, w, now);
                        kill_worker(e, w, "it was not ready in time");
                        if (dead.replaces)
                                replacement_failed(e, &dead, why, now);
                        else if (g == &e->current && e->state != ENGINE_STOPPING)
                                schedule_respawn(e, w, why, now);
                        rollback_progress(e);
                }
        }
        for (struct min_heap_entry k; min_heap_top(&kept, &k); min_heap_pop(&kept))
                push_or_die(&e->deadlines, k.key, k.id);
        min_heap_clear(&kept);

        /* The canary may have stayed up long enough. */
        upgrade_progress(e, now);
}

/* ---- views ---- */

enum engine_state engine_get_state(const struct engine *e) {
        return e->state;
}

const char *engine_state_to_string(enum engine_state s) {
        static const char *const names[] = {
                [ENGINE_STARTING] = "starting",   [ENGINE_RUNNING] = "running",
                [ENGINE_UPGRADING] = "upgrading", [ENGINE_ROLLING_BACK] = "rolling-back",
                [ENGINE_STOPPING] = "stopping",   [ENGINE_STOPPED] = "stopping",
        };
        return (unsigned) s < ELEMENTSOF(names) ? names[s] : "unknown";
}

const char *worker_state_to_string(enum worker_state s) {
        static const char *const names[] = {
                [WORKER_STARTING] = "starting",
                [WORKER_READY] = "ready",
                [WORKER_DRAINING] = "draining",
        };
        return (unsigned) s < ELEMENTSOF(names) ? names[s] : "unknown";
}

uint64_t engine_get_generation(const struct engine *e) {
        return e->current.number;
}

const char *engine_get_target(const struct engine *e) {
        return e->current.target ?: "";
}

const char *engine_get_previous_target(const struct engine *e) {
        return e->previous_target ?: "";
}

int engine_set_previous_target(struct engine *e, const char *previous) {
        char *p = NULL;
        if (previous && !(p = strdup(previous)))
                return -ENOMEM;
        free(e->previous_target);
        e->previous_target = p;
        return 0;
}

const char *engine_get_last_result(const struct engine *e) {
        return e->last_result;
}

unsigned engine_get_desired_workers(const struct engine *e) {
        return e->current.settings.workers;
}

static unsigned count_all_in_state(const struct engine *e, enum worker_state state) {
        unsigned n = 0;
        for (size_t i = 0; i < e->allocated_generations; i++)
                n += e->generations[i].in_state[state];
        return n;
}

unsigned engine_count_ready(const struct engine *e) {
        return count_all_in_state(e, WORKER_READY);
}

unsigned engine_count_draining(const struct engine *e) {
        return count_all_in_state(e, WORKER_DRAINING);
}

size_t engine_count_workers(const struct engine *e) {
        return e->n_workers;
}

bool engine_get_worker_at(const struct engine *e, size_t index, struct engine_worker *ret) {
        if (index >= e->n_workers)
                return false;
        *ret = e->workers[index];
        return true;
}

bool engine_get_worker(const struct engine *e, pid_t pid, struct engine_worker *ret) {
        const struct engine_worker *w = find_by_pid((struct engine *) e, pid);
        if (!w)
                return false;
        *ret = *w;
        return true;
}

static size_t append(char *buf, size_t size, size_t pos, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static size_t append(char *buf, size_t size, size_t pos, const char *fmt, ...) {
        if (pos >= size)
                return pos;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf + pos, size - pos, fmt, ap);
        va_end(ap);
        return n < 0 ? pos : pos + (size_t) n;
}

static void format_status(const struct engine *e, uint64_t now, char *buf, size_t size) {
        size_t p = 0;
        unsigned draining = engine_count_draining(e);
        uint64_t cur = e->current.number;

        if (size == 0)
                return;
        buf[0] = 0;
        switch (e->state) {
        case ENGINE_STARTING:
                p = append(buf, size, p, "Starting generation %llu (%s): %u/%u ready", (unsigned long long) cur,
                           engine_get_target(e), count_in_state(e, cur, WORKER_READY), e->current.settings.workers);
                break;
        case ENGINE_RUNNING:
                /* After a failure the line leads with it: "...failed: R; serving generation 3 (...)". */
                p = append(buf, size, p, "%s%serving generation %llu (%s): %u/%u ready", e->failure_status,
                           e->failure_status[0] ? "s" : "S", (unsigned long long) cur, engine_get_target(e),
                           count_in_state(e, cur, WORKER_READY), e->current.settings.workers);
                break;
        case ENGINE_UPGRADING:
                if (e->preparing)
                        p = append(buf, size, p, "Upgrading to generation %llu: running the pre-upgrade hook",
                                   (unsigned long long) (e->last_generation + 1));
                else {
                        p = append(buf, size, p, "Upgrading to generation %llu: %u/%u ready",
                                   (unsigned long long) e->candidate.number,
                                   count_in_state(e, e->candidate.number, WORKER_READY), e->candidate.settings.workers);
                        uint64_t canary = canary_until(e);
                        if (canary != USEC_INFINITY)
                                p = append(buf, size, p, ", canary stable in %.1fs",
                                           (double) (canary > now ? canary - now : 0) / USEC_PER_SEC);
                }
                break;
        case ENGINE_ROLLING_BACK:
                p = append(buf, size, p, "Upgrade to generation %llu failed: %s; rolling back to generation %llu",
                           (unsigned long long) e->candidate.number, e->rollback_reason, (unsigned long long) cur);
                break;
        case ENGINE_STOPPING:
        case ENGINE_STOPPED:
                /* A failed start leads the line: "Start timed out: ...; stopping: ...". */
                p = append(buf, size, p, "%s%s%ctopping: %u worker%s draining", e->exit_reason,
                           e->exit_reason[0] ? "; " : "", e->exit_reason[0] ? 's' : 'S', draining,
                           draining == 1 ? "" : "s");
                return;
        }
        if (draining > 0)
                p = append(buf, size, p, ", %u draining", draining);

        /* A crash loop shows as the slot with the most consecutive failures. */
        unsigned worst = e->worst_failures, worst_slot = e->worst_failure_slot;
        if (worst >= 2)
                for (size_t i = 0; i < e->n_respawns; i++)
                        if (e->respawns[i].slot == worst_slot) {
                                uint64_t wait = e->respawns[i].at_usec > now ? e->respawns[i].at_usec - now : 0;
                                p = append(buf, size, p, "; worker %u crashed %u times in a row, restarting in %.1fs",
                                           worst_slot, worst, (double) wait / USEC_PER_SEC);
                                break;
                        }

        /* Health: the first slot that has something to show. */
        for (size_t i = 0; e->health_notable > 0 && i < e->n_health; i++) {
                const struct slot_health *h = &e->health[i];
                double wait =
                        h->memory_holdoff_until > now ? (double) (h->memory_holdoff_until - now) / USEC_PER_SEC : 0;
                if (h->watchdog_pid > 0)
                        p = append(buf, size, p, "; watchdog timeout: worker %d (slot %zu) killed",
                                   (int) h->watchdog_pid, i);
                else if (wait > 0 && h->memory_loop)
                        p = append(buf, size, p,
                                   "; worker %zu exceeded memory_max more than %d times within %llus, not "
                                   "replacing it for %.0fs",
                                   i, MEMORY_BURST, (unsigned long long) (MEMORY_WINDOW_USEC / USEC_PER_SEC), wait);
                else if (wait > 0 && h->memory_failed > 0)
                        p = append(buf, size, p,
                                   "; replacing worker %zu (memory_max) failed %u times, retrying in %.0fs", i,
                                   h->memory_failed, wait);
                else
                        continue;
                break;
        }
        (void) p;
}

void engine_format_status(const struct engine *e, uint64_t now, char *buf, size_t size) {
        format_status(e, now, buf, size);
        /* Targets and a hook's reasons are any bytes, and the line is cut to BUF: what
         * goes to systemd (which drops a STATUS= that is not UTF-8) must stay valid. */
        utf8_sanitize_buffer(buf, size);
}
