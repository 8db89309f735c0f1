/* config.c: the INI configuration file, parsed with inih, and the value syntaxes it
 * uses (durations, signals, commands). Every value is checked here, once, so the rest of
 * liveswap can trust a struct config; every error names the file and line in words a
 * user understands. Never logs: errors go back to the caller as text. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "macro.h"

#define COUNT_MAX CONFIG_COUNT_MAX
#define DURATION_MAX_USEC CONFIG_DURATION_MAX_USEC

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
        switch (m) {
        case READY_DELAY:
                return "delay";
        case READY_NOTIFY:
                return "notify";
        case READY_LISTEN:
                return "listen";
        }
        return "unknown";
}

const char *kill_mode_to_string(enum kill_mode m) {
        switch (m) {
        case KILL_MODE_GROUP:
                return "group";
        case KILL_MODE_MIXED:
                return "mixed";
        }
        return "unknown";
}

/* ---- the struct ---- */

static size_t strv_length(char *const *v) {
        size_t n = 0;
        while (v && v[n])
                n++;
        return n;
}

static char **strv_copy(char *const *v) {
        size_t n = strv_length(v);
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
        if (src && !(*dst = strdup(src)))
                return -ENOMEM;
        return 0;
}

int config_init(struct config *c) {
        *c = (struct config){
                .workers = 2,
                .strategy = STRATEGY_ROLLING,
                .batch = 1,
                .ready = READY_DELAY,
                .adopt = true,
                .ready_delay_usec = 1 * USEC_PER_SEC,
                .ready_timeout_usec = 30 * USEC_PER_SEC,
                .stable_time_usec = 1 * USEC_PER_SEC,
                .drain_signal = SIGTERM,
                .drain_timeout_usec = 60 * USEC_PER_SEC,
                .kill_mode = KILL_MODE_GROUP,
                .start_timeout_usec = 90 * USEC_PER_SEC, /* systemd's DefaultTimeoutStartSec= */
                .pre_upgrade_timeout_usec = 300 * USEC_PER_SEC,
                /* systemd's SocketMode= default: a socket is for others to connect to. */
                .socket_mode = 0666,
        };
        c->exec = strdup("./start");
        c->environment = calloc(1, sizeof(char *));
        c->environment_files = calloc(1, sizeof(char *));
        c->allow_users = calloc(1, sizeof(char *));
        c->allow_groups = calloc(1, sizeof(char *));
        if (!c->exec || !c->environment || !c->environment_files || !c->allow_users || !c->allow_groups) {
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
        strv_free(c->environment_files);
        strv_free(c->worker_environment);
        strv_free(c->allow_users);
        strv_free(c->allow_groups);
        *c = (struct config){};
}

int config_copy(struct config *dst, const struct config *src) {
        *dst = *src;
        /* Nothing in dst may point into src, or config_done() would free it twice. */
        dst->environment = dst->environment_files = dst->worker_environment = dst->allow_users = dst->allow_groups =
                NULL;
        if (strdup_or_null(&dst->target, src->target) < 0 || strdup_or_null(&dst->exec, src->exec) < 0 ||
            strdup_or_null(&dst->pre_upgrade, src->pre_upgrade) < 0 || strdup_or_null(&dst->head, src->head) < 0 ||
            !(dst->environment = strv_copy(src->environment)) ||
            !(dst->environment_files = strv_copy(src->environment_files)) ||
            (src->worker_environment && !(dst->worker_environment = strv_copy(src->worker_environment))) ||
            !(dst->allow_users = strv_copy(src->allow_users)) || !(dst->allow_groups = strv_copy(src->allow_groups))) {
                config_done(dst);
                return -ENOMEM;
        }
        return 0;
}

/* ---- value syntaxes ---- */

/* "DIGITS[.DIGITS]" at *P, which it moves past: the whole part, and the fraction as
 * FRACTION / SCALE with SCALE at most MAX_SCALE (further digits cannot matter, but must
 * still be digits). Integer arithmetic rather than strtod(): exact, and independent of
 * the locale's decimal point. 0, -EINVAL, or -ERANGE past 64 bits. */
static int parse_number(const char **p, uint64_t max_scale, uint64_t *ret_whole, uint64_t *ret_fraction,
                        uint64_t *ret_scale) {
        const char *q = *p;
        uint64_t whole = 0, fraction = 0, scale = 1;
        for (; isdigit((unsigned char) *q); q++) {
                if (whole > (UINT64_MAX - 9) / 10)
                        return -ERANGE;
                whole = whole * 10 + (uint64_t) (*q - '0');
        }
        if (*q == '.') {
                q++;
                if (!isdigit((unsigned char) *q))
                        return -EINVAL;
                for (; isdigit((unsigned char) *q); q++)
                        if (scale < max_scale) {
                                fraction = fraction * 10 + (uint64_t) (*q - '0');
                                scale *= 10;
                        }
        }
        *p = q;
        *ret_whole = whole;
        *ret_fraction = fraction;
        *ret_scale = scale;
        return 0;
}

/* systemd's time units (systemd.time(7)), with its lengths of a month and a year. */
static const struct {
        const char *name;
        uint64_t usec;
} duration_units[] = {
        { "usec", 1 },
        { "us", 1 },
        { "\u00b5s", 1 }, /* micro sign */
        { "\u03bcs", 1 }, /* Greek mu */
        { "msec", USEC_PER_MSEC },
        { "ms", USEC_PER_MSEC },
        { "seconds", USEC_PER_SEC },
        { "second", USEC_PER_SEC },
        { "sec", USEC_PER_SEC },
        { "s", USEC_PER_SEC },
        { "minutes", 60 * USEC_PER_SEC },
        { "minute", 60 * USEC_PER_SEC },
        { "min", 60 * USEC_PER_SEC },
        { "m", 60 * USEC_PER_SEC },
        { "hours", 3600 * USEC_PER_SEC },
        { "hour", 3600 * USEC_PER_SEC },
        { "hr", 3600 * USEC_PER_SEC },
        { "h", 3600 * USEC_PER_SEC },
        { "days", 86400 * USEC_PER_SEC },
        { "day", 86400 * USEC_PER_SEC },
        { "d", 86400 * USEC_PER_SEC },
        { "weeks", 7 * 86400 * USEC_PER_SEC },
        { "week", 7 * 86400 * USEC_PER_SEC },
        { "w", 7 * 86400 * USEC_PER_SEC },
        { "months", 2629800 * USEC_PER_SEC },
        { "month", 2629800 * USEC_PER_SEC },
        { "M", 2629800 * USEC_PER_SEC },
        { "years", DURATION_MAX_USEC },
        { "year", DURATION_MAX_USEC },
        { "y", DURATION_MAX_USEC },
};

/* The unit at P: the longest name that is not followed by another letter ("1ss" and
 * "1S" are typos, not seconds). Its length in *RET_LENGTH; 0 when none matches. */
static uint64_t duration_unit(const char *p, size_t *ret_length) {
        uint64_t usec = 0;
        size_t best = 0;
        for (size_t i = 0; i < ELEMENTSOF(duration_units); i++) {
                size_t n = strlen(duration_units[i].name);
                if (n > best && strncmp(p, duration_units[i].name, n) == 0 && !isalpha((unsigned char) p[n]) &&
                    (unsigned char) p[n] < 0x80) {
                        best = n;
                        usec = duration_units[i].usec;
                }
        }
        *ret_length = best;
        return usec;
}

int config_parse_duration(const char *s, uint64_t *ret_usec) {
        if (!s || !isdigit((unsigned char) *s))
                return -EINVAL; /* empty, signed, or starting with a blank or a dot */

        uint64_t total = 0;
        const char *p = s;
        /* Each pass takes one "NUMBER[.FRACTION] [UNIT]"; the string bounds the loop. */
        for (unsigned component = 0; *p; component++) {
                if (component > 0) {
                        p += strspn(p, " \t");
                        if (!isdigit((unsigned char) *p))
                                return -EINVAL; /* trailing blanks, or not a number */
                }
                /* Nine digits are below a microsecond for every unit but the longest. */
                uint64_t whole, fraction, fraction_scale;
                int r = parse_number(&p, 1000000000ULL, &whole, &fraction, &fraction_scale);
                if (r < 0)
                        return r;
                const char *number_end = p;
                p += strspn(p, " \t");
                size_t length;
                uint64_t unit = duration_unit(p, &length);
                if (length == 0) {
                        /* A bare number is seconds, but only alone: "1min 30" is a typo. */
                        if (component > 0 || *p != 0 || p != number_end)
                                return -EINVAL;
                        unit = USEC_PER_SEC;
                }
                p += length;
                if (whole > DURATION_MAX_USEC / unit)
                        return -ERANGE;
                /* fraction < fraction_scale <= 10^9, unit <= a year (3.2 * 10^13): the
                 * product fits in 64 bits only when split. */
                uint64_t part = whole * unit + fraction * (unit / fraction_scale) +
                                fraction * (unit % fraction_scale) / fraction_scale;
                if (part > DURATION_MAX_USEC - total)
                        return -ERANGE;
                total += part;
        }
        *ret_usec = total;
        return 0;
}

int config_parse_size(const char *s, uint64_t *ret_bytes) {
        if (!s || !isdigit((unsigned char) *s))
                return -EINVAL;
        const char *p = s;
        /* Six digits are below a byte for every unit up to T. */
        uint64_t whole, fraction, fraction_scale;
        int r = parse_number(&p, 1000000ULL, &whole, &fraction, &fraction_scale);
        if (r < 0)
                return r;
        p += strspn(p, " \t");

        static const struct {
                char suffix;
                uint64_t factor;
        } units[] = { { 'K', 1ULL << 10 }, { 'M', 1ULL << 20 }, { 'G', 1ULL << 30 }, { 'T', 1ULL << 40 } };
        uint64_t unit = 1;
        if (*p) {
                unit = 0;
                for (size_t i = 0; i < ELEMENTSOF(units); i++)
                        if (p[0] == units[i].suffix && p[1] == 0)
                                unit = units[i].factor;
                if (unit == 0)
                        return -EINVAL;
        } else if (fraction_scale > 1)
                return -EINVAL; /* a fraction of a byte */

        if (whole > SIZE_MAX_BYTES / unit)
                return -ERANGE;
        uint64_t bytes = whole * unit + fraction * unit / fraction_scale;
        if (bytes > SIZE_MAX_BYTES)
                return -ERANGE;
        *ret_bytes = bytes;
        return 0;
}

static bool parse_decimal(const char *s, unsigned long max, unsigned long *ret) {
        /* Digits only: strtoul() would also take blanks, signs and "0x". */
        if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 9)
                return false;
        unsigned long v = strtoul(s, NULL, 10);
        if (v > max)
                return false;
        *ret = v;
        return true;
}

int config_parse_signal(const char *s, int *ret_signal) {
        unsigned long n;
        if (!s || !*s)
                return -EINVAL;
        if (isdigit((unsigned char) *s)) {
                if (!parse_decimal(s, (unsigned long) SIGRTMAX, &n) || n == 0)
                        return -EINVAL;
                /* glibc keeps the first real-time signals for itself. */
                if (!sigabbrev_np((int) n) && (int) n < SIGRTMIN)
                        return -EINVAL;
                *ret_signal = (int) n;
                return 0;
        }

        const char *name = strncasecmp(s, "SIG", 3) == 0 ? s + 3 : s;
        for (int sig = 1; sig < SIGRTMIN; sig++) {
                const char *abbrev = sigabbrev_np(sig);
                if (abbrev && strcasecmp(abbrev, name) == 0) {
                        *ret_signal = sig;
                        return 0;
                }
        }

        /* RTMIN, RTMIN+n, RTMAX, RTMAX-n, as kill(1) spells them. */
        bool from_min = strncasecmp(name, "RTMIN", 5) == 0;
        if (!from_min && strncasecmp(name, "RTMAX", 5) != 0)
                return -EINVAL;
        const char *offset = name + 5;
        n = 0;
        if (*offset) {
                if (*offset != (from_min ? '+' : '-') ||
                    !parse_decimal(offset + 1, (unsigned long) (SIGRTMAX - SIGRTMIN), &n))
                        return -EINVAL;
        }
        *ret_signal = from_min ? SIGRTMIN + (int) n : SIGRTMAX - (int) n;
        return 0;
}

/* Makes room for one more entry and the NULL after it. Capacity doubles, so that n
 * appends cost O(n) copying in all, not O(n²). */
static int strv_reserve(char ***v, size_t n, size_t *allocated) {
        if (n + 2 <= *allocated)
                return 0;
        size_t want = *allocated * 2 > n + 2 ? *allocated * 2 : n + 2;
        char **p = reallocarray(*v, want, sizeof(char *));
        if (!p)
                return -ENOMEM;
        *v = p;
        *allocated = want;
        return 0;
}

static int append_word(char ***argv, size_t *n, size_t *allocated, const char *word, size_t len) {
        if (strv_reserve(argv, *n, allocated) < 0)
                return -ENOMEM;
        char **v = *argv;
        if (!(v[*n] = strndup(word, len)))
                return -ENOMEM;
        v[++*n] = NULL;
        return 0;
}

/* config_split_command(), saying why a command is refused. No expansion of any kind:
 * '$', '*' and '~' stay as they are, as in a single-quoted shell word. */
static int split_command(const char *s, char ***ret_argv, const char **ret_reason) {
        _cleanup_strv_free_ char **argv = NULL;
        _cleanup_free_ char *word = malloc(strlen(s) + 1); /* a word is never longer */
        size_t n = 0, allocated = 0;
        if (!word)
                return -ENOMEM;

        const char *p = s;
        for (;;) {
                p += strspn(p, " \t\n");
                if (!*p)
                        break;
                size_t len = 0;
                char quote = 0;
                for (; *p; p++) {
                        if (quote == '\'') {
                                if (*p == '\'')
                                        quote = 0;
                                else
                                        word[len++] = *p;
                        } else if (quote == '"') {
                                /* Inside double quotes a backslash only escapes what the
                                 * shell would let it escape; elsewhere it stays. */
                                if (*p == '"')
                                        quote = 0;
                                else if (*p == '\\' && p[1] && strchr("\"\\$`\n", p[1])) {
                                        if (*++p != '\n')
                                                word[len++] = *p;
                                } else
                                        word[len++] = *p;
                        } else if (*p == '\'' || *p == '"') {
                                quote = *p;
                        } else if (*p == '\\') {
                                if (!p[1]) {
                                        *ret_reason = "it ends with a backslash";
                                        return -EINVAL;
                                }
                                if (*++p != '\n')
                                        word[len++] = *p;
                        } else if (*p == ' ' || *p == '\t' || *p == '\n')
                                break;
                        else
                                word[len++] = *p;
                }
                if (quote) {
                        *ret_reason = quote == '"' ? "a double quote is not closed" : "a single quote is not closed";
                        return -EINVAL;
                }
                if (append_word(&argv, &n, &allocated, word, len) < 0)
                        return -ENOMEM;
        }
        if (n == 0) {
                *ret_reason = "it is empty";
                return -EINVAL;
        }
        *ret_argv = TAKE_PTR(argv);
        return 0;
}

int config_split_command(const char *s, char ***ret_argv) {
        const char *reason;
        if (!s)
                return -EINVAL;
        return split_command(s, ret_argv, &reason);
}

int config_parse_mode(const char *s, mode_t *ret_mode) {
        if (!s || !*s || strlen(s) > 4 || strspn(s, "01234567") != strlen(s))
                return -EINVAL;
        unsigned long mode = strtoul(s, NULL, 8);
        if (mode > 0777)
                return -EINVAL;
        *ret_mode = (mode_t) mode;
        return 0;
}

/* ---- the keys ---- */

struct parse_state {
        struct config *config;
        FILE *file;
        unsigned line; /* lines read so far, i.e. the one inih is working on */
        unsigned error_line; /* the first line we found wrong, 0 if none */
        int error; /* its negative errno */
        int read_errno;
        char message[512];

        /* The line being parsed, whole: inih only ever sees a copy of it that fits its
         * buffer (read_line()). */
        char *text;
        size_t text_allocated;
        /* The value of the current line when it was too long for inih, which got
         * LONG_VALUE_MARKER in its place; NULL otherwise. Whether a value is a stand-in
         * is known from this pointer alone, never from the text inih passes on, so no
         * file content can pose as one. */
        const char *long_value;

        /* config->environment in file order, duplicates included until the end of the
         * file (environment_dedupe()): one pass instead of a search per line. */
        size_t n_environment, environment_allocated;
        size_t bytes; /* read so far, newlines included */
        bool too_large; /* more than CONFIG_FILE_MAX */
};

/* What inih sees in place of a value too long for its buffer; see shorten(). */
#define LONG_VALUE_MARKER "@long-value@"

static int fail(struct parse_state *st, int error, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct parse_state *st, int error, const char *fmt, ...) {
        /* The first error is the one to fix; later ones are often its echoes. */
        if (st->error_line == 0) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(st->message, sizeof(st->message), fmt, ap);
                va_end(ap);
                st->error_line = st->line;
                st->error = error;
        }
        return error;
}

#define fail_nomem(st) fail(st, -ENOMEM, "out of memory")

static bool is_quoted(const char *value) {
        size_t n = strlen(value);
        return n >= 2 && (value[0] == '"' || value[0] == '\'') && value[n - 1] == value[0];
}

/* A path key: empty means unset. Quotes would become part of the path, so refuse them
 * rather than look for a file called "/srv/app". */
static int set_path(struct parse_state *st, const char *key, const char *value, char **dst) {
        if (is_quoted(value))
                return fail(st, -EINVAL, "%s: write the path without quotes: %s", key, value);
        char *v = NULL;
        if (*value && !(v = strdup(value)))
                return fail_nomem(st);
        free(*dst);
        *dst = v;
        return 0;
}

static int parse_target(struct parse_state *st, const char *key, const char *value) {
        return set_path(st, key, value, &st->config->target);
}

static int parse_pre_upgrade(struct parse_state *st, const char *key, const char *value) {
        return set_path(st, key, value, &st->config->pre_upgrade);
}

static int parse_head(struct parse_state *st, const char *key, const char *value) {
        /* A relative HEAD would depend on the supervisor's working directory, which is /
         * under systemd and anything elsewhere. */
        if (*value && *value != '/' && !is_quoted(value))
                return fail(st, -EINVAL, "head must be an absolute path, not '%s'", value);
        return set_path(st, key, value, &st->config->head);
}

static int parse_exec(struct parse_state *st, const char *key, const char *value) {
        _cleanup_strv_free_ char **argv = NULL;
        const char *reason = NULL;
        int r = split_command(value, &argv, &reason);
        if (r == -ENOMEM)
                return fail_nomem(st);
        if (r < 0)
                return fail(st, -EINVAL, "invalid exec command '%s': %s", value, reason);
        if (!argv[0][0])
                return fail(st, -EINVAL, "invalid exec command '%s': the program name is empty", value);
        char *v = strdup(value);
        if (!v)
                return fail_nomem(st);
        free(st->config->exec);
        st->config->exec = v;
        return 0;
}

static int parse_count(struct parse_state *st, const char *key, const char *value, unsigned *dst) {
        unsigned long v;
        if (!parse_decimal(value, COUNT_MAX, &v) || v < 1)
                return fail(st, -EINVAL, "invalid %s '%s' (a whole number from 1 to %d)", key, value, COUNT_MAX);
        *dst = (unsigned) v;
        return 0;
}

static int parse_workers(struct parse_state *st, const char *key, const char *value) {
        return parse_count(st, key, value, &st->config->workers);
}

static int parse_batch(struct parse_state *st, const char *key, const char *value) {
        return parse_count(st, key, value, &st->config->batch);
}

/* Variables the supervisor sets for each worker: a second copy earlier in the
 * environment would win in getenv() and break the worker protocol. */
static bool reserved_variable(const char *name, size_t len) {
        static const char *const reserved[] = { "LISTEN_PID",    "LISTEN_FDS",   "LISTEN_FDNAMES",
                                                "NOTIFY_SOCKET", "WATCHDOG_PID", "WATCHDOG_USEC" };
        for (size_t i = 0; i < ELEMENTSOF(reserved); i++)
                if (strlen(reserved[i]) == len && memcmp(reserved[i], name, len) == 0)
                        return true;
        /* The adopt library's one setting is the user's to choose (liveswap(8)). */
        if (len == strlen("LIVESWAP_IDLE_GRACE_MS") && memcmp(name, "LIVESWAP_IDLE_GRACE_MS", len) == 0)
                return false;
        return len >= 9 && memcmp(name, "LIVESWAP_", 9) == 0;
}

int config_check_environment(const char *entry, const char **ret_reason) {
        size_t len = strcspn(entry, "=");
        bool valid = entry[len] == '=' && len > 0 && !isdigit((unsigned char) entry[0]);
        for (size_t i = 0; valid && i < len; i++)
                valid = isalnum((unsigned char) entry[i]) || entry[i] == '_';
        if (!valid) {
                *ret_reason = "expected NAME=VALUE, the name made of letters, digits and '_', not starting with a digit";
                return -EINVAL;
        }
        if (reserved_variable(entry, len)) {
                *ret_reason = "the name is set by liveswap for each worker and cannot be set here";
                return -EPERM;
        }
        return 0;
}

static int parse_environment(struct parse_state *st, const char *key, const char *value) {
        struct config *c = st->config;
        const char *reason;
        int r = config_check_environment(value, &reason);
        if (r == -EINVAL)
                return fail(st, -EINVAL, "invalid environment entry '%s' (%s)", value, reason);
        if (r < 0)
                return fail(st, -EINVAL, "environment: %.*s is set by liveswap for each worker and cannot be set here",
                            (int) strcspn(value, "="), value);

        /* Duplicates are resolved once, at the end of the file (environment_dedupe()). */
        if (append_word(&c->environment, &st->n_environment, &st->environment_allocated, value, strlen(value)) < 0)
                return fail_nomem(st);
        return 0;
}

bool config_variable_reserved(const char *name, size_t len) {
        return reserved_variable(name, len);
}

/* environment_file=: one path per line, kept in order; an empty value empties the list
 * (as EnvironmentFile= does in a drop-in). Read later, at each start and upgrade, not
 * here: a reload must see the file as it is then. */
static int parse_environment_file(struct parse_state *st, const char *key, const char *value) {
        struct config *c = st->config;
        if (!*value) {
                strv_free(c->environment_files);
                if (!(c->environment_files = calloc(1, sizeof(char *))))
                        return fail_nomem(st);
                return 0;
        }
        if (value[value[0] == '-'] != '/')
                return fail(st, -EINVAL, "%s must be an absolute path, optionally prefixed with '-' (got '%s')", key,
                            value);
        size_t n = strv_length(c->environment_files), allocated = n + 1;
        if (append_word(&c->environment_files, &n, &allocated, value, strlen(value)) < 0)
                return fail_nomem(st);
        return 0;
}

struct environment_ref {
        const char *name;
        size_t name_len;
        size_t position;
};

static int compare_names(const struct environment_ref *x, const struct environment_ref *y) {
        int r = memcmp(x->name, y->name, x->name_len < y->name_len ? x->name_len : y->name_len);
        return r ?: (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

static int compare_environment_refs(const void *a, const void *b) {
        const struct environment_ref *x = a, *y = b;
        return compare_names(x, y) ?: (x->position > y->position) - (x->position < y->position);
}

/* A name set twice keeps its first place and its last value, as systemd's Environment=
 * does. Sorting references by (name, position) finds every group of equal names in
 * O(n log n), where a search per line was O(n²): 300,000 lines took minutes. */
static int environment_dedupe(char **env, size_t n) {
        _cleanup_free_ struct environment_ref *refs = calloc(n ?: 1, sizeof(*refs));
        if (!refs)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                refs[i] = (struct environment_ref){ env[i], strcspn(env[i], "="), i };
        qsort(refs, n, sizeof(*refs), compare_environment_refs);

        for (size_t first = 0, end; first < n; first = end) {
                for (end = first + 1; end < n && compare_names(&refs[first], &refs[end]) == 0; end++)
                        ;
                if (end - first == 1)
                        continue;
                /* The last value moves to the first place; the ones between are gone. */
                size_t keep = refs[first].position, last = refs[end - 1].position;
                free(env[keep]);
                env[keep] = env[last];
                env[last] = NULL;
                for (size_t i = first + 1; i < end - 1; i++) {
                        free(env[refs[i].position]);
                        env[refs[i].position] = NULL;
                }
        }
        size_t kept = 0;
        for (size_t i = 0; i < n; i++)
                if (env[i])
                        env[kept++] = env[i];
        env[kept] = NULL;
        return 0;
}

static int parse_adopt(struct parse_state *st, const char *key, const char *value) {
        static const char *const yes[] = { "yes", "true", "on", "1" }, *const no[] = { "no", "false", "off", "0" };
        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (strcmp(value, yes[i]) == 0) {
                        st->config->adopt = true;
                        return 0;
                }
                if (strcmp(value, no[i]) == 0) {
                        st->config->adopt = false;
                        return 0;
                }
        }
        return fail(st, -EINVAL, "invalid adopt '%s' (yes or no)", value);
}

static int parse_strategy(struct parse_state *st, const char *key, const char *value) {
        static const enum strategy all[] = { STRATEGY_ROLLING, STRATEGY_BLUE_GREEN, STRATEGY_RESTART };
        for (size_t i = 0; i < ELEMENTSOF(all); i++)
                if (strcmp(value, strategy_to_string(all[i])) == 0) {
                        st->config->strategy = all[i];
                        return 0;
                }
        return fail(st, -EINVAL, "invalid strategy '%s' (rolling, blue-green or restart)", value);
}

static int parse_ready(struct parse_state *st, const char *key, const char *value) {
        if (strcmp(value, "notify") == 0)
                st->config->ready = READY_NOTIFY;
        else if (strcmp(value, "delay") == 0)
                st->config->ready = READY_DELAY;
        else if (strcmp(value, "listen") == 0)
                st->config->ready = READY_LISTEN;
        else
                return fail(st, -EINVAL, "invalid ready '%s' (notify, listen or delay)", value);
        return 0;
}

static int parse_duration(struct parse_state *st, const char *key, const char *value, uint64_t *dst, bool zero_ok) {
        uint64_t usec;
        int r = config_parse_duration(value, &usec);
        if (r == -ERANGE)
                return fail(st, -EINVAL, "duration '%s' for %s is too long (at most a year)", value, key);
        if (r < 0)
                return fail(st, -EINVAL, "invalid duration '%s' for %s (e.g. 500ms, 1.5s, 2min, 1min 30s, 1h)", value,
                            key);
        if (usec == 0 && !zero_ok)
                return fail(st, -EINVAL, "%s must be longer than 0", key);
        *dst = usec;
        return 0;
}

static int parse_ready_delay(struct parse_state *st, const char *key, const char *value) {
        return parse_duration(st, key, value, &st->config->ready_delay_usec, true);
}

/* A zero timeout would fail every worker or hook at once. */
static int parse_ready_timeout(struct parse_state *st, const char *key, const char *value) {
        return parse_duration(st, key, value, &st->config->ready_timeout_usec, false);
}

/* Zero turns the canary off: old workers drain as soon as new ones are ready. */
static int parse_stable_time(struct parse_state *st, const char *key, const char *value) {
        return parse_duration(st, key, value, &st->config->stable_time_usec, true);
}

/* Zero is fine here: old workers are killed without a grace period. */
static int parse_drain_timeout(struct parse_state *st, const char *key, const char *value) {
        return parse_duration(st, key, value, &st->config->drain_timeout_usec, true);
}

/* Zero turns the bound off, as TimeoutStartSec=infinity would. */
static int parse_start_timeout(struct parse_state *st, const char *key, const char *value) {
        return parse_duration(st, key, value, &st->config->start_timeout_usec, true);
}

/* Zero turns the watchdog off. Under a millisecond no worker could keep up, and the
 * supervisor would spend its time on pings. */
static int parse_watchdog(struct parse_state *st, const char *key, const char *value) {
        uint64_t usec = 0; /* gcc -O2 cannot see that parse_duration() sets it when it returns 0 */
        int r = parse_duration(st, key, value, &usec, true);
        if (r < 0)
                return r;
        if (usec > 0 && usec < USEC_PER_MSEC)
                return fail(st, -EINVAL, "watchdog '%s' is too short (0 for off, or at least 1ms)", value);
        st->config->watchdog_usec = usec;
        return 0;
}

static int parse_memory_max(struct parse_state *st, const char *key, const char *value) {
        int r = config_parse_size(value, &st->config->memory_max);
        if (r == -ERANGE)
                return fail(st, -EINVAL, "size '%s' for %s is too large (at most 1024T)", value, key);
        if (r < 0)
                return fail(st, -EINVAL,
                            "invalid size '%s' for %s (bytes, or with K, M, G or T, e.g. 512M, 1.5G; 0 for off)", value,
                            key);
        return 0;
}

static int parse_kill_mode(struct parse_state *st, const char *key, const char *value) {
        if (strcmp(value, "group") == 0)
                st->config->kill_mode = KILL_MODE_GROUP;
        else if (strcmp(value, "mixed") == 0)
                st->config->kill_mode = KILL_MODE_MIXED;
        else
                return fail(st, -EINVAL, "invalid kill_mode '%s' (group or mixed)", value);
        return 0;
}

static int parse_pre_upgrade_timeout(struct parse_state *st, const char *key, const char *value) {
        return parse_duration(st, key, value, &st->config->pre_upgrade_timeout_usec, false);
}

static int parse_drain_signal(struct parse_state *st, const char *key, const char *value) {
        int sig;
        if (config_parse_signal(value, &sig) < 0)
                return fail(st, -EINVAL, "invalid drain_signal '%s' (a signal name or number, e.g. SIGTERM, QUIT, 10)",
                            value);
        if (sig == SIGKILL || sig == SIGSTOP)
                return fail(st, -EINVAL, "drain_signal cannot be SIG%s: a worker cannot catch it to drain",
                            sigabbrev_np(sig));
        st->config->drain_signal = sig;
        return 0;
}

/* Replaces the whole list: a later line is the complete new value. */
static int parse_list(struct parse_state *st, const char *value, char ***dst) {
        _cleanup_strv_free_ char **list = calloc(1, sizeof(char *));
        size_t n = 0, allocated = 1;
        if (!list)
                return fail_nomem(st);
        for (const char *p = value + strspn(value, " \t,"); *p; p += strspn(p, " \t,")) {
                size_t len = strcspn(p, " \t,");
                if (append_word(&list, &n, &allocated, p, len) < 0)
                        return fail_nomem(st);
                p += len;
        }
        strv_free(*dst);
        *dst = TAKE_PTR(list);
        return 0;
}

static int parse_allow_users(struct parse_state *st, const char *key, const char *value) {
        return parse_list(st, value, &st->config->allow_users);
}

static int parse_allow_groups(struct parse_state *st, const char *key, const char *value) {
        return parse_list(st, value, &st->config->allow_groups);
}

static int parse_socket_mode(struct parse_state *st, const char *key, const char *value) {
        if (config_parse_mode(value, &st->config->socket_mode) < 0)
                return fail(st, -EINVAL, "invalid %s '%s' (an octal mode from 0000 to 0777, e.g. 0666 or 0600)", key,
                            value);
        return 0;
}

static const char *const sections[] = { "worker", "upgrade", "control", "state", "socket" };
#define EXPECTED_SECTIONS "(expected [worker], [upgrade], [control], [state] or [socket])"

static const struct key {
        const char *section;
        const char *name;
        int (*parse)(struct parse_state *st, const char *key, const char *value);
} keys[] = {
        { "worker", "target", parse_target },
        { "worker", "exec", parse_exec },
        { "worker", "workers", parse_workers },
        { "worker", "environment", parse_environment },
        { "worker", "environment_file", parse_environment_file },
        { "worker", "adopt", parse_adopt },
        { "worker", "watchdog", parse_watchdog },
        { "worker", "memory_max", parse_memory_max },
        { "upgrade", "strategy", parse_strategy },
        { "upgrade", "batch", parse_batch },
        { "upgrade", "ready", parse_ready },
        { "upgrade", "ready_delay", parse_ready_delay },
        { "upgrade", "ready_timeout", parse_ready_timeout },
        { "upgrade", "stable_time", parse_stable_time },
        { "upgrade", "drain_signal", parse_drain_signal },
        { "upgrade", "drain_timeout", parse_drain_timeout },
        { "upgrade", "kill_mode", parse_kill_mode },
        { "upgrade", "start_timeout", parse_start_timeout },
        { "upgrade", "pre_upgrade", parse_pre_upgrade },
        { "upgrade", "pre_upgrade_timeout", parse_pre_upgrade_timeout },
        { "control", "allow_users", parse_allow_users },
        { "control", "allow_groups", parse_allow_groups },
        { "state", "head", parse_head },
        { "socket", "socket_mode", parse_socket_mode },
};

static bool known_section(const char *name, size_t len) {
        for (size_t i = 0; i < ELEMENTSOF(sections); i++)
                if (strlen(sections[i]) == len && memcmp(sections[i], name, len) == 0)
                        return true;
        return false;
}

static const struct key *find_key(const char *section, const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if ((!section || strcmp(keys[i].section, section) == 0) && strcmp(keys[i].name, name) == 0)
                        return &keys[i];
        return NULL;
}

static int handler(void *userdata, const char *section, const char *name, const char *value) {
        struct parse_state *st = userdata;
        if (st->error_line != 0)
                return 1; /* the result is discarded anyway */
        if (st->long_value) {
                /* inih got the key as written and LONG_VALUE_MARKER for this line. */
                if (strcmp(value, LONG_VALUE_MARKER) != 0) {
                        fail(st, -EINVAL, "internal error: a long line was not parsed as expected");
                        return 0;
                }
                value = st->long_value;
        }

        if (!*name) {
                fail(st, -EINVAL, "missing key name before '='");
                return 0;
        }
        if (!*section) {
                const struct key *elsewhere = find_key(NULL, name);
                if (elsewhere)
                        fail(st, -EINVAL, "key '%s' must be in section [%s]", name, elsewhere->section);
                else
                        fail(st, -EINVAL, "unknown key '%s' outside of any section", name);
                return 0;
        }
        if (!known_section(section, strlen(section))) {
                /* read_line() normally reports the header itself, before any key. */
                fail(st, -EINVAL, "unknown section [%s] " EXPECTED_SECTIONS, section);
                return 0;
        }
        const struct key *key = find_key(section, name);
        if (!key) {
                const struct key *elsewhere = find_key(NULL, name);
                if (elsewhere)
                        fail(st, -EINVAL, "unknown key '%s' in section [%s] (it belongs in [%s])", name, section,
                             elsewhere->section);
                else
                        fail(st, -EINVAL, "unknown key '%s' in section [%s]", name, section);
                return 0;
        }
        return key->parse(st, name, value) < 0 ? 0 : 1; /* 0 makes inih report this line */
}

/* ---- the file ---- */

static void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}

/* Reads one line, without its newline, into st->text (CONFIG_LINE_MAX + 1 bytes).
 * Returns 1, 0 at the end of the file, or a negative errno. Stops early on a line over
 * CONFIG_LINE_MAX (NUL bytes count too, so /dev/zero ends quickly) or past
 * CONFIG_FILE_MAX: the line is refused, and nothing after it is read. NUL bytes are
 * dropped and said so. */
static int read_whole_line(struct parse_state *st, bool *ret_nul, bool *ret_too_long) {
        size_t len = 0, bytes = 0;
        int ch;

        *ret_nul = *ret_too_long = false;
        while ((ch = getc_unlocked(st->file)) != EOF && ch != '\n') {
                if (++bytes > CONFIG_LINE_MAX || st->bytes + bytes > CONFIG_FILE_MAX) {
                        *ret_too_long = true;
                        st->too_large = st->bytes + bytes > CONFIG_FILE_MAX;
                        break;
                }
                if (ch == 0)
                        *ret_nul = true;
                else
                        st->text[len++] = (char) ch;
        }
        if (ch == EOF && ferror(st->file))
                return -(errno ?: EIO);
        st->bytes += bytes + 1;
        st->text[len] = 0;
        return ch != EOF || bytes > 0;
}

/* inih's own scan (find_chars_or_comment()): the length of s before the first character
 * in stops, or before an inline comment, a ';' that follows a blank. */
static size_t scan_until(const char *s, size_t len, const char *stops) {
        bool was_space = false;
        size_t i = 0;
        for (; i < len && !(stops && strchr(stops, s[i])) && !(was_space && s[i] == ';'); i++)
                was_space = isspace((unsigned char) s[i]);
        return i;
}

/* buf = a[0..alen) + b + "\n", which the caller made sure fits. */
static char *hand_over(char *buf, const char *a, size_t alen, const char *b) {
        memcpy(buf, a, alen);
        strcpy(stpcpy(buf + alen, b), "\n");
        return buf;
}

/* A line too long for inih's buffer (size bytes with its newline and NUL): hand inih a
 * short line it parses exactly as it would the real one, following inih's rules for
 * where a comment, a section name, a key and a value start and end. A key's value is
 * replaced by LONG_VALUE_MARKER and kept in st->long_value, cut and trimmed as inih cuts
 * and trims values, for the handler to use instead. */
static char *shorten(struct parse_state *st, char *text, size_t len, char *buf, size_t size) {
        if (strchr(";#", text[0]))
                return hand_over(buf, ";", 1, ""); /* the whole line is a comment */
        if (text[0] == '[') {
                /* "[worker] ; a long comment": inih ignores what follows the ']'. A section
                 * name too long to hand over is unknown, and read_line() said so. */
                size_t end = 1 + scan_until(text + 1, len - 1, "]");
                if (end < len && text[end] == ']' && end + 3 <= size)
                        return hand_over(buf, text, end + 1, "");
                return hand_over(buf, "[", 1, "");
        }

        size_t end = scan_until(text, len, "=:");
        if (end == len || (text[end] != '=' && text[end] != ':'))
                /* No separator before the end or a comment: any prefix of what precedes it
                 * gets inih's own syntax error. */
                return hand_over(buf, text, end < 16 ? end : 16, "");
        if (end + 1 + strlen(LONG_VALUE_MARKER) + 2 > size) {
                /* Cutting the name could make it a valid key: refuse it here. */
                fail(st, -EINVAL, "unknown key '%.40s...' (no key is that long)", text);
                return hand_over(buf, ";", 1, "");
        }

        char *value = text + end + 1;
        size_t value_len = scan_until(value, len - end - 1, NULL);
        while (value_len > 0 && isspace((unsigned char) value[value_len - 1]))
                value_len--;
        value[value_len] = 0;
        while (isspace((unsigned char) *value))
                value++;
        st->long_value = value;
        return hand_over(buf, text, end + 1, LONG_VALUE_MARKER);
}

/* Feeds inih one line at a time, counting lines so that every error, ours or inih's, gets
 * the right number, and catching what inih would silently get wrong: lines longer than
 * its fixed buffer (200 bytes in Debian's build; it would parse the rest as a new line),
 * NUL bytes, sections without keys (it never reports those), and indented lines (it
 * would take them as a continuation of the previous value, so "  workers = 3" would
 * become part of the value above it: here leading blanks are simply dropped). */
static char *read_line(char *buf, int size, void *userdata) {
        struct parse_state *st = userdata;
        bool nul, too_long;

        st->long_value = NULL;
        if (st->error_line != 0)
                return NULL; /* the first error is the one reported: reading on is wasted */
        int r = read_whole_line(st, &nul, &too_long);
        if (r <= 0) {
                st->read_errno = -r;
                return NULL;
        }
        st->line++;

        char *text = st->text;
        if (st->line == 1 && strncmp(text, "\xef\xbb\xbf", 3) == 0)
                text += 3;
        text += strspn(text, " \t");
        size_t len = strlen(text);

        /* A refused line reaches inih as a blank one, so that it adds no error of its own. */
        if (too_long) {
                if (st->too_large)
                        fail(st, -EINVAL, "file too large (at most %d MiB)", CONFIG_FILE_MAX >> 20);
                else
                        fail(st, -EINVAL, "line too long (at most %d characters)", CONFIG_LINE_MAX);
                return hand_over(buf, "", 0, "");
        }
        if (nul) {
                fail(st, -EINVAL, "NUL byte in line (is this a text file?)");
                return hand_over(buf, "", 0, "");
        }
        if (text[0] == '[') {
                size_t n = strcspn(text + 1, "]");
                if (text[1 + n] == ']' && !known_section(text + 1, n))
                        fail(st, -EINVAL, "unknown section [%.*s] " EXPECTED_SECTIONS, (int) n, text + 1);
        }
        /* A line that ends in a newline is complete to inih, even one built to grow its
         * buffer for long lines; room is kept for it. */
        if (len + 2 > (size_t) size)
                return shorten(st, text, len, buf, (size_t) size);
        return hand_over(buf, text, len, "");
}

/* Only a regular file: a reload reads the file again inside the event loop, where a
 * FIFO could block open() or read() for ever and a device could never end. O_NONBLOCK
 * keeps even the open() of a FIFO from waiting for a writer. Returns 0, -EBADFD for
 * anything but a regular file, or another negative errno. */
static int open_regular_file(const char *path, FILE **ret) {
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (fd < 0)
                return -errno;
        struct stat st;
        int r = fstat(fd, &st) < 0 ? -errno : S_ISREG(st.st_mode) ? 0 : S_ISDIR(st.st_mode) ? -EISDIR : -EBADFD;
        if (r < 0) {
                close(fd);
                return r;
        }
        if (!(*ret = fdopen(fd, "r"))) {
                r = -errno;
                close(fd);
                return r;
        }
        return 0;
}

static int load(struct config *c, const char *path, char *err, size_t errlen) {
        _cleanup_(fclosep) FILE *f = NULL;
        _cleanup_free_ char *text = malloc(CONFIG_LINE_MAX + 1);
        struct parse_state st = { .config = c, .text = text };

        if (!text) {
                snprintf(err, errlen, "%s: out of memory", path);
                return -ENOMEM;
        }
        st.n_environment = strv_length(c->environment);
        st.environment_allocated = st.n_environment + 1;

        int r = open_regular_file(path, &f);
        if (r == -EBADFD) {
                snprintf(err, errlen, "%s: not a regular file (it is read again at every reload)", path);
                return -EINVAL;
        }
        if (r < 0) {
                snprintf(err, errlen, "%s: %s", path, strerror(-r));
                return r;
        }
        st.file = f;
        int line = ini_parse_stream(read_line, &st, handler, &st);
        if (st.read_errno) {
                snprintf(err, errlen, "%s: %s", path, strerror(st.read_errno));
                return -st.read_errno;
        }
        if (line < 0) { /* inih could not allocate its buffer */
                snprintf(err, errlen, "%s: out of memory", path);
                return -ENOMEM;
        }
        if (st.error_line != 0 && (line == 0 || st.error_line <= (unsigned) line)) {
                snprintf(err, errlen, "%s:%u: %s", path, st.error_line, st.message);
                return st.error;
        }
        if (line > 0) {
                snprintf(err, errlen, "%s:%d: syntax error (expected 'key = value', '[section]' or a comment)", path,
                         line);
                return -EINVAL;
        }
        if (environment_dedupe(c->environment, st.n_environment) < 0) {
                snprintf(err, errlen, "%s: out of memory", path);
                return -ENOMEM;
        }
        return 0;
}

int config_load(struct config *c, const char *path, char *err, size_t errlen) {
        struct config scratch;
        if (errlen > 0)
                err[0] = 0;
        /* Parse into a copy so that a bad file changes nothing: a refused reload must
         * leave the running settings exactly as they were. */
        int r = config_copy(&scratch, c);
        if (r < 0) {
                snprintf(err, errlen, "%s: out of memory", path);
                return r;
        }
        r = load(&scratch, path, err, errlen);
        if (r < 0) {
                config_done(&scratch);
                return r;
        }
        config_done(c);
        *c = scratch;
        return 0;
}

int config_load_merged(struct config *ret, const char *path, const struct config_overrides *o, char *err,
                       size_t errlen) {
        struct config c;
        int r = config_init(&c);
        if (r < 0)
                return r;
        if (path) {
                r = config_load(&c, path, err, errlen);
                if (r < 0) {
                        config_done(&c);
                        return r;
                }
        }
        if (o->target) {
                free(c.target);
                c.target = strdup(o->target);
        }
        if (o->workers > 0)
                c.workers = o->workers;
        if (o->restart)
                c.strategy = STRATEGY_RESTART;
        if (o->start_timeout_set)
                c.start_timeout_usec = o->start_timeout_usec;
        if (o->adopt_set)
                c.adopt = o->adopt;
        if (o->watchdog_set)
                c.watchdog_usec = o->watchdog_usec;
        if (o->memory_max_set)
                c.memory_max = o->memory_max;
        if (o->pre_upgrade) {
                free(c.pre_upgrade);
                c.pre_upgrade = strdup(o->pre_upgrade);
        }
        if (o->head) {
                free(c.head);
                c.head = strdup(o->head);
        }
        if ((o->target && !c.target) || (o->pre_upgrade && !c.pre_upgrade) || (o->head && !c.head)) {
                config_done(&c);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}
