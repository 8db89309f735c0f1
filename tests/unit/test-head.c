/* test-head.c: the HEAD and PREVIOUS files, on a real file system in a fresh directory
 * under /tmp per test: exact content, mode, parent creation, no temp file left behind,
 * and every kind of malformed file head_read() must refuse. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "head.h"
#include "macro.h"

static char dir[] = "/tmp/test-head.XXXXXX";

static void setup(void) {
        cr_assert_not_null(mkdtemp(dir));
}

static int remove_tree(const char *path) {
        DIR *d = opendir(path);
        if (!d)
                return unlink(path);
        struct dirent *de;
        while ((de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                _cleanup_free_ char *child = NULL;
                cr_assert_geq(asprintf(&child, "%s/%s", path, de->d_name), 0);
                (void) remove_tree(child);
        }
        closedir(d);
        return rmdir(path);
}

static void teardown(void) {
        cr_assert_eq(remove_tree(dir), 0, "cannot remove %s: %s", dir, strerror(errno));
}

TestSuite(head, .init = setup, .fini = teardown);

/* A path inside the test directory; the caller frees it. */
static char *at(const char *name) {
        char *p;
        cr_assert_geq(asprintf(&p, "%s/%s", dir, name), 0);
        return p;
}

static void put(const char *name, const char *content, size_t len) {
        _cleanup_free_ char *p = at(name);
        _cleanup_close_ int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, content, len), (ssize_t) len);
}

static void put_string(const char *name, const char *content) {
        put(name, content, strlen(content));
}

/* The exact bytes of a file, as a string. */
static char *slurp(const char *path) {
        static char buf[2 * PATH_MAX];
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        cr_assert_geq(fd, 0, "cannot open %s: %s", path, strerror(errno));
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        cr_assert_geq(n, 0);
        buf[n] = 0;
        return buf;
}

/* Entries of a directory other than "." and "..", to catch leftover temp files. */
static int count_entries(const char *path) {
        DIR *d = opendir(path);
        cr_assert_not_null(d);
        int n = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                        n++;
        closedir(d);
        return n;
}

static void check_reads(const char *content, const char *expected) {
        put_string("HEAD", content);
        _cleanup_free_ char *p = at("HEAD"), *target = NULL;
        cr_assert_eq(head_read(p, &target), 0, "'%s' was refused", content);
        cr_assert_str_eq(target, expected);
}

static void check_invalid(const char *content, size_t len) {
        put("HEAD", content, len);
        _cleanup_free_ char *p = at("HEAD");
        char *target = NULL;
        int r = head_read(p, &target);
        cr_assert_eq(r, -EINVAL, "'%.*s' gave %d and '%s'", (int) len, content, r, target ? target : "");
        cr_assert_null(target);
}

Test(head, read_valid) {
        check_reads("/srv/app/releases/42\n", "/srv/app/releases/42");
        check_reads("/srv/app/releases/42", "/srv/app/releases/42");
        check_reads("  /srv/app \t\n", "/srv/app");
        check_reads("\n\n/srv/app\n\n", "/srv/app");
        check_reads("/srv/app\r\n", "/srv/app");
        check_reads("/srv/my app/v 1\n", "/srv/my app/v 1");
        check_reads("/\n", "/");
}

Test(head, read_invalid) {
        check_invalid("", 0);
        check_invalid("\n", 1);
        check_invalid("  \n\t\n", 5);
        check_invalid("/srv/a\n/srv/b\n", 14);
        check_invalid("/srv/a\n\n/srv/b\n", 15);
        check_invalid("/srv/a\0b\n", 9);
        check_invalid("/srv/a\n\0", 8);
        check_invalid("srv/app\n", 8);
        check_invalid("./app\n", 6);
        check_invalid("app", 3);
        check_invalid("/srv/a\rb\n", 9);
}

Test(head, read_too_long) {
        static char content[PATH_MAX + 2];
        content[0] = '/';
        memset(content + 1, 'a', PATH_MAX - 2);
        content[PATH_MAX - 1] = '\n';
        /* PATH_MAX - 1 characters: the longest path there is. */
        put("HEAD", content, PATH_MAX);
        _cleanup_free_ char *p = at("HEAD"), *target = NULL;
        cr_assert_eq(head_read(p, &target), 0);
        cr_assert_eq(strlen(target), PATH_MAX - 1);
        /* PATH_MAX characters: not a path. */
        content[PATH_MAX - 1] = 'a';
        content[PATH_MAX] = '\n';
        check_invalid(content, PATH_MAX + 1);
        /* A big file, in case a read loop stopped at its buffer and took a prefix. */
        static char big[3 * PATH_MAX];
        memset(big, ' ', sizeof(big));
        memcpy(big, "/srv/app", 8);
        check_invalid(big, sizeof(big));
}

Test(head, read_missing_and_odd_files) {
        _cleanup_free_ char *missing = at("nothing"), *sub = at("sub"), *fifo = at("fifo");
        char *target = NULL;
        cr_assert_eq(head_read(missing, &target), -ENOENT);
        cr_assert_eq(mkdir(sub, 0755), 0);
        cr_assert_eq(head_read(sub, &target), -EISDIR);
        /* A FIFO nobody writes to must not hang the reader. */
        cr_assert_eq(mkfifo(fifo, 0600), 0);
        cr_assert_eq(head_read(fifo, &target), -EINVAL);
        cr_assert_null(target);
}

Test(head, write_exact_content_and_mode) {
        _cleanup_free_ char *p = at("HEAD"), *target = NULL;
        mode_t old = umask(077); /* the mode must not depend on the umask */
        cr_assert_eq(head_write(p, "/srv/app/releases/42"), 0);
        umask(old);
        cr_assert_str_eq(slurp(p), "/srv/app/releases/42\n");
        struct stat st;
        cr_assert_eq(stat(p, &st), 0);
        cr_assert(S_ISREG(st.st_mode));
        cr_assert_eq(st.st_mode & 07777, 0644);
        cr_assert_eq(count_entries(dir), 1, "a temp file was left behind");

        cr_assert_eq(head_read(p, &target), 0);
        cr_assert_str_eq(target, "/srv/app/releases/42");
}

Test(head, write_replaces) {
        _cleanup_free_ char *p = at("HEAD");
        put_string("HEAD", "/old/target/with/a/much/longer/path/than/the/new/one\n");
        struct stat before, after;
        cr_assert_eq(stat(p, &before), 0);
        cr_assert_eq(head_write(p, "/new"), 0);
        cr_assert_str_eq(slurp(p), "/new\n");
        /* Replaced by rename, not rewritten in place: a reader never sees a torn file. */
        cr_assert_eq(stat(p, &after), 0);
        cr_assert_neq(before.st_ino, after.st_ino);
        cr_assert_eq(count_entries(dir), 1);
}

Test(head, write_creates_parents) {
        _cleanup_free_ char *p = at("a/b/c/HEAD"), *c = at("a/b/c"), *b = at("a/b");
        cr_assert_eq(head_write(p, "/srv/app"), 0);
        cr_assert_str_eq(slurp(p), "/srv/app\n");
        struct stat st;
        cr_assert_eq(stat(b, &st), 0);
        cr_assert(S_ISDIR(st.st_mode));
        cr_assert_eq(count_entries(c), 1);
}

Test(head, write_refuses_what_read_would_refuse) {
        _cleanup_free_ char *p = at("HEAD");
        put_string("HEAD", "/old\n");
        cr_assert_eq(head_write(p, ""), -EINVAL);
        cr_assert_eq(head_write(p, "relative/path"), -EINVAL);
        cr_assert_eq(head_write(p, "/a\n/b"), -EINVAL);
        cr_assert_eq(head_write(p, "/trailing "), -EINVAL);
        cr_assert_eq(head_write(p, NULL), -EINVAL);
        /* The old file is untouched and nothing was left beside it. */
        cr_assert_str_eq(slurp(p), "/old\n");
        cr_assert_eq(count_entries(dir), 1);
}

Test(head, failed_write_leaves_old_file) {
        /* The parent "directory" is a regular file: the write must fail cleanly. */
        put_string("file", "x");
        _cleanup_free_ char *p = at("file/HEAD");
        cr_assert_eq(head_write(p, "/srv/app"), -ENOTDIR);
        /* A directory where HEAD should be: the rename fails after the temp file was
         * written, which must be removed again. */
        _cleanup_free_ char *sub = at("sub"), *inner = at("sub/keep");
        cr_assert_eq(mkdir(sub, 0755), 0);
        put_string("sub/keep", "k");
        cr_assert_lt(head_write(sub, "/srv/app"), 0);
        cr_assert_str_eq(slurp(inner), "k");
        cr_assert_eq(count_entries(dir), 2, "a temp file was left behind");
        /* No file name at all. */
        _cleanup_free_ char *slash = at("sub/");
        cr_assert_eq(head_write(slash, "/srv/app"), -EISDIR);
}

Test(head, probe_touches_nothing) {
        _cleanup_free_ char *p = at("HEAD");
        put_string("HEAD", "/srv/old\n");
        cr_assert_eq(head_probe(p, "/srv/new"), 0);
        cr_assert_str_eq(slurp(p), "/srv/old\n");
        cr_assert_eq(count_entries(dir), 1, "the probe left a file behind");
        /* It fails exactly where head_write() would, and leaves nothing either. */
        put_string("file", "x");
        _cleanup_free_ char *bad = at("file/HEAD");
        cr_assert_eq(head_probe(bad, "/srv/new"), -ENOTDIR);
        cr_assert_eq(head_probe(p, "relative"), -EINVAL);
        cr_assert_eq(count_entries(dir), 2);
}

Test(head, previous_path) {
        _cleanup_free_ char *a = head_previous_path("/var/lib/liveswap/web/HEAD");
        cr_assert_str_eq(a, "/var/lib/liveswap/web/PREVIOUS");
        _cleanup_free_ char *b = head_previous_path("/srv/deployed");
        cr_assert_str_eq(b, "/srv/PREVIOUS");
        _cleanup_free_ char *c = head_previous_path("/HEAD");
        cr_assert_str_eq(c, "/PREVIOUS");
        _cleanup_free_ char *d = head_previous_path("HEAD");
        cr_assert_str_eq(d, "PREVIOUS");
}

Test(head, commit) {
        _cleanup_free_ char *p = at("state/HEAD"), *prev = at("state/PREVIOUS"), *state = at("state");
        _cleanup_free_ char *target = NULL, *previous = NULL;

        /* The first deployment has nothing before it. */
        cr_assert_eq(head_commit(p, NULL, "/srv/v1", "web", "/srv/current"), 0);
        cr_assert_str_eq(slurp(p), "/srv/v1\n");
        cr_assert_eq(head_read(prev, &previous), -ENOENT);
        cr_assert_eq(head_commit(p, "", "/srv/v1", "web", "/srv/current"), 0);
        cr_assert_eq(head_read(prev, &previous), -ENOENT);

        cr_assert_eq(head_commit(p, "/srv/v1", "/srv/v2", "web", "/srv/current"), 0);
        cr_assert_eq(head_read(p, &target), 0);
        cr_assert_str_eq(target, "/srv/v2");
        cr_assert_eq(head_read(prev, &previous), 0);
        cr_assert_str_eq(previous, "/srv/v1");
        /* HEAD.origin beside them records who wrote HEAD, and from what. */
        _cleanup_free_ char *origin_path = at("state/HEAD.origin");
        struct head_origin o = {};
        cr_assert_eq(head_origin_read(origin_path, &o), 0);
        cr_assert_str_eq(o.instance, "web");
        cr_assert_str_eq(o.target, "/srv/current");
        cr_assert_str_eq(o.head, "/srv/v2");
        head_origin_done(&o);
        cr_assert_eq(count_entries(state), 3);
}

Test(head, commit_keeps_head_when_previous_fails) {
        _cleanup_free_ char *p = at("HEAD"), *prev = at("PREVIOUS");
        put_string("HEAD", "/srv/v1\n");
        /* An invalid previous target cannot be written: HEAD must stay. */
        cr_assert_eq(head_commit(p, "relative", "/srv/v2", "web", "/srv/current"), -EINVAL);
        cr_assert_str_eq(slurp(p), "/srv/v1\n");
        /* Likewise when PREVIOUS cannot be replaced. */
        cr_assert_eq(mkdir(prev, 0755), 0);
        cr_assert_lt(head_commit(p, "/srv/v1", "/srv/v2", "web", "/srv/current"), 0);
        cr_assert_str_eq(slurp(p), "/srv/v1\n");
        cr_assert_eq(count_entries(dir), 2);
}

/* ---- HEAD.origin ---- */

Test(head, origin_path) {
        _cleanup_free_ char *a = head_origin_path("/var/lib/liveswap/web/HEAD");
        cr_assert_str_eq(a, "/var/lib/liveswap/web/HEAD.origin");
        _cleanup_free_ char *b = head_origin_path("/srv/state/deployed");
        cr_assert_str_eq(b, "/srv/state/deployed.origin");
}

static void round_trip(const char *instance, const char *target, const char *head) {
        const struct head_origin o = { (char *) instance, (char *) target, (char *) head };
        _cleanup_free_ char *text = NULL;
        cr_assert_eq(head_origin_format(&o, &text), 0);
        struct head_origin back = {};
        cr_assert_eq(head_origin_parse(text, &back), 0, "cannot parse back:\n%s", text);
        cr_assert_str_eq(back.instance, instance);
        cr_assert_str_eq(back.target, target);
        cr_assert_str_eq(back.head, head);
        head_origin_done(&back);
}

Test(head, origin_format) {
        const struct head_origin o = { "server", "/appA/server", "/appA/server-v2" };
        _cleanup_free_ char *text = NULL;
        cr_assert_eq(head_origin_format(&o, &text), 0);
        cr_assert_str_eq(text, "# Written by liveswap with HEAD: the configuration that deployed it (liveswap(8)).\n"
                               "instance=server\n"
                               "target=/appA/server\n"
                               "head=/appA/server-v2\n");
        round_trip("server", "/appA/server", "/appA/server-v2");
        round_trip("web", "", "/srv/v1"); /* no configured target */
        round_trip("a=b", "/x=y/with\nnewline\\n and \\", "/h\\n"); /* what escaping is for */
        round_trip("caf\xc3\xa9", "/bad\xff", "/srv/v1"); /* bytes go through as they are */

        const struct head_origin no_head = { "web", "/t", "" }, no_instance = { NULL, "/t", "/h" };
        cr_assert_eq(head_origin_format(&no_head, &text), -EINVAL);
        cr_assert_eq(head_origin_format(&no_instance, &text), -EINVAL);
}

Test(head, origin_parse) {
        struct head_origin o = {};
        /* Order, blank and comment lines, unknown keys and a missing final newline do not matter. */
        cr_assert_eq(head_origin_parse("\nhead=/h\n# c\nfuture=1\ntarget=\ninstance=web", &o), 0);
        cr_assert_str_eq(o.instance, "web");
        cr_assert_str_eq(o.target, "");
        cr_assert_str_eq(o.head, "/h");
        head_origin_done(&o);

        static const char *const bad[] = {
                "",
                "instance=web\ntarget=/t\n", /* no head */
                "instance=web\nhead=/h\n", /* no target */
                "target=/t\nhead=/h\n", /* no instance */
                "instance=\ntarget=/t\nhead=/h\n", /* empty instance */
                "instance=web\ntarget=/t\nhead=\n", /* empty head */
                "instance=web\ntarget=/t\nhead=/h\nhead=/i\n", /* twice */
                "instance=web\ntarget=/t\\\nhead=/h\n", /* a stray backslash at the end */
                "instance=web\ntarget=/t\\x\nhead=/h\n", /* an unknown escape */
                "instance=web\ntarget /t\nhead=/h\n", /* not key=value */
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                cr_assert_eq(head_origin_parse(bad[i], &o), -EINVAL, "accepted: %s", bad[i]);
}

Test(head, origin_read) {
        _cleanup_free_ char *p = at("HEAD.origin"), *missing = at("none");
        struct head_origin o = {};
        cr_assert_eq(head_origin_read(missing, &o), -ENOENT);
        put("HEAD.origin", "instance=web\0\ntarget=/t\nhead=/h\n", 31);
        cr_assert_eq(head_origin_read(p, &o), -EINVAL);
        put_string("HEAD.origin", "instance=web\ntarget=/t\nhead=/h\n");
        cr_assert_eq(head_origin_read(p, &o), 0);
        cr_assert_str_eq(o.head, "/h");
        head_origin_done(&o);
}

static void absolute(const char *cwd, const char *path, const char *expected) {
        _cleanup_free_ char *a = head_absolute_path(cwd, path);
        cr_assert_not_null(a, "%s against %s", path, cwd);
        cr_assert_str_eq(a, expected, "%s against %s", path, cwd);
}

Test(head, absolute_path) {
        absolute("/appA", "./server", "/appA/server");
        absolute("/appA", "server", "/appA/server");
        absolute("/appA/", ".//server/", "/appA/server");
        absolute("/appA/sub", "../server", "/appA/server");
        absolute("/", "server", "/server");
        absolute("/", "../../server", "/server"); /* never above the root */
        absolute("/ignored", "/srv/app/current", "/srv/app/current"); /* a symlink stays itself */
        absolute("/ignored", "/srv//app/./current/", "/srv/app/current");
        absolute("/a", "..", "/");
        absolute(NULL, "/abs", "/abs");
        cr_assert_null(head_absolute_path("/a", ""));
        cr_assert_null(head_absolute_path(NULL, "relative"));
        cr_assert_null(head_absolute_path("relative", "relative"));
}

Test(head, configured_target) {
        _cleanup_free_ char *none = head_configured_target(NULL), *empty = head_configured_target("");
        cr_assert_str_eq(none, "");
        cr_assert_str_eq(empty, "");
        _cleanup_free_ char *cwd = getcwd(NULL, 0), *expected = NULL, *rel = head_configured_target("./server");
        cr_assert_geq(asprintf(&expected, "%s/server", strcmp(cwd, "/") == 0 ? "" : cwd), 0);
        cr_assert_str_eq(rel, expected);
}

Test(head, judge) {
        const struct head_origin a = { "server", "/appA/server", "/appA/server-v2" };
        const struct head_origin none = { "web", "", "/srv/v2" };

        /* No origin, or one naming other content: a deploy tool wrote HEAD; it is followed. */
        cr_assert_eq(head_judge(NULL, "/srv/v2", "web", "/srv/current"), HEAD_FROM_DEPLOY_TOOL);
        cr_assert_eq(head_judge(&a, "/appA/server-v3", "server", "/appB/server"), HEAD_FROM_DEPLOY_TOOL);

        /* Written by liveswap: only for the same instance and configured target. */
        cr_assert_eq(head_judge(&a, "/appA/server-v2", "server", "/appA/server"), HEAD_FROM_HERE);
        cr_assert_eq(head_judge(&a, "/appA/server-v2", "server", "/appB/server"), HEAD_FROM_ELSEWHERE);
        cr_assert_eq(head_judge(&a, "/appA/server-v2", "other", "/appA/server"), HEAD_FROM_ELSEWHERE);

        /* Nothing configured now, or then: only the instance can tell. */
        cr_assert_eq(head_judge(&a, "/appA/server-v2", "server", ""), HEAD_FROM_HERE);
        cr_assert_eq(head_judge(&a, "/appA/server-v2", "server", NULL), HEAD_FROM_HERE);
        cr_assert_eq(head_judge(&a, "/appA/server-v2", "web", NULL), HEAD_FROM_ELSEWHERE);
        cr_assert_eq(head_judge(&none, "/srv/v2", "web", "/srv/current"), HEAD_FROM_HERE);
}

/* ---- GENERATION ---- */

Test(head, generation_path) {
        _cleanup_free_ char *a = head_generation_path("/var/lib/liveswap/web/HEAD");
        cr_assert_str_eq(a, "/var/lib/liveswap/web/GENERATION");
        _cleanup_free_ char *b = head_generation_path("HEAD");
        cr_assert_str_eq(b, "GENERATION");
}

Test(head, generation_write_and_read) {
        _cleanup_free_ char *p = at("state/GENERATION");
        uint64_t g = 0;
        cr_assert_eq(head_generation_read(p, &g), -ENOENT);
        mode_t old = umask(077);
        cr_assert_eq(head_generation_write(p, 4), 0);
        umask(old);
        cr_assert_str_eq(slurp(p), "4\n");
        struct stat st;
        cr_assert_eq(stat(p, &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0644);
        cr_assert_eq(head_generation_read(p, &g), 0);
        cr_assert_eq(g, 4);
        cr_assert_eq(head_generation_write(p, (uint64_t) INT64_MAX - 1), 0);
        cr_assert_eq(head_generation_read(p, &g), 0);
        cr_assert_eq(g, (uint64_t) INT64_MAX - 1);
        _cleanup_free_ char *state = at("state");
        cr_assert_eq(count_entries(state), 1, "a temp file was left behind");

        /* Numbers it would not read back are refused, and change nothing. */
        cr_assert_eq(head_generation_write(p, 0), -EINVAL);
        cr_assert_eq(head_generation_write(p, INT64_MAX), -EINVAL);
        cr_assert_eq(head_generation_read(p, &g), 0);
        cr_assert_eq(g, (uint64_t) INT64_MAX - 1);

        /* A write that cannot happen fails cleanly. */
        put_string("file", "x");
        _cleanup_free_ char *bad = at("file/GENERATION");
        cr_assert_eq(head_generation_write(bad, 5), -ENOTDIR);
}

static void check_generation(const char *content, int want, uint64_t want_value) {
        put_string("GENERATION", content);
        _cleanup_free_ char *p = at("GENERATION");
        uint64_t g = 12345;
        int r = head_generation_read(p, &g);
        cr_assert_eq(r, want, "'%s' gave %d", content, r);
        cr_assert_eq(g, want == 0 ? want_value : 12345, "'%s' gave %llu", content, (unsigned long long) g);
}

Test(head, generation_read_refuses_garbage) {
        check_generation("17", 0, 17);
        check_generation("  17\n\n", 0, 17);
        check_generation("9223372036854775806\n", 0, 9223372036854775806ULL);
        check_generation("", -EINVAL, 0);
        check_generation("\n", -EINVAL, 0);
        check_generation("0\n", -EINVAL, 0);
        check_generation("-3\n", -EINVAL, 0);
        check_generation("+3\n", -EINVAL, 0);
        check_generation("3 4\n", -EINVAL, 0);
        check_generation("3x\n", -EINVAL, 0);
        check_generation("0x10\n", -EINVAL, 0);
        check_generation("9223372036854775807\n", -EINVAL, 0); /* INT64_MAX: nothing could follow it */
        check_generation("18446744073709551616\n", -EINVAL, 0); /* 2^64 */
        check_generation("99999999999999999999999\n", -EINVAL, 0);
        put("GENERATION", "5\0", 2);
        _cleanup_free_ char *p = at("GENERATION"), *sub = at("GENDIR");
        uint64_t g;
        cr_assert_eq(head_generation_read(p, &g), -EINVAL);
        cr_assert_eq(mkdir(sub, 0755), 0);
        cr_assert_eq(head_generation_read(sub, &g), -EISDIR);
}
