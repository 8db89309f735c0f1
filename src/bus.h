/* bus.h: the org.liveswap1.Supervisor object on the private socket and on the system or
 * user bus. The D-Bus side of the request verbs (request.h): arguments, authorisation,
 * error names, and the calls that wait for the end of an upgrade. */
#pragma once

#include "supervisor.h"

struct bus_server;

/* Serves SOCKET_PATH, and the broker's bus when one is reachable. Registers itself with
 * the supervisor for property changes and with the request layer for upgrade outcomes. */
int bus_server_new(struct supervisor *s, const char *socket_path, struct bus_server **ret);
/* Answers the calls still waiting (the supervisor is stopping) and closes everything. */
struct bus_server *bus_server_free(struct bus_server *b);
