/* client-logs.c: `liveswapctl logs`, a thin wrapper that execs journalctl with the matches
 * for an instance, one worker or one generation. It reads no journal itself: the one
 * lookup it makes (the pids a past generation had) is journalctl's JSON output of
 * liveswap's own entries, which carry LIVESWAP_GENERATION= and WORKER_PID=. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client.h"
#include "macro.h"

static int strv_push(char ***v, size_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int strv_push(char ***v, size_t *n, const char *fmt, ...) {
        char **grown = reallocarray(*v, *n + 2, sizeof(char *));
        if (!grown)
                return -ENOMEM;
        *v = grown;
        va_list ap;
        va_start(ap, fmt);
        int r = vasprintf(&grown[*n], fmt, ap);
        va_end(ap);
        if (r < 0) {
                grown[*n] = NULL;
                return -ENOMEM;
        }
        grown[++*n] = NULL;
        return 0;
}

int client_logs_argv(const char *unit, bool user, const struct client_logs_options *o, bool query, const pid_t *pids,
                     size_t n_pids, char ***ret) {
        _cleanup_strv_free_ char **v = NULL;
        size_t n = 0;
        int r = strv_push(&v, &n, "journalctl");
        if (r >= 0)
                r = strv_push(&v, &n, "%s", user ? "--user-unit" : "--unit");
        if (r >= 0)
                r = strv_push(&v, &n, "%s", unit);
        if (r >= 0 && query) {
                /* Every entry of liveswap's about the generation; only WORKER_PID matters. */
                r = strv_push(&v, &n, "LIVESWAP_GENERATION=%" PRIu64, o->generation);
                if (r >= 0)
                        r = strv_push(&v, &n, "--output=json");
                if (r >= 0)
                        r = strv_push(&v, &n, "--output-fields=WORKER_PID");
                if (r >= 0)
                        r = strv_push(&v, &n, "--no-pager");
                if (r >= 0)
                        r = strv_push(&v, &n, "--quiet");
        } else if (r >= 0) {
                if (o->follow)
                        r = strv_push(&v, &n, "--follow");
                if (r >= 0 && o->pid > 0)
                        r = strv_push(&v, &n, "_PID=%d", (int) o->pid);
                /* Matches of one field are OR'ed by journalctl, "+" ORs the groups: the
                 * workers' own lines, or liveswap's lines about the generation. */
                for (size_t i = 0; r >= 0 && o->has_generation && i < n_pids; i++)
                        r = strv_push(&v, &n, "_PID=%d", (int) pids[i]);
                if (r >= 0 && o->has_generation && n_pids > 0)
                        r = strv_push(&v, &n, "+");
                if (r >= 0 && o->has_generation)
                        r = strv_push(&v, &n, "LIVESWAP_GENERATION=%" PRIu64, o->generation);
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(v);
        return 0;
}

int client_logs_add_pid(pid_t **pids, size_t *n, pid_t pid) {
        for (size_t i = 0; i < *n; i++)
                if ((*pids)[i] == pid)
                        return 0;
        pid_t *grown = reallocarray(*pids, *n + 1, sizeof(pid_t));
        if (!grown)
                return -ENOMEM;
        *pids = grown;
        grown[(*n)++] = pid;
        return 0;
}

int client_logs_parse_pids(const char *json_lines, pid_t **pids, size_t *n) {
        static const char key[] = "\"WORKER_PID\"";
        for (const char *p = strstr(json_lines, key); p; p = strstr(p, key)) {
                p += strlen(key);
                p += strspn(p, " \t");
                if (*p++ != ':')
                        continue;
                p += strspn(p, " \t");
                if (*p++ != '"')
                        continue;
                char *end;
                errno = 0;
                long v = strtol(p, &end, 10);
                if (errno || end == p || *end != '"' || v <= 0 || v > INT32_MAX || *p < '0' || *p > '9')
                        continue;
                int r = client_logs_add_pid(pids, n, (pid_t) v);
                if (r < 0)
                        return r;
        }
        return 0;
}

bool client_logs_find_journalctl(void) {
        const char *path = getenv("PATH");
        if (!path || !*path)
                path = "/usr/local/bin:/usr/bin:/bin";
        for (const char *p = path; *p;) {
                size_t len = strcspn(p, ":");
                _cleanup_free_ char *file = NULL;
                if (asprintf(&file, "%.*s%sjournalctl", (int) len, p, len ? "/" : "") >= 0 && access(file, X_OK) == 0)
                        return true;
                p += len;
                if (*p == ':')
                        p++;
        }
        return false;
}

/* The unit the supervisor runs in, from its cgroup (through its bus credentials); a user
 * manager's unit when it is one's. Without that (a supervisor outside systemd, or one we
 * cannot inspect) the template's name, and the transport's manager. */
static int find_unit(struct client *c, char **ret_unit, bool *ret_user) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        uint64_t mask = SD_BUS_CREDS_PID | SD_BUS_CREDS_UNIT | SD_BUS_CREDS_USER_UNIT | SD_BUS_CREDS_AUGMENT;
        int r = c->destination ? sd_bus_get_name_creds(c->bus, c->destination, mask, &creds)
                               : sd_bus_get_owner_creds(c->bus, mask, &creds);
        const char *unit = NULL;
        if (r >= 0 && sd_bus_creds_get_user_unit(creds, &unit) >= 0 && unit) {
                *ret_user = true;
        } else if (r >= 0 && sd_bus_creds_get_unit(creds, &unit) >= 0 && unit) {
                size_t len = strlen(unit);
                if (len < 8 || strcmp(unit + len - 8, ".service") != 0 || strncmp(unit, "user@", 5) == 0)
                        unit = NULL; /* a session's scope: not run by systemd as a service */
                *ret_user = false;
        }
        if (unit) {
                *ret_unit = strdup(unit);
                return *ret_unit ? 0 : -ENOMEM;
        }
        enum client_transport t = c->options->transport;
        *ret_user = t == CLIENT_TRANSPORT_USER || (t == CLIENT_TRANSPORT_AUTO && geteuid() != 0);
        if (asprintf(ret_unit, "liveswap@%s.service", c->instance) < 0)
                return -ENOMEM;
        /* Say that it is a guess: a supervisor started by hand logs to its stderr, and an
         * empty journal would otherwise look like a supervisor that logs nothing. */
        fprintf(stderr,
                "liveswapctl: %s does not run as a systemd service; showing %s%s "
                "(a supervisor started by hand logs to its standard error)\n",
                c->instance, *ret_unit, *ret_user ? " of the user manager" : "");
        return 0;
}

/* Runs ARGV and collects its stdout; its stderr is the user's. */
static int run_capture(char **argv, char **ret) {
        int fds[2];
        if (pipe2(fds, O_CLOEXEC) < 0)
                return -errno;
        pid_t pid = fork();
        if (pid < 0) {
                int r = -errno;
                close(fds[0]);
                close(fds[1]);
                return r;
        }
        if (pid == 0) {
                if (dup2(fds[1], STDOUT_FILENO) < 0)
                        _exit(127);
                execvp(argv[0], argv);
                _exit(127);
        }
        close(fds[1]);
        _cleanup_close_ int in = fds[0];
        FILE *f = fdopen(in, "r");
        char *text = NULL;
        size_t size = 0;
        int r = 0;
        if (f) {
                in = -1; /* the FILE owns it */
                FILE *out = open_memstream(&text, &size);
                char buf[65536];
                size_t got;
                while (out && (got = fread(buf, 1, sizeof(buf), f)) > 0)
                        fwrite(buf, 1, got, out);
                if (!out || fclose(out) != 0)
                        r = -ENOMEM;
                fclose(f);
        } else
                r = -errno;
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (r < 0) {
                free(text);
                return r;
        }
        *ret = text;
        return 0;
}

int client_logs(struct client *c, const struct client_logs_options *o) {
        if (c->options->transport == CLIENT_TRANSPORT_REMOTE) {
                return client_fail(c->options, c->instance, CLIENT_EXIT_USAGE, "Usage",
                                   "logs reads this machine's journal: run liveswapctl logs on %s", c->options->host);
        }
        _cleanup_free_ char *unit = NULL;
        bool user = false;
        _cleanup_free_ pid_t *pids = NULL;
        size_t n_pids = 0;
        int r = find_unit(c, &unit, &user);
        if (r >= 0 && o->has_generation) {
                /* The live workers, from the supervisor... */
                struct client_status s = {};
                int k = client_get_status(c, &s);
                if (k != CLIENT_EXIT_OK)
                        return k;
                for (size_t i = 0; r >= 0 && i < s.n_workers; i++)
                        if (s.workers[i].generation == o->generation)
                                r = client_logs_add_pid(&pids, &n_pids, (pid_t) s.workers[i].pid);
                client_status_done(&s);
                /* ...and every one it ever had, from its entries about the generation. */
                _cleanup_strv_free_ char **query = NULL;
                _cleanup_free_ char *json = NULL;
                if (r >= 0)
                        r = client_logs_argv(unit, user, o, true, NULL, 0, &query);
                if (r >= 0 && run_capture(query, &json) >= 0 && json)
                        r = client_logs_parse_pids(json, &pids, &n_pids);
        }
        _cleanup_strv_free_ char **argv = NULL;
        if (r >= 0)
                r = client_logs_argv(unit, user, o, false, pids, n_pids, &argv);
        if (r < 0) {
                return client_fail(c->options, c->instance, client_exit_code_for_errno(r, NULL), "Failed", "%s",
                                   strerror(-r));
        }
        fflush(stdout);
        execvp(argv[0], argv);
        r = errno;
        return client_fail(c->options, c->instance, CLIENT_EXIT_FAILED, "Failed", "cannot run journalctl: %s",
                           strerror(r));
}
