/* test-names.c: instance escaping for D-Bus, its exact inverse, instance validation, and
 * the runtime and state paths derived from an instance. Pure functions: no files. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "macro.h"
#include "names.h"

static void check_escape(const char *instance, const char *expected) {
        _cleanup_free_ char *escaped = names_escape_instance(instance);
        cr_assert_not_null(escaped, "escaping '%s' failed", instance);
        cr_assert_str_eq(escaped, expected);
        _cleanup_free_ char *back = names_unescape_instance(escaped);
        cr_assert_not_null(back, "unescaping '%s' failed", escaped);
        cr_assert_str_eq(back, instance);
}

Test(names, escape_examples) {
        check_escape("app", "app");
        check_escape("App42", "App42");
        check_escape("my-app", "my_2dapp");
        check_escape("1web", "_31web");
        check_escape("a.b", "a_2eb");
        check_escape("a_b", "a_5fb");
        check_escape("_", "_5f");
        check_escape("9", "_39");
        check_escape("a9", "a9");
        check_escape("x y", "x_20y");
        check_escape("caf\xc3\xa9", "caf_c3_a9"); /* UTF-8 bytes one by one */
        check_escape("\xff", "_ff");
}

Test(names, escape_empty_is_invalid) {
        errno = 0;
        cr_assert_null(names_escape_instance(""));
        cr_assert_eq(errno, EINVAL);
        errno = 0;
        cr_assert_null(names_escape_instance(NULL));
        cr_assert_eq(errno, EINVAL);
}

Test(names, escape_round_trips_every_byte) {
        char instance[3] = { 0 };
        for (int c = 1; c < 256; c++)
                for (int lead = 0; lead < 2; lead++) {
                        instance[0] = lead ? 'x' : (char) c;
                        instance[1] = lead ? (char) c : 0;
                        _cleanup_free_ char *escaped = names_escape_instance(instance);
                        cr_assert_not_null(escaped);
                        /* Only [A-Za-z0-9_] may appear in a bus name element. */
                        cr_assert_eq(strspn(escaped, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"),
                                     strlen(escaped));
                        cr_assert(escaped[0] < '0' || escaped[0] > '9');
                        _cleanup_free_ char *back = names_unescape_instance(escaped);
                        cr_assert_not_null(back, "byte %d", c);
                        cr_assert_str_eq(back, instance);
                }
}

static void check_malformed(const char *escaped) {
        errno = 0;
        char *s = names_unescape_instance(escaped);
        cr_assert_null(s, "'%s' was accepted as '%s'", escaped, s ? s : "");
        cr_assert_eq(errno, EINVAL, "'%s': errno %d", escaped, errno);
}

Test(names, unescape_rejects_malformed) {
        check_malformed(NULL);
        check_malformed("");
        check_malformed("_"); /* truncated escapes */
        check_malformed("a_2");
        check_malformed("a_");
        check_malformed("a_2D"); /* upper-case hex is never written */
        check_malformed("a_zz");
        check_malformed("a_00"); /* NUL */
        check_malformed("_61"); /* "a" needs no escaping: a second spelling */
        check_malformed("a_39"); /* digit after the first byte needs none either */
        check_malformed("1web"); /* a leading digit must be escaped */
        check_malformed("my-app"); /* raw bytes outside [A-Za-z0-9] */
        check_malformed("a.b");
        check_malformed("a b");
}

Test(names, bus_name) {
        _cleanup_free_ char *name = names_bus_name("my-app");
        cr_assert_str_eq(name, "org.liveswap1.my_2dapp");
        _cleanup_free_ char *digit = names_bus_name("2");
        cr_assert_str_eq(digit, "org.liveswap1._32");
        errno = 0;
        cr_assert_null(names_bus_name(""));
        cr_assert_eq(errno, EINVAL);
}

Test(names, validate_instance) {
        cr_assert_eq(names_validate_instance("app"), 0);
        cr_assert_eq(names_validate_instance("my-app.v2"), 0);
        cr_assert_eq(names_validate_instance("caf\xc3\xa9"), 0);
        cr_assert_eq(names_validate_instance("..."), 0);
        cr_assert_eq(names_validate_instance(NULL), -EINVAL);
        cr_assert_eq(names_validate_instance(""), -EINVAL);
        cr_assert_eq(names_validate_instance("."), -EINVAL);
        cr_assert_eq(names_validate_instance(".."), -EINVAL);
        cr_assert_eq(names_validate_instance("a/b"), -EINVAL);
        cr_assert_eq(names_validate_instance("a\nb"), -EINVAL);
        cr_assert_eq(names_validate_instance("a\tb"), -EINVAL);
        cr_assert_eq(names_validate_instance("a\x7f"), -EINVAL);
}

Test(names, validate_instance_length) {
        char name[202];
        memset(name, 'a', sizeof(name));
        name[200] = 0;
        cr_assert_eq(names_validate_instance(name), 0);
        name[200] = 'a';
        name[201] = 0;
        cr_assert_eq(names_validate_instance(name), -EINVAL);

        /* 80 dashes escape to 240 characters: with the prefix, 254 fit in a bus name... */
        memset(name, '-', 80);
        name[80] = 0;
        cr_assert_eq(names_validate_instance(name), 0);
        /* ... 81 would need 257. */
        name[80] = '-';
        name[81] = 0;
        cr_assert_eq(names_validate_instance(name), -EINVAL);
}

static void check_instance(const char *target, const char *expected) {
        _cleanup_free_ char *instance = names_instance_from_target(target);
        if (!expected) {
                cr_assert_null(instance, "'%s' gave '%s'", target, instance);
                return;
        }
        cr_assert_not_null(instance, "'%s' gave nothing", target);
        cr_assert_str_eq(instance, expected);
}

Test(names, instance_from_target) {
        check_instance("/srv/app/", "app");
        check_instance("/srv/app//", "app");
        check_instance("/srv/app", "app");
        check_instance("./server", "server");
        check_instance("server", "server");
        check_instance("/srv/app/current", "current");
        check_instance("rel/dir/", "dir");
        check_instance("/", NULL);
        check_instance("//", NULL);
        check_instance("", NULL);
        check_instance(".", NULL);
        check_instance("/srv/..", NULL);
        check_instance(NULL, NULL);
}

static void check_path(char *path, const char *expected) {
        cr_assert_not_null(path, "expected %s", expected);
        cr_assert_str_eq(path, expected);
        free(path);
}

Test(names, runtime_dir) {
        check_path(names_runtime_dir("/run/liveswap/web", "/run/user/1000", "web"), "/run/liveswap/web");
        check_path(names_runtime_dir("/run/a:/run/b", NULL, "web"), "/run/a");
        check_path(names_runtime_dir("/run/a/", NULL, "web"), "/run/a");
        check_path(names_runtime_dir(NULL, "/run/user/1000", "web"), "/run/user/1000/liveswap/web");
        check_path(names_runtime_dir("", "/run/user/1000/", "web"), "/run/user/1000/liveswap/web");
        check_path(names_runtime_dir(NULL, NULL, "web"), "/run/liveswap/web");
        check_path(names_runtime_dir("", "", "my-app"), "/run/liveswap/my-app");
        /* Relative directories are not usable. */
        check_path(names_runtime_dir("run", "tmp", "web"), "/run/liveswap/web");
        /* The instance matters only when it becomes part of the path. */
        check_path(names_runtime_dir("/run/liveswap/web", NULL, NULL), "/run/liveswap/web");
        errno = 0;
        cr_assert_null(names_runtime_dir(NULL, "/run/user/1000", ".."));
        cr_assert_eq(errno, EINVAL);
        cr_assert_null(names_runtime_dir(NULL, NULL, NULL));
}

Test(names, head_path) {
        check_path(names_head_path("/var/lib/liveswap/web", "/home/u/.state", "/home/u", 0, "web"),
                   "/var/lib/liveswap/web/HEAD");
        check_path(names_head_path("/var/lib/a:/var/lib/b", NULL, NULL, 1, "web"), "/var/lib/a/HEAD");
        check_path(names_head_path(NULL, NULL, NULL, 1, "web"), "/var/lib/liveswap/web/HEAD");
        check_path(names_head_path(NULL, NULL, "/root", 1, "web"), "/var/lib/liveswap/web/HEAD");
        /* An explicit XDG_STATE_HOME wins for root too. */
        check_path(names_head_path(NULL, "/root/.state", "/root", 1, "web"), "/root/.state/liveswap/web/HEAD");
        check_path(names_head_path(NULL, "relative", "/root", 1, "web"), "/var/lib/liveswap/web/HEAD");
        check_path(names_head_path(NULL, "/home/u/.state", "/home/u", 0, "web"), "/home/u/.state/liveswap/web/HEAD");
        check_path(names_head_path("", "", "/home/u/", 0, "web"), "/home/u/.local/state/liveswap/web/HEAD");
        check_path(names_head_path(NULL, "relative", "/home/u", 0, "web"), "/home/u/.local/state/liveswap/web/HEAD");

        errno = 0;
        cr_assert_null(names_head_path(NULL, NULL, NULL, 0, "web"));
        cr_assert_eq(errno, ENOENT);
        errno = 0;
        cr_assert_null(names_head_path(NULL, NULL, "/home/u", 0, "a/b"));
        cr_assert_eq(errno, EINVAL);
}
