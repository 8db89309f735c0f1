/* engine-state-stub.c: TEMPORARY stand-in until branch handover-engine is merged: every
 * hand-over is unreadable, which exercises the fallback path. Removed at the merge. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-state-decl.h"

int engine_serialize(const struct engine *e, char **ret_text) {
        *ret_text = strdup("stub\n");
        return *ret_text ? 0 : -ENOMEM;
}

int engine_restore(const char *text, size_t size, struct engine **ret, char *error, size_t error_size) {
        snprintf(error, error_size, "engine_restore() is not built yet");
        return -EOPNOTSUPP;
}

int config_serialize(const struct config *c, char **ret_text) {
        *ret_text = strdup("stub\n");
        return *ret_text ? 0 : -ENOMEM;
}

int config_restore(const char *text, size_t size, struct config *ret, char *error, size_t error_size) {
        snprintf(error, error_size, "config_restore() is not built yet");
        return -EOPNOTSUPP;
}
