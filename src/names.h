/* names.h: instance names and the paths derived from them. Pure: no syscalls. */
#pragma once

#include <stddef.h>

#define LIVESWAP_BUS_PREFIX "org.liveswap1."
#define LIVESWAP_OBJECT_PATH "/org/liveswap1"
#define LIVESWAP_INTERFACE "org.liveswap1.Supervisor"

/* Escapes an instance as one D-Bus name element: bytes outside [A-Za-z0-9] become "_xx"
 * (lower-case hex), and so does a leading digit. Returns a new string or NULL (ENOMEM). */
char *names_escape_instance(const char *instance);
/* The reverse; returns NULL on malformed input (errno EINVAL) or ENOMEM. */
char *names_unescape_instance(const char *escaped);
/* "org.liveswap1.<escaped>"; NULL on ENOMEM. */
char *names_bus_name(const char *instance);

/* Whether an instance name is acceptable: 1..200 bytes, no '/', not "." or "..", no control
 * bytes. Returns 0 or -EINVAL. */
int names_validate_instance(const char *instance);

/* Default instance for a target: the base name of the path without trailing slashes
 * ("/srv/app/" -> "app", "./server" -> "server"). NULL when none can be derived. */
char *names_instance_from_target(const char *target);

/* Directory for the private bus socket and notify socket, per the contract:
 * runtime_directory (systemd's $RUNTIME_DIRECTORY) if set, else
 * xdg_runtime_dir + "/liveswap/<instance>", else "/run/liveswap/<instance>".
 * Arguments may be NULL or empty (= unset). Returns a new string or NULL. */
char *names_runtime_dir(const char *runtime_directory, const char *xdg_runtime_dir,
                        const char *instance);

/* Default HEAD file: state_directory + "/HEAD" if set, else xdg_state_home (or
 * home + "/.local/state" when that is unset) + "/liveswap/<instance>/HEAD" for
 * non-root, else "/var/lib/liveswap/<instance>/HEAD" for root (is_root != 0). */
char *names_head_path(const char *state_directory, const char *xdg_state_home,
                      const char *home, int is_root, const char *instance);
