/* check.h: the fuzz targets' invariant checks. Unlike assert(), CHECK() is never
 * compiled out: a release (-DNDEBUG) fuzz build must still abort on a broken invariant,
 * and an expression with a side effect (a write(), an init call) must still run. */
#pragma once

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                            \
        do {                                                                                                   \
                if (!(cond)) {                                                                                 \
                        fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__, __LINE__, __func__, #cond); \
                        abort();                                                                               \
                }                                                                                              \
        } while (0)
