/* client.h: finding and calling a running supervisor, shared by liveswapctl and the
 * seed-compatible client flags of liveswap (-u, -k, -d, -m). */
#pragma once

#include <stdbool.h>
#include <systemd/sd-bus.h>

/* Exit codes of the contract: 0 done, 1 the upgrade failed and was rolled back (or the
 * request was refused for a reason of state), 2 bad usage or an unreachable instance. */
#define CLIENT_EXIT_OK 0
#define CLIENT_EXIT_FAILED 1
#define CLIENT_EXIT_USAGE 2

/* The instance to talk to: NAME if given, else $LIVESWAP_INSTANCE, else the only one
 * running. Prints the reason on failure. Returns 0 or a negative errno. */
int client_pick_instance(const char *name, char **ret);

/* Connects to the instance's private socket. Prints the reason on failure unless quiet. */
int client_connect(const char *instance, bool quiet, sd_bus **ret);

/* Maps a D-Bus error of a method call to the exit codes above. */
int client_exit_code_for(const sd_bus_error *error);
