/* bus.h: the org.liveswap1.Supervisor object on the private socket and on the system or
 * user bus. The D-Bus side of the request verbs (request.h): arguments, authorisation,
 * error names, and the calls that wait for the end of an upgrade. */
#pragma once

#include "supervisor.h"

struct bus_server;

/* Serves SOCKET_PATH (on LISTEN_FD when it is >= 0: the socket a reexec inherited), and the broker's bus when one is
 * reachable. Registers itself with the supervisor for property changes and with the request layer for upgrade outcomes.
 */
int bus_server_new(struct supervisor *s, const char *socket_path, int listen_fd, struct bus_server **ret);
struct supervisor *bus_server_supervisor(const struct bus_server *b);
/* The private socket's listening fd (for a reexec, handover.h). */
int bus_server_listen_fd(const struct bus_server *b);
/* Writes out what every connection has queued (a reexec's reply, before the exec). */
void bus_server_flush(struct bus_server *b);
/* Answers the calls still waiting (the supervisor is stopping) and closes everything. */
struct bus_server *bus_server_free(struct bus_server *b);
