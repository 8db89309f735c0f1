/* callstorm.c: sends many concurrent calls of one method of the liveswap supervisor and
 * counts the replies by outcome, for the tests of the control plane: "exactly one
 * StartUpgrade of 1,000 wins, the rest get Busy", "every method refused as nobody".
 *
 *   callstorm (--address ADDRESS | --user) [--connections K] [--calls N] METHOD [SIG ARG]
 *
 * Every connection is opened first, then all N calls are queued (spread over the K
 * connections) before any reply is read, so they reach the supervisor together. Output,
 * one line per outcome, sorted: "ok COUNT" or "ERROR.NAME COUNT MESSAGE" (the message of
 * the first such reply). Exit 0 when every call was answered within --timeout seconds. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#define OBJECT_PATH "/org/liveswap1"
#define INTERFACE "org.liveswap1.Supervisor"
#define MAX_OUTCOMES 32

struct outcome {
        char *name;
        char *message;
        unsigned count;
};

struct storm {
        struct outcome outcomes[MAX_OUTCOMES];
        size_t n_outcomes;
        unsigned answered, calls;
        sd_event *event;
};

static void count(struct storm *s, const char *name, const char *message) {
        for (size_t i = 0; i < s->n_outcomes; i++)
                if (strcmp(s->outcomes[i].name, name) == 0) {
                        s->outcomes[i].count++;
                        return;
                }
        if (s->n_outcomes == MAX_OUTCOMES)
                return;
        s->outcomes[s->n_outcomes++] = (struct outcome){ strdup(name), strdup(message ?: ""), 1 };
}

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct storm *s = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);
        if (e)
                count(s, e->name, e->message);
        else
                count(s, "ok", NULL);
        if (++s->answered == s->calls)
                (void) sd_event_exit(s->event, 0);
        return 0;
}

static int on_timeout(sd_event_source *source, uint64_t usec, void *userdata) {
        struct storm *s = userdata;
        return sd_event_exit(s->event, 0);
}

static int compare_outcomes(const void *a, const void *b) {
        return strcmp(((const struct outcome *) a)->name, ((const struct outcome *) b)->name);
}

static int open_bus(const char *address, sd_bus **ret) {
        if (!address)
                return sd_bus_open_user(ret);
        sd_bus *bus;
        int r = sd_bus_new(&bus);
        if (r < 0)
                return r;
        if ((r = sd_bus_set_address(bus, address)) < 0 || (r = sd_bus_start(bus)) < 0) {
                sd_bus_unref(bus);
                return r;
        }
        *ret = bus;
        return 0;
}

static int queue_call(sd_bus *bus, const char *destination, const char *method, const char *signature, const char *arg,
                      struct storm *s) {
        if (!signature || !*signature)
                return sd_bus_call_method_async(bus, NULL, destination, OBJECT_PATH, INTERFACE, method, on_reply, s,
                                                NULL);
        if (strcmp(signature, "s") == 0)
                return sd_bus_call_method_async(bus, NULL, destination, OBJECT_PATH, INTERFACE, method, on_reply, s,
                                                "s", arg);
        if (strcmp(signature, "u") == 0)
                return sd_bus_call_method_async(bus, NULL, destination, OBJECT_PATH, INTERFACE, method, on_reply, s,
                                                "u", (uint32_t) strtoul(arg, NULL, 10));
        return -EINVAL;
}

int main(int argc, char **argv) {
        static const struct option options[] = { { "address", required_argument, NULL, 'a' },
                                                 { "user", no_argument, NULL, 'U' },
                                                 { "destination", required_argument, NULL, 'd' },
                                                 { "connections", required_argument, NULL, 'k' },
                                                 { "calls", required_argument, NULL, 'n' },
                                                 { "timeout", required_argument, NULL, 't' },
                                                 {} };
        const char *address = NULL, *destination = NULL;
        bool user = false;
        unsigned connections = 1, calls = 1;
        double timeout = 120;
        int c;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
                switch (c) {
                case 'a':
                        address = optarg;
                        break;
                case 'U':
                        user = true;
                        break;
                case 'd':
                        destination = optarg;
                        break;
                case 'k':
                        connections = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 'n':
                        calls = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 't':
                        timeout = strtod(optarg, NULL);
                        break;
                default:
                        return 2;
                }
        }
        if ((!address) == (!user) || optind >= argc || connections == 0 || connections > 1000 || calls == 0 ||
            argc - optind == 2 || argc - optind > 3) {
                fprintf(stderr, "usage: callstorm (--address ADDRESS | --user) [--destination NAME] "
                                "[--connections K] [--calls N] [--timeout S] METHOD [SIGNATURE ARG]\n");
                return 2;
        }
        const char *method = argv[optind], *signature = argc - optind == 3 ? argv[optind + 1] : NULL,
                   *arg = signature ? argv[optind + 2] : NULL;

        sd_bus **buses = calloc(connections, sizeof(*buses));
        struct storm s = { .calls = calls };
        if (!buses || sd_event_new(&s.event) < 0 ||
            sd_event_add_time_relative(s.event, NULL, CLOCK_MONOTONIC, (uint64_t) (timeout * 1e6), 0, on_timeout, &s) <
                    0)
                return 1;
        for (unsigned i = 0; i < connections; i++) {
                int r = open_bus(address, &buses[i]);
                if (r >= 0)
                        r = sd_bus_attach_event(buses[i], s.event, 0);
                if (r < 0) {
                        fprintf(stderr, "callstorm: connection %u: %s\n", i, strerror(-r));
                        return 1;
                }
        }
        for (unsigned i = 0; i < calls; i++) {
                int r = queue_call(buses[i % connections], destination, method, signature, arg, &s);
                if (r < 0) {
                        fprintf(stderr, "callstorm: call %u: %s\n", i, strerror(-r));
                        return 1;
                }
        }
        int r = sd_event_loop(s.event);
        if (r < 0) {
                fprintf(stderr, "callstorm: %s\n", strerror(-r));
                return 1;
        }
        qsort(s.outcomes, s.n_outcomes, sizeof(*s.outcomes), compare_outcomes);
        for (size_t i = 0; i < s.n_outcomes; i++) {
                printf("%s %u %s\n", s.outcomes[i].name, s.outcomes[i].count, s.outcomes[i].message);
                free(s.outcomes[i].name);
                free(s.outcomes[i].message);
        }
        for (unsigned i = 0; i < connections; i++) {
                (void) sd_bus_detach_event(buses[i]);
                sd_bus_flush_close_unref(buses[i]);
        }
        free(buses);
        sd_event_unref(s.event);
        if (s.answered < calls) {
                fprintf(stderr, "callstorm: only %u of %u calls answered within %.0f s\n", s.answered, calls, timeout);
                return 1;
        }
        return 0;
}
