/* engine-state-decl.h: TEMPORARY, until branch handover-engine is merged: the pure core's
 * serialisation as that branch declares it (engine.h, config.h). Removed at the merge. */
#pragma once

#include <stddef.h>

#include "config.h"
#include "engine.h"

int engine_serialize(const struct engine *e, char **ret_text);
int engine_restore(const char *text, size_t size, struct engine **ret, char *error, size_t error_size);
int config_serialize(const struct config *c, char **ret_text);
int config_restore(const char *text, size_t size, struct config *ret, char *error, size_t error_size);
