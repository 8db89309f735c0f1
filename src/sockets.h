/* sockets.h: the listening sockets the supervisor owns for its whole life, either passed
 * by systemd (sd_listen_fds) or bound from --listen / -p / -a. */
#pragma once

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

struct listen_socket {
        int fd;
        char *name; /* the LISTEN_FDNAMES entry */
        char *path; /* a unix socket we bound ourselves, removed again by sockets_done() */
        dev_t dev; /* ...but only while the file is still ours */
        ino_t ino;
};

struct socket_set {
        struct listen_socket *sockets;
        size_t n;
};

/* Takes the sockets systemd passed (LISTEN_FDS/LISTEN_FDNAMES, which are then unset).
 * Returns the number taken (0 when none), or a negative errno. */
int sockets_from_systemd(struct socket_set *set);

/* Binds and listens on SPEC: "ADDR:PORT", "[V6ADDR]:PORT", ":PORT" / "PORT" (on
 * default_address), or a unix socket path (anything containing '/'), whose file gets
 * unix_mode exactly (0666 lets every local user connect, as systemd's SocketMode=).
 * A stale unix socket (nothing answering) is replaced. Returns 0 or a negative errno;
 * Errors are logged here, with the cause. */
int sockets_bind(struct socket_set *set, const char *spec, const char *default_address, mode_t unix_mode);

/* Pure helper of sockets_bind(), exposed for its unit test: parses a SPEC that is not a
 * path into an IPv4 or IPv6 address and port 1..65535, taking default_address when SPEC
 * has none. Returns 0 or -EINVAL. */
int sockets_parse_inet(const char *spec, const char *default_address, struct sockaddr_storage *ss, socklen_t *len);

/* "name1:name2:..." for LISTEN_FDNAMES. NULL on ENOMEM. */
char *sockets_fdnames(const struct socket_set *set);

/* Closes every socket and removes the unix socket files that sockets_bind() made. */
void sockets_done(struct socket_set *set);
