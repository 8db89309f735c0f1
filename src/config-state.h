/* config-state.h: the configuration in effect as text and back, for a reexec (contract
 * section 11). config-state.c describes the format and why it is not the INI file. Pure:
 * no I/O. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* Every member of C as text. Malloc'd, NUL-terminated. Returns 0 or -ENOMEM. */
int config_serialize(const struct config *c, char **ret_text);

/* Rebuilds a configuration from TEXT (SIZE bytes, untrusted) into *RET (to be released
 * with config_done()). Returns 0, -EINVAL (malformed or out of range: ERROR says what and
 * on which line), -EPROTONOSUPPORT (a format version newer than this program reads) or
 * -ENOMEM. On failure *RET is untouched and nothing is allocated. */
int config_restore(const char *text, size_t size, struct config *ret, char *error, size_t error_size);

/* Whether A and B are the same configuration, member by member. */
bool config_equal(const struct config *a, const struct config *b);
