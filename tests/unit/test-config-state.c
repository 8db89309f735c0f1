/* test-config-state.c: the configuration in effect across a reexec (config-state.c):
 * config_restore(config_serialize(c)) equals c member by member, for the defaults, for a
 * file that sets every key and for command-line values no INI file could carry; version
 * 1's fixture restores; malformed or out-of-range documents are refused with their line. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config-state.h"
#include "macro.h"

static void round_trip(const struct config *c) {
        _cleanup_free_ char *text = NULL, *again = NULL;
        cr_assert_eq(config_serialize(c, &text), 0);
        struct config back;
        char error[256];
        int r = config_restore(text, strlen(text), &back, error, sizeof(error));
        cr_assert_eq(r, 0, "%s\n%s", error, text);
        cr_assert(config_equal(c, &back), "not equal after the round trip:\n%s", text);
        cr_assert_eq(config_serialize(&back, &again), 0);
        cr_assert_str_eq(again, text);
        config_done(&back);
}

/* A configuration with every member away from its default. */
static void every_member(struct config *c) {
        cr_assert_eq(config_init(c), 0);
        char *env[] = { "A=1", "PATH=/usr/bin:/bin", "SPACED=a b ; c", NULL };
        char *users[] = { "alice", "bob", NULL }, *groups[] = { "wheel", NULL };
        strv_free(c->environment);
        strv_free(c->allow_users);
        strv_free(c->allow_groups);
        c->environment = calloc(4, sizeof(char *));
        c->allow_users = calloc(3, sizeof(char *));
        c->allow_groups = calloc(2, sizeof(char *));
        for (int i = 0; env[i]; i++)
                c->environment[i] = strdup(env[i]);
        for (int i = 0; users[i]; i++)
                c->allow_users[i] = strdup(users[i]);
        c->allow_groups[0] = strdup(groups[0]);
        free(c->exec);
        c->exec = strdup("bin/server --port \"8080\" 'a b'");
        c->target = strdup("/srv/app v2\nnewline \"quoted\" ; not a comment \xc3\xa9\x01");
        c->workers = 7;
        c->adopt = false;
        c->watchdog_usec = 1500 * USEC_PER_MSEC;
        c->memory_max = 512ULL << 20;
        c->strategy = STRATEGY_BLUE_GREEN;
        c->batch = 3;
        c->ready = READY_LISTEN;
        c->ready_delay_usec = 2 * USEC_PER_SEC + 1;
        c->ready_timeout_usec = 45 * USEC_PER_SEC;
        c->stable_time_usec = 0;
        c->drain_signal = SIGRTMIN + 2;
        c->drain_timeout_usec = 0;
        c->kill_mode = KILL_MODE_MIXED;
        c->start_timeout_usec = 0;
        c->pre_upgrade = strdup(" leading blank");
        c->pre_upgrade_timeout_usec = 12 * USEC_PER_SEC;
        c->head = strdup("relative/HEAD");
        c->socket_mode = 0600;
        strv_free(c->environment_files);
        c->environment_files = calloc(3, sizeof(char *));
        c->environment_files[0] = strdup("/etc/default/app");
        c->environment_files[1] = strdup("-/etc/default/app-optional");
        c->worker_environment = calloc(3, sizeof(char *));
        c->worker_environment[0] = strdup("FROM_FILE=x y");
        c->worker_environment[1] = strdup("A=1");
}

Test(config_state, defaults) {
        struct config c;
        cr_assert_eq(config_init(&c), 0);
        round_trip(&c);
        config_done(&c);
}

Test(config_state, every_member) {
        struct config c;
        every_member(&c);
        round_trip(&c);
        config_done(&c);
}

/* config_equal() must see each member: otherwise round_trip() proves nothing. */
Test(config_state, equal_sees_every_member) {
        struct config a, b;
        every_member(&a);
        for (int member = 0; member < 26; member++) {
                every_member(&b);
                cr_assert(config_equal(&a, &b));
                switch (member) {
                case 0:
                        free(b.target), b.target = strdup("/other");
                        break;
                case 1:
                        free(b.exec), b.exec = strdup("./other");
                        break;
                case 2:
                        b.workers++;
                        break;
                case 3:
                        free(b.environment[2]), b.environment[2] = NULL;
                        break;
                case 4:
                        b.adopt = !b.adopt;
                        break;
                case 5:
                        b.watchdog_usec++;
                        break;
                case 6:
                        b.memory_max++;
                        break;
                case 7:
                        b.strategy = STRATEGY_RESTART;
                        break;
                case 8:
                        b.batch++;
                        break;
                case 9:
                        b.ready = READY_DELAY;
                        break;
                case 10:
                        b.ready_delay_usec++;
                        break;
                case 11:
                        b.ready_timeout_usec++;
                        break;
                case 12:
                        b.stable_time_usec++;
                        break;
                case 13:
                        b.drain_signal = SIGTERM;
                        break;
                case 14:
                        b.drain_timeout_usec++;
                        break;
                case 15:
                        b.kill_mode = KILL_MODE_GROUP;
                        break;
                case 16:
                        b.start_timeout_usec++;
                        break;
                case 17:
                        free(b.pre_upgrade), b.pre_upgrade = NULL;
                        break;
                case 18:
                        b.pre_upgrade_timeout_usec++;
                        break;
                case 19:
                        free(b.allow_users[1]), b.allow_users[1] = NULL;
                        break;
                case 20:
                        b.allow_groups[0][0] = 'W';
                        break;
                case 21:
                        free(b.head), b.head = NULL;
                        break;
                case 22:
                        b.socket_mode = 0666;
                        break;
                case 23:
                        free(b.environment_files[1]), b.environment_files[1] = NULL;
                        break;
                case 24:
                        b.worker_environment[0][0] = 'f';
                        break;
                case 25:
                        strv_free(b.worker_environment), b.worker_environment = NULL;
                        break;
                }
                cr_assert(!config_equal(&a, &b), "member %d", member);
                config_done(&b);
        }
        config_done(&a);
}

Test(config_state, from_a_file) {
        char path[] = "/tmp/liveswap-config-state-XXXXXX";
        int fd = mkstemp(path);
        cr_assert_geq(fd, 0);
        const char *ini = "[worker]\ntarget = /srv/app\nexec = ./run --fast\nworkers = 3\nenvironment = A=1\n"
                          "environment = B=2\nenvironment = A=3\nadopt = no\nwatchdog = 2s\nmemory_max = 1G\n"
                          "[upgrade]\nstrategy = restart\nbatch = 2\nready = notify\nready_delay = 250ms\n"
                          "ready_timeout = 1min\nstable_time = 5s\ndrain_signal = SIGQUIT\ndrain_timeout = 2min\n"
                          "kill_mode = mixed\nstart_timeout = 0\npre_upgrade = /usr/bin/check\n"
                          "pre_upgrade_timeout = 30s\n[control]\nallow_users = alice, bob\nallow_groups = ops\n"
                          "[state]\nhead = /var/lib/liveswap/HEAD\n[socket]\nsocket_mode = 0660\n";
        cr_assert_eq(write(fd, ini, strlen(ini)), (ssize_t) strlen(ini));
        close(fd);
        struct config c;
        cr_assert_eq(config_init(&c), 0);
        char error[256];
        int r = config_load(&c, path, error, sizeof(error));
        unlink(path);
        cr_assert_eq(r, 0, "%s", error);
        cr_assert_str_eq(c.environment[0], "A=3");
        round_trip(&c);
        config_done(&c);
}

static char *fixture(void) {
        FILE *f = fopen(TEST_DATA_DIR "/config-v1.txt", "re");
        cr_assert_not_null(f);
        char *text = calloc(1, 1 << 16);
        cr_assert_gt(fread(text, 1, (1 << 16) - 1, f), 0);
        fclose(f);
        return text;
}

Test(config_state, restores_version_1) {
        _cleanup_free_ char *text = fixture();
        struct config c, want;
        char error[256];
        int r = config_restore(text, strlen(text), &c, error, sizeof(error));
        cr_assert_eq(r, 0, "%s", error);
        every_member(&want);
        cr_assert(config_equal(&c, &want));
        config_done(&c);
        config_done(&want);
}

static void expect_refused(const char *text, const char *from, const char *to, int error, const char *message) {
        const char *at = strstr(text, from);
        cr_assert_not_null(at, "'%s' not found", from);
        _cleanup_free_ char *bad = NULL;
        cr_assert_gt(asprintf(&bad, "%.*s%s%s", (int) (at - text), text, to, at + strlen(from)), 0);
        struct config c = { .workers = 12345 };
        char buf[256] = "";
        int r = config_restore(bad, strlen(bad), &c, buf, sizeof(buf));
        cr_assert_eq(r, error, "want %d, got %d (%s)", error, r, buf);
        cr_assert_eq(c.workers, 12345, "*ret changed on failure");
        cr_assert(strncmp(buf, "line ", 5) == 0 && strstr(buf, message), "want '%s' in '%s'", message, buf);
}

Test(config_state, refuses_bad_documents) {
        _cleanup_free_ char *text = fixture();
        expect_refused(text, "workers=7", "workers=0", -EINVAL, "workers and batch must be from 1 to 4096");
        expect_refused(text, "workers=7", "workers=5000", -EINVAL, "workers and batch");
        expect_refused(text, "drain_signal=", "drain_signal=9 x=", -EINVAL, "unknown field 'x'");
        expect_refused(text, "kill_mode=mixed", "kill_mode=mixed drain_signal=9", -EINVAL, "given twice");
        expect_refused(text, "drain_timeout_usec=0", "drain_timeout_usec=99999999999999999", -EINVAL,
                       "longer than a year");
        expect_refused(text, "ready_timeout_usec=45000000", "ready_timeout_usec=0", -EINVAL, "longer than 0");
        expect_refused(text, "watchdog_usec=1500000", "watchdog_usec=999", -EINVAL, "below 1ms");
        expect_refused(text, "socket_mode=384", "socket_mode=4095", -EINVAL, "above 0777");
        expect_refused(text, "exec=\"", "exec=\"'", -EINVAL, "exec is not a command");
        expect_refused(text, "value=\"A=1\"", "value=\"LISTEN_FDS=3\"", -EINVAL, "set by liveswap");
        expect_refused(text, "value=\"A=1\"", "value=-", -EINVAL, "the value is not set");
        expect_refused(text, "adopt=no ", "", -EINVAL, "field 'adopt' is missing");
        expect_refused(text, "allow_groups ", "deny_groups ", -EINVAL, "unknown record 'deny_groups'");
        expect_refused(text, "end\n", "", -EINVAL, "without its 'end' line");
        expect_refused(text, "liveswap-config 1", "liveswap-config 2", -EPROTONOSUPPORT, "newer than this program");

        size_t n = strlen(text);
        for (size_t cut = 0; cut <= n; cut++) {
                char *copy = malloc(cut ?: 1); /* no NUL after it: ASan catches a read past SIZE */
                memcpy(copy, text, cut);
                struct config c;
                int r = config_restore(copy, cut, &c, NULL, 0);
                free(copy);
                if (cut == n) {
                        cr_assert_eq(r, 0);
                        config_done(&c);
                } else
                        cr_assert_lt(r, 0, "cut at %zu accepted", cut);
        }
}
