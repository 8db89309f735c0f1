/* handover-format.h: the hand-over document a supervisor writes for the program it
 * re-executes (liveswap(8), REEXEC), as plain data: its framing and the shell's own
 * section. Pure: no syscalls, no fds touched; the bytes it parses are untrusted (a
 * different build wrote them), so every field is bounded and checked.
 *
 * The document is text:
 *
 *     liveswap-handover VERSION WRITER-VERSION
 *     section NAME LENGTH
 *     <LENGTH bytes>
 *     ...
 *     end
 *
 * with the sections "engine" (engine_serialize()), "config" (config_serialize()) and
 * "supervisor" (lines "key value...", below). A reader accepts every VERSION from
 * HANDOVER_VERSION_MIN to its own HANDOVER_VERSION and skips sections it does not know;
 * a document of a newer VERSION is refused as a whole, and the supervisor then starts
 * afresh from its configuration (handover.h says how it keeps its workers safe then). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HANDOVER_VERSION 1
#define HANDOVER_VERSION_MIN 1
/* Far above any real document (a few KiB per hundred workers), far below a worry. */
#define HANDOVER_SIZE_MAX (64u << 20)
#define HANDOVER_WORKERS_MAX 65536
#define HANDOVER_SOCKETS_MAX 1024

struct handover_socket {
        int fd; /* where the new image finds it: 3, 4, ... (LISTEN_FDS order) */
        char *name; /* its LISTEN_FDNAMES entry */
        char *path; /* a unix socket liveswap bound itself (removed at the end), or NULL */
        uint64_t dev, ino;
};

struct handover_worker {
        pid_t pid;
        int control_fd;
        bool unpreloadable;
        char *cgroup_path, *cgroup_v1_path; /* NULL without a delegated cgroup */
};

struct handover_state {
        char *writer_version; /* the LIVESWAP_VERSION that wrote it (for the log) */
        char *engine_text, *config_text; /* NUL-terminated, with their sizes */
        size_t engine_size, config_size;

        char *instance, *config_path, *runtime_dir, *notify_path, *head_path, *head_seen, *adopt_library;
        bool adopt_library_searched;
        int notify_fd, bus_fd, lock_fd; /* lock_fd -1 when the records could not be kept */
        int exit_status;
        /* The current generation's command (target.h's struct worker_command). */
        char *target, *directory;
        char **argv;
        bool is_static;

        struct handover_socket *sockets;
        size_t n_sockets;
        struct handover_worker *workers;
        size_t n_workers;
};

/* The whole document, malloc'd with its size (no NUL counted). VERSION is the header's
 * version number (HANDOVER_VERSION but for the tests of an unreadable hand-over).
 * 0 or -ENOMEM. */
int handover_format(const struct handover_state *st, unsigned version, char **ret, size_t *ret_size);

/* Parses DOC of SIZE bytes into RET. On failure returns -EINVAL (-ENOMEM) with a sentence
 * in ERR ("line 4: bad fd") and leaves nothing allocated. */
int handover_parse(const char *doc, size_t size, struct handover_state *ret, char *err, size_t errlen);

void handover_state_done(struct handover_state *st);
