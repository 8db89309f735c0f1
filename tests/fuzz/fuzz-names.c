/* fuzz-names.c: libFuzzer target for instance-name escaping. Escaping must produce a
 * valid D-Bus name element that unescapes to the same bytes; unescaping arbitrary input
 * must either fail or give a name that escapes back to exactly that input. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "macro.h"
#include "names.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > 4096)
                return 0;
        _cleanup_free_ char *s = strndup((const char *) data, size);
        CHECK(s);

        _cleanup_free_ char *escaped = names_escape_instance(s);
        if (*s) {
                CHECK(escaped);
                CHECK(!isdigit((unsigned char) escaped[0]));
                for (const char *p = escaped; *p; p++)
                        CHECK(isalnum((unsigned char) *p) || *p == '_');
                _cleanup_free_ char *back = names_unescape_instance(escaped);
                CHECK(back && strcmp(back, s) == 0);
        } else
                CHECK(!escaped);

        _cleanup_free_ char *un = names_unescape_instance(s);
        if (un) {
                _cleanup_free_ char *again = names_escape_instance(un);
                CHECK(again && strcmp(again, s) == 0);
        }

        if (names_validate_instance(s) >= 0) {
                _cleanup_free_ char *bus = names_bus_name(s);
                CHECK(bus && strlen(bus) <= 255);
                _cleanup_free_ char *dir = names_runtime_dir(NULL, "/run/user/0", s);
                CHECK(dir && !strstr(dir, "/../"));
        }
        _cleanup_free_ char *instance = names_instance_from_target(s);
        if (instance)
                CHECK(names_validate_instance(instance) >= 0);
        return 0;
}
