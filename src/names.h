/* names.h: instance names and the paths derived from them. Pure: no syscalls. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define LIVESWAP_BUS_PREFIX "org.liveswap1."
#define LIVESWAP_OBJECT_PATH "/org/liveswap1"
#define LIVESWAP_INTERFACE "org.liveswap1.Supervisor"
/* WorkerDetails a(utustttu): pid, generation, slot, state, started (monotonic usec),
 * memory bytes, CPU usec, restarts. A figure that cannot be read is
 * LIVESWAP_FIGURE_UNKNOWN. */
#define LIVESWAP_WORKER_DETAILS "(utustttu)"
#define LIVESWAP_FIGURE_UNKNOWN UINT64_MAX

/* Escapes an instance as one D-Bus name element: bytes outside [A-Za-z0-9] become "_xx"
 * (lower-case hex), and so does a leading digit. Returns a new string, or NULL with errno
 * EINVAL for an empty or NULL instance, or ENOMEM. */
char *names_escape_instance(const char *instance);
/* The reverse; accepts only what names_escape_instance() produces (lower-case hex, no
 * escaped byte that would be kept, no NUL), so each instance has exactly one spelling.
 * Returns NULL on malformed input (errno EINVAL) or ENOMEM. */
char *names_unescape_instance(const char *escaped);
/* "org.liveswap1.<escaped>"; NULL as names_escape_instance(). */
char *names_bus_name(const char *instance);

/* Whether an instance name is acceptable: 1..200 bytes, no '/', not "." or "..", no control
 * bytes, and short enough that its bus name fits D-Bus's 255 characters once escaped.
 * Returns 0 or -EINVAL. */
int names_validate_instance(const char *instance);

/* Default instance for a target: the base name of the path without trailing slashes
 * ("/srv/app/" -> "app", "./server" -> "server"). NULL when none can be derived ("/",
 * "", "..": errno EINVAL) or ENOMEM. */
char *names_instance_from_target(const char *target);

/* Directory for the private bus socket and notify socket, per the contract:
 * runtime_directory (systemd's $RUNTIME_DIRECTORY) if set, else
 * xdg_runtime_dir + "/liveswap/<instance>", else "/run/liveswap/<instance>".
 * Directory arguments may be NULL or empty (= unset); relative ones are ignored, as the
 * XDG base directory specification asks, and of a ':'-separated runtime_directory (several
 * RuntimeDirectory= entries) the first is used. Returns a new string, or NULL with errno
 * EINVAL when the instance is needed and invalid, or ENOMEM. */
char *names_runtime_dir(const char *runtime_directory, const char *xdg_runtime_dir, const char *instance);

/* Default HEAD file: state_directory + "/HEAD" if set, else xdg_state_home +
 * "/liveswap/<instance>/HEAD" if set (for root too), else
 * "/var/lib/liveswap/<instance>/HEAD" for root (is_root != 0), else home +
 * "/.local/state/liveswap/<instance>/HEAD". Directory arguments follow
 * names_runtime_dir()'s rules. Returns a new string, or NULL with errno EINVAL (invalid
 * instance), ENOENT (non-root with neither xdg_state_home nor home: no private place for
 * the file), or ENOMEM. */
char *names_head_path(const char *state_directory, const char *xdg_state_home, const char *home, int is_root,
                      const char *instance);
