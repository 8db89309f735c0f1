/* test-names-sdbus.c: our bus-name escaping against libsystemd's label escaping
 * (sd_bus_path_encode/_decode), which names.c explains it does not use: the encodings
 * must agree byte for byte on every non-empty name, and the decodings differ exactly where
 * names.c says (ours takes one spelling per instance). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "macro.h"
#include "names.h"

static char *sd_escape(const char *s) {
        char *path = NULL;
        cr_assert_geq(sd_bus_path_encode("/p", s, &path), 0);
        char *out = strdup(path + strlen("/p/"));
        free(path);
        return out;
}

Test(names_sdbus, same_encoding_for_every_non_empty_name) {
        static const char *const names[] = { "web", "my-app", "1app", "a_b", "x.y", "\xc3\xa9", "_61", "A9", "9",
                                             "a b", "UPPER-lower_09", "@:/\\" };
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                _cleanup_free_ char *ours = names_escape_instance(names[i]), *theirs = sd_escape(names[i]);
                cr_assert_str_eq(ours, theirs, "%s", names[i]);
        }
        /* Every single byte but NUL, first and later in a name. */
        for (int c = 1; c < 256; c++) {
                char name[3] = { (char) c, (char) c, 0 };
                _cleanup_free_ char *ours = names_escape_instance(name), *theirs = sd_escape(name);
                cr_assert_str_eq(ours, theirs, "byte %d", c);
        }
}

Test(names_sdbus, where_they_differ) {
        /* The empty string: "_" for libsystemd, refused by us. */
        _cleanup_free_ char *theirs = sd_escape("");
        cr_assert_str_eq(theirs, "_");
        cr_assert_null(names_escape_instance(""));
        /* Other spellings: libsystemd decodes them, we do not. */
        static const char *const spellings[] = { "_61", "_2D", "1a" };
        for (size_t i = 0; i < ELEMENTSOF(spellings); i++) {
                _cleanup_free_ char *path = NULL, *decoded = NULL, *ours = NULL;
                cr_assert_geq(asprintf(&path, "/p/%s", spellings[i]), 0);
                cr_assert_gt(sd_bus_path_decode(path, "/p", &decoded), 0, "%s", spellings[i]);
                cr_assert_not_null(decoded);
                ours = names_unescape_instance(spellings[i]);
                cr_assert_null(ours, "%s decoded by us as %s", spellings[i], ours);
        }
}
