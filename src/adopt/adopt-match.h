/* adopt-match.h: the pure half of the preload library (adopt.c): does the address an app
 * binds name a socket that liveswap passed? No syscalls, no state, so that the unit tests
 * (tests/unit/test-adopt-match.c) run it under the sanitizers, which the preload library
 * itself cannot use. */
#pragma once

#include <stdbool.h>
#include <sys/socket.h>

/* True when an app's bind() of WANT (WANT_LEN bytes) should be served by the passed
 * listening socket whose own address is HAVE (HAVE_LEN bytes, from getsockname()):
 * - TCP (AF_INET/AF_INET6, either side, any mix): the same non-zero port, and the app's
 *   address is the passed socket's own, or a wildcard (0.0.0.0 or ::), or the passed
 *   socket's IPv4 address as an IPv4-mapped IPv6 address (::ffff:a.b.c.d). A port of 0
 *   asks for any port: never a match.
 * - AF_UNIX: the same path (or the same abstract name), compared byte for byte up to the
 *   first NUL of a pathname; unnamed sockets never match.
 * Anything else (other families, malformed lengths) is not a match. */
bool adopt_address_matches(const struct sockaddr *want, socklen_t want_len, const struct sockaddr *have,
                           socklen_t have_len);
