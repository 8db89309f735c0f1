/* config-state.c: the configuration in effect as text, and back, for a reexec (contract
 * section 11), in the same line format as the engine's state (state-text.h):
 *
 *     liveswap-config 1
 *     config workers=2 adopt=yes watchdog_usec=0 ... (every scalar, by its C name)
 *     config target="/srv/app v2"                    (each string, one a line; - = unset)
 *     environment value="NAME=VALUE"                 (in order, one a line)
 *     allow_users value="alice"
 *     allow_groups value="wheel"
 *     environment_file value="-/etc/default/app"     (as written)
 *     worker_environment value="NAME=VALUE"          (resolved at the last start/upgrade)
 *     end
 *
 * Why not the INI file the parser reads: a configuration in effect is the file merged
 * with the command line, and a target or HEAD given there may hold a newline, a leading
 * blank, quotes or " ;" (a comment to inih), none of which an INI value can carry; escapes
 * in the user's own file syntax would change what existing files mean (a backslash in a
 * path). The values are checked as strictly as the file parser checks them wherever the
 * command line is checked the same way (counts, durations, signals, environment), so a
 * hand-over cannot smuggle in a configuration that neither could produce.
 *
 * Versions and unknown fields: as engine-state.c says, and for the same reason. Pure: no
 * I/O, no syscalls. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "config-state.h"
#include "macro.h"
#include "state-text.h"

#define CONFIG_STATE_MAGIC "liveswap-config"
#define CONFIG_STATE_VERSION 1

#if defined(__x86_64__) || defined(__aarch64__)
_Static_assert(sizeof(struct config) == 192, "serialise the new config member in config-state.c");
#endif
_Static_assert(sizeof(mode_t) == sizeof(unsigned), "socket_mode is read as unsigned");

static const char *const strategy_names[] = {
        [STRATEGY_ROLLING] = "rolling",
        [STRATEGY_BLUE_GREEN] = "blue-green",
        [STRATEGY_RESTART] = "restart",
};
static const char *const ready_names[] = {
        [READY_DELAY] = "delay",
        [READY_NOTIFY] = "notify",
        [READY_LISTEN] = "listen",
};
static const char *const kill_mode_names[] = {
        [KILL_MODE_GROUP] = "group",
        [KILL_MODE_MIXED] = "mixed",
};

#define C(member, kind) STATE_FIELD(struct config, member, kind)
static const struct state_field config_fields[] = {
        C(workers, STATE_UINT),
        C(adopt, STATE_BOOL),
        C(watchdog_usec, STATE_TIME),
        C(memory_max, STATE_UINT),
        STATE_ENUM_FIELD(struct config, strategy, strategy_names),
        C(batch, STATE_UINT),
        STATE_ENUM_FIELD(struct config, ready, ready_names),
        C(ready_delay_usec, STATE_TIME),
        C(ready_timeout_usec, STATE_TIME),
        C(stable_time_usec, STATE_TIME),
        C(drain_signal, STATE_INT),
        C(drain_timeout_usec, STATE_TIME),
        STATE_ENUM_FIELD(struct config, kill_mode, kill_mode_names),
        C(start_timeout_usec, STATE_TIME),
        C(pre_upgrade_timeout_usec, STATE_TIME),
        C(socket_mode, STATE_UINT),
#define CONFIG_FIRST_STRING 16
        C(target, STATE_STRING),
        C(exec, STATE_STRING),
        C(pre_upgrade, STATE_STRING),
        C(head, STATE_STRING),
};
#undef C

/* A list entry (environment, allow_users, allow_groups): one record each. */
struct entry_record {
        char *value;
};
static const struct state_field entry_fields[] = {
        STATE_FIELD(struct entry_record, value, STATE_STRING),
};

static const struct {
        const char *kind;
        size_t offset;
} lists[] = {
        { "environment", offsetof(struct config, environment) },
        { "allow_users", offsetof(struct config, allow_users) },
        { "allow_groups", offsetof(struct config, allow_groups) },
        { "environment_file", offsetof(struct config, environment_files) },
        /* What the workers get now (the files as they were read at the last start or
         * upgrade): a reexec must not re-read them. Absent = NULL, which the shell reads
         * as environment= alone, the same thing when no file set anything. */
        { "worker_environment", offsetof(struct config, worker_environment) },
};

static char ***list_of(struct config *c, size_t i) {
        return (char ***) ((char *) c + lists[i].offset);
}

int config_serialize(const struct config *c, char **ret_text) {
        struct state_writer w = {};
        state_write_header(&w, CONFIG_STATE_MAGIC, CONFIG_STATE_VERSION);
        state_write_record(&w, "config", c, config_fields, CONFIG_FIRST_STRING);
        for (size_t i = CONFIG_FIRST_STRING; i < ELEMENTSOF(config_fields); i++)
                state_write_record(&w, "config", c, &config_fields[i], 1);
        for (size_t i = 0; i < ELEMENTSOF(lists); i++)
                for (char **p = *list_of((struct config *) c, i); p && *p; p++) {
                        struct entry_record e = { .value = *p };
                        state_write_record(&w, lists[i].kind, &e, entry_fields, ELEMENTSOF(entry_fields));
                }
        return state_writer_finish(&w, ret_text);
}

static bool strv_equal(char *const *a, char *const *b) {
        size_t i = 0;
        for (; a && b && a[i] && b[i]; i++)
                if (strcmp(a[i], b[i]) != 0)
                        return false;
        return (!a || !a[i]) && (!b || !b[i]);
}

static bool string_equal(const char *a, const char *b) {
        return a == b || (a && b && strcmp(a, b) == 0);
}

bool config_equal(const struct config *a, const struct config *b) {
        return string_equal(a->target, b->target) && string_equal(a->exec, b->exec) && a->workers == b->workers &&
               strv_equal(a->environment, b->environment) && a->adopt == b->adopt &&
               a->watchdog_usec == b->watchdog_usec && a->memory_max == b->memory_max && a->strategy == b->strategy &&
               a->batch == b->batch && a->ready == b->ready && a->ready_delay_usec == b->ready_delay_usec &&
               a->ready_timeout_usec == b->ready_timeout_usec && a->stable_time_usec == b->stable_time_usec &&
               a->drain_signal == b->drain_signal && a->drain_timeout_usec == b->drain_timeout_usec &&
               a->kill_mode == b->kill_mode && a->start_timeout_usec == b->start_timeout_usec &&
               string_equal(a->pre_upgrade, b->pre_upgrade) &&
               a->pre_upgrade_timeout_usec == b->pre_upgrade_timeout_usec &&
               strv_equal(a->allow_users, b->allow_users) && strv_equal(a->allow_groups, b->allow_groups) &&
               string_equal(a->head, b->head) && a->socket_mode == b->socket_mode &&
               strv_equal(a->environment_files, b->environment_files) &&
               (!a->worker_environment) == (!b->worker_environment) &&
               strv_equal(a->worker_environment, b->worker_environment);
}

/* What config.c and the command line guarantee, checked again: the shell trusts a struct
 * config (it execs exec, sends drain_signal, adds the durations to timestamps). */
static int check_config(struct state_reader *r, const struct config *c) {
        if (c->workers < 1 || c->workers > CONFIG_COUNT_MAX || c->batch < 1 || c->batch > CONFIG_COUNT_MAX)
                return state_fail(r, -EINVAL, "config: workers and batch must be from 1 to %d", CONFIG_COUNT_MAX);
        const uint64_t durations[] = { c->watchdog_usec,           c->ready_delay_usec,   c->ready_timeout_usec,
                                       c->stable_time_usec,        c->drain_timeout_usec, c->start_timeout_usec,
                                       c->pre_upgrade_timeout_usec };
        for (size_t i = 0; i < ELEMENTSOF(durations); i++)
                if (durations[i] > CONFIG_DURATION_MAX_USEC)
                        return state_fail(r, -EINVAL, "config: a duration is longer than a year");
        if (c->ready_timeout_usec == 0 || c->pre_upgrade_timeout_usec == 0)
                return state_fail(r, -EINVAL, "config: ready_timeout and pre_upgrade_timeout must be longer than 0");
        if (c->watchdog_usec > 0 && c->watchdog_usec < USEC_PER_MSEC)
                return state_fail(r, -EINVAL, "config: watchdog is below 1ms");
        if (c->memory_max > SIZE_MAX_BYTES)
                return state_fail(r, -EINVAL, "config: memory_max is too large");
        if (c->drain_signal < 1 || c->drain_signal > 64 || c->drain_signal == SIGKILL || c->drain_signal == SIGSTOP)
                return state_fail(r, -EINVAL, "config: drain_signal %d cannot be a drain signal", c->drain_signal);
        if (c->socket_mode > 0777)
                return state_fail(r, -EINVAL, "config: socket_mode %#o is above 0777", (unsigned) c->socket_mode);
        _cleanup_strv_free_ char **argv = NULL;
        if (!c->exec || config_split_command(c->exec, &argv) < 0 || !argv[0][0])
                return state_fail(r, -EINVAL, "config: exec is not a command");
        for (char **p = c->environment; *p; p++) {
                const char *reason;
                if (config_check_environment(*p, &reason) < 0)
                        return state_fail(r, -EINVAL, "config: environment entry '%s': %s", *p, reason);
        }
        for (char **p = c->worker_environment; p && *p; p++) {
                const char *reason;
                if (config_check_environment(*p, &reason) < 0)
                        return state_fail(r, -EINVAL, "config: worker environment entry '%s': %s", *p, reason);
        }
        return 0;
}

static int append_entry(char ***list, size_t *n, char *value) {
        char **p = reallocarray(*list, *n + 2, sizeof(char *));
        if (!p)
                return -ENOMEM;
        *list = p;
        p[(*n)++] = value;
        p[*n] = NULL;
        return 0;
}

static int read_records(struct state_reader *r, struct config *c) {
        uint64_t seen = 0;
        size_t n_list[ELEMENTSOF(lists)] = {};
        char kind[32];
        int k;
        while ((k = state_next_record(r, kind, sizeof(kind))) > 0) {
                if (strcmp(kind, "config") == 0) {
                        if ((k = state_read_fields(r, c, config_fields, ELEMENTSOF(config_fields), &seen)) < 0)
                                return k;
                        continue;
                }
                size_t i = 0;
                while (i < ELEMENTSOF(lists) && strcmp(kind, lists[i].kind) != 0)
                        i++;
                if (i == ELEMENTSOF(lists))
                        return state_fail(r, -EINVAL, "unknown record '%s'", kind);
                struct entry_record e = {};
                uint64_t entry_seen = 0;
                if ((k = state_read_fields(r, &e, entry_fields, ELEMENTSOF(entry_fields), &entry_seen)) < 0 ||
                    (k = state_check_fields(r, kind, entry_fields, ELEMENTSOF(entry_fields), entry_seen)) < 0 ||
                    (!e.value && (k = state_fail(r, -EINVAL, "%s: the value is not set", kind)) < 0) ||
                    (k = append_entry(list_of(c, i), &n_list[i], e.value)) < 0) {
                        free(e.value);
                        return k;
                }
        }
        if (k < 0)
                return k;
        return state_check_fields(r, "config", config_fields, ELEMENTSOF(config_fields), seen);
}

int config_restore(const char *text, size_t size, struct config *ret, char *error, size_t error_size) {
        struct state_reader r;
        unsigned version;
        state_reader_init(&r, text, size, error, error_size);
        int k = state_read_header(&r, CONFIG_STATE_MAGIC, CONFIG_STATE_VERSION, &version);
        if (k < 0)
                return k;

        /* Every member comes from the text: start from nothing, with empty lists. */
        struct config c = {};
        c.environment = calloc(1, sizeof(char *));
        c.allow_users = calloc(1, sizeof(char *));
        c.allow_groups = calloc(1, sizeof(char *));
        c.environment_files = calloc(1, sizeof(char *));
        if (!c.environment || !c.allow_users || !c.allow_groups || !c.environment_files)
                k = -ENOMEM;
        if (k == 0)
                k = read_records(&r, &c);
        if (k == 0)
                k = check_config(&r, &c);
        if (k < 0) {
                if (k == -ENOMEM)
                        state_fail(&r, k, "out of memory");
                config_done(&c);
                return k;
        }
        *ret = c;
        return 0;
}
