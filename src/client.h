/* client.h: finding, connecting to and driving a running supervisor, shared by
 * liveswapctl and the seed-compatible client flags of liveswap (-u, -k, -d, -m), so that
 * both print the same progress and exit with the same codes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

/* Exit codes of the contract (section 5), one meaning each, for every command: */
#define CLIENT_EXIT_OK 0 /* done */
#define CLIENT_EXIT_FAILED 1 /* failed or rolled back, or refused for a reason of state (Busy) */
#define CLIENT_EXIT_USAGE 2 /* bad usage or an invalid argument (a bad target) */
#define CLIENT_EXIT_NOT_RUNNING 3 /* the instance is not running or cannot be reached */
#define CLIENT_EXIT_ACCESS 4 /* permission denied */

enum client_transport {
        CLIENT_TRANSPORT_AUTO, /* the private socket, else the user bus, else the system bus */
        CLIENT_TRANSPORT_USER, /* --user */
        CLIENT_TRANSPORT_SYSTEM, /* --system */
        CLIENT_TRANSPORT_REMOTE, /* -H [USER@]HOST: the system bus there, over ssh */
};

/* The first failure of a run, kept for --json: the one object printed on stdout then. */
struct client_failure {
        int exit; /* 0 until something failed */
        char *error; /* a stable machine name: "UpgradeFailed", "NotRunning", ... */
        char *reason; /* the text printed on stderr */
        char *instance; /* NULL when no instance was picked */
};

struct client_options {
        const char *program; /* names the messages: "liveswapctl", "liveswap" */
        struct client_failure *failure; /* where failures are recorded; may be NULL */
        const char *instance;
        enum client_transport transport;
        const char *host;
        bool json;
        bool no_wait;
};

/* One open connection to one instance. */
struct client {
        const struct client_options *options;
        sd_bus *bus;
        char *instance;
        char *destination; /* the well-known name on a bus; NULL peer-to-peer */
        char *where; /* "the private socket PATH", "the user bus", ... for messages */
};

/* Where an instance was seen. */
enum {
        CLIENT_SEEN_SOCKET = 1 << 0,
        CLIENT_SEEN_USER_BUS = 1 << 1,
        CLIENT_SEEN_SYSTEM_BUS = 1 << 2,
        CLIENT_SEEN_REMOTE = 1 << 3,
};

struct client_instance {
        char *name;
        char *socket; /* the private socket's path when CLIENT_SEEN_SOCKET */
        sd_bus *bus; /* the connection that found it there, reused to talk to it; or NULL */
        unsigned seen;
};

struct client_instance_list {
        struct client_instance *items;
        size_t n;
};

struct client_worker {
        uint32_t pid;
        uint64_t generation;
        char *state;
        char *target;
        uint64_t started_usec; /* CLOCK_MONOTONIC of the supervisor's host */
        /* From WorkerDetails, when the supervisor has it (has_details); memory_bytes and
         * cpu_usec are LIVESWAP_FIGURE_UNKNOWN when they could not be read. */
        bool has_details;
        uint32_t slot;
        uint64_t memory_bytes, cpu_usec;
        uint32_t restarts;
};

/* The supervisor's properties. */
struct client_status {
        char *instance, *state, *target, *previous_target, *last_result;
        uint64_t generation;
        uint32_t desired, ready, draining;
        /* The generation being built (UpgradeReadyWorkers, UpgradeStartingWorkers), when
         * the supervisor has them (has_upgrade_counts): else counted from workers. */
        uint32_t upgrade_ready, upgrade_starting;
        bool has_upgrade_counts;
        uint64_t upgrade_generation; /* UpgradeGeneration: 0 outside an upgrade, or from an older supervisor */
        struct client_worker *workers;
        size_t n_workers;
};

/* ---- client.c: finding and connecting ---- */

/* Every instance reachable with the options' transport (private sockets and both buses
 * for CLIENT_TRANSPORT_AUTO), sorted by name. Buses that do not exist are skipped. */
int client_find_instances(const struct client_options *o, struct client_instance_list *ret);
void client_instance_list_done(struct client_instance_list *l);
/* "private socket PATH, user bus" */
char *client_describe_seen(const struct client_instance *i);

/* Picks the instance (options->instance, $LIVESWAP_INSTANCE, else the only one running)
 * and connects to it. Prints one line saying why on failure. Returns 0 or a negative
 * errno; the exit code for a failure is client_exit_code_for_errno()'s (2 for a bad or
 * ambiguous name, 3 not running or unreachable, 4 permission denied). */
int client_open(struct client *c, const struct client_options *o);
/* Connects to the instance named by i, through where it was seen (on i's connection, taken
 * from it, when it has one). Quiet. */
int client_open_instance(struct client *c, const struct client_options *o, struct client_instance *i);
void client_close(struct client *c);
/* The supervisor's pid, as the kernel or the bus reports it. */
int client_supervisor_pid(const struct client *c, pid_t *ret);
/* Connects to the instance's private socket only (the supervisor asks this to learn
 * whether it already runs). Prints the reason on failure unless quiet. */
int client_connect(const char *instance, bool quiet, sd_bus **ret);

/* Calls METHOD of the supervisor with TYPES and the arguments that follow. On failure
 * prints one line naming the instance and the cause and returns its exit code; 0 on
 * success. */
int client_call(struct client *c, const char *method, sd_bus_message **ret_reply, const char *types, ...);
/* The same for a call already made: prints the error and returns its exit code. */
int client_report_error(const struct client *c, const sd_bus_error *error, int r);
/* Maps a D-Bus error of a method call to the exit codes above, and to the machine name
 * --json shows ("UpgradeFailed", "AccessDenied", "NotRunning", ...). */
int client_exit_code_for(const sd_bus_error *error, const char **ret_name);
/* The same for an errno of connecting or calling, without a D-Bus error. */
int client_exit_code_for_errno(int r, const char **ret_name);
/* "<N>" for a line of priority LEVEL on FD when FD is the service's journal stream
 * ($JOURNAL_STREAM: liveswap -u run as ExecReload=), else "": journald then files the
 * line at its level, as it does the supervisor's own. */
const char *client_line_prefix(int fd, int level);
/* Prints "PROGRAM: INSTANCE: " then the formatted text, once, to stderr, and records it
 * as the run's failure unless one is recorded already (its name then follows from the
 * exit code; client_fail() names it). */
void client_error(const struct client *c, const char *format, ...) __attribute__((format(printf, 2, 3)));
/* Prints "PROGRAM: [INSTANCE: ]" and the text to stderr, records the failure as EXIT and
 * ERROR (the first one of the run wins) and returns EXIT. */
int client_fail(const struct client_options *o, const char *instance, int exit, const char *error, const char *format,
                ...) __attribute__((format(printf, 5, 6)));
/* --json: the one object for a run that ends with EXIT (non-zero), on stdout:
 * {"instance":..,"success":false,"error":..,"reason":..,"exit_status":EXIT}. */
void client_failure_print_json(const struct client_failure *f, const char *instance, int exit);
void client_failure_done(struct client_failure *f);

/* ---- client-status.c: the properties ---- */

/* Reads every property. Returns CLIENT_EXIT_OK, or prints why and returns the exit code. */
int client_get_status(struct client *c, struct client_status *ret);
/* Updates s from an a{sv} of the supervisor's properties (GetAll's reply, or the second
 * argument of PropertiesChanged); unknown properties are skipped. */
int client_status_update(struct client_status *s, sd_bus_message *m);
void client_status_done(struct client_status *s);
/* Reads WorkerDetails (measured by the supervisor when read; not in GetAll) and adds the
 * figures to s's workers by pid. A supervisor without the property, or one that cannot
 * answer, leaves every has_details false: 0 all the same. A negative errno only when the
 * reply cannot be parsed. */
int client_get_worker_details(struct client *c, struct client_status *s);
/* Workers of GENERATION in STATE ("ready", "starting", "draining"). */
unsigned client_status_count(const struct client_status *s, uint64_t generation, const char *state);

/* ---- client-commands.c: the commands liveswap and liveswapctl share ---- */

/* Upgrade to TARGET ("" or NULL: reload). Relative targets are made absolute against the
 * caller's working directory. Waits with live progress unless options->no_wait.
 * Returns the exit code. */
int client_upgrade(struct client *c, const char *target);
/* Upgrade to the previous target; waits like client_upgrade(). */
int client_rollback(struct client *c);
/* Quit: drains every worker; waits until the supervisor is gone unless no_wait. */
int client_stop(struct client *c);
int client_restart(struct client *c);
int client_cancel(struct client *c);
int client_message(struct client *c, const char *text);
int client_scale(struct client *c, uint32_t count);
/* Reexecute, then waits (bounded) until the supervisor answers again, and prints the
 * Version before and after. */
int client_reexec(struct client *c);

/* ---- client-logs.c: liveswapctl logs ---- */

struct client_logs_options {
        bool follow;
        bool has_generation;
        uint64_t generation;
        pid_t pid; /* one worker's lines; 0 for all */
};

/* Execs journalctl with the matches for the options: the instance's unit (a user unit
 * with USER), one worker's _PID, or a generation's workers' _PIDs OR'ed with liveswap's
 * entries about it (LIVESWAP_GENERATION=). Returns only on failure, with the exit code. */
int client_logs(struct client *c, const struct client_logs_options *o);
/* The argument vector (pure): the final command, or with QUERY the lookup of a
 * generation's past WORKER_PIDs in JSON. */
int client_logs_argv(const char *unit, bool user, const struct client_logs_options *o, bool query, const pid_t *pids,
                     size_t n_pids, char ***ret);
/* Adds every "WORKER_PID":"N" of journalctl's JSON lines to PIDS (once each). */
int client_logs_parse_pids(const char *json_lines, pid_t **pids, size_t *n);
int client_logs_add_pid(pid_t **pids, size_t *n, pid_t pid);
/* Whether journalctl is on $PATH. */
bool client_logs_find_journalctl(void);
