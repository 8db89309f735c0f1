/* config.c: the INI configuration file, parsed with inih. Every error names the file and
 * line; values are checked here, once, so the rest of liveswap can trust them. */
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "macro.h"

const char *strategy_to_string(enum strategy s) {
        switch (s) {
        case STRATEGY_ROLLING:
                return "rolling";
        case STRATEGY_BLUE_GREEN:
                return "blue-green";
        case STRATEGY_RESTART:
                return "restart";
        }
        return "unknown";
}

const char *ready_mode_to_string(enum ready_mode m) {
        return m == READY_NOTIFY ? "notify" : "delay";
}

int config_init(struct config *c) {
        *c = (struct config){
                .workers = 2,
                .strategy = STRATEGY_ROLLING,
                .batch = 1,
                .ready = READY_DELAY,
                .ready_delay_usec = 1 * USEC_PER_SEC,
                .ready_timeout_usec = 30 * USEC_PER_SEC,
                .drain_signal = SIGTERM,
                .drain_timeout_usec = 60 * USEC_PER_SEC,
                .pre_upgrade_timeout_usec = 300 * USEC_PER_SEC,
        };
        c->exec = strdup("./start");
        c->environment = calloc(1, sizeof(char *));
        c->allow_users = calloc(1, sizeof(char *));
        c->allow_groups = calloc(1, sizeof(char *));
        if (!c->exec || !c->environment || !c->allow_users || !c->allow_groups) {
                config_done(c);
                return -ENOMEM;
        }
        return 0;
}

void config_done(struct config *c) {
        free(c->target);
        free(c->exec);
        free(c->pre_upgrade);
        free(c->head);
        strv_free(c->environment);
        strv_free(c->allow_users);
        strv_free(c->allow_groups);
        *c = (struct config){};
}

static char **strv_copy(char *const *v) {
        size_t n = 0;
        while (v && v[n])
                n++;
        char **copy = calloc(n + 1, sizeof(char *));
        if (!copy)
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (!(copy[i] = strdup(v[i]))) {
                        strv_free(copy);
                        return NULL;
                }
        return copy;
}

static int strdup_or_null(char **dst, const char *src) {
        *dst = NULL;
        return src && !(*dst = strdup(src)) ? -ENOMEM : 0;
}

int config_copy(struct config *dst, const struct config *src) {
        *dst = *src;
        dst->target = dst->exec = dst->pre_upgrade = dst->head = NULL;
        dst->environment = dst->allow_users = dst->allow_groups = NULL;
        if (strdup_or_null(&dst->target, src->target) < 0 || strdup_or_null(&dst->exec, src->exec) < 0 ||
            strdup_or_null(&dst->pre_upgrade, src->pre_upgrade) < 0 || strdup_or_null(&dst->head, src->head) < 0 ||
            !(dst->environment = strv_copy(src->environment)) || !(dst->allow_users = strv_copy(src->allow_users)) ||
            !(dst->allow_groups = strv_copy(src->allow_groups))) {
                config_done(dst);
                return -ENOMEM;
        }
        return 0;
}

int config_parse_duration(const char *s, uint64_t *ret_usec) {
        if (!s || !*s || *s == '-' || *s == '+' || isspace((unsigned char) *s))
                return -EINVAL;
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (errno || end == s || !isfinite(v) || v < 0)
                return -EINVAL;
        /* Only plain decimals: no hex floats, exponents or "inf". */
        for (const char *p = s; p < end; p++)
                if (!isdigit((unsigned char) *p) && *p != '.')
                        return -EINVAL;
        double scale;
        if (*end == 0 || strcmp(end, "s") == 0)
                scale = 1e6;
        else if (strcmp(end, "ms") == 0)
                scale = 1e3;
        else if (strcmp(end, "min") == 0)
                scale = 60e6;
        else
                return -EINVAL;
        double usec = v * scale;
        if (usec >= 1e15) /* about 31 years: anything longer is a typo */
                return -ERANGE;
        *ret_usec = (uint64_t) (usec + 0.5);
        return 0;
}

int config_parse_signal(const char *s, int *ret_signal) {
        if (!s || !*s)
                return -EINVAL;
        char *end;
        long n = strtol(s, &end, 10);
        if (*end == 0 && end != s) {
                if (n <= 0 || n >= NSIG || n == SIGKILL || n == SIGSTOP)
                        return -EINVAL;
                *ret_signal = (int) n;
                return 0;
        }
        const char *name = strncmp(s, "SIG", 3) == 0 ? s + 3 : s;
        for (int sig = 1; sig < NSIG; sig++) {
                const char *abbrev = sigabbrev_np(sig);
                if (abbrev && strcmp(abbrev, name) == 0) {
                        if (sig == SIGKILL || sig == SIGSTOP)
                                return -EINVAL;
                        *ret_signal = sig;
                        return 0;
                }
        }
        return -EINVAL;
}

int config_split_command(const char *s, char ***ret_argv) {
        size_t len = strlen(s);
        char **argv = calloc(len / 2 + 2, sizeof(char *));
        char *word = malloc(len + 1);
        size_t n = 0;
        if (!argv || !word) {
                free(argv);
                free(word);
                return -ENOMEM;
        }
        const char *p = s;
        for (;;) {
                while (*p == ' ' || *p == '\t')
                        p++;
                if (!*p)
                        break;
                size_t w = 0;
                char quote = 0;
                for (; *p && (quote || (*p != ' ' && *p != '\t')); p++) {
                        if (quote == '\'') {
                                if (*p == '\'')
                                        quote = 0;
                                else
                                        word[w++] = *p;
                        } else if (*p == '\\') {
                                if (!p[1])
                                        goto invalid;
                                if (quote == '"' && p[1] != '"' && p[1] != '\\')
                                        word[w++] = *p;
                                word[w++] = *++p;
                        } else if (quote == '"') {
                                if (*p == '"')
                                        quote = 0;
                                else
                                        word[w++] = *p;
                        } else if (*p == '\'' || *p == '"')
                                quote = *p;
                        else
                                word[w++] = *p;
                }
                if (quote)
                        goto invalid;
                if (!(argv[n] = strndup(word, w)))
                        goto nomem;
                n++;
        }
        free(word);
        if (n == 0) {
                free(argv);
                return -EINVAL;
        }
        *ret_argv = argv;
        return 0;
invalid:
        free(word);
        strv_free(argv);
        return -EINVAL;
nomem:
        free(word);
        strv_free(argv);
        return -ENOMEM;
}

/* ---- the file ---- */

struct parse_state {
        struct config *config;
        FILE *file;
        int line;        /* lines read so far: the one inih is handling */
        int failed_line; /* where the first of our own errors is */
        int long_line;   /* the first line longer than inih can take, 0 if none */
        char message[400];
        bool failed;
};

static int fail(struct parse_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct parse_state *st, const char *fmt, ...) {
        if (!st->failed) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(st->message, sizeof(st->message), fmt, ap);
                va_end(ap);
                st->failed = true;
                st->failed_line = st->line;
        }
        return 0; /* makes inih report this line */
}

static int set_string(char **dst, const char *value, bool empty_is_unset) {
        char *v = NULL;
        if (!(empty_is_unset && !*value) && !(v = strdup(value)))
                return -ENOMEM;
        free(*dst);
        *dst = v;
        return 0;
}

static int parse_count(const char *value, unsigned *ret) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(value, &end, 10);
        if (errno || !*value || *end || value[0] == '-' || v < 1 || v > 4096)
                return -EINVAL;
        *ret = (unsigned) v;
        return 0;
}

static int parse_list(const char *value, char ***ret) {
        size_t len = strlen(value);
        char **list = calloc(len / 2 + 2, sizeof(char *));
        if (!list)
                return -ENOMEM;
        size_t n = 0;
        for (const char *p = value; *p;) {
                size_t skip = strspn(p, " \t,");
                p += skip;
                size_t w = strcspn(p, " \t,");
                if (w == 0)
                        break;
                if (!(list[n++] = strndup(p, w))) {
                        strv_free(list);
                        return -ENOMEM;
                }
                p += w;
        }
        strv_free(*ret);
        *ret = list;
        return 0;
}

static bool valid_environment(const char *value) {
        const char *eq = strchr(value, '=');
        if (!eq || eq == value)
                return false;
        for (const char *p = value; p < eq; p++)
                if (!(isalnum((unsigned char) *p) || *p == '_') || (p == value && isdigit((unsigned char) *p)))
                        return false;
        return true;
}

static int add_environment(struct config *c, const char *value) {
        size_t n = 0;
        while (c->environment[n])
                n++;
        char **p = reallocarray(c->environment, n + 2, sizeof(char *));
        if (!p)
                return -ENOMEM;
        c->environment = p;
        if (!(p[n] = strdup(value)))
                return -ENOMEM;
        p[n + 1] = NULL;
        return 0;
}

static int duration_key(struct parse_state *st, const char *name, const char *value, uint64_t *dst) {
        if (config_parse_duration(value, dst) < 0)
                return fail(st, "invalid duration '%s' for %s (use a number with ms, s or min, e.g. 1.5s)", value,
                            name);
        return 1;
}

static int handle_worker(struct parse_state *st, struct config *c, const char *name, const char *value) {
        if (strcmp(name, "target") == 0)
                return set_string(&c->target, value, true) < 0 ? fail(st, "out of memory") : 1;
        if (strcmp(name, "exec") == 0) {
                char **argv;
                int r = config_split_command(value, &argv);
                if (r < 0)
                        return fail(st, "invalid exec command '%s' (empty, or an unterminated quote)", value);
                strv_free(argv);
                return set_string(&c->exec, value, false) < 0 ? fail(st, "out of memory") : 1;
        }
        if (strcmp(name, "workers") == 0) {
                if (parse_count(value, &c->workers) < 0)
                        return fail(st, "invalid worker count '%s' (1 to 4096)", value);
                return 1;
        }
        if (strcmp(name, "environment") == 0) {
                if (!valid_environment(value))
                        return fail(st, "invalid environment entry '%s' (expected NAME=VALUE)", value);
                return add_environment(c, value) < 0 ? fail(st, "out of memory") : 1;
        }
        return fail(st, "unknown key '%s' in section [worker]", name);
}

static int handle_upgrade(struct parse_state *st, struct config *c, const char *name, const char *value) {
        if (strcmp(name, "strategy") == 0) {
                if (strcmp(value, "rolling") == 0)
                        c->strategy = STRATEGY_ROLLING;
                else if (strcmp(value, "blue-green") == 0)
                        c->strategy = STRATEGY_BLUE_GREEN;
                else if (strcmp(value, "restart") == 0)
                        c->strategy = STRATEGY_RESTART;
                else
                        return fail(st, "invalid strategy '%s' (rolling, blue-green or restart)", value);
                return 1;
        }
        if (strcmp(name, "batch") == 0) {
                if (parse_count(value, &c->batch) < 0)
                        return fail(st, "invalid batch '%s' (1 to 4096)", value);
                return 1;
        }
        if (strcmp(name, "ready") == 0) {
                if (strcmp(value, "notify") == 0)
                        c->ready = READY_NOTIFY;
                else if (strcmp(value, "delay") == 0)
                        c->ready = READY_DELAY;
                else
                        return fail(st, "invalid ready mode '%s' (notify or delay)", value);
                return 1;
        }
        if (strcmp(name, "ready_delay") == 0)
                return duration_key(st, name, value, &c->ready_delay_usec);
        if (strcmp(name, "ready_timeout") == 0)
                return duration_key(st, name, value, &c->ready_timeout_usec);
        if (strcmp(name, "drain_timeout") == 0)
                return duration_key(st, name, value, &c->drain_timeout_usec);
        if (strcmp(name, "pre_upgrade_timeout") == 0)
                return duration_key(st, name, value, &c->pre_upgrade_timeout_usec);
        if (strcmp(name, "drain_signal") == 0) {
                if (config_parse_signal(value, &c->drain_signal) < 0)
                        return fail(st, "invalid drain signal '%s' (e.g. SIGTERM, SIGQUIT, SIGUSR1)", value);
                return 1;
        }
        if (strcmp(name, "pre_upgrade") == 0)
                return set_string(&c->pre_upgrade, value, true) < 0 ? fail(st, "out of memory") : 1;
        return fail(st, "unknown key '%s' in section [upgrade]", name);
}

static int handler(void *user, const char *section, const char *name, const char *value) {
        struct parse_state *st = user;
        struct config *c = st->config;

        if (strcmp(section, "worker") == 0)
                return handle_worker(st, c, name, value);
        if (strcmp(section, "upgrade") == 0)
                return handle_upgrade(st, c, name, value);
        if (strcmp(section, "control") == 0) {
                if (strcmp(name, "allow_users") == 0)
                        return parse_list(value, &c->allow_users) < 0 ? fail(st, "out of memory") : 1;
                if (strcmp(name, "allow_groups") == 0)
                        return parse_list(value, &c->allow_groups) < 0 ? fail(st, "out of memory") : 1;
                return fail(st, "unknown key '%s' in section [control]", name);
        }
        if (strcmp(section, "state") == 0) {
                if (strcmp(name, "head") == 0) {
                        if (*value && *value != '/')
                                return fail(st, "head must be an absolute path, not '%s'", value);
                        return set_string(&c->head, value, true) < 0 ? fail(st, "out of memory") : 1;
                }
                return fail(st, "unknown key '%s' in section [state]", name);
        }
        if (!*section)
                return fail(st, "key '%s' outside of any section (expected [worker], [upgrade], [control] or [state])",
                            name);
        return fail(st, "unknown section [%s]", section);
}

/* inih keeps going after an error and reports the first error's line, which may be a
 * syntax error it found itself: count lines as it reads them, so each message goes with
 * its own line. */
static char *read_line(char *str, int num, void *stream) {
        struct parse_state *st = stream;
        char *r = fgets(str, num, st->file);
        if (!r)
                return NULL;
        st->line++;
        size_t len = strlen(str);
        if (len == (size_t) num - 1 && str[len - 1] != '\n') {
                /* Longer than inih's line buffer: refuse it rather than misparse the rest. */
                int ch;
                while ((ch = fgetc(st->file)) != EOF && ch != '\n')
                        ;
                if (!st->long_line)
                        st->long_line = st->line;
        }
        return r;
}

int config_load(struct config *c, const char *path, char *err, size_t errlen) {
        struct parse_state st = { .config = c };
        st.file = fopen(path, "re");
        if (!st.file) {
                int r = -errno;
                snprintf(err, errlen, "%s: %s", path, strerror(-r));
                return r;
        }
        int line = ini_parse_stream(read_line, &st, handler, &st);
        bool read_error = ferror(st.file);
        fclose(st.file);
        if (read_error) {
                snprintf(err, errlen, "%s: cannot read the file", path);
                return -EIO;
        }
        if (st.long_line && (line == 0 || st.long_line <= line)) {
                snprintf(err, errlen, "%s:%d: line too long (at most %d characters)", path, st.long_line,
                         INI_MAX_LINE - 2);
                return -EINVAL;
        }
        if (line == 0)
                return 0;
        if (line < 0) {
                snprintf(err, errlen, "%s: out of memory", path);
                return -ENOMEM;
        }
        if (st.failed && st.failed_line <= line)
                snprintf(err, errlen, "%s:%d: %s", path, st.failed_line, st.message);
        else
                snprintf(err, errlen, "%s:%d: syntax error (expected 'key = value' or '[section]')", path, line);
        return -EINVAL;
}
