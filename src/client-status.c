/* client-status.c: the supervisor's properties as the client sees them, read whole with
 * GetAll and kept current from PropertiesChanged. Parsing only; no output. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "macro.h"
#include "names.h"

static void workers_free(struct client_status *s) {
        for (size_t i = 0; i < s->n_workers; i++) {
                free(s->workers[i].state);
                free(s->workers[i].target);
        }
        free(s->workers);
        s->workers = NULL;
        s->n_workers = 0;
}

void client_status_done(struct client_status *s) {
        workers_free(s);
        free(s->instance);
        free(s->state);
        free(s->target);
        free(s->previous_target);
        free(s->last_result);
        *s = (struct client_status){};
}

static int read_string(sd_bus_message *m, char **field) {
        const char *v;
        int r = sd_bus_message_read(m, "v", "s", &v);
        if (r < 0)
                return r;
        char *copy = strdup(v);
        if (!copy)
                return -ENOMEM;
        free(*field);
        *field = copy;
        return 0;
}

static int read_workers(sd_bus_message *m, struct client_status *s) {
        int r = sd_bus_message_enter_container(m, 'v', "a(utsst)");
        if (r >= 0)
                r = sd_bus_message_enter_container(m, 'a', "(utsst)");
        if (r < 0)
                return r;
        workers_free(s);
        for (;;) {
                struct client_worker w = {};
                const char *state, *target;
                r = sd_bus_message_read(m, "(utsst)", &w.pid, &w.generation, &state, &target, &w.started_usec);
                if (r <= 0)
                        break;
                struct client_worker *p = reallocarray(s->workers, s->n_workers + 1, sizeof(*p));
                if (!p)
                        return -ENOMEM;
                s->workers = p;
                w.state = strdup(state);
                w.target = strdup(target);
                s->workers[s->n_workers++] = w;
                if (!w.state || !w.target)
                        return -ENOMEM;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        return r < 0 ? r : sd_bus_message_exit_container(m);
}

static int read_property(sd_bus_message *m, const char *name, struct client_status *s) {
        if (strcmp(name, "Instance") == 0)
                return read_string(m, &s->instance);
        if (strcmp(name, "State") == 0)
                return read_string(m, &s->state);
        if (strcmp(name, "Target") == 0)
                return read_string(m, &s->target);
        if (strcmp(name, "PreviousTarget") == 0)
                return read_string(m, &s->previous_target);
        if (strcmp(name, "LastResult") == 0)
                return read_string(m, &s->last_result);
        if (strcmp(name, "Generation") == 0)
                return sd_bus_message_read(m, "v", "t", &s->generation);
        if (strcmp(name, "DesiredWorkers") == 0)
                return sd_bus_message_read(m, "v", "u", &s->desired);
        if (strcmp(name, "ReadyWorkers") == 0)
                return sd_bus_message_read(m, "v", "u", &s->ready);
        if (strcmp(name, "DrainingWorkers") == 0)
                return sd_bus_message_read(m, "v", "u", &s->draining);
        if (strcmp(name, "Workers") == 0)
                return read_workers(m, s);
        if (strcmp(name, "UpgradeReadyWorkers") == 0) {
                s->has_upgrade_counts = true;
                return sd_bus_message_read(m, "v", "u", &s->upgrade_ready);
        }
        if (strcmp(name, "UpgradeGeneration") == 0)
                return sd_bus_message_read(m, "v", "t", &s->upgrade_generation);
        if (strcmp(name, "UpgradeStartingWorkers") == 0) {
                s->has_upgrade_counts = true;
                return sd_bus_message_read(m, "v", "u", &s->upgrade_starting);
        }
        return sd_bus_message_skip(m, "v");
}

int client_status_update(struct client_status *s, sd_bus_message *m) {
        int r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        for (;;) {
                const char *name;
                r = sd_bus_message_enter_container(m, 'e', "sv");
                if (r <= 0)
                        break;
                r = sd_bus_message_read(m, "s", &name);
                if (r >= 0)
                        r = read_property(m, name, s);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

int client_get_status(struct client *c, struct client_status *ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        struct client_status s = {};
        int r = sd_bus_call_method(c->bus, c->destination, LIVESWAP_OBJECT_PATH, "org.freedesktop.DBus.Properties",
                                   "GetAll", &error, &reply, "s", LIVESWAP_INTERFACE);
        if (r < 0)
                return client_report_error(c, &error, r);
        r = client_status_update(&s, reply);
        if (r < 0) {
                client_status_done(&s);
                return client_fail(c->options, c->instance, CLIENT_EXIT_FAILED, "Failed",
                                   "cannot read the supervisor's properties: %s", strerror(-r));
        }
        *ret = s;
        return CLIENT_EXIT_OK;
}

int client_get_worker_details(struct client *c, struct client_status *s) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r = sd_bus_get_property(c->bus, c->destination, LIVESWAP_OBJECT_PATH, LIVESWAP_INTERFACE, "WorkerDetails",
                                    &error, &reply, "a" LIVESWAP_WORKER_DETAILS);
        if (r < 0)
                return 0; /* an older supervisor (UnknownProperty): status as before */
        /* sd_bus_get_property() has entered the variant already. */
        r = sd_bus_message_enter_container(reply, 'a', LIVESWAP_WORKER_DETAILS);
        while (r >= 0) {
                uint32_t pid, slot, restarts;
                uint64_t generation, started, memory, cpu;
                const char *state;
                r = sd_bus_message_read(reply, LIVESWAP_WORKER_DETAILS, &pid, &generation, &slot, &state, &started,
                                        &memory, &cpu, &restarts);
                if (r <= 0)
                        break;
                /* Workers and WorkerDetails are two reads: match by pid, and a worker that
                 * came or went in between simply has no figures. */
                for (size_t i = 0; i < s->n_workers; i++)
                        if (s->workers[i].pid == pid) {
                                struct client_worker *w = &s->workers[i];
                                w->has_details = true;
                                w->slot = slot;
                                w->memory_bytes = memory;
                                w->cpu_usec = cpu;
                                w->restarts = restarts;
                        }
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        return r < 0 ? r : 0;
}

unsigned client_status_count(const struct client_status *s, uint64_t generation, const char *state) {
        unsigned n = 0;
        for (size_t i = 0; i < s->n_workers; i++)
                if (s->workers[i].generation == generation && strcmp(s->workers[i].state, state) == 0)
                        n++;
        return n;
}
