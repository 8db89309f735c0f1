/* fuzz-config.c: libFuzzer target for the configuration parser. The input is a whole
 * config file; it is handed to config_load() through a memfd so the real file path is
 * exercised. Checks: no crash, no leak, a failed load leaves the config untouched and
 * names FILE:LINE, a successful one keeps its invariants. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "envfile.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_duration_and_signal(const char *s) {
        uint64_t usec;
        int sig;
        /* systemd's time syntax: whatever parses means one number of microseconds, which
         * reads back the same written in the smallest unit and in seconds. */
        if (config_parse_duration(s, &usec) >= 0) {
                char again[64];
                uint64_t back;
                CHECK(usec <= 31557600ULL * USEC_PER_SEC);
                snprintf(again, sizeof(again), "%lluus", (unsigned long long) usec);
                CHECK(config_parse_duration(again, &back) >= 0 && back == usec);
                snprintf(again, sizeof(again), "%llus %lluus", (unsigned long long) (usec / USEC_PER_SEC),
                         (unsigned long long) (usec % USEC_PER_SEC));
                CHECK(config_parse_duration(again, &back) >= 0 && back == usec);
        }
        if (config_parse_signal(s, &sig) >= 0)
                CHECK(sig > 0 && sig < 65);
        char **argv = NULL;
        mode_t mode;
        if (config_parse_mode(s, &mode) >= 0)
                CHECK(mode <= 0777);
        if (config_split_command(s, &argv) >= 0) {
                CHECK(argv && argv[0]);
                strv_free(argv);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > 64 * 1024)
                return 0;
        _cleanup_close_ int fd = memfd_create("fuzz-config", MFD_CLOEXEC);
        CHECK(fd >= 0);
        CHECK(write(fd, data, size) == (ssize_t) size);
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

        struct config c;
        CHECK(config_init(&c) >= 0);
        unsigned workers = c.workers;
        char err[512] = "";
        int r = config_load(&c, path, err, sizeof(err));
        if (r == -EINVAL) {
                /* The first error names the file and the line. */
                CHECK(strncmp(err, path, strlen(path)) == 0 && err[strlen(path)] == ':');
                CHECK(c.workers == workers);
        } else if (r >= 0) {
                CHECK(c.workers >= 1 && c.batch >= 1 && c.drain_signal > 0);
                CHECK(c.environment && c.allow_users && c.allow_groups);
                CHECK(c.socket_mode <= 0777);
                /* environment= keeps one entry per name, the last value in the first place. */
                for (size_t i = 0; c.environment[i]; i++)
                        for (size_t j = 0; j < i; j++) {
                                size_t len = strcspn(c.environment[j], "=");
                                CHECK(strncmp(c.environment[i], c.environment[j], len + 1) != 0);
                        }
                struct config copy;
                if (config_copy(&copy, &c) >= 0)
                        config_done(&copy);
        }
        config_done(&c);

        /* The value parsers on their own, with the input as one string. */
        char value[256];
        size_t n = size < sizeof(value) - 1 ? size : sizeof(value) - 1;
        memcpy(value, data, n);
        value[n] = 0;
        check_duration_and_signal(value);

        /* The same bytes as an environment_file=: every entry a valid KEY=VALUE, or an
         * error naming the file and a line, with the list left alone. */
        char **env = NULL;
        char envfile_err[512] = "";
        if (envfile_parse((const char *) data, size, "fuzz.env", &env, envfile_err, sizeof(envfile_err)) >= 0) {
                CHECK(env);
                for (size_t i = 0; env[i]; i++) {
                        size_t len = strcspn(env[i], "=");
                        CHECK(env[i][len] == '=' && len > 0 && !config_variable_reserved(env[i], len));
                        for (size_t j = 0; j < i; j++)
                                CHECK(strncmp(env[i], env[j], len + 1) != 0);
                }
                strv_free(env);
        } else
                CHECK(!env && strncmp(envfile_err, "fuzz.env:", 9) == 0);
        return 0;
}
