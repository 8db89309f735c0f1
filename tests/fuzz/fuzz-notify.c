/* fuzz-notify.c: libFuzzer target for the parser of workers' sd_notify datagrams. Any
 * bytes a worker sends must parse or be refused without crashing, and a STATUS= value is
 * always NUL-terminated within its buffer; a refused message reports nothing. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "notify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > NOTIFY_MAX_MESSAGE)
                return 0;
        struct notify_message m;
        int r = notify_parse((const char *) data, size, &m);
        if (r >= 0) {
                CHECK(memchr(m.status, 0, sizeof(m.status)));
                if (m.ready)
                        CHECK(memmem(data, size, "READY=1", 7));
        } else {
                CHECK(r == -EBADMSG);
                CHECK(!m.ready && !m.has_status); /* a refused message reports nothing */
        }
        return 0;
}
