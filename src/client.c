/* client.c: locating a supervisor's private socket and connecting to it peer-to-peer.
 * Error messages name the instance and the cause in words, never an errno number. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client.h"
#include "errors.h"
#include "macro.h"
#include "names.h"

/* The private socket can be under $XDG_RUNTIME_DIR (user service or standalone) or under
 * /run (system service, or standalone without XDG_RUNTIME_DIR): try both, in that order. */
static char *socket_path(const char *instance, int which) {
        const char *xdg = getenv("XDG_RUNTIME_DIR");
        if (which == 0 && !(xdg && *xdg))
                return NULL;
        _cleanup_free_ char *dir = names_runtime_dir(NULL, which == 0 ? xdg : NULL, instance);
        char *path = NULL;
        if (dir && asprintf(&path, "%s/bus", dir) < 0)
                path = NULL;
        return path;
}

static void scan(const char *base, char ***names, size_t *n) {
        DIR *d = opendir(base);
        if (!d)
                return;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                char path[4096];
                struct stat st;
                snprintf(path, sizeof(path), "%s/%s/bus", base, de->d_name);
                if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
                        continue;
                bool dup = false;
                for (size_t i = 0; i < *n; i++)
                        dup = dup || strcmp((*names)[i], de->d_name) == 0;
                if (dup)
                        continue;
                char **p = reallocarray(*names, *n + 2, sizeof(char *));
                if (!p)
                        break;
                *names = p;
                if (((*names)[*n] = strdup(de->d_name)))
                        (*n)++;
                (*names)[*n] = NULL;
        }
        closedir(d);
}

int client_pick_instance(const char *name, char **ret) {
        if (!name || !*name)
                name = getenv("LIVESWAP_INSTANCE");
        if (name && *name) {
                if (names_validate_instance(name) < 0) {
                        fprintf(stderr, "Invalid instance name '%s'\n", name);
                        return -EINVAL;
                }
                *ret = strdup(name);
                return *ret ? 0 : -ENOMEM;
        }

        _cleanup_strv_free_ char **names = NULL;
        size_t n = 0;
        const char *xdg = getenv("XDG_RUNTIME_DIR");
        if (xdg && *xdg) {
                char base[4096];
                snprintf(base, sizeof(base), "%s/liveswap", xdg);
                scan(base, &names, &n);
        }
        scan("/run/liveswap", &names, &n);
        if (n == 0) {
                fprintf(stderr, "No running liveswap instance found (start one with liveswap -s TARGET -p PORT)\n");
                return -ESRCH;
        }
        if (n > 1) {
                fprintf(stderr, "Several liveswap instances are running; pick one with -i:");
                for (size_t i = 0; i < n; i++)
                        fprintf(stderr, " %s", names[i]);
                fprintf(stderr, "\n");
                return -ENOTUNIQ;
        }
        *ret = TAKE_PTR(names[0]);
        names[0] = names[1]; /* keep the list NULL-terminated for the cleanup */
        return 0;
}

int client_connect(const char *instance, bool quiet, sd_bus **ret) {
        int last = -ENOENT;
        for (int which = 0; which < 2; which++) {
                _cleanup_free_ char *path = socket_path(instance, which);
                if (!path || access(path, F_OK) < 0)
                        continue;
                sd_bus *bus = NULL;
                _cleanup_free_ char *address = NULL;
                int r = sd_bus_new(&bus);
                if (r >= 0 && asprintf(&address, "unix:path=%s", path) < 0)
                        r = -ENOMEM;
                if (r >= 0)
                        r = sd_bus_set_address(bus, address);
                if (r >= 0)
                        r = sd_bus_start(bus);
                if (r >= 0) {
                        *ret = bus;
                        return 0;
                }
                sd_bus_unref(bus);
                last = r;
                if (!quiet)
                        fprintf(stderr, "Cannot connect to liveswap instance %s at %s: %s\n", instance, path, strerror(-r));
        }
        if (last == -ENOENT && !quiet)
                fprintf(stderr, "liveswap instance %s is not running (no control socket found)\n", instance);
        return last;
}

int client_exit_code_for(const sd_bus_error *error) {
        if (sd_bus_error_has_name(error, ERROR_UPGRADE_FAILED) || sd_bus_error_has_name(error, ERROR_HOOK_FAILED) ||
            sd_bus_error_has_name(error, ERROR_BUSY) || sd_bus_error_has_name(error, ERROR_NO_PREVIOUS))
                return CLIENT_EXIT_FAILED;
        return CLIENT_EXIT_USAGE;
}
