/* liveswapctl.c: the control client. It parses the command line, runs one command
 * against one running supervisor (or lists them all) and prints the result for people
 * (status in the manner of systemctl status) or for programs (--json). Connecting,
 * calling and waiting live in client*.c, shared with liveswap -u/-k/-d/-m. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "human.h"
#include "json.h"
#include "macro.h"
#include "names.h"

#define ANSI_GREEN "\033[0;1;32m"
#define ANSI_YELLOW "\033[0;1;33m"
#define ANSI_RED "\033[0;1;31m"
#define ANSI_NORMAL "\033[0m"

struct arguments {
        struct client_options options;
        const char *command;
        char **args;
        int n_args;
        struct client_logs_options logs; /* -f, --generation (logs only) */
        const char *generation_arg;
};

static void help(void) {
        printf("Usage: liveswapctl [OPTIONS] COMMAND\n\n"
               "Controls running liveswap supervisors. See liveswapctl(1).\n\n"
               "Commands:\n"
               "  status              show the instance's state and workers (the default)\n"
               "  upgrade [TARGET]    zero-downtime upgrade to TARGET (none: reload); waits\n"
               "  reload              re-read the configuration and upgrade; waits\n"
               "  rollback            upgrade back to the previous target; waits\n"
               "  cancel              abort the running upgrade and roll back\n"
               "  restart             kill every worker and start them again\n"
               "  stop                drain every worker and stop the supervisor; waits\n"
               "  message TEXT        send TEXT to every worker's control socket\n"
               "  scale N             run N workers\n"
               "  reexec              replace the supervisor's own program in place; waits\n"
               "  list                list the running instances\n"
               "  logs [PID]          the instance's journal, or one worker's (journalctl)\n\n"
               "Options:\n"
               "  -i, --instance NAME  the instance (default: $LIVESWAP_INSTANCE, else the only one)\n"
               "      --system         use the system bus\n"
               "      --user           use the user bus\n"
               "  -H, --host [USER@]HOST  use the system bus of HOST, over ssh\n"
               "      --json           machine-readable output\n"
               "      --no-wait        do not wait for upgrades and stops to finish\n"
               "  -f, --follow         logs: show new entries as they arrive\n"
               "      --generation N   logs: the workers of generation N, and liveswap's lines about it\n"
               "  -h, --help           show this help\n"
               "      --version        show the version\n");
}

/* Bad usage: said on stderr, and kept for --json. Returns -EINVAL. */
static int usage_error(struct arguments *a, const char *format, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(struct arguments *a, const char *format, ...) {
        _cleanup_free_ char *text = NULL;
        va_list ap;
        va_start(ap, format);
        if (vasprintf(&text, format, ap) < 0)
                text = NULL;
        va_end(ap);
        client_fail(&a->options, NULL, CLIENT_EXIT_USAGE, "Usage", "%s", text ?: "bad usage");
        return -EINVAL;
}

static int parse_arguments(int argc, char **argv, struct arguments *a) {
        enum { OPT_SYSTEM = 0x100, OPT_USER, OPT_JSON, OPT_NO_WAIT, OPT_VERSION, OPT_GENERATION };
        static const struct option options[] = { { "instance", required_argument, NULL, 'i' },
                                                 { "system", no_argument, NULL, OPT_SYSTEM },
                                                 { "user", no_argument, NULL, OPT_USER },
                                                 { "host", required_argument, NULL, 'H' },
                                                 { "json", no_argument, NULL, OPT_JSON },
                                                 { "no-wait", no_argument, NULL, OPT_NO_WAIT },
                                                 { "follow", no_argument, NULL, 'f' },
                                                 { "generation", required_argument, NULL, OPT_GENERATION },
                                                 { "help", no_argument, NULL, 'h' },
                                                 { "version", no_argument, NULL, OPT_VERSION },
                                                 {} };
        int c;
        opterr = 0; /* getopt would name the program by its full path */
        while ((c = getopt_long(argc, argv, ":i:H:hf", options, NULL)) >= 0) {
                switch (c) {
                case 'i':
                        a->options.instance = optarg;
                        break;
                case OPT_SYSTEM:
                        a->options.transport = CLIENT_TRANSPORT_SYSTEM;
                        break;
                case OPT_USER:
                        a->options.transport = CLIENT_TRANSPORT_USER;
                        break;
                case 'H':
                        a->options.transport = CLIENT_TRANSPORT_REMOTE;
                        a->options.host = optarg;
                        break;
                case OPT_JSON:
                        a->options.json = true;
                        break;
                case OPT_NO_WAIT:
                        a->options.no_wait = true;
                        break;
                case 'f':
                        a->logs.follow = true;
                        break;
                case OPT_GENERATION:
                        a->generation_arg = optarg;
                        break;
                case 'h':
                        help();
                        exit(EXIT_SUCCESS);
                case OPT_VERSION:
                        printf("liveswapctl %s\n", LIVESWAP_VERSION);
                        exit(EXIT_SUCCESS);
                case ':':
                        return usage_error(a, "option '%s' needs an argument (see liveswapctl --help)",
                                           argv[optind - 1]);
                default:
                        return usage_error(a, "unknown option '%s' (see liveswapctl --help)", argv[optind - 1]);
                }
        }
        a->command = optind < argc ? argv[optind++] : "status";
        a->args = argv + optind;
        a->n_args = argc - optind;
        return 0;
}

/* ---- status ---- */

static bool color(void) {
        const char *no_color = getenv("NO_COLOR");
        return isatty(STDOUT_FILENO) > 0 && !(no_color && *no_color);
}

static uint64_t monotonic_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

/* The workers' start times are the supervisor's monotonic clock: meaningful here only
 * when it runs on this machine. */
static bool uptime_known(const struct client *c) {
        return c->options->transport != CLIENT_TRANSPORT_REMOTE;
}

static int compare_workers(const void *x, const void *y) {
        const struct client_worker *a = x, *b = y;
        if (a->generation != b->generation)
                return a->generation < b->generation ? -1 : 1;
        if (a->started_usec != b->started_usec)
                return a->started_usec < b->started_usec ? -1 : 1;
        return (a->pid > b->pid) - (a->pid < b->pid);
}

static const char *state_color(const struct client_status *s) {
        if (!color())
                return "";
        if (strcmp(s->state, "running") == 0)
                return s->last_result && strncmp(s->last_result, "failed", 6) == 0 ? ANSI_YELLOW : ANSI_GREEN;
        if (strcmp(s->state, "stopping") == 0)
                return ANSI_RED;
        return ANSI_YELLOW;
}

static void print_status_text(const struct client *c, const struct client_status *s, pid_t pid) {
        const char *on = state_color(s), *off = *on ? ANSI_NORMAL : "";
        printf("%s●%s %s - liveswap supervisor\n", on, off, s->instance);
        printf("      State: %s%s%s\n", on, s->state, off);
        if (pid > 0)
                printf("   Main PID: %d\n", (int) pid);
        printf(" Generation: %" PRIu64 "\n", s->generation);
        printf("     Target: %s\n", s->target);
        printf("   Previous: %s\n", *s->previous_target ? s->previous_target : "none");
        printf("Last result: %s\n", *s->last_result ? s->last_result : "none");
        printf("    Control: %s\n", c->where);
        printf("    Workers: %" PRIu32 " desired, %" PRIu32 " ready, %" PRIu32 " draining\n", s->desired, s->ready,
               s->draining);
        uint64_t now = monotonic_usec();
        for (size_t i = 0; i < s->n_workers; i++) {
                const struct client_worker *w = &s->workers[i];
                char uptime[64] = "";
                if (uptime_known(c) && now >= w->started_usec) {
                        strcpy(uptime, ", up ");
                        human_span(now - w->started_usec, uptime + 5, sizeof(uptime) - 5);
                }
                printf("             %s%" PRIu32 " generation %" PRIu64 ", %s%s", i + 1 == s->n_workers ? "└─" : "├─",
                       w->pid, w->generation, w->state, uptime);
                /* During an upgrade two targets run side by side: say which is which. */
                if (strcmp(w->target, s->target) != 0)
                        printf(", %s", w->target);
                putchar('\n');
        }
}

static bool have_details(const struct client_status *s) {
        for (size_t i = 0; i < s->n_workers; i++)
                if (s->workers[i].has_details)
                        return true;
        return false;
}

static void figure(char *buf, size_t size, bool known, uint64_t value, void (*format)(uint64_t, char *, size_t)) {
        if (known && value != LIVESWAP_FIGURE_UNKNOWN)
                format(value, buf, size);
        else
                snprintf(buf, size, "-");
}

/* What each worker costs, one row per worker in the tree's order, as `pm2 ls` shows it.
 * After the tree and a blank line, so that every line above stays as it always was; not
 * shown at all by a supervisor without WorkerDetails. */
static void print_worker_table(const struct client *c, const struct client_status *s) {
        enum { PID, GEN, SLOT, STATE, UPTIME, MEMORY, CPU, RESTARTS, N_COLUMNS };
        static const char *const header[N_COLUMNS] = { "PID",    "GEN",    "SLOT", "STATE",
                                                       "UPTIME", "MEMORY", "CPU",  "RESTARTS" };
        if (!have_details(s))
                return;
        char(*cells)[N_COLUMNS][32] = calloc(s->n_workers, sizeof(*cells));
        if (!cells)
                return;
        int width[N_COLUMNS];
        for (int k = 0; k < N_COLUMNS; k++)
                width[k] = (int) strlen(header[k]);
        uint64_t now = monotonic_usec();
        for (size_t i = 0; i < s->n_workers; i++) {
                const struct client_worker *w = &s->workers[i];
                char(*row)[32] = cells[i];
                snprintf(row[PID], sizeof(row[PID]), "%" PRIu32, w->pid);
                snprintf(row[GEN], sizeof(row[GEN]), "%" PRIu64, w->generation);
                if (w->has_details)
                        snprintf(row[SLOT], sizeof(row[SLOT]), "%" PRIu32, w->slot);
                else
                        snprintf(row[SLOT], sizeof(row[SLOT]), "-");
                snprintf(row[STATE], sizeof(row[STATE]), "%s", w->state);
                figure(row[UPTIME], sizeof(row[UPTIME]), uptime_known(c) && now >= w->started_usec,
                       now - w->started_usec, human_span);
                figure(row[MEMORY], sizeof(row[MEMORY]), w->has_details, w->memory_bytes, human_bytes);
                figure(row[CPU], sizeof(row[CPU]), w->has_details, w->cpu_usec, human_cpu_time);
                if (w->has_details)
                        snprintf(row[RESTARTS], sizeof(row[RESTARTS]), "%" PRIu32, w->restarts);
                else
                        snprintf(row[RESTARTS], sizeof(row[RESTARTS]), "-");
                for (int k = 0; k < N_COLUMNS; k++)
                        if ((int) strlen(row[k]) > width[k])
                                width[k] = (int) strlen(row[k]);
        }
        putchar('\n');
        for (size_t i = 0; i <= s->n_workers; i++) {
                const char *const *text = i == 0 ? header : NULL;
                for (int k = 0; k < N_COLUMNS; k++) {
                        const char *cell = text ? text[k] : cells[i - 1][k];
                        /* The state reads as a word: left-aligned; figures line up on the right. */
                        if (k == STATE)
                                printf("  %-*s", width[k], cell);
                        else
                                printf("%s%*s", k == 0 ? "" : "  ", width[k], cell);
                }
                putchar('\n');
        }
        free(cells);
}

/* A figure the supervisor could not read is null. */
static void json_figure(const char *key, uint64_t value) {
        if (value == LIVESWAP_FIGURE_UNKNOWN)
                printf(",\"%s\":null", key);
        else
                printf(",\"%s\":%" PRIu64, key, value);
}

static void print_status_json(const struct client *c, const struct client_status *s, pid_t pid) {
        uint64_t now = monotonic_usec();
        fputs("{\"instance\":", stdout);
        json_write_string(stdout, s->instance);
        fputs(",\"state\":", stdout);
        json_write_string(stdout, s->state);
        if (pid > 0)
                printf(",\"pid\":%d", (int) pid);
        printf(",\"generation\":%" PRIu64 ",\"target\":", s->generation);
        json_write_string(stdout, s->target);
        fputs(",\"previous_target\":", stdout);
        json_write_string(stdout, s->previous_target);
        fputs(",\"last_result\":", stdout);
        json_write_string(stdout, s->last_result);
        printf(",\"desired_workers\":%" PRIu32 ",\"ready_workers\":%" PRIu32 ",\"draining_workers\":%" PRIu32,
               s->desired, s->ready, s->draining);
        fputs(",\"control\":", stdout);
        json_write_string(stdout, c->where);
        fputs(",\"workers\":[", stdout);
        for (size_t i = 0; i < s->n_workers; i++) {
                const struct client_worker *w = &s->workers[i];
                printf("%s{\"pid\":%" PRIu32 ",\"generation\":%" PRIu64 ",\"state\":", i ? "," : "", w->pid,
                       w->generation);
                json_write_string(stdout, w->state);
                fputs(",\"target\":", stdout);
                json_write_string(stdout, w->target);
                printf(",\"started_usec\":%" PRIu64, w->started_usec);
                if (uptime_known(c) && now >= w->started_usec)
                        printf(",\"uptime_usec\":%" PRIu64, now - w->started_usec);
                if (w->has_details) {
                        printf(",\"slot\":%" PRIu32 ",\"restarts\":%" PRIu32, w->slot, w->restarts);
                        json_figure("memory_bytes", w->memory_bytes);
                        json_figure("cpu_usec", w->cpu_usec);
                }
                putchar('}');
        }
        fputs("]}\n", stdout);
}

static int command_status(struct client *c) {
        struct client_status s = {};
        int r = client_get_status(c, &s);
        if (r != CLIENT_EXIT_OK)
                return r;
        if (!s.instance || !s.state || !s.target || !s.previous_target || !s.last_result) {
                client_status_done(&s);
                return client_fail(c->options, c->instance, CLIENT_EXIT_FAILED, "Failed",
                                   "the supervisor's properties are incomplete (a different version?)");
        }
        r = client_get_worker_details(c, &s);
        if (r < 0) {
                client_status_done(&s);
                return client_fail(c->options, c->instance, CLIENT_EXIT_FAILED, "Failed",
                                   "cannot read the workers' figures: %s", strerror(-r));
        }
        if (s.n_workers > 1)
                qsort(s.workers, s.n_workers, sizeof(*s.workers), compare_workers);
        pid_t pid = 0;
        (void) client_supervisor_pid(c, &pid); /* shown when known */
        if (c->options->json)
                print_status_json(c, &s, pid);
        else {
                print_status_text(c, &s, pid);
                print_worker_table(c, &s);
        }
        client_status_done(&s);
        return CLIENT_EXIT_OK;
}

/* ---- list ---- */

struct row {
        struct client_instance *instance;
        struct client_status status;
        bool reachable;
};

static void print_list_json(struct row *rows, size_t n) {
        static const struct {
                unsigned flag;
                const char *name;
        } vias[] = {
                { CLIENT_SEEN_SOCKET, "socket" },
                { CLIENT_SEEN_USER_BUS, "user" },
                { CLIENT_SEEN_SYSTEM_BUS, "system" },
                { CLIENT_SEEN_REMOTE, "remote" },
        };
        fputs("{\"instances\":[", stdout);
        for (size_t i = 0; i < n; i++) {
                const struct client_instance *in = rows[i].instance;
                const struct client_status *s = &rows[i].status;
                fputs(i ? ",{\"instance\":" : "{\"instance\":", stdout);
                json_write_string(stdout, in->name);
                printf(",\"reachable\":%s", rows[i].reachable ? "true" : "false");
                if (rows[i].reachable) {
                        fputs(",\"state\":", stdout);
                        json_write_string(stdout, s->state);
                        printf(",\"generation\":%" PRIu64 ",\"ready_workers\":%" PRIu32 ",\"desired_workers\":%" PRIu32
                               ",\"target\":",
                               s->generation, s->ready, s->desired);
                        json_write_string(stdout, s->target);
                }
                fputs(",\"via\":[", stdout);
                const char *sep = "";
                for (size_t k = 0; k < ELEMENTSOF(vias); k++)
                        if (in->seen & vias[k].flag) {
                                printf("%s\"%s\"", sep, vias[k].name);
                                sep = ",";
                        }
                fputs("],\"socket\":", stdout);
                json_write_string(stdout, in->socket);
                fputs("}", stdout);
        }
        fputs("]}\n", stdout);
}

static int width_of(const char *s, int min) {
        int n = (int) strlen(s ?: "");
        return n > min ? n : min;
}

static void print_list_text(struct row *rows, size_t n) {
        int wi = 8, ws = 5, wt = 6;
        for (size_t i = 0; i < n; i++) {
                wi = width_of(rows[i].instance->name, wi);
                if (rows[i].reachable) {
                        ws = width_of(rows[i].status.state, ws);
                        wt = width_of(rows[i].status.target, wt);
                }
        }
        printf("%-*s %-*s %10s %7s  %-*s  %s\n", wi, "INSTANCE", ws, "STATE", "GENERATION", "WORKERS", wt, "TARGET",
               "VIA");
        for (size_t i = 0; i < n; i++) {
                const struct row *r = &rows[i];
                _cleanup_free_ char *via = client_describe_seen(r->instance);
                char generation[24] = "-", workers[24] = "-";
                if (r->reachable) {
                        snprintf(generation, sizeof(generation), "%" PRIu64, r->status.generation);
                        snprintf(workers, sizeof(workers), "%" PRIu32 "/%" PRIu32, r->status.ready, r->status.desired);
                }
                printf("%-*s %-*s %10s %7s  %-*s  %s\n", wi, r->instance->name, ws,
                       r->reachable ? r->status.state : "unknown", generation, workers, wt,
                       r->reachable ? r->status.target : "-", via ?: "");
        }
        printf("\n%zu instance%s listed.\n", n, n == 1 ? "" : "s");
}

/* Properties of an instance listed. One that cannot be asked (a socket of another user,
 * a bus policy that refuses) is still listed, as unknown. */
static bool read_row(const struct client_options *o, struct row *row) {
        struct client c;
        if (client_open_instance(&c, o, row->instance) < 0)
                return false;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r = sd_bus_call_method(c.bus, c.destination, LIVESWAP_OBJECT_PATH, "org.freedesktop.DBus.Properties",
                                   "GetAll", &error, &reply, "s", LIVESWAP_INTERFACE);
        if (r >= 0)
                r = client_status_update(&row->status, reply);
        client_close(&c);
        return r >= 0 && row->status.state && row->status.target;
}

static int command_list(const struct client_options *o) {
        struct client_instance_list l;
        int r = client_find_instances(o, &l);
        if (r < 0) {
                client_instance_list_done(&l);
                return client_exit_code_for_errno(r, NULL); /* said by client_find_instances() */
        }
        struct row *rows = calloc(l.n ?: 1, sizeof(*rows));
        if (!rows) {
                client_instance_list_done(&l);
                return client_fail(o, NULL, CLIENT_EXIT_FAILED, "Failed", "out of memory");
        }
        for (size_t i = 0; i < l.n; i++) {
                rows[i].instance = &l.items[i];
                rows[i].reachable = read_row(o, &rows[i]);
        }
        if (o->json)
                print_list_json(rows, l.n);
        else
                print_list_text(rows, l.n);
        for (size_t i = 0; i < l.n; i++)
                client_status_done(&rows[i].status);
        free(rows);
        client_instance_list_done(&l);
        return CLIENT_EXIT_OK;
}

/* ---- dispatch ---- */

static int parse_count(const char *s, uint32_t *ret) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno || !*s || *end || s[0] == '-' || v == 0 || v > 4096)
                return -EINVAL;
        *ret = (uint32_t) v;
        return 0;
}

static int run_upgrade(struct client *c, char **args) {
        return client_upgrade(c, args[0] ?: "");
}

static int run_reload(struct client *c, char **args) {
        return client_upgrade(c, "");
}

static int run_rollback(struct client *c, char **args) {
        return client_rollback(c);
}

static int run_cancel(struct client *c, char **args) {
        return client_cancel(c);
}

static int run_restart(struct client *c, char **args) {
        return client_restart(c);
}

static int run_stop(struct client *c, char **args) {
        return client_stop(c);
}

static int run_message(struct client *c, char **args) {
        return client_message(c, args[0]);
}

static int run_scale(struct client *c, char **args) {
        uint32_t count = 0;
        (void) parse_count(args[0], &count); /* checked before connecting */
        return client_scale(c, count);
}

static int run_reexec(struct client *c, char **args) {
        return client_reexec(c);
}

static int run_status(struct client *c, char **args) {
        return command_status(c);
}

struct command {
        const char *name;
        int min_args, max_args;
        const char *usage;
        int (*run)(struct client *c, char **args); /* NULL: needs no single instance (list) */
};

static const struct command commands[] = {
        { "status", 0, 0, "status", run_status },
        { "upgrade", 0, 1, "upgrade [TARGET]", run_upgrade },
        { "reload", 0, 0, "reload", run_reload },
        { "rollback", 0, 0, "rollback", run_rollback },
        { "cancel", 0, 0, "cancel", run_cancel },
        { "restart", 0, 0, "restart", run_restart },
        { "stop", 0, 0, "stop", run_stop },
        { "message", 1, 1, "message TEXT", run_message },
        { "scale", 1, 1, "scale N", run_scale },
        { "list", 0, 0, "list", NULL },
        { "reexec", 0, 0, "reexec", run_reexec },
        { "logs", 0, 1, "logs [-f] [--generation N] [PID]", NULL }, /* run by main(): it takes options */
};

static const struct command *find_command(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (strcmp(commands[i].name, name) == 0)
                        return &commands[i];
        return NULL;
}

static int parse_positive(const char *s, uint64_t max, uint64_t *ret) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || !*s || *end || s[0] < '0' || s[0] > '9' || v == 0 || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

static int check_logs_usage(struct arguments *a) {
        uint64_t v;
        if (a->generation_arg) {
                if (parse_positive(a->generation_arg, UINT64_MAX, &a->logs.generation) < 0)
                        return usage_error(a, "invalid generation '%s' (a number from 1)", a->generation_arg);
                a->logs.has_generation = true;
        }
        if (a->n_args == 1) {
                if (parse_positive(a->args[0], INT32_MAX, &v) < 0)
                        return usage_error(a, "invalid worker pid '%s'", a->args[0]);
                a->logs.pid = (pid_t) v;
        }
        if (a->logs.pid && a->logs.has_generation)
                return usage_error(a, "logs takes a PID or --generation, not both");
        return 0;
}

/* Everything that can be checked without a supervisor is checked first. */
static int check_usage(const struct command *cmd, struct arguments *a) {
        uint32_t count;
        if (!cmd)
                return usage_error(a, "unknown command '%s' (see liveswapctl --help)", a->command);
        if (a->n_args < cmd->min_args || a->n_args > cmd->max_args)
                return usage_error(a, "usage: liveswapctl [OPTIONS] %s", cmd->usage);
        if (cmd->run == run_scale && parse_count(a->args[0], &count) < 0)
                return usage_error(a, "invalid worker count '%s' (1 to 4096)", a->args[0]);
        if (cmd->run == run_message && !*a->args[0])
                return usage_error(a, "the message is empty");
        bool logs = strcmp(cmd->name, "logs") == 0;
        if (!logs && (a->logs.follow || a->generation_arg))
                return usage_error(a, "%s is an option of logs only (see liveswapctl --help)",
                                   a->logs.follow ? "-f/--follow" : "--generation");
        return logs ? check_logs_usage(a) : 0;
}

static int run(int argc, char **argv, struct arguments *a) {
        if (parse_arguments(argc, argv, a) < 0)
                return CLIENT_EXIT_USAGE;
        const struct command *cmd = find_command(a->command);
        if (check_usage(cmd, a) < 0)
                return CLIENT_EXIT_USAGE;
        bool logs = strcmp(cmd->name, "logs") == 0;
        if (logs && !client_logs_find_journalctl())
                return client_fail(&a->options, NULL, CLIENT_EXIT_FAILED, "Failed",
                                   "journalctl is not installed (logs shows the journal through it)");
        if (!cmd->run && !logs)
                return command_list(&a->options);

        struct client c;
        int r = client_open(&c, &a->options);
        if (r < 0)
                return client_exit_code_for_errno(r, NULL);
        r = logs ? client_logs(&c, &a->logs) : cmd->run(&c, a->args);
        client_close(&c);
        fflush(stdout);
        return r;
}

/* Whether --json was asked for, also when the command line around it was bad. */
static bool wants_json(const struct arguments *a, int argc, char **argv) {
        if (a->options.json)
                return true;
        for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
                if (strcmp(argv[i], "--json") == 0)
                        return true;
        return false;
}

int main(int argc, char **argv) {
        struct client_failure failure = {};
        struct arguments a = { .options = { .program = "liveswapctl", .failure = &failure } };
        int r = run(argc, argv, &a);
        /* --json: one object on stdout whatever happened, a failure included. */
        if (r != CLIENT_EXIT_OK && wants_json(&a, argc, argv))
                client_failure_print_json(&failure, a.options.instance, r);
        client_failure_done(&failure);
        return r;
}
