/* config.h: the settings of one supervisor, from /etc/liveswap/<instance>.conf and the
 * command line. Parsing is pure apart from reading the file: no global state. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum strategy {
        STRATEGY_ROLLING,
        STRATEGY_BLUE_GREEN,
        STRATEGY_RESTART,
};

enum ready_mode {
        READY_DELAY,
        READY_NOTIFY,
};

struct config {
        /* [worker] */
        char *target;           /* NULL when unset */
        char *exec;             /* command for a directory target; default "./start" */
        unsigned workers;       /* >= 1, default 2 */
        char **environment;     /* NULL-terminated "KEY=VALUE" list, never NULL */
        /* [upgrade] */
        enum strategy strategy; /* default rolling */
        unsigned batch;         /* >= 1, default 1 */
        enum ready_mode ready;  /* default delay */
        uint64_t ready_delay_usec;   /* default 1s */
        uint64_t ready_timeout_usec; /* default 30s */
        int drain_signal;            /* default SIGTERM */
        uint64_t drain_timeout_usec; /* default 60s */
        char *pre_upgrade;           /* NULL when unset */
        uint64_t pre_upgrade_timeout_usec; /* default 300s */
        /* [control] */
        char **allow_users;  /* NULL-terminated, never NULL; from a space/comma separated list */
        char **allow_groups; /* likewise */
        /* [state] */
        char *head; /* NULL when unset (the caller picks the default path) */
};

/* Fills defaults. Returns 0 or -ENOMEM. */
int config_init(struct config *c);
void config_done(struct config *c);

/* Parses FILE into c (which config_init() prepared); keys not in the file keep their
 * current values. On a bad line returns -EINVAL and writes "FILE:LINE: message" to err.
 * A file that cannot be opened gives a negative errno and "FILE: <strerror>" in err. */
int config_load(struct config *c, const char *path, char *err, size_t errlen);

/* Deep copy (for the settings a generation was started with). */
int config_copy(struct config *dst, const struct config *src);

/* "250ms", "1s", "2min", "1.5s", bare number = seconds. Returns 0 or -EINVAL. */
int config_parse_duration(const char *s, uint64_t *ret_usec);
/* "SIGTERM", "TERM", "15". Returns 0 or -EINVAL. */
int config_parse_signal(const char *s, int *ret_signal);
/* Splits a command line like a shell with simple quoting ('...', "...", backslash).
 * Returns 0 with a NULL-terminated argv (at least one word), or -EINVAL. */
int config_split_command(const char *s, char ***ret_argv);

const char *strategy_to_string(enum strategy s);
const char *ready_mode_to_string(enum ready_mode m);
