/* test-config.c: the configuration file and its value syntaxes. Every key, every class
 * of error with its exact "FILE:LINE: message", and the promise that a bad file changes
 * nothing. Files are written to a fresh directory under /tmp per test. */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "macro.h"

#define SEC USEC_PER_SEC
#define MSEC USEC_PER_MSEC

static char dir[] = "/tmp/test-config.XXXXXX";
static char path[PATH_MAX];
static char err[1024];
static struct config c;

static void setup(void) {
        cr_assert_not_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/app.conf", dir);
        cr_assert_eq(config_init(&c), 0);
}

static void teardown(void) {
        config_done(&c);
        (void) unlink(path);
        cr_assert_eq(rmdir(dir), 0, "cannot remove %s: %s", dir, strerror(errno));
}

TestSuite(config, .init = setup, .fini = teardown);
TestSuite(values);

static void write_file(const char *text, size_t len) {
        FILE *f = fopen(path, "we");
        cr_assert_not_null(f);
        cr_assert_eq(fwrite(text, 1, len, f), len);
        cr_assert_eq(fclose(f), 0);
}

static int load_bytes(const char *text, size_t len) {
        write_file(text, len);
        err[0] = 0;
        return config_load(&c, path, err, sizeof(err));
}

static int load(const char *text) {
        return load_bytes(text, strlen(text));
}

static void check_loads(const char *text) {
        int r = load(text);
        cr_assert_eq(r, 0, "refused (%d): %s\n---\n%s", r, err, text);
        cr_assert_str_eq(err, "");
}

static void check_error(const char *text, unsigned line, const char *message) {
        _cleanup_free_ char *expected = NULL;
        cr_assert_geq(asprintf(&expected, "%s:%u: %s", path, line, message), 0);
        int r = load(text);
        cr_assert_eq(r, -EINVAL, "accepted (%d)\n---\n%s", r, text);
        cr_assert_str_eq(err, expected, "\n---\n%s", text);
}

static size_t strv_length(char **v) {
        size_t n = 0;
        while (v[n])
                n++;
        return n;
}

/* ---- the struct ---- */

Test(config, defaults) {
        cr_assert_null(c.target);
        cr_assert_str_eq(c.exec, "./start");
        cr_assert_eq(c.workers, 2);
        cr_assert_not_null(c.environment);
        cr_assert_null(c.environment[0]);
        cr_assert_eq(c.strategy, STRATEGY_ROLLING);
        cr_assert_eq(c.batch, 1);
        cr_assert_eq(c.ready, READY_DELAY);
        cr_assert_eq(c.ready_delay_usec, 1 * SEC);
        cr_assert_eq(c.ready_timeout_usec, 30 * SEC);
        cr_assert_eq(c.drain_signal, SIGTERM);
        cr_assert_eq(c.drain_timeout_usec, 60 * SEC);
        cr_assert_null(c.pre_upgrade);
        cr_assert_eq(c.pre_upgrade_timeout_usec, 300 * SEC);
        cr_assert_not_null(c.allow_users);
        cr_assert_null(c.allow_users[0]);
        cr_assert_not_null(c.allow_groups);
        cr_assert_null(c.allow_groups[0]);
        cr_assert_null(c.head);
}

Test(config, to_string) {
        cr_assert_str_eq(strategy_to_string(STRATEGY_ROLLING), "rolling");
        cr_assert_str_eq(strategy_to_string(STRATEGY_BLUE_GREEN), "blue-green");
        cr_assert_str_eq(strategy_to_string(STRATEGY_RESTART), "restart");
        cr_assert_str_eq(ready_mode_to_string(READY_DELAY), "delay");
        cr_assert_str_eq(ready_mode_to_string(READY_NOTIFY), "notify");
}

Test(config, copy_is_deep) {
        check_loads("[worker]\ntarget = /srv/app\nenvironment = A=1\n[upgrade]\npre_upgrade = /bin/check\n"
                    "[control]\nallow_users = alice\nallow_groups = ops\n[state]\nhead = /var/lib/x/HEAD\n");
        struct config copy;
        cr_assert_eq(config_copy(&copy, &c), 0);
        cr_assert_neq(copy.target, c.target);
        cr_assert_neq(copy.environment, c.environment);
        cr_assert_neq(copy.environment[0], c.environment[0]);
        cr_assert_str_eq(copy.target, "/srv/app");
        cr_assert_str_eq(copy.exec, "./start");
        cr_assert_str_eq(copy.environment[0], "A=1");
        cr_assert_str_eq(copy.pre_upgrade, "/bin/check");
        cr_assert_str_eq(copy.allow_users[0], "alice");
        cr_assert_str_eq(copy.allow_groups[0], "ops");
        cr_assert_str_eq(copy.head, "/var/lib/x/HEAD");
        cr_assert_eq(copy.workers, c.workers);
        /* Freeing the copy must leave the original whole (ASan checks the rest). */
        config_done(&copy);
        cr_assert_str_eq(c.target, "/srv/app");
        cr_assert_str_eq(c.environment[0], "A=1");
}

/* ---- every key ---- */

Test(config, every_key) {
        check_loads("; a comment\n"
                    "# another\n"
                    "[worker]\n"
                    "target = /srv/app/current     ; executable file or directory\n"
                    "exec = bin/server --fd 3\n"
                    "workers = 4\n"
                    "environment = NODE_ENV=production\n"
                    "environment = GREETING=hello world\n"
                    "[upgrade]\n"
                    "strategy = blue-green\n"
                    "batch = 3\n"
                    "ready = notify\n"
                    "ready_delay = 250ms\n"
                    "ready_timeout = 1.5min\n"
                    "drain_signal = SIGQUIT\n"
                    "drain_timeout = 90s\n"
                    "pre_upgrade = /usr/local/bin/check-release\n"
                    "pre_upgrade_timeout = 10\n"
                    "[control]\n"
                    "allow_users = deploy, alice\n"
                    "allow_groups = liveswap\n"
                    "[state]\n"
                    "head = /var/lib/liveswap/app/HEAD\n");
        cr_assert_str_eq(c.target, "/srv/app/current");
        cr_assert_str_eq(c.exec, "bin/server --fd 3");
        cr_assert_eq(c.workers, 4);
        cr_assert_eq(strv_length(c.environment), 2);
        cr_assert_str_eq(c.environment[0], "NODE_ENV=production");
        cr_assert_str_eq(c.environment[1], "GREETING=hello world");
        cr_assert_eq(c.strategy, STRATEGY_BLUE_GREEN);
        cr_assert_eq(c.batch, 3);
        cr_assert_eq(c.ready, READY_NOTIFY);
        cr_assert_eq(c.ready_delay_usec, 250 * MSEC);
        cr_assert_eq(c.ready_timeout_usec, 90 * SEC);
        cr_assert_eq(c.drain_signal, SIGQUIT);
        cr_assert_eq(c.drain_timeout_usec, 90 * SEC);
        cr_assert_str_eq(c.pre_upgrade, "/usr/local/bin/check-release");
        cr_assert_eq(c.pre_upgrade_timeout_usec, 10 * SEC);
        cr_assert_eq(strv_length(c.allow_users), 2);
        cr_assert_str_eq(c.allow_users[0], "deploy");
        cr_assert_str_eq(c.allow_users[1], "alice");
        cr_assert_eq(strv_length(c.allow_groups), 1);
        cr_assert_str_eq(c.allow_groups[0], "liveswap");
        cr_assert_str_eq(c.head, "/var/lib/liveswap/app/HEAD");
}

Test(config, example_file_of_the_contract) {
        check_loads("[worker]\n"
                    "target = /srv/app/current     ; executable file or directory (the seed's -s TARGET)\n"
                    "exec = bin/server --fd 3      ; for a directory target; split like a shell, simple quoting\n"
                    "workers = 2\n"
                    "environment = NODE_ENV=production                 ; may repeat\n"
                    "[upgrade]\n"
                    "strategy = rolling            ; rolling | blue-green | restart\n"
                    "batch = 1\n"
                    "ready = delay                 ; notify | delay\n"
                    "ready_delay = 1s\n"
                    "ready_timeout = 30s\n"
                    "drain_signal = SIGTERM\n"
                    "drain_timeout = 60s\n"
                    "pre_upgrade =\n"
                    "pre_upgrade_timeout = 300s\n"
                    "[control]\n"
                    "allow_users =\n"
                    "allow_groups =\n"
                    "[state]\n"
                    "head =                        ; default $STATE_DIRECTORY/HEAD\n");
        cr_assert_str_eq(c.target, "/srv/app/current");
        cr_assert_str_eq(c.exec, "bin/server --fd 3");
        cr_assert_str_eq(c.environment[0], "NODE_ENV=production");
        cr_assert_null(c.pre_upgrade);
        cr_assert_null(c.head);
        cr_assert_null(c.allow_users[0]);
}

Test(config, strategies_and_ready_modes) {
        check_loads("[upgrade]\nstrategy = restart\nready = notify\n");
        cr_assert_eq(c.strategy, STRATEGY_RESTART);
        cr_assert_eq(c.ready, READY_NOTIFY);
        check_loads("[upgrade]\nstrategy = rolling\nready = delay\n");
        cr_assert_eq(c.strategy, STRATEGY_ROLLING);
        cr_assert_eq(c.ready, READY_DELAY);
}

Test(config, count_limits) {
        check_loads("[worker]\nworkers = 1\n[upgrade]\nbatch = 4096\n");
        cr_assert_eq(c.workers, 1);
        cr_assert_eq(c.batch, 4096);
        check_loads("[worker]\nworkers = 4096\n[upgrade]\nbatch = 1\n");
        cr_assert_eq(c.workers, 4096);
        cr_assert_eq(c.batch, 1);
}

Test(config, empty_values_unset) {
        check_loads("[worker]\ntarget = /a\n[upgrade]\npre_upgrade = /b\n[state]\nhead = /c\n");
        cr_assert_str_eq(c.target, "/a");
        check_loads("[worker]\ntarget =\n[upgrade]\npre_upgrade = ; none\n[state]\nhead =\n");
        cr_assert_null(c.target);
        cr_assert_null(c.pre_upgrade);
        cr_assert_null(c.head);
}

Test(config, last_value_wins) {
        check_loads("[worker]\nworkers = 3\ntarget = /a\nworkers = 5\ntarget = /b\n"
                    "[upgrade]\nstrategy = restart\n[worker]\nworkers = 6\n[upgrade]\nstrategy = blue-green\n");
        cr_assert_eq(c.workers, 6);
        cr_assert_str_eq(c.target, "/b");
        cr_assert_eq(c.strategy, STRATEGY_BLUE_GREEN);
}

Test(config, environment_appends_and_replaces_by_name) {
        check_loads("[worker]\nenvironment = A=1\nenvironment = B=\nenvironment = C=x=y\nenvironment = A=2\n"
                    "environment = _under_9=ok\nenvironment = AB=3\n");
        cr_assert_eq(strv_length(c.environment), 5);
        cr_assert_str_eq(c.environment[0], "A=2");
        cr_assert_str_eq(c.environment[1], "B=");
        cr_assert_str_eq(c.environment[2], "C=x=y");
        cr_assert_str_eq(c.environment[3], "_under_9=ok");
        cr_assert_str_eq(c.environment[4], "AB=3");
        /* A second file adds to what is there, like a second line. */
        check_loads("[worker]\nenvironment = D=4\n");
        cr_assert_eq(strv_length(c.environment), 6);
        cr_assert_str_eq(c.environment[5], "D=4");
}

Test(config, environment_replaces_across_files) {
        check_loads("[worker]\nenvironment = A=1\nenvironment = B=2\n");
        check_loads("[worker]\nenvironment = C=3\nenvironment = A=4\nenvironment = C=5\nenvironment = A=6\n");
        cr_assert_eq(strv_length(c.environment), 3);
        cr_assert_str_eq(c.environment[0], "A=6");
        cr_assert_str_eq(c.environment[1], "B=2");
        cr_assert_str_eq(c.environment[2], "C=5");
        /* A name that is a prefix of another is another name. */
        check_loads("[worker]\nenvironment = AB=7\nenvironment = A_=8\nenvironment = AB=9\n");
        cr_assert_eq(strv_length(c.environment), 5);
        cr_assert_str_eq(c.environment[0], "A=6");
        cr_assert_str_eq(c.environment[3], "AB=9");
        cr_assert_str_eq(c.environment[4], "A_=8");
}

static double monotonic_seconds(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

Test(config, many_environment_lines_in_linear_time) {
        /* 300,000 lines, every name twice: a search per line took minutes here (10,000
         * lines 0.22 s, 40,000 lines 4.3 s); linear, it is a fraction of a second, and
         * well under 5 s with sanitizers on a loaded machine. */
        enum { NAMES = 150000 };
        FILE *f = fopen(path, "we");
        cr_assert_not_null(f);
        fputs("[worker]\n", f);
        for (int i = 0; i < 2 * NAMES; i++)
                fprintf(f, "environment = V%d=%d\n", i % NAMES, i);
        cr_assert_eq(fclose(f), 0);

        double start = monotonic_seconds();
        int r = config_load(&c, path, err, sizeof(err));
        double elapsed = monotonic_seconds() - start;
        cr_assert_eq(r, 0, "%s", err);
        cr_assert_lt(elapsed, 5.0, "300,000 environment= lines took %.2f s", elapsed);
        cr_assert_eq(strv_length(c.environment), NAMES);
        for (int i = 0; i < NAMES; i++) {
                char expected[64];
                snprintf(expected, sizeof(expected), "V%d=%d", i, i + NAMES);
                cr_assert_str_eq(c.environment[i], expected);
        }
}

Test(config, lists_replace) {
        check_loads("[control]\nallow_users = alice bob,carol , ,dave\tedgar\n");
        const char *expected[] = { "alice", "bob", "carol", "dave", "edgar" };
        cr_assert_eq(strv_length(c.allow_users), ELEMENTSOF(expected));
        for (size_t i = 0; i < ELEMENTSOF(expected); i++)
                cr_assert_str_eq(c.allow_users[i], expected[i]);
        check_loads("[control]\nallow_users = 1000\nallow_groups = wheel adm\nallow_groups = ops\n");
        cr_assert_eq(strv_length(c.allow_users), 1);
        cr_assert_str_eq(c.allow_users[0], "1000");
        cr_assert_eq(strv_length(c.allow_groups), 1);
        cr_assert_str_eq(c.allow_groups[0], "ops");
        check_loads("[control]\nallow_users =\nallow_groups = ,\n");
        cr_assert_null(c.allow_users[0]);
        cr_assert_null(c.allow_groups[0]);
}

Test(config, exec_values) {
        check_loads("[worker]\nexec = \"bin/my server\" --name 'a b' \\; x\n");
        cr_assert_str_eq(c.exec, "\"bin/my server\" --name 'a b' \\; x");
        check_loads("[worker]\nexec = node\n");
        cr_assert_str_eq(c.exec, "node");
}

Test(config, keys_not_in_file_keep_values) {
        check_loads("[worker]\nworkers = 7\ntarget = /srv/a\n");
        check_loads("[upgrade]\nbatch = 2\n");
        cr_assert_eq(c.workers, 7);
        cr_assert_str_eq(c.target, "/srv/a");
        cr_assert_eq(c.batch, 2);
}

Test(config, empty_and_comment_only_files) {
        check_loads("");
        check_loads("\n\n; nothing\n# at all\n\n");
        check_loads("[worker]\n[upgrade]\n[control]\n[state]\n");
        cr_assert_eq(c.workers, 2);
}

/* ---- file syntax ---- */

Test(config, layout_tolerance) {
        /* BOM, CRLF, indentation, no final newline, ':' as inih allows it. */
        check_loads("\xef\xbb\xbf[worker]\r\n"
                    "  target = /srv/app\r\n"
                    "\tworkers=3\r\n"
                    "    ; indented comment\n"
                    "  [upgrade]\n"
                    "    batch: 2\n"
                    "    strategy = restart");
        cr_assert_str_eq(c.target, "/srv/app");
        cr_assert_eq(c.workers, 3);
        cr_assert_eq(c.batch, 2);
        cr_assert_eq(c.strategy, STRATEGY_RESTART);
}

Test(config, indented_line_is_not_a_continuation) {
        /* inih would append "workers = 3" to target's value; here it is its own key. */
        check_loads("[worker]\n  target = /srv/app\n  workers = 3\n");
        cr_assert_str_eq(c.target, "/srv/app");
        cr_assert_eq(c.workers, 3);
        check_error("[worker]\ntarget = /srv/app\n    --and-more\n", 3,
                    "syntax error (expected 'key = value', '[section]' or a comment)");
}

Test(config, inline_comments) {
        /* inih takes " ;" as a comment; a ';' inside a value stays. */
        check_loads("[worker]\nenvironment = A=x;y\nenvironment = B=x ;y\ntarget = /srv/a;b\n");
        cr_assert_str_eq(c.environment[0], "A=x;y");
        cr_assert_str_eq(c.environment[1], "B=x");
        cr_assert_str_eq(c.target, "/srv/a;b");
}

Test(config, short_lines_as_before) {
        char text[600];
        /* 198 characters is the most inih's own buffer takes with its newline: the
         * longest line handed to it as it is. */
        int n = snprintf(text, sizeof(text), "[worker]\ntarget = /%0188d\nworkers = 3\n", 0);
        cr_assert_lt(n, (int) sizeof(text));
        cr_assert_eq(strlen(strchr(text, '\n') + 1) - strlen(strstr(text, "\nworkers")), 198);
        check_loads(text);
        cr_assert_eq(strlen(c.target), 189);
        cr_assert_eq(c.workers, 3);
}

/* "PREFIX" + n copies of FILL + "SUFFIX", malloc'ed. */
static char *repeat(const char *prefix, char fill, size_t n, const char *suffix) {
        char *s = malloc(strlen(prefix) + n + strlen(suffix) + 1);
        cr_assert_not_null(s);
        char *p = stpcpy(s, prefix);
        memset(p, fill, n);
        strcpy(p + n, suffix);
        return s;
}

static void check_long_values(size_t n) {
        /* A DATABASE_URL, a JVM command line: the values come out byte for byte. */
        _cleanup_free_ char *url = repeat("DATABASE_URL=postgres://u:p@h/db?", 'o', n, "=x;y");
        _cleanup_free_ char *command = repeat("java -Xmx1g -Dkey=", 'v', n, " -jar 'app x.jar'");
        _cleanup_free_ char *text = NULL;
        cr_assert_geq(asprintf(&text, "[worker]\nenvironment = %s\nexec = %s\nworkers = 3\n", url, command), 0);
        check_loads(text);
        cr_assert_eq(strv_length(c.environment), 1);
        cr_assert_str_eq(c.environment[0], url);
        cr_assert_str_eq(c.exec, command);
        cr_assert_eq(c.workers, 3);
}

Test(config, long_values) {
        check_long_values(4096);
        config_done(&c);
        cr_assert_eq(config_init(&c), 0);
        check_long_values(60000);
}

Test(config, line_limit) {
        /* CONFIG_LINE_MAX bytes without the newline is the longest line... */
        size_t fixed = strlen("environment = A=");
        _cleanup_free_ char *longest = repeat("[worker]\nenvironment = A=", 'x', CONFIG_LINE_MAX - fixed, "\n");
        check_loads(longest);
        cr_assert_eq(strlen(c.environment[0]), CONFIG_LINE_MAX - strlen("environment = "));
        /* ...one more byte is an error on that line, not a silent cut. */
        _cleanup_free_ char *over =
                repeat("[worker]\n\nenvironment = A=", 'x', CONFIG_LINE_MAX - fixed + 1, "\nworkers = 3\n");
        check_error(over, 3, "line too long (at most 65536 characters)");
        _cleanup_free_ char *comment = repeat("[worker]\n# ", 'x', 100000, "\n");
        check_error(comment, 2, "line too long (at most 65536 characters)");
}

Test(config, endless_line) {
        /* NUL bytes count: a file of them is refused after CONFIG_LINE_MAX bytes. */
        _cleanup_free_ char *zeros = calloc(1, 100000);
        cr_assert_not_null(zeros);
        cr_assert_eq(load_bytes(zeros, 100000), -EINVAL);
        _cleanup_free_ char *expected = NULL;
        cr_assert_geq(asprintf(&expected, "%s:1: line too long (at most 65536 characters)", path), 0);
        cr_assert_str_eq(err, expected);
}

Test(config, only_regular_files) {
        /* A reload reads the file inside the event loop: a FIFO would block it for ever
         * (open() waits for a writer), a device might never end. */
        cr_assert_eq(config_load(&c, "/dev/zero", err, sizeof(err)), -EINVAL);
        cr_assert_str_eq(err, "/dev/zero: not a regular file (it is read again at every reload)");
        char fifo[PATH_MAX];
        snprintf(fifo, sizeof(fifo), "%s/fifo.conf", dir);
        cr_assert_eq(mkfifo(fifo, 0600), 0);
        int r = config_load(&c, fifo, err, sizeof(err));
        (void) unlink(fifo);
        cr_assert_eq(r, -EINVAL);
        _cleanup_free_ char *expected = NULL;
        cr_assert_geq(asprintf(&expected, "%s: not a regular file (it is read again at every reload)", fifo), 0);
        cr_assert_str_eq(err, expected);
}

Test(config, file_limit) {
        /* 16 MiB is plenty of configuration, and bounds how long a reload can take. */
        FILE *f = fopen(path, "we");
        cr_assert_not_null(f);
        _cleanup_free_ char *line = repeat("; ", 'x', 1021, "\n"); /* 1 KiB */
        fputs("[worker]\n", f);
        for (int i = 0; i < 16 * 1024; i++)
                fputs(line, f);
        fputs("workers = 3\n", f);
        cr_assert_eq(fclose(f), 0);
        err[0] = 0;
        cr_assert_eq(config_load(&c, path, err, sizeof(err)), -EINVAL);
        _cleanup_free_ char *expected = NULL;
        cr_assert_geq(asprintf(&expected, "%s:%d: file too large (at most 16 MiB)", path, 16 * 1024 + 1), 0);
        cr_assert_str_eq(err, expected);
}

Test(config, line_numbers_after_long_lines) {
        _cleanup_free_ char *a = repeat("environment = A=", 'a', 5000, "\n");
        _cleanup_free_ char *b = repeat("; ", 'b', 5000, "\n");
        _cleanup_free_ char *text = NULL;
        cr_assert_geq(asprintf(&text, "[worker]\n%s%s\n%s%sworkers = x\n", a, b, a, b), 0);
        check_error(text, 7, "invalid workers 'x' (a whole number from 1 to 4096)");
        /* An error on a long line names that line, ours or inih's. */
        free(TAKE_PTR(text));
        cr_assert_geq(asprintf(&text, "[worker]\n%s%sworkers = 3\nenvironment = LISTEN_FDS%s", a, b, a + 15), 0);
        check_error(text, 5, "environment: LISTEN_FDS is set by liveswap for each worker and cannot be set here");
        _cleanup_free_ char *bare = repeat("[worker]\n\n", 'w', 5000, "\nworkers = 3\n");
        check_error(bare, 3, "syntax error (expected 'key = value', '[section]' or a comment)");
}

/* One line, parsed by inih itself when short (with 'X' for '@'), and with '@' stretched
 * to 'X' and 4999 'x' when too long for inih: the long value must be the short one with
 * the same stretch, or the same value when a comment cut the 'X' off. Covers where
 * inline comments start, blanks around values, ':' as separator and CRLF. */
static char *stretch(const char *line, char mark, size_t n) {
        const char *at = strchr(line, mark);
        _cleanup_free_ char *run = repeat("X", 'x', n - 1, "");
        char *s = NULL;
        cr_assert_geq(asprintf(&s, "%.*s%s%s", (int) (at - line), line, run, at + 1), 0);
        return s;
}

Test(config, long_lines_parse_like_short_ones) {
        static const char *const lines[] = {
                "environment = A=@",
                "environment=A=@",
                "environment = A=@ ; comment",
                "environment = A=@;not a comment",
                "environment = A=@\t; after a tab",
                "environment = A=@ b  ;c ; d",
                "environment:A=@ ",
                "environment =   A=@   \r",
                "environment = A=@=;=",
                "environment = A=x ;@",
                "environment = A=x\t;@",
                "environment = A=@ # not ; a",
                "environment = A=a\t@\tb ",
                "environment = A= ;@",
                "environment = A=@ ;",
                "environment = A=@ ;;",
        };
        for (size_t i = 0; i < ELEMENTSOF(lines); i++) {
                _cleanup_free_ char *short_line = stretch(lines[i], '@', 1), *long_line = stretch(lines[i], '@', 5000);
                _cleanup_free_ char *short_text = NULL, *long_text = NULL;
                cr_assert_geq(asprintf(&short_text, "[worker]\n%s\n", short_line), 0);
                cr_assert_geq(asprintf(&long_text, "[worker]\n%s\n", long_line), 0);

                check_loads(short_text);
                cr_assert_eq(strv_length(c.environment), 1, "%s", short_line);
                _cleanup_free_ char *short_value = strdup(c.environment[0]);
                _cleanup_free_ char *expected = strchr(short_value, 'X') ? stretch(short_value, 'X', 5000) : NULL;
                config_done(&c);
                cr_assert_eq(config_init(&c), 0);

                check_loads(long_text);
                cr_assert_eq(strv_length(c.environment), 1);
                cr_assert_str_eq(c.environment[0], expected ?: short_value, "line %zu: %s", i, lines[i]);
                config_done(&c);
                cr_assert_eq(config_init(&c), 0);
        }
}

Test(config, long_lines_other_shapes) {
        _cleanup_free_ char *section = repeat("[worker] ; ", 'c', 5000, "\nworkers = 3\n");
        check_loads(section);
        cr_assert_eq(c.workers, 3);
        _cleanup_free_ char *comments = repeat("; ", 'c', 5000, "\n");
        _cleanup_free_ char *text = NULL;
        cr_assert_geq(
                asprintf(&text, "\xef\xbb\xbf%s[worker]\n#%s  %sworkers = 4\r\n", comments, comments + 1, comments), 0);
        check_loads(text);
        cr_assert_eq(c.workers, 4);

        /* A key name cut short could become a valid key: it is refused whole. */
        _cleanup_free_ char *spaced = repeat("[worker]\nenvironment", ' ', 300, "x = A=1\n");
        check_error(spaced, 2, "unknown key 'environment                             ...' (no key is that long)");
        _cleanup_free_ char *name = repeat("[worker]\n", 'k', 5000, " = 1\n");
        check_error(name, 2, "unknown key 'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...' (no key is that long)");
        _cleanup_free_ char *unknown = repeat("[worker]\nport = ", '8', 5000, "\n");
        check_error(unknown, 2, "unknown key 'port' in section [worker]");
        _cleanup_free_ char *outside = repeat("exec = ", 'e', 5000, "\n");
        check_error(outside, 1, "key 'exec' must be in section [worker]");
        _cleanup_free_ char *no_equals = repeat("[worker]\nenvironment ;", 'x', 5000, "= A=1\n");
        check_error(no_equals, 2, "syntax error (expected 'key = value', '[section]' or a comment)");
        _cleanup_free_ char *bad_section = repeat("[worker\n", 'x', 5000, "\n");
        check_error(bad_section, 1, "syntax error (expected 'key = value', '[section]' or a comment)");
}

Test(config, placeholder_cannot_be_forged) {
        /* Whether inih got a stand-in for a long value is known out of band: the marker
         * text in a file is just text, before, after or inside a long line. */
        _cleanup_free_ char *text = repeat("[worker]\nexec = @long-value@\nenvironment = A=", 'a', 5000,
                                           "@long-value@\ntarget = /@long-value@\n");
        check_loads(text);
        cr_assert_str_eq(c.exec, "@long-value@");
        cr_assert_str_eq(c.target, "/@long-value@");
        cr_assert_eq(strlen(c.environment[0]), 5000 + strlen("A=@long-value@"));
        check_error("[worker]\nenvironment = @long-value@\n", 2,
                    "invalid environment entry '@long-value@' (expected NAME=VALUE, the name made of letters, "
                    "digits and '_', not starting with a digit)");
}

Test(config, nul_byte) {
        static const char text[] = "[worker]\nworkers = 3\ntar\0get = /x\n";
        int r = load_bytes(text, sizeof(text) - 1);
        cr_assert_eq(r, -EINVAL);
        _cleanup_free_ char *expected = NULL;
        cr_assert_geq(asprintf(&expected, "%s:3: NUL byte in line (is this a text file?)", path), 0);
        cr_assert_str_eq(err, expected);
}

/* ---- errors ---- */

static const struct {
        const char *text;
        unsigned line;
        const char *message;
} errors[] = {
        /* structure */
        { "[worker]\nworkers = 2\n\n[upgrade]\nbogus line\n", 5,
          "syntax error (expected 'key = value', '[section]' or a comment)" },
        { "[worker\nworkers = 2\n", 1, "syntax error (expected 'key = value', '[section]' or a comment)" },
        { "[worker]\nworkers\n", 2, "syntax error (expected 'key = value', '[section]' or a comment)" },
        { "[worker]\n= 3\n", 2, "missing key name before '='" },
        { "[worker]\nforks = 2\n", 2, "unknown key 'forks' in section [worker]" },
        { "[worker]\nWorkers = 2\n", 2, "unknown key 'Workers' in section [worker]" },
        { "[worker]\nbatch = 2\n", 2, "unknown key 'batch' in section [worker] (it belongs in [upgrade])" },
        { "[state]\n\nhead = /x\nworkers = 2\n", 4,
          "unknown key 'workers' in section [state] (it belongs in [worker])" },
        { "[server]\nport = 80\n", 1,
          "unknown section [server] (expected [worker], [upgrade], [control], [state] or [socket])" },
        { "[worker]\n[Worker]\n", 2,
          "unknown section [Worker] (expected [worker], [upgrade], [control], [state] or [socket])" },
        { "workers = 2\n", 1, "key 'workers' must be in section [worker]" },
        { "; comment\nport = 2\n[worker]\n", 2, "unknown key 'port' outside of any section" },
        /* [worker] */
        { "[worker]\nworkers = 0\n", 2, "invalid workers '0' (a whole number from 1 to 4096)" },
        { "[worker]\nworkers = 4097\n", 2, "invalid workers '4097' (a whole number from 1 to 4096)" },
        { "[worker]\nworkers = -1\n", 2, "invalid workers '-1' (a whole number from 1 to 4096)" },
        { "[worker]\nworkers = +2\n", 2, "invalid workers '+2' (a whole number from 1 to 4096)" },
        { "[worker]\nworkers = two\n", 2, "invalid workers 'two' (a whole number from 1 to 4096)" },
        { "[worker]\nworkers = 2.0\n", 2, "invalid workers '2.0' (a whole number from 1 to 4096)" },
        { "[worker]\nworkers = 0x10\n", 2, "invalid workers '0x10' (a whole number from 1 to 4096)" },
        { "[worker]\nworkers = 99999999999999999999\n", 2,
          "invalid workers '99999999999999999999' (a whole number from 1 to 4096)" },
        { "[worker]\nworkers =\n", 2, "invalid workers '' (a whole number from 1 to 4096)" },
        { "[worker]\nexec =\n", 2, "invalid exec command '': it is empty" },
        { "[worker]\nexec = bin/server 'unterminated\n", 2,
          "invalid exec command 'bin/server 'unterminated': a single quote is not closed" },
        { "[worker]\nexec = \"bin/server\n", 2, "invalid exec command '\"bin/server': a double quote is not closed" },
        { "[worker]\nexec = bin/server \\\n", 2, "invalid exec command 'bin/server \\': it ends with a backslash" },
        { "[worker]\nexec = '' --flag\n", 2, "invalid exec command ''' --flag': the program name is empty" },
        { "[worker]\nenvironment = NODE_ENV\n", 2,
          "invalid environment entry 'NODE_ENV' (expected NAME=VALUE, the name made of letters, digits and '_', "
          "not starting with a digit)" },
        { "[worker]\nenvironment = =value\n", 2,
          "invalid environment entry '=value' (expected NAME=VALUE, the name made of letters, digits and '_', "
          "not starting with a digit)" },
        { "[worker]\nenvironment = 1A=x\n", 2,
          "invalid environment entry '1A=x' (expected NAME=VALUE, the name made of letters, digits and '_', "
          "not starting with a digit)" },
        { "[worker]\nenvironment = MY-VAR=x\n", 2,
          "invalid environment entry 'MY-VAR=x' (expected NAME=VALUE, the name made of letters, digits and '_', "
          "not starting with a digit)" },
        { "[worker]\nenvironment = LISTEN_FDS=3\n", 2,
          "environment: LISTEN_FDS is set by liveswap for each worker and cannot be set here" },
        { "[worker]\nenvironment = NOTIFY_SOCKET=/x\n", 2,
          "environment: NOTIFY_SOCKET is set by liveswap for each worker and cannot be set here" },
        { "[worker]\nenvironment = LIVESWAP_WORKER=1\n", 2,
          "environment: LIVESWAP_WORKER is set by liveswap for each worker and cannot be set here" },
        { "[worker]\ntarget = \"/srv/my app\"\n", 2, "target: write the path without quotes: \"/srv/my app\"" },
        /* [upgrade] */
        { "[upgrade]\nstrategy = canary\n", 2, "invalid strategy 'canary' (rolling, blue-green or restart)" },
        { "[upgrade]\nstrategy = Rolling\n", 2, "invalid strategy 'Rolling' (rolling, blue-green or restart)" },
        { "[upgrade]\nbatch = 0\n", 2, "invalid batch '0' (a whole number from 1 to 4096)" },
        { "[upgrade]\nbatch = 5000\n", 2, "invalid batch '5000' (a whole number from 1 to 4096)" },
        { "[upgrade]\nready = sometimes\n", 2, "invalid ready 'sometimes' (notify, listen or delay)" },
        { "[worker]\nadopt = maybe\n", 2, "invalid adopt 'maybe' (yes or no)" },
        { "[upgrade]\nready_timeout = soon\n", 2,
          "invalid duration 'soon' for ready_timeout (e.g. 500ms, 1.5s, 2min, 1min 30s, 1h)" },
        { "[upgrade]\nready_delay = -1s\n", 2,
          "invalid duration '-1s' for ready_delay (e.g. 500ms, 1.5s, 2min, 1min 30s, 1h)" },
        { "[upgrade]\ndrain_timeout = 1fortnight\n", 2,
          "invalid duration '1fortnight' for drain_timeout (e.g. 500ms, 1.5s, 2min, 1min 30s, 1h)" },
        { "[upgrade]\npre_upgrade_timeout =\n", 2,
          "invalid duration '' for pre_upgrade_timeout (e.g. 500ms, 1.5s, 2min, 1min 30s, 1h)" },
        { "[upgrade]\ndrain_timeout = 1000000min\n", 2,
          "duration '1000000min' for drain_timeout is too long (at most a year)" },
        { "[upgrade]\nready_timeout = 0\n", 2, "ready_timeout must be longer than 0" },
        { "[upgrade]\npre_upgrade_timeout = 0ms\n", 2, "pre_upgrade_timeout must be longer than 0" },
        { "[upgrade]\ndrain_signal = SIGFOO\n", 2,
          "invalid drain_signal 'SIGFOO' (a signal name or number, e.g. SIGTERM, QUIT, 10)" },
        { "[upgrade]\ndrain_signal = 0\n", 2,
          "invalid drain_signal '0' (a signal name or number, e.g. SIGTERM, QUIT, 10)" },
        { "[upgrade]\ndrain_signal = SIGKILL\n", 2,
          "drain_signal cannot be SIGKILL: a worker cannot catch it to drain" },
        { "[upgrade]\ndrain_signal = 19\n", 2, "drain_signal cannot be SIGSTOP: a worker cannot catch it to drain" },
        { "[upgrade]\npre_upgrade = '/bin/check'\n", 2, "pre_upgrade: write the path without quotes: '/bin/check'" },
        /* [control], [state] */
        { "[control]\nallow = alice\n", 2, "unknown key 'allow' in section [control]" },
        { "[state]\nhead = state/HEAD\n", 2, "head must be an absolute path, not 'state/HEAD'" },
        { "[state]\nhead = \"/var/lib/HEAD\"\n", 2, "head: write the path without quotes: \"/var/lib/HEAD\"" },
};

Test(config, error_messages) {
        for (size_t i = 0; i < ELEMENTSOF(errors); i++)
                check_error(errors[i].text, errors[i].line, errors[i].message);
}

Test(config, first_error_wins) {
        /* Ours before inih's, inih's before ours, ours before ours. */
        check_error("[worker]\nworkers = 0\nbogus\n", 2, "invalid workers '0' (a whole number from 1 to 4096)");
        check_error("[worker]\nbogus\nworkers = 0\n", 2,
                    "syntax error (expected 'key = value', '[section]' or a comment)");
        check_error("[worker]\n\n\nfoo = 1\nworkers = 0\n", 4, "unknown key 'foo' in section [worker]");
        check_error("[nope]\n[worker]\nworkers = 0\n", 1,
                    "unknown section [nope] (expected [worker], [upgrade], [control], [state] or [socket])");
        check_error("[worker]\nworkers = 1\n[nope]\nkey = 1\nbogus\n", 3,
                    "unknown section [nope] (expected [worker], [upgrade], [control], [state] or [socket])");
}

Test(config, bad_file_changes_nothing) {
        check_loads("[worker]\ntarget = /srv/a\nworkers = 3\nenvironment = A=1\n[control]\nallow_users = alice\n");
        /* Every line before the bad one is valid and would change something. */
        check_error("[worker]\ntarget = /srv/b\nworkers = 5\nenvironment = B=2\n[control]\nallow_users = bob\n"
                    "[upgrade]\nbatch = 0\n",
                    8, "invalid batch '0' (a whole number from 1 to 4096)");
        cr_assert_str_eq(c.target, "/srv/a");
        cr_assert_eq(c.workers, 3);
        cr_assert_eq(strv_length(c.environment), 1);
        cr_assert_str_eq(c.environment[0], "A=1");
        cr_assert_str_eq(c.allow_users[0], "alice");
        cr_assert_eq(c.batch, 1);
}

Test(config, kill_mode_and_start_timeout) {
        cr_assert_eq(c.kill_mode, KILL_MODE_GROUP);
        cr_assert_eq(c.start_timeout_usec, 90 * SEC, "systemd's DefaultTimeoutStartSec=");
        check_loads("[upgrade]\nkill_mode = mixed\nstart_timeout = 2min\n");
        cr_assert_eq(c.kill_mode, KILL_MODE_MIXED);
        cr_assert_eq(c.start_timeout_usec, 120 * SEC);
        check_loads("[upgrade]\nkill_mode = group\nstart_timeout = 0\n");
        cr_assert_eq(c.kill_mode, KILL_MODE_GROUP);
        cr_assert_eq(c.start_timeout_usec, 0, "0 = no bound");
        cr_assert_str_eq(kill_mode_to_string(KILL_MODE_MIXED), "mixed");
        check_error("[upgrade]\nkill_mode = control-group\n", 2, "invalid kill_mode 'control-group' (group or mixed)");
        check_error("[upgrade]\nstart_timeout = soon\n", 2,
                    "invalid duration 'soon' for start_timeout (e.g. 500ms, 1.5s, 2min, 1min 30s, 1h)");
        cr_assert_eq(c.kill_mode, KILL_MODE_GROUP, "a bad file changes nothing");
}

Test(config, missing_file) {
        _cleanup_free_ char *missing = NULL, *expected = NULL;
        cr_assert_geq(asprintf(&missing, "%s/nothing.conf", dir), 0);
        cr_assert_geq(asprintf(&expected, "%s: No such file or directory", missing), 0);
        cr_assert_eq(config_load(&c, missing, err, sizeof(err)), -ENOENT);
        cr_assert_str_eq(err, expected);
        cr_assert_eq(c.workers, 2);
}

Test(config, directory_instead_of_file) {
        _cleanup_free_ char *expected = NULL;
        cr_assert_geq(asprintf(&expected, "%s: Is a directory", dir), 0);
        cr_assert_eq(config_load(&c, dir, err, sizeof(err)), -EISDIR);
        cr_assert_str_eq(err, expected);
}

Test(config, small_error_buffer) {
        char small[8];
        write_file("[worker]\nworkers = 0\n", 21);
        cr_assert_eq(config_load(&c, path, small, sizeof(small)), -EINVAL);
        cr_assert_eq(strlen(small), sizeof(small) - 1);
        cr_assert_eq(config_load(&c, path, NULL, 0), -EINVAL);
}

Test(config, socket_mode) {
        cr_assert_eq(c.socket_mode, 0666);
        check_loads("[socket]\nsocket_mode = 0600\n");
        cr_assert_eq(c.socket_mode, 0600);
        check_loads("[socket]\nsocket_mode = 660 ; group\n");
        cr_assert_eq(c.socket_mode, 0660);
        check_loads("[socket]\nsocket_mode = 0\n");
        cr_assert_eq(c.socket_mode, 0);
        static const char *const bad[] = { "",     "8",    "0o600", "0x1b6", "01000",    "7777",
                                           "-600", "+600", "06000", "600 x", "rw-rw-rw-" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *text = NULL, *message = NULL;
                cr_assert_geq(asprintf(&text, "[worker]\nworkers = 3\n[socket]\nsocket_mode = %s\n", bad[i]), 0);
                cr_assert_geq(asprintf(&message,
                                       "invalid socket_mode '%s' (an octal mode from 0000 to 0777, e.g. 0666 or 0600)",
                                       bad[i]),
                              0);
                check_error(text, 4, message);
                cr_assert_eq(c.socket_mode, 0);
                cr_assert_eq(c.workers, 2);
        }
        check_error("[worker]\nsocket_mode = 0600\n", 2,
                    "unknown key 'socket_mode' in section [worker] (it belongs in [socket])");
}

/* ---- value syntaxes ---- */

static void check_duration(const char *s, uint64_t expected) {
        uint64_t usec = 12345;
        int r = config_parse_duration(s, &usec);
        cr_assert_eq(r, 0, "'%s' refused: %d", s, r);
        cr_assert_eq(usec, expected, "'%s' gave %llu, not %llu", s, (unsigned long long) usec,
                     (unsigned long long) expected);
}

static void check_bad_duration(const char *s, int expected) {
        uint64_t usec = 12345;
        int r = config_parse_duration(s, &usec);
        cr_assert_eq(r, expected, "'%s' gave %d (%llu usec)", s, r, (unsigned long long) usec);
        cr_assert_eq(usec, 12345, "'%s' wrote a result", s);
}

Test(values, durations) {
        check_duration("250ms", 250 * MSEC);
        check_duration("1s", 1 * SEC);
        check_duration("2min", 120 * SEC);
        check_duration("1.5s", 1500 * MSEC);
        check_duration("1.5min", 90 * SEC);
        check_duration("0.25ms", 250);
        check_duration("0.001ms", 1);
        check_duration("0.0000001s", 0); /* below a microsecond */
        check_duration("1.0000000009s", 1 * SEC);
        check_duration("10", 10 * SEC);
        check_duration("0.5", 500 * MSEC);
        check_duration("0", 0);
        check_duration("007s", 7 * SEC);
        check_duration("1 s", 1 * SEC);
        check_duration("30 min", 1800 * SEC);
        check_duration("525600min", 525600ULL * 60 * SEC);
        check_duration("31557600", 31557600ULL * SEC); /* systemd's year: the longest */
        /* systemd.time(7)'s syntax: more units, and components that add up. */
        check_duration("10sec", 10 * SEC);
        check_duration("1h", 3600 * SEC);
        check_duration("1min 30s", 90 * SEC);
        check_duration("1min30s", 90 * SEC);
        check_duration("2 h 5 min", 7500 * SEC);
        check_duration("1m", 60 * SEC);
        check_duration("3 seconds", 3 * SEC);
        check_duration("1 minute", 60 * SEC);
        check_duration("2hours", 7200 * SEC);
        check_duration("1hr", 3600 * SEC);
        check_duration("1d", 86400 * SEC);
        check_duration("1w", 7 * 86400 * SEC);
        check_duration("1M", 2629800 * SEC);
        check_duration("1y", 31557600ULL * SEC);
        check_duration("0.5y", 15778800ULL * SEC);
        check_duration("500msec", 500 * MSEC);
        check_duration("20us", 20);
        check_duration("20usec", 20);
        check_duration("20\u00b5s", 20);
        check_duration("1.5h 30min", 7200 * SEC);
        check_duration("1s 500ms", 1500 * MSEC);
}

Test(values, bad_durations) {
        const char *invalid[] = { "",      "abc",     "-1s",      "+1s",    "1.s",    ".5s",  "1e3",
                                  "s",     "ms",      "1.5.5s",   " 1s",    "1s ",    "0x10", "inf",
                                  "nan",   "1,5s",    "1 ms x",   "1S",     "1MIN",   "1ss",  "1secs",
                                  "1min 30", "1min,30s", "1min -30s", "1h  ", "1 2",  "1min\n30s", "1fortnights5" };
        for (size_t i = 0; i < ELEMENTSOF(invalid); i++)
                check_bad_duration(invalid[i], -EINVAL);
        check_bad_duration(NULL, -EINVAL);
        check_bad_duration("31557601", -ERANGE);
        check_bad_duration("525961min", -ERANGE);
        check_bad_duration("31557600.5s", -ERANGE);
        check_bad_duration("1y 1s", -ERANGE);
        check_bad_duration("2y", -ERANGE);
        check_bad_duration("18446744073709551616", -ERANGE);
        check_bad_duration("99999999999999999999999999999999ms", -ERANGE);
}

static void check_signal(const char *s, int expected) {
        int sig = -1;
        int r = config_parse_signal(s, &sig);
        cr_assert_eq(r, 0, "'%s' refused: %d", s, r);
        cr_assert_eq(sig, expected, "'%s' gave %d, not %d", s, sig, expected);
}

Test(values, signals) {
        check_signal("SIGTERM", SIGTERM);
        check_signal("TERM", SIGTERM);
        check_signal("term", SIGTERM);
        check_signal("sigterm", SIGTERM);
        check_signal("15", SIGTERM);
        check_signal("SIGQUIT", SIGQUIT);
        check_signal("SIGINT", SIGINT);
        check_signal("SIGHUP", SIGHUP);
        check_signal("USR1", SIGUSR1);
        check_signal("SIGUSR2", SIGUSR2);
        check_signal("SIGWINCH", SIGWINCH); /* Apache's graceful stop */
        check_signal("SIGKILL", SIGKILL); /* parsed; config refuses it as a drain signal */
        check_signal("1", SIGHUP);
        check_signal("SIGRTMIN", SIGRTMIN);
        check_signal("SIGRTMIN+2", SIGRTMIN + 2);
        check_signal("RTMIN+0", SIGRTMIN);
        check_signal("SIGRTMAX", SIGRTMAX);
        check_signal("RTMAX-1", SIGRTMAX - 1);
        char n[16];
        snprintf(n, sizeof(n), "%d", SIGRTMAX);
        check_signal(n, SIGRTMAX);
}

Test(values, bad_signals) {
        char too_big[16], reserved[16];
        snprintf(too_big, sizeof(too_big), "%d", SIGRTMAX + 1);
        snprintf(reserved, sizeof(reserved), "%d", SIGRTMIN - 1); /* glibc's own */
        const char *invalid[] = { "",       "0",      "-15",       "+15",      " 15",     "15 ",        "15x",
                                  "SIG",    "SIGFOO", "TERMINATE", "SIGTERM2", "RTMIN-1", "RTMAX+1",    "RTMIN+99",
                                  "RTMIN+", "RTMINX", "SIG15",     too_big,    reserved,  "99999999999" };
        for (size_t i = 0; i < ELEMENTSOF(invalid); i++) {
                int sig = -1;
                cr_assert_eq(config_parse_signal(invalid[i], &sig), -EINVAL, "'%s' gave %d", invalid[i], sig);
                cr_assert_eq(sig, -1);
        }
        int sig;
        cr_assert_eq(config_parse_signal(NULL, &sig), -EINVAL);
}

static void check_split(const char *s, const char *const *expected) {
        _cleanup_strv_free_ char **argv = NULL;
        int r = config_split_command(s, &argv);
        cr_assert_eq(r, 0, "[%s] refused: %d", s, r);
        size_t i = 0;
        for (; expected[i]; i++) {
                cr_assert_not_null(argv[i], "[%s]: word %zu missing", s, i);
                cr_assert_str_eq(argv[i], expected[i], "[%s]: word %zu", s, i);
        }
        cr_assert_null(argv[i], "[%s]: extra word [%s]", s, argv[i]);
}

#define SPLIT(s, ...) check_split(s, (const char *const[]){ __VA_ARGS__, NULL })

Test(values, split_command) {
        SPLIT("bin/server --fd 3", "bin/server", "--fd", "3");
        SPLIT("  a \t b\n c  ", "a", "b", "c");
        SPLIT("./start", "./start");
        SPLIT("'a b' c", "a b", "c");
        SPLIT("\"a b\" c", "a b", "c");
        SPLIT("a\\ b", "a b");
        SPLIT("'it''s'", "its");
        SPLIT("a\"b c\"d", "ab cd");
        SPLIT("\"say \\\"hi\\\"\"", "say \"hi\"");
        SPLIT("\"back\\\\slash\"", "back\\slash");
        SPLIT("\"\\$HOME \\`x\\`\"", "$HOME `x`");
        SPLIT("\"a\\nb\"", "a\\nb"); /* other escapes stay inside double quotes */
        SPLIT("'a\\b' 'x\"y'", "a\\b", "x\"y"); /* nothing is special inside single quotes */
        SPLIT("\"it's\"", "it's");
        SPLIT("a\\nb", "anb"); /* outside quotes a backslash takes any character */
        SPLIT("\\\\", "\\");
        SPLIT("\\'", "'");
        SPLIT("a\\\nb", "ab"); /* backslash-newline joins */
        SPLIT("''", "");
        SPLIT("x '' \"\" y", "x", "", "", "y");
        SPLIT("$HOME *.js ~", "$HOME", "*.js", "~"); /* no expansion */
        SPLIT("caf\xc3\xa9 \xe2\x82\xac", "caf\xc3\xa9", "\xe2\x82\xac");
}

Test(values, bad_commands) {
        const char *invalid[] = { "", "   ", "\t\n", "'abc", "\"abc", "abc\\", "\"abc\\\"", "a 'b\" c", "'" };
        for (size_t i = 0; i < ELEMENTSOF(invalid); i++) {
                char **argv = NULL;
                cr_assert_eq(config_split_command(invalid[i], &argv), -EINVAL, "[%s] accepted", invalid[i]);
                cr_assert_null(argv);
        }
        char **argv = NULL;
        cr_assert_eq(config_split_command(NULL, &argv), -EINVAL);
}

Test(values, split_many_words) {
        /* Growth of the argument array, under ASan. */
        char s[2048] = "";
        for (int i = 0; i < 300; i++)
                strcat(s, i % 2 ? "'x y' " : "z ");
        _cleanup_strv_free_ char **argv = NULL;
        cr_assert_eq(config_split_command(s, &argv), 0);
        cr_assert_eq(strv_length(argv), 300);
        cr_assert_str_eq(argv[299], "x y");
}

Test(values, modes) {
        mode_t mode = 1;
        cr_assert_eq(config_parse_mode("0666", &mode), 0);
        cr_assert_eq(mode, 0666);
        cr_assert_eq(config_parse_mode("777", &mode), 0);
        cr_assert_eq(mode, 0777);
        cr_assert_eq(config_parse_mode("0000", &mode), 0);
        cr_assert_eq(mode, 0);
        cr_assert_eq(config_parse_mode("00600", &mode), -EINVAL);
        cr_assert_eq(config_parse_mode("1777", &mode), -EINVAL);
        cr_assert_eq(config_parse_mode(" 600", &mode), -EINVAL);
        cr_assert_eq(config_parse_mode(NULL, &mode), -EINVAL);
        cr_assert_eq(mode, 0);
}

Test(config, stable_time) {
        cr_assert_eq(c.stable_time_usec, 1 * SEC, "the canary is on by default");
        check_loads("[upgrade]\nstable_time = 2.5s\n");
        cr_assert_eq(c.stable_time_usec, 2500 * MSEC);
        check_loads("[upgrade]\nstable_time = 0\n");
        cr_assert_eq(c.stable_time_usec, 0, "0 turns the canary off");
        check_error("[upgrade]\nstable_time = forever\n", 2,
                    "invalid duration 'forever' for stable_time (e.g. 500ms, 1.5s, 2min, 1min 30s, 1h)");
}

Test(config, adopt_and_ready_listen) {
        cr_assert(c.adopt); /* on by default */
        check_loads("[worker]\nadopt = no\n[upgrade]\nready = listen\n");
        cr_assert_not(c.adopt);
        cr_assert_eq(c.ready, READY_LISTEN);
        cr_assert_str_eq(ready_mode_to_string(c.ready), "listen");
        check_loads("[worker]\nadopt = true\n");
        cr_assert(c.adopt);
}

Test(config, watchdog_and_memory_max) {
        cr_assert_eq(c.watchdog_usec, 0, "off by default");
        cr_assert_eq(c.memory_max, 0, "off by default");
        check_loads("[worker]\nwatchdog = 2s\nmemory_max = 256M\n");
        cr_assert_eq(c.watchdog_usec, 2 * SEC);
        cr_assert_eq(c.memory_max, 256ULL << 20);
        check_loads("[worker]\nwatchdog = 500ms\nmemory_max = 1.5G\n");
        cr_assert_eq(c.watchdog_usec, 500 * 1000);
        cr_assert_eq(c.memory_max, 3ULL << 29);
        check_loads("[worker]\nwatchdog = 0\nmemory_max = 0\n");
        cr_assert_eq(c.watchdog_usec, 0);
        cr_assert_eq(c.memory_max, 0);

        check_error("[worker]\nwatchdog = 2s\nwatchdog = often\n", 3,
                    "invalid duration 'often' for watchdog (e.g. 500ms, 1.5s, 2min, 1min 30s, 1h)");
        check_error("[worker]\nwatchdog = 0.5ms\n", 2, "watchdog '0.5ms' is too short (0 for off, or at least 1ms)");
        check_error("[worker]\nmemory_max = 2s\n", 2,
                    "invalid size '2s' for memory_max (bytes, or with K, M, G or T, e.g. 512M, 1.5G; 0 for off)");
        check_error("[worker]\nmemory_max = -1\n", 2,
                    "invalid size '-1' for memory_max (bytes, or with K, M, G or T, e.g. 512M, 1.5G; 0 for off)");
        check_error("[worker]\nmemory_max = 2048T\n", 2, "size '2048T' for memory_max is too large (at most 1024T)");
        check_error("[upgrade]\nmemory_max = 1G\n", 2,
                    "unknown key 'memory_max' in section [upgrade] (it belongs in [worker])");
        check_error("[worker]\nenvironment = WATCHDOG_USEC=5\n", 2,
                    "environment: WATCHDOG_USEC is set by liveswap for each worker and cannot be set here");
        cr_assert_eq(c.watchdog_usec, 0, "a bad file changes nothing");
        cr_assert_eq(c.memory_max, 0, "a bad file changes nothing");
}

Test(values, parse_size) {
        static const struct {
                const char *text;
                uint64_t bytes;
        } good[] = {
                { "0", 0 },
                { "4096", 4096 },
                { "1K", 1024 },
                { "512M", 512ULL << 20 },
                { "1.5G", 3ULL << 29 },
                { "2 G", 2ULL << 30 },
                { "1T", 1ULL << 40 },
                { "1024T", 1ULL << 50 },
        };
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                uint64_t v = 1;
                cr_assert_eq(config_parse_size(good[i].text, &v), 0, "%s", good[i].text);
                cr_assert_eq(v, good[i].bytes, "%s", good[i].text);
        }
        static const char *const bad[] = { "", "M", "1.5", "1.G", "1KB", "1k", "1 M M", " 1M", "+1M", "0x10", "1e3" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                uint64_t v = 7;
                cr_assert_eq(config_parse_size(bad[i], &v), -EINVAL, "%s", bad[i]);
                cr_assert_eq(v, 7);
        }
        uint64_t v;
        cr_assert_eq(config_parse_size("1025T", &v), -ERANGE);
        cr_assert_eq(config_parse_size("99999999999999999999999", &v), -ERANGE);
}

Test(config, watchdog_and_memory_max_overrides) {
        struct config m;
        struct config_overrides o = {
                .watchdog_set = true, .watchdog_usec = 3 * SEC, .memory_max_set = true, .memory_max = 0
        };
        write_file("[worker]\nwatchdog = 1s\nmemory_max = 1G\n", strlen("[worker]\nwatchdog = 1s\nmemory_max = 1G\n"));
        cr_assert_eq(config_load_merged(&m, path, &o, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(m.watchdog_usec, 3 * SEC, "the command line wins");
        cr_assert_eq(m.memory_max, 0, "0 from the command line turns it off");
        config_done(&m);
}
