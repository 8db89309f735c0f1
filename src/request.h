/* request.h: the verbs that change what runs, whichever way they come in (D-Bus, SIGHUP,
 * the command line): upgrade, reload, rollback, cancel, restart, scale, quit. Each
 * returns 0 or a negative errno and, when it refuses, a reason: an enum that the D-Bus
 * side maps to an error name, and a sentence. No sd-bus type appears here. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "supervisor.h"

enum request_error {
        REQUEST_OK,
        REQUEST_ERRNO, /* a plain failure (out of memory): the errno says it all */
        REQUEST_BUSY, /* an upgrade runs, the supervisor is stopping, or the state forbids it */
        REQUEST_INVALID_TARGET,
        REQUEST_INVALID_ARGUMENT,
        REQUEST_NO_PREVIOUS,
        REQUEST_UPGRADE_FAILED, /* refused at once, or the upgrade failed and was rolled back */
        REQUEST_HOOK_FAILED, /* the pre-upgrade hook failed or refused the upgrade */
        REQUEST_REEXEC_FAILED, /* the program to re-execute cannot be executed */
};

/* Why a request was refused or an upgrade failed. */
struct request_result {
        enum request_error error;
        char message[1024]; /* the whole sentence, instance name first */
};

/* Who hears of the end of an upgrade: bus.c answers the calls waiting for it. It must
 * outlive the supervisor's loop. */
struct request_observer {
        void *userdata;
        /* FAILURE: why it failed (for the error replies); SUMMARY: what now runs, or the
         * engine's reason for the failure (for the UpgradeFinished signal). */
        void (*upgrade_finished)(void *userdata, uint64_t generation, bool success,
                                 const struct request_result *failure, const char *summary);
};

void request_init(struct supervisor *s, const struct request_observer *observer);
void request_done(struct supervisor *s);

/* An upgrade to TARGET, or a reload (TARGET NULL or empty: the configuration file read
 * anew, HEAD followed when a deploy tool rewrote it). On success *ret_generation is the
 * generation being built; the upgrade goes on from the event loop. */
int request_upgrade(struct supervisor *s, const char *target, uint64_t *ret_generation, struct request_result *ret);
int request_rollback(struct supervisor *s, uint64_t *ret_generation, struct request_result *ret);
int request_cancel(struct supervisor *s, struct request_result *ret);
int request_restart(struct supervisor *s, struct request_result *ret);
int request_scale(struct supervisor *s, unsigned count, struct request_result *ret);
int request_quit(struct supervisor *s);
/* Reexec (handover.h): refused while an upgrade or its pre-upgrade hook runs or while
 * stopping (REQUEST_BUSY), or when the program cannot be executed (REQUEST_REEXEC_FAILED).
 * Accepted, it happens from the event loop once the caller has its answer: s->reexec. */
int request_reexec(struct supervisor *s, struct request_result *ret);
int request_message(struct supervisor *s, const char *text, unsigned *ret_delivered, struct request_result *ret);

/* The first generation's target: HEAD when it applies (request.c's one "HEAD wins"
 * rule), the configured target otherwise. Fills s->current. */
int request_choose_start_target(struct supervisor *s);
