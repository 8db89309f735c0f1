/* config.h: the settings of one supervisor, from /etc/liveswap/<instance>.conf and the
 * command line. Parsing is pure apart from reading the file: no global state. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum strategy {
        STRATEGY_ROLLING,
        STRATEGY_BLUE_GREEN,
        STRATEGY_RESTART,
};

enum ready_mode {
        READY_DELAY,
        READY_NOTIFY,
        READY_LISTEN, /* READY=1 from the adopt library at the app's listen() (contract section 9) */
};

/* Who gets the drain signal (and the SIGCONT after it), in systemd's KillMode= words. The
 * SIGKILL at drain_timeout and the cleanup when a worker exits go to the whole group in
 * both modes. */
enum kill_mode {
        KILL_MODE_GROUP, /* the worker's process group (KillMode=control-group) */
        KILL_MODE_MIXED, /* its main process only: a prefork master drains its children */
};

struct config {
        /* [worker] */
        char *target; /* NULL when unset */
        char *exec; /* command for a directory target; default "./start" */
        unsigned workers; /* >= 1, default 2 */
        char **environment; /* NULL-terminated "KEY=VALUE" list, never NULL */
        char **environment_files; /* environment_file= paths as written ("-PATH": optional), never NULL */
        /* What a worker gets on top of the supervisor's environment: the files' variables
         * overlaid with environment=. Not from the file: the shell fills it at the start
         * and at every upgrade (envfile_resolve()); NULL until then. */
        char **worker_environment;
        bool adopt; /* preload libliveswap-adopt.so; default yes */
        uint64_t watchdog_usec; /* each worker must send WATCHDOG=1 this often; 0 = off (default) */
        uint64_t memory_max; /* bytes; a worker above it is replaced; 0 = off (default) */
        /* [upgrade] */
        enum strategy strategy; /* default rolling */
        unsigned batch; /* >= 1, default 1 */
        enum ready_mode ready; /* default delay */
        uint64_t ready_delay_usec; /* default 1s */
        uint64_t ready_timeout_usec; /* default 30s */
        uint64_t stable_time_usec; /* canary: default 1s; 0 = off */
        int drain_signal; /* default SIGTERM */
        uint64_t drain_timeout_usec; /* default 60s */
        enum kill_mode kill_mode; /* default group */
        uint64_t start_timeout_usec; /* default 90s; 0 = no bound */
        char *pre_upgrade; /* NULL when unset */
        uint64_t pre_upgrade_timeout_usec; /* default 300s */
        /* [control] */
        char **allow_users; /* NULL-terminated, never NULL; from a space/comma separated list */
        char **allow_groups; /* likewise */
        /* [state] */
        char *head; /* NULL when unset (the caller picks the default path) */
        /* [socket] */
        mode_t socket_mode; /* of the unix sockets liveswap binds itself; default 0666 */
};

/* The longest line config_load() takes, in bytes without its newline, and the largest
 * file. A reload parses in the event loop: a bound on the size is a bound on the pause
 * (parsing is linear, about 70 MB/s on one core of a small server). */
#define CONFIG_LINE_MAX 65536
#define CONFIG_FILE_MAX (16 << 20)

/* The most workers (and the largest batch) a configuration may ask for. */
#define CONFIG_COUNT_MAX 4096
/* The longest duration: the engine adds durations to a monotonic timestamp, so keep them
 * far from overflow, and treat anything longer than a year as the typo it is. */
#define CONFIG_DURATION_MAX_USEC (31557600ULL * 1000000ULL) /* systemd's year: 365.25 days */

/* Fills defaults. Returns 0 or -ENOMEM. */
int config_init(struct config *c);
void config_done(struct config *c);

/* Parses FILE into c (which config_init() prepared); keys not in the file keep their
 * current values. On a bad line returns -EINVAL and writes "FILE:LINE: message" to err
 * (the first error in the file). A file that cannot be opened or read gives a negative
 * errno and "FILE: <strerror>" in err. On any failure c is left exactly as it was.
 * Lines are at most CONFIG_LINE_MAX bytes (inih's own buffer is far smaller: longer
 * lines reach it as a placeholder, see read_line()); leading blanks are ignored, so
 * inih's continuation lines are not supported. Time is linear in the file's size. */
int config_load(struct config *c, const char *path, char *err, size_t errlen);

/* Whether ENTRY may be an environment entry: 0, -EINVAL for one that is not NAME=VALUE,
 * -EPERM for a name liveswap sets itself; REASON says why in words. */
int config_check_environment(const char *entry, const char **ret_reason);

/* Deep copy (for the settings a generation was started with). */
int config_copy(struct config *dst, const struct config *src);

/* Whether a variable of that name is liveswap's to set for each worker (LISTEN_FDS,
 * NOTIFY_SOCKET, LIVESWAP_GENERATION, ...): neither environment= nor a file may. */
bool config_variable_reserved(const char *name, size_t len);

/* systemd's time syntax (systemd.time(7)): "250ms", "1.5s", "10sec", "2min", "1min 30s",
 * "1h"; a bare number alone is seconds; no sign, no exponent; digits below a microsecond
 * are dropped. Returns 0, -EINVAL, or -ERANGE above one year (365.25 days). */
int config_parse_duration(const char *s, uint64_t *ret_usec);
/* "SIGTERM", "TERM", "term", "15", "SIGRTMIN+2", "RTMAX-1". Any signal a process can
 * be sent (SIGKILL too: callers refuse what they cannot use). Returns 0 or -EINVAL. */
int config_parse_signal(const char *s, int *ret_signal);
/* Splits a command line like a shell with simple quoting ('...', "...", backslash;
 * inside "..." a backslash escapes only \ " $ ` and newline). No expansion of any kind.
 * Returns 0 with a NULL-terminated argv (at least one word, possibly ""), -EINVAL for an
 * empty command, an unclosed quote or a trailing backslash, or -ENOMEM. */
int config_split_command(const char *s, char ***ret_argv);

/* A size in bytes: a whole or decimal number with an optional K, M, G or T (powers of
 * 1024, as systemd's MemoryMax= counts them): "512M", "1.5G", "4096". Returns 0, -EINVAL,
 * or -ERANGE above SIZE_MAX_BYTES. */
#define SIZE_MAX_BYTES (1ULL << 50) /* 1 PiB: anything larger is a typo */
int config_parse_size(const char *s, uint64_t *ret_bytes);

/* An octal permission mode, "0666", "666", "0600": one to four octal digits, at most
 * 0777 (no setuid, setgid or sticky bit: they mean nothing on a socket). Returns 0 or
 * -EINVAL. */
int config_parse_mode(const char *s, mode_t *ret_mode);

const char *strategy_to_string(enum strategy s);
const char *ready_mode_to_string(enum ready_mode m);

/* Command-line settings; they override the config file at start and on every reload. */
struct config_overrides {
        const char *target;
        unsigned workers; /* 0 = unset */
        bool restart; /* -z */
        const char *pre_upgrade;
        const char *head;
        bool start_timeout_set; /* --start-timeout (0 is a value: no bound) */
        uint64_t start_timeout_usec;
        bool adopt_set; /* --adopt or --no-adopt */
        bool adopt;
        bool watchdog_set; /* --watchdog (0 is a value: off) */
        uint64_t watchdog_usec;
        bool memory_max_set; /* --memory-max (0 is a value: off) */
        uint64_t memory_max;
};

/* The defaults, then PATH (unless NULL), then the command line's OVERRIDES: the one place
 * that says which wins. Returns 0, -ENOMEM, or config_load()'s errors with ERR set. */
int config_load_merged(struct config *ret, const char *path, const struct config_overrides *overrides, char *err,
                       size_t errlen);
const char *kill_mode_to_string(enum kill_mode m);
