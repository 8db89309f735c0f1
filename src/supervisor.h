/* supervisor.h: the one struct that ties the shell together: the event loop, the engine,
 * the sockets, the workers' fds, the control plane. No other global state exists. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "engine.h"
#include "leftovers.h"
#include "sockets.h"
#include "target.h"

/* Command-line settings; they override the config file at start and on every reload. */
struct cli_overrides {
        const char *target;
        unsigned workers; /* 0 = unset */
        bool restart; /* -z */
        const char *pre_upgrade;
        const char *head;
        bool start_timeout_set; /* --start-timeout (0 is a value: no bound) */
        uint64_t start_timeout_usec;
};

/* The shell's side of one worker: what the engine does not need to know. */
struct worker_io {
        pid_t pid;
        int control_fd;
        sd_event_source *child;
};

/* A D-Bus call waiting for the end of an upgrade. */
struct waiter {
        sd_bus_message *call;
        uint64_t generation;
};

struct bus_server;

struct supervisor {
        sd_event *event;
        struct engine *engine;
        char *instance;

        const char *config_path; /* NULL when running without a file */
        struct cli_overrides overrides;
        struct config config; /* the current generation's settings */
        struct config candidate_config; /* the settings of the generation being built */
        struct worker_command current, candidate;
        uint64_t candidate_generation; /* the generation `candidate` is for, 0 if none */

        struct socket_set sockets;
        char *fdnames;
        char *runtime_dir;
        char *notify_path;
        int notify_fd;
        sd_event_source *notify_source;
        sd_event_source *timer;
        sd_event_source *watchdog;

        struct worker_io *io;
        size_t n_io;
        struct leftovers leftovers; /* each live worker's record, for the next start */

        struct hook *hook;
        const char *hook_error; /* D-Bus error name for the pending failure, if not UpgradeFailed */

        char *head_path;
        char *head_seen; /* HEAD's content as liveswap last wrote or read it */

        struct waiter *waiters;
        size_t n_waiters;
        struct bus_server *bus;

        char status[1024];
        bool stopping_notified;
        int exit_status; /* from ACTION_EXIT: EXIT_FAILURE when the start timed out */
};

/* supervisor.c */
int supervisor_setup_loop(struct supervisor *s);
void supervisor_done(struct supervisor *s);
uint64_t now_usec(void);
void supervisor_dispatch(struct supervisor *s);
int supervisor_load_config(struct supervisor *s, struct config *ret, char *err, size_t errlen);
void engine_settings_from_config(const struct config *c, struct engine_settings *ret);
int supervisor_message(struct supervisor *s, const char *text, unsigned *ret_delivered);

/* control.c: requests from the bus or signals. `call` may be NULL (SIGHUP). For
 * upgrades, wait=true keeps the call until the end of the upgrade. Errors are returned
 * as a D-Bus error in ret_error (name + message) and nothing changes. */
int control_upgrade(struct supervisor *s, const char *target, sd_bus_message *call, bool wait, sd_bus_error *ret_error);
int control_rollback(struct supervisor *s, sd_bus_message *call, sd_bus_error *ret_error);
void control_upgrade_finished(struct supervisor *s, const struct engine_action *a);
/* Whether HEAD (its content) was deployed for this instance and CONFIGURED_TARGET (as in
 * the configuration, possibly relative), per HEAD.origin; logs why not. */
bool control_head_applies(struct supervisor *s, const char *head, const char *configured_target);
/* Generation numbers are never reused: the first is one past the highest recorded beside
 * HEAD, and each is recorded before its first worker starts. */
uint64_t control_first_generation(struct supervisor *s);
void control_record_generation(struct supervisor *s, uint64_t generation);
void control_cancel_hook(struct supervisor *s);
void control_done(struct supervisor *s);

/* bus.c */
int bus_server_new(struct supervisor *s, const char *socket_path, struct bus_server **ret);
struct bus_server *bus_server_free(struct bus_server *b);
void bus_emit_upgrade_finished(struct bus_server *b, uint64_t generation, bool success, const char *reason);
void bus_emit_changes(struct bus_server *b);
/* Error replies with text made safe for D-Bus (invalid UTF-8 escaped as \xNN): every
 * error the supervisor sends goes through these, so no reason can make a reply fail. */
int bus_error_setf(sd_bus_error *error, const char *name, const char *format, ...)
        __attribute__((format(printf, 3, 4)));
int bus_reply_errorf(sd_bus_message *call, const char *name, const char *format, ...)
        __attribute__((format(printf, 3, 4)));
