/* json.h: the little JSON writing the clients need (--json output). */
#pragma once

#include <stdio.h>

/* Writes S as a JSON string, quoted and escaped; NULL as null. */
void json_write_string(FILE *f, const char *s);
