/* handover.c: reexec, the shell's side (handover.h): choosing and checking the program,
 * the memfd, the fds that survive the exec, the execve() and its undoing; in the new
 * image, reading the memfd and rebuilding the supervisor from it. What the engine's and
 * the configuration's state mean is theirs (engine_serialize(), config_serialize());
 * the document's framing is handover-format.c's. Nothing here decides when to reexec. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config-state.h"
#include "engine-state.h"
#include "handover.h"
#include "log.h"
#include "macro.h"

extern char **environ;

/* ---- the program ---- */

#define DELETED_SUFFIX " (deleted)"

char *handover_choose_program(void) {
        const char *p = getenv("LIVESWAP_PROGRAM");
        if (p && *p)
                return strdup(p);
        char self[4096];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n > 0) {
                self[n] = 0;
                /* Replaced by a package upgrade: the path names the new file now. */
                size_t len = (size_t) n, suffix = strlen(DELETED_SUFFIX);
                if (len > suffix && strcmp(self + len - suffix, DELETED_SUFFIX) == 0)
                        self[len - suffix] = 0;
                if (self[0] == '/' && access(self, X_OK) == 0)
                        return strdup(self);
        }
        return strdup(LIVESWAP_PROGRAM_PATH);
}

/* The identifying bytes of an ELF header: class, byte order (e_ident[4], [5]) and
 * e_machine (bytes 18-19, in that byte order: compared as raw bytes). */
static int elf_identity(int fd, unsigned char ret[4], bool *ret_elf) {
        unsigned char h[20];
        ssize_t n = pread(fd, h, sizeof(h), 0);
        if (n < 0)
                return -errno;
        *ret_elf = n == (ssize_t) sizeof(h) && memcmp(h, ELFMAG, SELFMAG) == 0;
        if (*ret_elf) {
                ret[0] = h[EI_CLASS];
                ret[1] = h[EI_DATA];
                ret[2] = h[18];
                ret[3] = h[19];
        }
        return 0;
}

int handover_check_program(const char *program, char *err, size_t errlen) {
        struct stat st;
        if (!program || program[0] != '/') {
                snprintf(err, errlen, "the program %s is not an absolute path", program ?: "(none)");
                return -EINVAL;
        }
        _cleanup_close_ int fd = open(program, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0) {
                int r = -errno;
                snprintf(err, errlen, "cannot execute %s: %s", program, strerror(-r));
                return r;
        }
        if (!S_ISREG(st.st_mode) || access(program, X_OK) < 0) {
                snprintf(err, errlen, "cannot execute %s: not an executable file", program);
                return -EACCES;
        }
        unsigned char theirs[4], ours[4];
        bool their_elf = false, our_elf = false; /* for gcc -O3's -Wmaybe-uninitialized */
        _cleanup_close_ int self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
        if (elf_identity(fd, theirs, &their_elf) < 0 || self < 0 || elf_identity(self, ours, &our_elf) < 0)
                return 0; /* cannot tell: execve() will */
        if (their_elf && our_elf && memcmp(theirs, ours, sizeof(ours)) != 0) {
                snprintf(err, errlen, "cannot execute %s: a program for another machine or word size", program);
                return -ENOEXEC;
        }
        return 0;
}

/* ---- the old image: what survives the exec ---- */

/* Each fd that must survive gets a copy without FD_CLOEXEC just before the exec, at or
 * above FIRST (past the places of the listening sockets); the originals keep their
 * close-on-exec and their numbers, so a failed exec only closes the copies. */
struct exec_fds {
        int *copies;
        size_t n;
        /* The listening sockets' places 3, 4, ...: what was there before (-1: nothing),
         * with its flags, to put back after a failed exec. */
        int *saved, *saved_flags;
        size_t n_places;
};

static int keep(struct exec_fds *x, int fd, int first, int *ret) {
        if (fd < 0) {
                *ret = -1;
                return 0;
        }
        int copy = fcntl(fd, F_DUPFD, first);
        if (copy < 0)
                return -errno;
        x->copies[x->n++] = copy;
        *ret = copy;
        return 0;
}

static void exec_fds_undo(struct exec_fds *x) {
        for (size_t i = 0; i < x->n_places; i++) {
                int place = 3 + (int) i;
                if (x->saved[i] >= 0) {
                        (void) dup3(x->saved[i], place, x->saved_flags[i] & FD_CLOEXEC ? O_CLOEXEC : 0);
                        close(x->saved[i]);
                } else
                        close(place);
        }
        for (size_t i = 0; i < x->n; i++)
                close(x->copies[i]);
        free(x->copies);
        free(x->saved);
        free(x->saved_flags);
        *x = (struct exec_fds){};
}

/* Puts the listening sockets at 3, 4, ... without close-on-exec, saving what was there. */
static int place_sockets(struct exec_fds *x, const struct socket_set *sockets, int first) {
        size_t n = sockets->n;
        _cleanup_free_ int *temporary = calloc(n ?: 1, sizeof(int));
        if (!temporary)
                return -ENOMEM;
        int r = 0;
        size_t made = 0;
        /* Copies first: a socket may sit at another's place. */
        for (; made < n; made++)
                if ((temporary[made] = fcntl(sockets->sockets[made].fd, F_DUPFD_CLOEXEC, first)) < 0) {
                        r = -errno;
                        break;
                }
        for (size_t i = 0; r >= 0 && i < n; i++) {
                int place = 3 + (int) i;
                int flags = fcntl(place, F_GETFD);
                x->saved[i] = -1;
                if (flags >= 0) {
                        x->saved_flags[i] = flags;
                        if ((x->saved[i] = fcntl(place, F_DUPFD_CLOEXEC, first)) < 0) {
                                r = -errno;
                                break;
                        }
                }
                x->n_places = i + 1;
                if (dup2(temporary[i], place) < 0)
                        r = -errno;
        }
        for (size_t i = 0; i < made; i++)
                close(temporary[i]);
        return r;
}

/* The environment of the new image: ours, with the sockets described as systemd would. */
static char **exec_environment(const struct supervisor *s) {
        size_t n = 0;
        for (char **e = environ; *e; e++)
                n++;
        char **env = calloc(n + 4, sizeof(char *));
        if (!env)
                return NULL;
        size_t k = 0;
        for (char **e = environ; *e; e++)
                if (strncmp(*e, "LISTEN_PID=", 11) != 0 && strncmp(*e, "LISTEN_FDS=", 11) != 0 &&
                    strncmp(*e, "LISTEN_FDNAMES=", 15) != 0)
                        env[k++] = *e; /* borrowed */
        if (asprintf(&env[k++], "LISTEN_PID=%d", (int) getpid()) < 0 ||
            asprintf(&env[k++], "LISTEN_FDS=%zu", s->sockets.n) < 0 ||
            asprintf(&env[k++], "LISTEN_FDNAMES=%s", s->fdnames) < 0) {
                env[--k] = NULL;
                for (size_t i = n; i < k; i++)
                        free(env[i]);
                free(env);
                return NULL;
        }
        return env;
}

static void exec_environment_free(char **env) {
        size_t n = 0;
        while (env[n])
                n++;
        for (size_t i = n - 3; i < n; i++)
                free(env[i]);
        free(env);
}

/* ---- the old image: the document ---- */

static int collect(struct supervisor *s, struct exec_fds *x, int bus_fd, int first, struct handover_state *st) {
        int r;
        st->writer_version = (char *) LIVESWAP_VERSION;
        if ((r = engine_serialize(s->engine, &st->engine_text)) < 0 ||
            (r = config_serialize(&s->config, &st->config_text)) < 0)
                return r;
        st->engine_size = strlen(st->engine_text);
        st->config_size = strlen(st->config_text);
        st->instance = s->instance;
        st->config_path = (char *) s->config_path;
        st->runtime_dir = s->runtime_dir;
        st->notify_path = s->notify_path;
        st->head_path = s->head_path;
        st->head_seen = s->head_seen;
        st->adopt_library = s->adopt_library;
        st->adopt_library_searched = s->adopt_library_searched;
        st->exit_status = s->exit_status;
        st->target = s->current.target;
        st->directory = s->current.directory;
        st->argv = s->current.argv;
        st->is_static = s->current.is_static;
        if ((r = keep(x, s->notify_fd, first, &st->notify_fd)) < 0 || (r = keep(x, bus_fd, first, &st->bus_fd)) < 0 ||
            (r = keep(x, s->leftovers.dir_fd, first, &st->lock_fd)) < 0)
                return r;
        st->sockets = calloc(s->sockets.n ?: 1, sizeof(*st->sockets));
        st->workers = calloc(s->n_io ?: 1, sizeof(*st->workers));
        if (!st->sockets || !st->workers)
                return -ENOMEM;
        for (size_t i = 0; i < s->sockets.n; i++) {
                const struct listen_socket *k = &s->sockets.sockets[i];
                st->sockets[st->n_sockets++] = (struct handover_socket){
                        .fd = 3 + (int) i, .name = k->name, .path = k->path, .dev = k->dev, .ino = k->ino
                };
        }
        for (size_t i = 0; i < s->n_io; i++) {
                const struct worker_io *io = &s->io[i];
                struct handover_worker *w = &st->workers[st->n_workers++];
                *w = (struct handover_worker){ .pid = io->pid,
                                               .unpreloadable = io->unpreloadable,
                                               .cgroup_path = io->cgroup_path,
                                               .cgroup_v1_path = io->cgroup_v1_path };
                if ((r = keep(x, io->control_fd, first, &w->control_fd)) < 0)
                        return r;
        }
        return 0;
}

/* A sealed memfd holding DOC, at or above FIRST, without close-on-exec. */
static int write_memfd(struct exec_fds *x, const char *doc, size_t size, int first) {
        _cleanup_close_ int fd = memfd_create("liveswap-handover", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        for (size_t done = 0; done < size;) {
                ssize_t n = write(fd, doc + done, size - done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -EIO;
                done += (size_t) n;
        }
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
                return -errno;
        int copy = -1;
        int r = keep(x, fd, first, &copy);
        return r < 0 ? r : copy;
}

/* The command line of the new image: PROGRAM --handover FD, then the arguments this one
 * was started with (so that it reads the same options), minus an earlier --handover. */
static char **exec_arguments(const char *program, char **arguments, const char *fd_text) {
        size_t n = 0;
        while (arguments && arguments[n])
                n++;
        char **argv = calloc(n + 4, sizeof(char *));
        if (!argv)
                return NULL;
        size_t k = 0;
        argv[k++] = (char *) program;
        argv[k++] = (char *) "--handover";
        argv[k++] = (char *) fd_text;
        for (size_t i = 1; i < n; i++) {
                if (strcmp(arguments[i], "--handover") == 0) {
                        i++;
                        continue;
                }
                if (strncmp(arguments[i], "--handover=", 11) == 0)
                        continue;
                argv[k++] = arguments[i];
        }
        return argv;
}

int handover_exec(struct supervisor *s, int bus_fd, char *err, size_t errlen) {
        int r = handover_check_program(s->program, err, errlen);
        if (r < 0)
                return r;
        supervisor_flush(s);

        int first = 3 + (int) s->sockets.n;
        struct exec_fds x = {};
        struct handover_state st = { .notify_fd = -1, .bus_fd = -1, .lock_fd = -1 };
        _cleanup_free_ char *doc = NULL;
        size_t size = 0;
        char **env = NULL, **argv = NULL;
        size_t fds = 4 + s->n_io + 1;
        x.copies = calloc(fds, sizeof(int));
        x.saved = calloc(s->sockets.n + 1, sizeof(int));
        x.saved_flags = calloc(s->sockets.n + 1, sizeof(int));
        if (!x.copies || !x.saved || !x.saved_flags)
                r = -ENOMEM;
        else
                r = collect(s, &x, bus_fd, first, &st);
        /* LIVESWAP_TEST_HANDOVER_VERSION: the tests' way to hand over a document the new
         * image cannot read (liveswap(8), REEXEC). */
        const char *test_version = getenv("LIVESWAP_TEST_HANDOVER_VERSION");
        unsigned version =
                test_version && *test_version ? (unsigned) strtoul(test_version, NULL, 10) : HANDOVER_VERSION;
        if (r >= 0)
                r = handover_format(&st, version, &doc, &size);
        int memfd = -1;
        if (r >= 0)
                r = memfd = write_memfd(&x, doc, size, first);
        char fd_text[16];
        if (r >= 0) {
                snprintf(fd_text, sizeof(fd_text), "%d", memfd);
                env = exec_environment(s);
                argv = exec_arguments(s->program, s->arguments, fd_text);
                if (!env || !argv)
                        r = -ENOMEM;
        }
        free(st.engine_text);
        free(st.config_text);
        free(st.sockets);
        free(st.workers);
        if (r < 0) {
                snprintf(err, errlen, "cannot prepare the hand-over: %s", strerror(-r));
                goto undo;
        }
        log_info("Re-executing %s (hand-over of %zu bytes, %zu worker(s))", s->program, size, s->n_io);
        r = place_sockets(&x, &s->sockets, first);
        if (r >= 0) {
                (void) execve(s->program, argv, env);
                r = -errno;
        }
        snprintf(err, errlen, "cannot execute %s: %s", s->program, strerror(-r));
undo:
        exec_fds_undo(&x);
        if (env)
                exec_environment_free(env);
        free(argv);
        return r;
}

/* ---- the new image ---- */

int handover_read(int fd, struct handover_state *ret, char *err, size_t errlen) {
        _cleanup_close_ int owned = fd;
        struct stat st;
        if (fstat(owned, &st) < 0) {
                snprintf(err, errlen, "fd %d: %s", fd, strerror(errno));
                return -errno;
        }
        if (!S_ISREG(st.st_mode) || st.st_size <= 0 || (uint64_t) st.st_size > HANDOVER_SIZE_MAX) {
                snprintf(err, errlen, "fd %d is not a hand-over (%jd bytes)", fd, (intmax_t) st.st_size);
                return -EINVAL;
        }
        size_t size = (size_t) st.st_size;
        _cleanup_free_ char *doc = malloc(size);
        if (!doc) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        for (size_t done = 0; done < size;) {
                ssize_t n = pread(owned, doc + done, size - done, (off_t) done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        snprintf(err, errlen, "cannot read the hand-over: %s", n < 0 ? strerror(errno) : "short");
                        return n < 0 ? -errno : -EIO;
                }
                done += (size_t) n;
        }
        return handover_parse(doc, size, ret, err, errlen);
}

static bool fd_valid(int fd) {
        return fd >= 0 && fcntl(fd, F_GETFD) >= 0;
}

int handover_restore_state(struct supervisor *s, struct handover_state *st, char *err, size_t errlen) {
        struct engine *engine = NULL;
        struct config config = {};
        char why[512];
        int r;
        if (strcmp(st->instance, s->instance ?: st->instance) != 0) {
                snprintf(err, errlen, "the hand-over is of instance %s, not %s", st->instance, s->instance);
                return -EINVAL;
        }
        if (st->n_sockets != s->sockets.n) {
                snprintf(err, errlen, "the hand-over names %zu listening socket(s), LISTEN_FDS %zu", st->n_sockets,
                         s->sockets.n);
                return -EINVAL;
        }
        if (!fd_valid(st->notify_fd) || !fd_valid(st->bus_fd) || (st->lock_fd >= 0 && !fd_valid(st->lock_fd))) {
                snprintf(err, errlen, "an fd named by the hand-over is not open");
                return -EBADF;
        }
        for (size_t i = 0; i < st->n_workers; i++)
                if (st->workers[i].control_fd >= 0 && !fd_valid(st->workers[i].control_fd)) {
                        snprintf(err, errlen, "worker %d's control fd %d is not open", st->workers[i].pid,
                                 st->workers[i].control_fd);
                        return -EBADF;
                }
        r = engine_restore(st->engine_text, st->engine_size, &engine, why, sizeof(why));
        if (r < 0) {
                snprintf(err, errlen, "the engine's state: %s", why);
                return r;
        }
        r = config_restore(st->config_text, st->config_size, &config, why, sizeof(why));
        if (r < 0) {
                engine_free(engine);
                snprintf(err, errlen, "the configuration: %s", why);
                return r;
        }
        /* Every worker the engine knows by pid must have its shell side, and back. */
        for (size_t i = 0; i < st->n_workers; i++) {
                struct engine_worker w;
                if (!engine_get_worker(engine, st->workers[i].pid, &w)) {
                        engine_free(engine);
                        config_done(&config);
                        snprintf(err, errlen, "worker %d is not the engine's", st->workers[i].pid);
                        return -EINVAL;
                }
        }

        /* Committed: nothing fails from here on. */
        engine_free(s->engine);
        s->engine = engine;
        config_done(&s->config);
        s->config = config;
        free(s->runtime_dir);
        s->runtime_dir = TAKE_PTR(st->runtime_dir);
        free(s->head_path);
        s->head_path = TAKE_PTR(st->head_path);
        free(s->head_seen);
        s->head_seen = TAKE_PTR(st->head_seen);
        free(s->notify_path);
        s->notify_path = TAKE_PTR(st->notify_path);
        free(s->adopt_library);
        s->adopt_library = TAKE_PTR(st->adopt_library);
        s->adopt_library_searched = st->adopt_library_searched;
        s->exit_status = st->exit_status;
        s->notify_fd = st->notify_fd;
        (void) fcntl(s->notify_fd, F_SETFD, FD_CLOEXEC);
        if (st->lock_fd >= 0)
                (void) fcntl(st->lock_fd, F_SETFD, FD_CLOEXEC);
        (void) fcntl(st->bus_fd, F_SETFD, FD_CLOEXEC);
        worker_command_done(&s->current);
        s->current = (struct worker_command){ .target = TAKE_PTR(st->target),
                                              .directory = TAKE_PTR(st->directory),
                                              .argv = TAKE_PTR(st->argv),
                                              .is_static = st->is_static };
        for (size_t i = 0; i < st->n_sockets; i++) {
                struct listen_socket *k = &s->sockets.sockets[i];
                free(k->path);
                k->path = TAKE_PTR(st->sockets[i].path);
                k->dev = (dev_t) st->sockets[i].dev;
                k->ino = (ino_t) st->sockets[i].ino;
        }
        return 0;
}

int handover_restore_workers(struct supervisor *s, struct handover_state *st) {
        int r = 0;
        for (size_t i = 0; i < st->n_workers; i++) {
                struct handover_worker *w = &st->workers[i];
                struct worker_io io = { .pid = w->pid,
                                        .control_fd = w->control_fd,
                                        .unpreloadable = w->unpreloadable,
                                        .cgroup_path = w->cgroup_path,
                                        .cgroup_v1_path = w->cgroup_v1_path };
                if (io.control_fd >= 0)
                        (void) fcntl(io.control_fd, F_SETFD, FD_CLOEXEC);
                int q = supervisor_restore_worker(s, &io);
                if (q < 0) {
                        /* It cannot be watched: it must not run unsupervised. */
                        log_error_errno(q, "Cannot watch worker %d again: %m; killing it", w->pid);
                        (void) kill(-w->pid, SIGKILL);
                        (void) kill(w->pid, SIGKILL);
                        if (w->control_fd >= 0)
                                close(w->control_fd);
                        free(w->cgroup_path);
                        free(w->cgroup_v1_path);
                        r = q;
                }
                w->cgroup_path = w->cgroup_v1_path = NULL;
                w->control_fd = -1;
        }
        return r;
}
