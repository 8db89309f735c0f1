/* liveswap.c: main() of the supervisor: parse the command line, load the configuration,
 * take the sockets, wire the shell together and run the event loop. With -u/-k/-d/-m it
 * is a client of a running supervisor instead. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "bus.h"
#include "client.h"
#include "envfile.h"
#include "fd-budget.h"
#include "fs-util.h"
#include "handover.h"
#include "head.h"
#include "leftovers.h"
#include "log.h"
#include "macro.h"
#include "names.h"
#include "notify.h"
#include "orphans.h"
#include "request.h"
#include "spawn.h"
#include "supervisor.h"

#define EXIT_USAGE 2
#define EXIT_CONFIG 78 /* EX_CONFIG */
#define DEFAULT_CONFIG_DIR "/etc/liveswap"

enum client_command { CLIENT_NONE, CLIENT_UPGRADE, CLIENT_KILL, CLIENT_DIE, CLIENT_MESSAGE };

struct arguments {
        const char *instance;
        const char *config;
        const char **listen;
        size_t n_listen;
        const char *port;
        const char *address;
        struct config_overrides overrides;
        mode_t socket_mode; /* with --socket-mode; the config file's otherwise */
        bool socket_mode_set;
        enum client_command client;
        const char *client_arg;
        int handover_fd; /* --handover FD: this image replaces one that re-executed; else -1 */
        /* What was open when this image started (with --handover only): the fds the
         * previous image passed, for the fallback when the hand-over is unreadable. */
        struct inherited_fd *inherited_fds;
        size_t n_inherited_fds;
        char **argv; /* all of it: a reexec passes it on */
};

static void help(void) {
        printf("Usage:\n"
               "  liveswap [--instance NAME] [--config FILE] [--listen ADDR:PORT|PATH]... [--workers N]\n"
               "           [--start TARGET] [--foreground]\n"
               "  liveswap -s TARGET [-f N] [-p PORT] [-a ADDRESS] [--pre-upgrade PATH] [-H HEADFILE] [-z]\n"
               "  liveswap -u [TARGET] | -k | -d | -m MESSAGE\n"
               "  liveswap -v\n\n"
               "Keeps listening sockets open and swaps the code of the workers behind them\n"
               "with zero downtime. See liveswap(8).\n\n"
               "  -s, --start TARGET      executable file or directory to run\n"
               "  -f, --forks, --workers N  number of workers (default 2)\n"
               "  -p, --port PORT         TCP port to listen on when systemd passes no socket\n"
               "  -a, --address ADDRESS   address for --port (default 127.0.0.1)\n"
               "  -l, --listen ADDR:PORT|PATH  socket to listen on (repeatable)\n"
               "      --socket-mode MODE  octal mode of unix sockets from --listen (default 0666)\n"
               "  -i, --instance NAME     instance name (default: the target's base name)\n"
               "  -c, --config FILE       configuration file (default /etc/liveswap/INSTANCE.conf if present)\n"
               "      --pre-upgrade PATH  executable run before each upgrade\n"
               "  -H, --head FILE         HEAD state file\n"
               "  -z                      upgrade by stopping old workers first (strategy restart)\n"
               "      --adopt, --no-adopt  preload the library that adopts the port an app binds\n"
               "                          itself (default yes)\n"
               "      --start-timeout DURATION  exit with status 1 if the first workers are not all\n"
               "                          ready by then (default 90s, 0 = wait forever)\n"
               "      --watchdog DURATION  each worker must send WATCHDOG=1 this often (default 0 = off)\n"
               "      --memory-max SIZE   replace a worker above SIZE (e.g. 512M, 1G; default 0 = off)\n"
               "      --foreground        run in the foreground (always the case)\n"
               "  -u, --upgrade [TARGET]  upgrade a running supervisor (no target: reload)\n"
               "  -k, --kill              restart every worker of a running supervisor\n"
               "  -d, --die               drain every worker and stop a running supervisor\n"
               "  -m, --message TEXT      send TEXT to every worker of a running supervisor\n"
               "  -v, --version           show the version\n");
}

static int parse_unsigned(const char *s, unsigned *ret) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno || !*s || *end || v == 0 || v > 4096 || s[0] == '-')
                return -EINVAL;
        *ret = (unsigned) v;
        return 0;
}

static int parse_arguments(int argc, char **argv, struct arguments *a) {
        enum {
                OPT_FOREGROUND = 0x100,
                OPT_PRE_UPGRADE,
                OPT_START_TIMEOUT,
                OPT_SOCKET_MODE,
                OPT_ADOPT,
                OPT_NO_ADOPT,
                OPT_WATCHDOG,
                OPT_MEMORY_MAX,
                OPT_HANDOVER
        };
        static const struct option options[] = { { "instance", required_argument, NULL, 'i' },
                                                 { "config", required_argument, NULL, 'c' },
                                                 { "listen", required_argument, NULL, 'l' },
                                                 { "socket-mode", required_argument, NULL, OPT_SOCKET_MODE },
                                                 { "workers", required_argument, NULL, 'f' },
                                                 { "forks", required_argument, NULL, 'f' },
                                                 { "start", required_argument, NULL, 's' },
                                                 { "foreground", no_argument, NULL, OPT_FOREGROUND },
                                                 { "port", required_argument, NULL, 'p' },
                                                 { "address", required_argument, NULL, 'a' },
                                                 { "pre-upgrade", required_argument, NULL, OPT_PRE_UPGRADE },
                                                 { "start-timeout", required_argument, NULL, OPT_START_TIMEOUT },
                                                 { "head", required_argument, NULL, 'H' },
                                                 { "adopt", no_argument, NULL, OPT_ADOPT },
                                                 { "no-adopt", no_argument, NULL, OPT_NO_ADOPT },
                                                 { "watchdog", required_argument, NULL, OPT_WATCHDOG },
                                                 { "memory-max", required_argument, NULL, OPT_MEMORY_MAX },
                                                 { "upgrade", optional_argument, NULL, 'u' },
                                                 { "kill", no_argument, NULL, 'k' },
                                                 { "die", no_argument, NULL, 'd' },
                                                 { "message", required_argument, NULL, 'm' },
                                                 { "version", no_argument, NULL, 'v' },
                                                 { "help", no_argument, NULL, 'h' },
                                                 /* Internal, not in --help: liveswap(8), REEXEC. */
                                                 { "handover", required_argument, NULL, OPT_HANDOVER },
                                                 {} };
        int c;
        while ((c = getopt_long(argc, argv, "i:c:l:f:s:p:a:H:u::kdm:zvh", options, NULL)) >= 0) {
                switch (c) {
                case 'i':
                        a->instance = optarg;
                        break;
                case 'c':
                        a->config = optarg;
                        break;
                case 'l': {
                        const char **p = reallocarray(a->listen, a->n_listen + 1, sizeof(char *));
                        if (!p)
                                return -ENOMEM;
                        a->listen = p;
                        a->listen[a->n_listen++] = optarg;
                        break;
                }
                case OPT_SOCKET_MODE:
                        if (config_parse_mode(optarg, &a->socket_mode) < 0) {
                                fprintf(stderr, "liveswap: invalid socket mode '%s' (octal, 0000 to 0777, e.g. 0660)\n",
                                        optarg);
                                return -EINVAL;
                        }
                        a->socket_mode_set = true;
                        break;
                case 'f':
                        if (parse_unsigned(optarg, &a->overrides.workers) < 0) {
                                fprintf(stderr, "liveswap: invalid worker count '%s' (1 to 4096)\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case 's':
                        a->overrides.target = optarg;
                        break;
                case OPT_FOREGROUND:
                        break; /* the supervisor never daemonizes: systemd or the shell owns it */
                case 'p':
                        a->port = optarg;
                        break;
                case 'a':
                        a->address = optarg;
                        break;
                case OPT_ADOPT:
                case OPT_NO_ADOPT:
                        a->overrides.adopt_set = true;
                        a->overrides.adopt = c == OPT_ADOPT;
                        break;
                case OPT_PRE_UPGRADE:
                        a->overrides.pre_upgrade = optarg;
                        break;
                case OPT_START_TIMEOUT:
                        if (config_parse_duration(optarg, &a->overrides.start_timeout_usec) < 0) {
                                fprintf(stderr,
                                        "liveswap: invalid duration '%s' for --start-timeout (e.g. 30s, 2min, 0 for none)\n",
                                        optarg);
                                return -EINVAL;
                        }
                        a->overrides.start_timeout_set = true;
                        break;
                case OPT_WATCHDOG:
                        if (config_parse_duration(optarg, &a->overrides.watchdog_usec) < 0 ||
                            (a->overrides.watchdog_usec > 0 && a->overrides.watchdog_usec < USEC_PER_MSEC)) {
                                fprintf(stderr,
                                        "liveswap: invalid duration '%s' for --watchdog (e.g. 10s, 500ms, 0 for off)\n",
                                        optarg);
                                return -EINVAL;
                        }
                        a->overrides.watchdog_set = true;
                        break;
                case OPT_MEMORY_MAX:
                        if (config_parse_size(optarg, &a->overrides.memory_max) < 0) {
                                fprintf(stderr,
                                        "liveswap: invalid size '%s' for --memory-max (e.g. 512M, 1.5G, 0 for off)\n",
                                        optarg);
                                return -EINVAL;
                        }
                        a->overrides.memory_max_set = true;
                        break;
                case 'H':
                        a->overrides.head = optarg;
                        break;
                case OPT_HANDOVER: {
                        char *end;
                        long fd = strtol(optarg, &end, 10);
                        if (*end || end == optarg || fd < 3 || fd > 1 << 20) {
                                fprintf(stderr, "liveswap: invalid --handover fd '%s'\n", optarg);
                                return -EINVAL;
                        }
                        a->handover_fd = (int) fd;
                        break;
                }
                case 'z':
                        a->overrides.restart = true;
                        break;
                case 'u':
                        a->client = CLIENT_UPGRADE;
                        /* The seed's form is "-u TARGET" with a space: take a following
                         * non-option word as the target. */
                        if (optarg)
                                a->client_arg = optarg;
                        else if (optind < argc && argv[optind][0] != '-')
                                a->client_arg = argv[optind++];
                        break;
                case 'k':
                        a->client = CLIENT_KILL;
                        break;
                case 'd':
                        a->client = CLIENT_DIE;
                        break;
                case 'm':
                        a->client = CLIENT_MESSAGE;
                        a->client_arg = optarg;
                        break;
                case 'v':
                        printf("liveswap %s\n", LIVESWAP_VERSION);
                        exit(EXIT_SUCCESS);
                case 'h':
                        help();
                        exit(EXIT_SUCCESS);
                default:
                        return -EINVAL;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "liveswap: unexpected argument '%s' (see liveswap --help)\n", argv[optind]);
                return -EINVAL;
        }
        return 0;
}

/* ---- client mode ---- */

static int run_client(const struct arguments *a) {
        _cleanup_free_ char *derived = NULL;
        struct client_options options = { .program = "liveswap", .instance = a->instance };
        if (!options.instance && a->overrides.target)
                options.instance = derived = names_instance_from_target(a->overrides.target);

        struct client c;
        int r = client_open(&c, &options);
        if (r < 0)
                return client_exit_code_for_errno(r, NULL);
        switch (a->client) {
        case CLIENT_UPGRADE:
                r = client_upgrade(&c, a->client_arg);
                break;
        case CLIENT_KILL:
                r = client_restart(&c);
                break;
        case CLIENT_DIE:
                r = client_stop(&c);
                break;
        case CLIENT_MESSAGE:
                r = client_message(&c, a->client_arg);
                break;
        default:
                r = CLIENT_EXIT_USAGE;
        }
        client_close(&c);
        return r;
}

/* ---- supervisor mode ---- */

static int take_sockets(struct supervisor *s, const struct arguments *a) {
        if (s->sockets.n > 0)
                return 0; /* taken already, from a hand-over that could not be read */
        int r = sockets_from_systemd(&s->sockets);
        if (r < 0)
                return log_error_errno(r, "Cannot take the sockets passed by systemd: %s", strerror(-r));
        if (r > 0) {
                if (a->n_listen > 0 || a->port)
                        log_info("Using the %d socket(s) passed by systemd; ignoring --listen/--port", r);
                return 0;
        }
        /* Read once, at start: the sockets outlive every reload. */
        mode_t mode = a->socket_mode_set ? a->socket_mode : s->config.socket_mode;
        for (size_t i = 0; i < a->n_listen; i++)
                if ((r = sockets_bind(&s->sockets, a->listen[i], a->address, mode)) < 0)
                        return r;
        if (a->port && (r = sockets_bind(&s->sockets, a->port, a->address, mode)) < 0)
                return r;
        if (s->sockets.n == 0) {
                log_error(
                        "Nothing to listen on: use -p PORT or --listen ADDR:PORT|PATH, or start from a systemd socket unit");
                return -EINVAL;
        }
        return 0;
}

static int already_running(const char *instance) {
        sd_bus *bus = NULL;
        int r = client_connect(instance, true, &bus);
        sd_bus_flush_close_unref(bus);
        return r >= 0;
}

/* What a previous run of this instance left, if it was SIGKILLed: its workers died with
 * it, but what they forked did not, and would hold the port with old code (leftovers.h).
 * It goes before the sockets are taken and the first worker starts. Its drain is bounded
 * by 5 s, not by a drain_timeout of maybe minutes: the old code is unsupervised and the
 * instance is down until it is gone, so a short grace for in-flight requests is all it
 * gets. Under systemd the unit's cgroup has already done this (KillMode=mixed). */
#define LEFTOVER_DRAIN_MAX_USEC (5 * USEC_PER_SEC)

static int take_leftovers(struct supervisor *s) {
        int r = leftovers_open(&s->leftovers, s->runtime_dir);
        if (r == -EBUSY)
                return log_error_errno(r,
                                       "liveswap instance %s is already running: another supervisor holds %s/workers",
                                       s->instance, s->runtime_dir);
        if (r < 0)
                return r;
        uint64_t drain = s->config.drain_timeout_usec;
        const pid_t *ours;
        size_t n_ours = orphans_pids(s->orphans, &ours);
        (void) leftovers_stop_previous_except(&s->leftovers, s->config.drain_signal,
                                              drain < LEFTOVER_DRAIN_MAX_USEC ? drain : LEFTOVER_DRAIN_MAX_USEC, ours,
                                              n_ours);
        return 0;
}

/* SIGTERM and SIGINT: SIG_BLOCK hands them to sd-event, SIG_UNBLOCK lets them stop the
 * process at once. */
static void block_stop_signals(int how) {
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(how, &mask, NULL);
}

/* ---- the ways in that are signals ---- */

static int on_stop_signal(sd_event_source *source, const struct signalfd_siginfo *si, void *userdata) {
        struct supervisor *s = userdata;
        if (engine_get_state(s->engine) != ENGINE_STOPPING)
                log_info("Received %s: draining every worker", sigabbrev_np((int) si->ssi_signo) ?: "signal");
        return request_quit(s);
}

/* A reload is an upgrade request like any other. A refusal that request.c logged (with
 * its reason in STATUS=) is not logged again; one refused before it began (busy) is. */
static int on_reload_signal(sd_event_source *source, const struct signalfd_siginfo *si, void *userdata) {
        struct supervisor *s = userdata;
        struct request_result result;
        uint64_t generation;
        log_info("Received SIGHUP: reloading");
        if (request_upgrade(s, NULL, &generation, &result) < 0 &&
            (result.error == REQUEST_BUSY || result.error == REQUEST_ERRNO))
                log_error("Reload refused: %s", result.message);
        return 0;
}

/* SIGUSR2, nginx's convention for replacing its binary: a reexec like Reexecute(). */
static int on_reexec_signal(sd_event_source *source, const struct signalfd_siginfo *si, void *userdata) {
        struct supervisor *s = userdata;
        struct request_result result;
        log_info("Received SIGUSR2: re-executing");
        if (request_reexec(s, &result) < 0 && result.error != REQUEST_REEXEC_FAILED)
                log_error("Reexec refused: %s", result.message);
        return 0;
}

static int watch_signals(struct supervisor *s) {
        int r;
        if ((r = sd_event_add_signal(s->event, NULL, SIGUSR2, on_reexec_signal, s)) < 0 ||
            (r = sd_event_add_signal(s->event, NULL, SIGTERM, on_stop_signal, s)) < 0 ||
            (r = sd_event_add_signal(s->event, NULL, SIGINT, on_stop_signal, s)) < 0 ||
            (r = sd_event_add_signal(s->event, NULL, SIGHUP, on_reload_signal, s)) < 0)
                return log_error_errno(r, "Cannot watch signals: %m");
        return 0;
}

/* A reexec that was accepted (request_reexec()): runs after the reply was sent, below
 * the dispatch's priority, so that the engine's queue is empty. Returns only when the
 * exec failed; then nothing has changed and the old image goes on. */
static int on_reexec(sd_event_source *source, void *userdata) {
        struct bus_server *bus = userdata;
        struct supervisor *s = bus_server_supervisor(bus);
        char err[1024], status[1200];
        bus_server_flush(bus);
        int r = handover_exec(s, bus_server_listen_fd(bus), err, sizeof(err));
        log_error_errno(r, "Reexec failed, still running liveswap %s: %s", LIVESWAP_VERSION, err);
        snprintf(status, sizeof(status), "STATUS=Reexec failed: %s", err);
        (void) sd_notify(false, status);
        return 0;
}

static int watch_reexec(struct supervisor *s, struct bus_server *bus) {
        int r = sd_event_add_defer(s->event, &s->reexec, on_reexec, bus);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->reexec, SD_EVENT_OFF);
        if (r < 0)
                return log_error_errno(r, "Cannot set up reexec: %m");
        return 0;
}

/* The configuration, and the instance it names: EXIT_SUCCESS, or the exit status. */
static int load_configuration(struct supervisor *s, const struct arguments *a, char **ret_default_config) {
        _cleanup_free_ char *derived_instance = NULL;
        char err[512];

        /* Instance first: it names the default config file. */
        const char *instance = a->instance;
        if (!instance && a->overrides.target)
                instance = derived_instance = names_instance_from_target(a->overrides.target);
        s->config_path = a->config;
        if (!s->config_path && instance &&
            asprintf(ret_default_config, "%s/%s.conf", DEFAULT_CONFIG_DIR, instance) >= 0 &&
            access(*ret_default_config, F_OK) == 0)
                s->config_path = *ret_default_config;

        /* SIGTERM and SIGINT still have their default action here: a big file on a slow
         * disk cannot hold off a stop, and nothing exists yet that an abrupt end would
         * leave behind. From here on sd-event takes them (pending ones included). */
        int r = config_load_merged(&s->config, s->config_path, &s->overrides, err, sizeof(err));
        /* environment_file= is read now, and again at every upgrade. */
        if (r >= 0)
                r = envfile_resolve(&s->config, err, sizeof(err));
        block_stop_signals(SIG_BLOCK);
        if (r < 0) {
                /* A missing file stays fatal: under systemd it is the only source of the
                 * target, and running something else would be worse than not running. */
                if (r == -ENOMEM)
                        log_oom();
                else if (r == -ENOENT)
                        log_error("Cannot start instance %s: its configuration file %s does not exist "
                                  "(create it with at least target = PATH, see liveswap.conf(5))",
                                  instance ?: "(unnamed)", s->config_path);
                else if (getenv("JOURNAL_STREAM"))
                        log_error("%s", err); /* journald needs the level */
                else
                        fprintf(stderr, "%s\n", err); /* FILE:LINE: first, as compilers write it */
                return EXIT_CONFIG;
        }
        if (!instance && s->config.target)
                instance = derived_instance = names_instance_from_target(s->config.target);
        if (!instance) {
                log_error("No instance name and no target: use -s TARGET (see liveswap --help)");
                return EXIT_USAGE;
        }
        if (names_validate_instance(instance) < 0) {
                log_error("Invalid instance name '%s'", instance);
                return EXIT_USAGE;
        }
        s->instance = strdup(instance);
        log_set_instance(instance);
        s->head_path = s->config.head ? strdup(s->config.head)
                                      : names_head_path(getenv("STATE_DIRECTORY"), getenv("XDG_STATE_HOME"),
                                                        getenv("HOME"), geteuid() == 0, instance);
        s->runtime_dir = names_runtime_dir(getenv("RUNTIME_DIRECTORY"), getenv("XDG_RUNTIME_DIR"), instance);
        if (!s->instance || !s->head_path || !s->runtime_dir) {
                log_oom();
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}

/* Everything the loop needs, in the order that keeps a failure harmless: the target, the
 * runtime directory, a check for a running twin, leftovers, sockets, the notify socket,
 * the loop, the bus. EXIT_SUCCESS, or the exit status. */
static int set_up(struct supervisor *s, const struct arguments *a, struct bus_server **ret_bus, char **ret_bus_path) {
        int r;
        if (engine_new(&s->engine) < 0) {
                log_oom();
                return EXIT_FAILURE;
        }
        if (request_choose_start_target(s) < 0)
                return EXIT_FAILURE;
        if ((r = mkdir_parents(s->runtime_dir, 0755)) < 0) {
                log_error_errno(r, "Cannot create %s: %m", s->runtime_dir);
                return EXIT_FAILURE;
        }
        /* (After an unreadable hand-over the previous image's private socket is still
         * open here, unserved: asking it would hang. The records lock below tells.) */
        if (!s->orphans && a->handover_fd < 0 && already_running(s->instance)) {
                log_error("liveswap instance %s is already running (control it with liveswapctl -i %s)", s->instance,
                          s->instance);
                return EXIT_FAILURE;
        }
        if (take_leftovers(s) < 0)
                return EXIT_FAILURE;
        if ((r = take_sockets(s, a)) < 0)
                /* A malformed address or nothing to listen on is bad usage; a port in use or
                 * a permission is a failure like any other (and worth a restart). */
                return r == -EINVAL ? EXIT_USAGE : EXIT_FAILURE;
        s->fdnames = sockets_fdnames(&s->sockets);
        if (asprintf(&s->notify_path, "%s/notify", s->runtime_dir) < 0 ||
            asprintf(ret_bus_path, "%s/bus", s->runtime_dir) < 0 || !s->fdnames) {
                log_oom();
                return EXIT_FAILURE;
        }
        s->notify_fd = notify_open(s->notify_path);
        if (s->notify_fd < 0) {
                log_error_errno(s->notify_fd, "Cannot create the notify socket %s: %m", s->notify_path);
                return EXIT_FAILURE;
        }
        if (supervisor_setup_loop(s) < 0 || watch_signals(s) < 0 ||
            orphans_watch(s->orphans, s->event, &s->leftovers) < 0 ||
            bus_server_new(s, *ret_bus_path, -1, ret_bus) < 0 || watch_reexec(s, *ret_bus) < 0)
                return EXIT_FAILURE;
        return EXIT_SUCCESS;
}

/* The open-file limit. Each worker holds 2 of our fds (fd-budget.h), and the usual soft
 * limit of 1024 would stop us short of 500 workers: we raise it to the hard limit, as
 * systemd raises its own, and give workers the original back (select() breaks above
 * 1024). A re-executed image finds the raised one: the original comes along in
 * NOFILE_ENV, which no worker inherits (spawn.c drops every LIVESWAP_* variable). */
#define NOFILE_ENV "LIVESWAP_NOFILE_SOFT"
static void raise_nofile_limit(struct supervisor *s, bool handover) {
        struct rlimit l;
        if (getrlimit(RLIMIT_NOFILE, &l) < 0) {
                s->nofile_limit = 1024;
                return;
        }
        uint64_t original = l.rlim_cur;
        const char *saved = handover ? getenv(NOFILE_ENV) : NULL;
        if (saved) {
                char *end;
                unsigned long long v = strtoull(saved, &end, 10);
                if (*saved && !*end && v > 0 && v <= l.rlim_cur)
                        original = v;
        }
        if (l.rlim_cur < l.rlim_max) {
                struct rlimit raised = { .rlim_cur = l.rlim_max, .rlim_max = l.rlim_max };
                if (setrlimit(RLIMIT_NOFILE, &raised) >= 0)
                        l.rlim_cur = l.rlim_max;
                else
                        log_warning_errno(errno, "Cannot raise the open file limit from %llu to %llu: %m",
                                          (unsigned long long) l.rlim_cur, (unsigned long long) l.rlim_max);
        }
        s->nofile_limit = l.rlim_cur;
        s->nofile_original = original < l.rlim_cur ? original : 0;
        char text[32];
        snprintf(text, sizeof(text), "%llu", (unsigned long long) original);
        (void) setenv(NOFILE_ENV, text, 1);
}

/* Says how many workers the open-file limit allows; false when WORKERS do not fit. */
static bool check_fd_budget(struct supervisor *s, unsigned workers) {
        supervisor_measure_fds(s);
        if (s->nofile_original > 0)
                log_info("Open file limit %" PRIu64 " (raised from %" PRIu64
                         ", which workers get): room for %u workers",
                         s->nofile_limit, s->nofile_original, s->max_workers);
        else
                log_info("Open file limit %" PRIu64 ": room for %u workers", s->nofile_limit, s->max_workers);
        if (workers <= s->max_workers)
                return true;
        log_error("workers=%u does not fit the open file limit: RLIMIT_NOFILE %" PRIu64
                  " allows at most %u workers (%u fds each, beside the supervisor's own); raise LimitNOFILE= or "
                  "lower workers=",
                  workers, s->nofile_limit, s->max_workers, FD_BUDGET_PER_WORKER);
        return false;
}

/* Starts the first generation and runs until the engine says every worker is gone. */
static int run_loop(struct supervisor *s, const char *bus_path) {
        struct engine_settings settings;
        engine_settings_from_config(&s->config, &settings);
        if (!check_fd_budget(s, settings.workers))
                return EXIT_CONFIG;
        uint64_t generation = supervisor_first_generation(s);
        supervisor_record_generation(s, generation);
        int r = engine_start(s->engine, now_usec(), generation, s->current.target, &settings);
        if (r < 0) {
                log_error_errno(r, "Cannot start: %m");
                return EXIT_FAILURE;
        }
        /* The program's name is the line's prefix on a terminal and its identifier in the
         * journal: the line itself starts with what happens. */
        log_info("Starting instance %s (version %s): %u worker(s) of %s, control socket %s", s->instance,
                 LIVESWAP_VERSION, settings.workers, s->current.target, bus_path);
        supervisor_kick(s);

        r = sd_event_loop(s->event);
        if (r < 0)
                log_error_errno(r, "Event loop failed: %m");
        else if (s->exit_status != EXIT_SUCCESS)
                log_error("All workers are gone: exiting with status %d", s->exit_status);
        else
                log_info("All workers are gone: exiting");
        return r < 0 ? EXIT_FAILURE : s->exit_status;
}

/* After a run that ended as the engine said (a stop, or a start that timed out) the
 * records are gone with the workers, and their directory is ours to remove under systemd
 * too: systemd removes a RuntimeDirectory= that is not on a tmpfs only while it is empty.
 * The runtime directory itself is ours when systemd does not own it. */
static void remove_runtime_dir(const char *runtime_dir) {
        _cleanup_free_ char *records = NULL, *slots = NULL;
        if (asprintf(&slots, "%s/workers/" LEFTOVERS_SLOTS_FILE, runtime_dir) >= 0)
                (void) unlink(slots);
        if (asprintf(&records, "%s/workers", runtime_dir) >= 0)
                (void) rmdir(records);
        if (!getenv("RUNTIME_DIRECTORY"))
                (void) rmdir(runtime_dir);
}

/* ---- after a reexec ---- */

/* The image that re-executed us left everything in place: the sockets at LISTEN_FDS, the
 * other fds as the hand-over names them, the workers as our children. Returns
 * EXIT_SUCCESS, an exit status, or -1 when the hand-over does not fit what is here: then
 * nothing was taken but the sockets, and the caller starts afresh. The configuration
 * file is not read: the configuration in effect is the hand-over's (a reload reads the
 * file, as before). */
static int set_up_from_handover(struct supervisor *s, struct handover_state *st, char **ret_config_path,
                                struct bus_server **ret_bus, char **ret_bus_path) {
        char err[1024];
        int r = sockets_from_systemd(&s->sockets);
        if (r <= 0) {
                log_error("Cannot take over: no listening socket at LISTEN_FDS (%s)", r < 0 ? strerror(-r) : "none");
                return -1;
        }
        s->fdnames = sockets_fdnames(&s->sockets);
        if (!s->fdnames || engine_new(&s->engine) < 0 || config_init(&s->config) < 0) {
                log_oom();
                return EXIT_FAILURE;
        }
        r = handover_restore_state(s, st, err, sizeof(err));
        if (r < 0) {
                log_error("Cannot take over from the previous image: %s", err);
                return -1;
        }
        s->instance = TAKE_PTR(st->instance);
        *ret_config_path = TAKE_PTR(st->config_path);
        s->config_path = *ret_config_path;
        log_set_instance(s->instance);
        block_stop_signals(SIG_BLOCK);
        leftovers_take(&s->leftovers, st->lock_fd);
        if (asprintf(ret_bus_path, "%s/bus", s->runtime_dir) < 0) {
                log_oom();
                return EXIT_FAILURE;
        }
        if (supervisor_setup_loop(s) < 0 || watch_signals(s) < 0)
                return EXIT_FAILURE;
        /* Before anything can fail: every worker has its watch again. */
        (void) handover_restore_workers(s, st);
        r = bus_server_new(s, *ret_bus_path, st->bus_fd, ret_bus);
        st->bus_fd = -1;
        if (r < 0 || watch_reexec(s, *ret_bus) < 0)
                return EXIT_FAILURE;
        return EXIT_SUCCESS;
}

static int run_loop_after_handover(struct supervisor *s, const char *writer_version) {
        char status[1024], line[1200];
        (void) check_fd_budget(s, 0);
        engine_format_status(s->engine, now_usec(), status, sizeof(status));
        log_info("liveswap %s took over from liveswap %s: instance %s, generation %" PRIu64 ", %zu worker(s)",
                 LIVESWAP_VERSION, writer_version ?: "?", s->instance, engine_get_generation(s->engine), s->n_io);
        /* Same main pid, still running: systemd needs no READY=1 (a Type=notify service
         * that is up ignores another), only the news. The engine says READY=1 itself if
         * the first generation was still starting. */
        snprintf(line, sizeof(line), "STATUS=Re-executed liveswap %s. %s", LIVESWAP_VERSION, status);
        (void) sd_notify(false, line);
        supervisor_kick(s);
        int r = sd_event_loop(s->event);
        if (r < 0)
                log_error_errno(r, "Event loop failed: %m");
        else
                log_info("All workers are gone: exiting");
        return r < 0 ? EXIT_FAILURE : s->exit_status;
}

/* Reads the hand-over; on failure, collects the previous image's workers (orphans.h) for
 * the fresh start that follows. EXIT_SUCCESS with *RET filled, or -1 to start afresh. */
static int read_handover(struct supervisor *s, struct arguments *a, struct handover_state *ret) {
        char err[1024];
        int r = handover_read(a->handover_fd, ret, err, sizeof(err));
        a->handover_fd = -1;
        if (r < 0)
                log_error("Cannot read the hand-over of the previous image: %s", err);
        return r < 0 ? -1 : EXIT_SUCCESS;
}

/* Fallback: start afresh, keeping the previous image's workers serving until the new
 * ones are ready (orphans.h). The configuration names the runtime directory, and with
 * it the records lock the previous image held. */
static void adopt_previous_workers(struct supervisor *s, const struct arguments *a) {
        const char *fds_env = getenv("LISTEN_FDS");
        int first = 3 + (fds_env ? atoi(fds_env) : 0);
        if (s->sockets.n > 0)
                first = 3 + (int) s->sockets.n;
        _cleanup_free_ char *records = NULL;
        if (asprintf(&records, "%s/workers", s->runtime_dir) < 0)
                records = NULL;
        log_warning("Starting afresh from the configuration; the previous image's workers drain once the new ones "
                    "are ready");
        s->orphans = orphans_collect(a->inherited_fds, a->n_inherited_fds, first, records);
}

static int run_supervisor(struct arguments *a) {
        struct supervisor s = {
                .notify_fd = -1, .leftovers.dir_fd = -1, .leftovers.slots_fd = -1, .overrides = a->overrides
        };
        _cleanup_free_ char *default_config = NULL, *bus_path = NULL, *handover_config = NULL;
        struct bus_server *bus = NULL;
        struct handover_state st = { .notify_fd = -1, .bus_fd = -1, .lock_fd = -1 };
        int status = -1;

        s.arguments = a->argv;
        raise_nofile_limit(&s, a->handover_fd >= 0);
        (void) spawn_reserve_fds(); /* while the low fd numbers are free */
        s.program = handover_choose_program();
        if (!s.program) {
                log_oom();
                return EXIT_FAILURE;
        }
        bool handover = a->handover_fd >= 0;
        if (handover && read_handover(&s, a, &st) == EXIT_SUCCESS) {
                status = set_up_from_handover(&s, &st, &handover_config, &bus, &bus_path);
                if (status == EXIT_SUCCESS)
                        status = run_loop_after_handover(&s, st.writer_version);
        }
        if (status < 0) {
                /* A fresh start (after a hand-over that could not be used: with what the
                 * restore may have set up undone). */
                s.engine = engine_free(s.engine);
                config_done(&s.config);
                s.config = (struct config){};
                free(s.fdnames);
                s.fdnames = NULL;
                status = load_configuration(&s, a, &default_config);
                if (status == EXIT_SUCCESS && handover)
                        adopt_previous_workers(&s, a);
                if (status == EXIT_SUCCESS)
                        status = set_up(&s, a, &bus, &bus_path);
                if (status == EXIT_SUCCESS)
                        status = run_loop(&s, bus_path);
        }
        handover_state_done(&st);

        _cleanup_free_ char *runtime_dir = TAKE_PTR(s.runtime_dir);
        bus_server_free(bus);
        request_done(&s);
        supervisor_done(&s);
        if ((status == EXIT_SUCCESS || s.exit_status != EXIT_SUCCESS) && runtime_dir)
                remove_runtime_dir(runtime_dir);
        return status;
}

int main(int argc, char **argv) {
        struct arguments a = { .handover_fd = -1 };
        sigset_t mask;

        /* Before anything of ours is open: what a re-executing image passed. */
        for (int i = 1; i < argc; i++)
                if (strncmp(argv[i], "--handover", 10) == 0) {
                        (void) orphans_inherited_fds(&a.inherited_fds, &a.n_inherited_fds);
                        break;
                }
        log_open();
        if (parse_arguments(argc, argv, &a) < 0) {
                free(a.listen);
                free(a.inherited_fds);
                return EXIT_USAGE;
        }
        if (a.client != CLIENT_NONE) {
                free(a.listen);
                return run_client(&a);
        }

        /* sd-event needs these blocked to deliver them as events; children get a clean
         * mask back in spawn.c. SIGHUP (a reload) waits for the loop from the start;
         * SIGTERM and SIGINT only once the configuration is read (run_supervisor()),
         * and they must not arrive blocked from our parent either. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGUSR2);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        block_stop_signals(SIG_UNBLOCK);
        signal(SIGPIPE, SIG_IGN);

        a.argv = argv;
        int status = run_supervisor(&a);
        free(a.listen);
        free(a.inherited_fds);
        return status;
}
