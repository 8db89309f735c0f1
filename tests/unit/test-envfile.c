/* test-envfile.c: environment_file= — systemd's EnvironmentFile= grammar (comments,
 * quotes, escapes, continuations), errors with FILE:LINE, optional files, the order in
 * which the files and environment= combine, and the config key itself. */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "envfile.h"
#include "macro.h"

static char err[512];

static char **parse(const char *text) {
        char **env = NULL;
        int r = envfile_parse(text, strlen(text), "/etc/default/app", &env, err, sizeof(err));
        cr_assert_eq(r, 0, "%s: %s", text, err);
        cr_assert_not_null(env);
        return env;
}

static void assert_env(char **env, const char *const *want) {
        size_t i = 0;
        for (; want[i]; i++) {
                cr_assert_not_null(env[i], "missing %s", want[i]);
                cr_assert_str_eq(env[i], want[i]);
        }
        cr_assert_null(env[i], "extra %s", env[i]);
        strv_free(env);
}

static void assert_error(const char *text, const char *message) {
        char **env = NULL;
        err[0] = 0;
        cr_assert_eq(envfile_parse(text, strlen(text), "/etc/default/app", &env, err, sizeof(err)), -EINVAL, "%s",
                     text);
        cr_assert_null(env);
        cr_assert_str_eq(err, message, "%s", text);
}

Test(envfile, comments_blanks_and_plain_values) {
        assert_env(parse("# a comment\n; another\n\n   \nA=1\n  B = two words  \nC=\nD=x # not a comment\n"),
                   (const char *const[]){ "A=1", "B=two words", "C=", "D=x # not a comment", NULL });
}

Test(envfile, quotes_and_escapes_as_systemd_reads_them) {
        assert_env(parse("S='single $HOME \\n'\nD=\"a \\\"b\\\" \\\\ \\$x \\n\"\nB=a\\ b\\\\c\nM='two\nlines'\n"
                         "J=\"x\"y'z'\n"),
                   (const char *const[]){ "S=single $HOME \\n", "D=a \"b\" \\ $x \\n", "B=a b\\c", "M=two\nlines",
                                          "J=xyz", NULL });
}

Test(envfile, continuation_lines) {
        assert_env(parse("A=one \\\ntwo\nB=\"x\\\ny\"\nC=3\n"),
                   (const char *const[]){ "A=one two", "B=xy", "C=3", NULL });
}

Test(envfile, later_key_replaces_in_place_and_crlf_and_no_final_newline) {
        assert_env(parse("A=1\r\nB=2\r\nA=3"), (const char *const[]){ "A=3", "B=2", NULL });
}

Test(envfile, errors_name_the_file_and_line) {
        assert_error("A=1\nnot an assignment\n",
                     "/etc/default/app:2: expected KEY=VALUE, the key made of letters, digits and '_', not starting "
                     "with a digit");
        assert_error("\n\n1A=x\n", "/etc/default/app:3: expected KEY=VALUE, the key made of letters, digits and '_', "
                                   "not starting with a digit");
        assert_error("A=1\nB='open\nC=2\n", "/etc/default/app:2: unterminated single quote");
        assert_error("B=\"open\n", "/etc/default/app:1: unterminated double quote");
        assert_error("A=1\nLISTEN_FDS=3\n",
                     "/etc/default/app:2: LISTEN_FDS is set by liveswap for each worker and cannot be set here");
        char nul[] = "A=1\0B=2";
        char **env = NULL;
        cr_assert_eq(envfile_parse(nul, sizeof(nul) - 1, "f", &env, err, sizeof(err)), -EINVAL);
        cr_assert_null(env);
}

Test(envfile, a_failed_parse_leaves_the_list_as_it_was) {
        char **env = parse("A=1\n");
        cr_assert_eq(envfile_parse("B=2\nC='", 7, "f", &env, err, sizeof(err)), -EINVAL);
        assert_env(env, (const char *const[]){ "A=1", NULL });
}

Test(envfile, overlay_upper_wins_in_lower_order) {
        char *lower[] = { "A=1", "B=2", NULL }, *upper[] = { "C=3", "A=9", NULL };
        assert_env(envfile_overlay(lower, upper), (const char *const[]){ "A=9", "B=2", "C=3", NULL });
}

static char dir[] = "/tmp/test-envfile.XXXXXX";

static char *write_tmp(const char *name, const char *text) {
        char *path;
        cr_assert_geq(asprintf(&path, "%s/%s", dir, name), 0);
        FILE *f = fopen(path, "w");
        cr_assert_not_null(f);
        fputs(text, f);
        fclose(f);
        return path;
}

static void make_dir(void) {
        cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void) {
        char cmd[PATH_MAX + 16];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        cr_assert_eq(system(cmd), 0);
}

Test(envfile_files, order_optional_files_and_environment_wins, .init = make_dir, .fini = remove_dir) {
        _cleanup_free_ char *a = write_tmp("a", "X=a\nY=a\n"), *b = write_tmp("b", "Y=b\nZ=b\n");
        _cleanup_free_ char *missing = NULL, *optional = NULL;
        cr_assert_geq(asprintf(&missing, "%s/missing", dir), 0);
        cr_assert_geq(asprintf(&optional, "-%s", missing), 0);
        struct config c;
        cr_assert_eq(config_init(&c), 0);
        strv_free(c.environment_files);
        c.environment_files = calloc(4, sizeof(char *));
        c.environment_files[0] = strdup(a);
        c.environment_files[1] = strdup(optional);
        c.environment_files[2] = strdup(b);
        strv_free(c.environment);
        c.environment = calloc(2, sizeof(char *));
        c.environment[0] = strdup("Z=conf");
        cr_assert_eq(envfile_resolve(&c, err, sizeof(err)), 0, "%s", err);
        char **got = c.worker_environment;
        c.worker_environment = NULL;
        assert_env(got, (const char *const[]){ "X=a", "Y=b", "Z=conf", NULL });

        /* A missing file that is not optional: named, with the fix; nothing changes. */
        free(c.environment_files[1]);
        c.environment_files[1] = strdup(missing);
        c.worker_environment = calloc(1, sizeof(char *));
        char **before = c.worker_environment;
        cr_assert_eq(envfile_resolve(&c, err, sizeof(err)), -ENOENT);
        cr_assert(strstr(err, missing) == err, "%s", err);
        cr_assert(strstr(err, "write it as -"), "%s", err);
        cr_assert_eq(c.worker_environment, before);

        /* A bad line: FILE:LINE. */
        _cleanup_free_ char *bad = write_tmp("bad", "OK=1\n\nbroken line\n");
        free(c.environment_files[1]);
        c.environment_files[1] = strdup(bad);
        cr_assert_eq(envfile_resolve(&c, err, sizeof(err)), -EINVAL);
        char want[PATH_MAX + 8];
        snprintf(want, sizeof(want), "%s:3: ", bad);
        cr_assert(strncmp(err, want, strlen(want)) == 0, "%s", err);
        config_done(&c);
}

Test(envfile_files, the_config_key, .init = make_dir, .fini = remove_dir) {
        _cleanup_free_ char *conf = write_tmp("app.conf", "[worker]\nenvironment_file = /etc/default/app\n"
                                                          "environment_file = -/etc/default/app-local\n");
        struct config c;
        cr_assert_eq(config_init(&c), 0);
        cr_assert_eq(config_load(&c, conf, err, sizeof(err)), 0, "%s", err);
        cr_assert_str_eq(c.environment_files[0], "/etc/default/app");
        cr_assert_str_eq(c.environment_files[1], "-/etc/default/app-local");
        cr_assert_null(c.environment_files[2]);
        struct config copy;
        cr_assert_eq(config_copy(&copy, &c), 0);
        cr_assert_str_eq(copy.environment_files[1], "-/etc/default/app-local");
        config_done(&copy);
        config_done(&c);

        _cleanup_free_ char *reset = write_tmp("reset.conf", "[worker]\nenvironment_file = /a\nenvironment_file =\n");
        cr_assert_eq(config_init(&c), 0);
        cr_assert_eq(config_load(&c, reset, err, sizeof(err)), 0, "%s", err);
        cr_assert_null(c.environment_files[0]);
        config_done(&c);

        _cleanup_free_ char *relative = write_tmp("rel.conf", "[worker]\n\nenvironment_file = app.env\n");
        cr_assert_eq(config_init(&c), 0);
        cr_assert_eq(config_load(&c, relative, err, sizeof(err)), -EINVAL);
        cr_assert(strstr(err, "rel.conf:3: environment_file must be an absolute path"), "%s", err);
        config_done(&c);
}
