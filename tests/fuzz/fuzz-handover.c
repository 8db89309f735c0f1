/* fuzz-handover.c: libFuzzer target for the hand-over parser (handover-format.h): a new
 * image reads bytes another build wrote, so any input must parse or be refused with a
 * message, and what parses must format again into a document that parses the same. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "handover-format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct handover_state st, again;
        char err[512] = "";
        int r = handover_parse((const char *) data, size, &st, err, sizeof(err));
        if (r < 0) {
                CHECK(r == -EINVAL || r == -ENOMEM);
                CHECK(err[0] != 0);
                return 0;
        }
        char *doc = NULL;
        size_t doc_size = 0;
        CHECK(handover_format(&st, HANDOVER_VERSION, &doc, &doc_size) == 0);
        CHECK(handover_parse(doc, doc_size, &again, err, sizeof(err)) == 0);
        CHECK(again.n_workers == st.n_workers && again.n_sockets == st.n_sockets);
        CHECK(strcmp(again.instance, st.instance) == 0 && again.engine_size == st.engine_size);
        handover_state_done(&again);
        handover_state_done(&st);
        free(doc);
        return 0;
}
