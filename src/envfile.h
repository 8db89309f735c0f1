/* envfile.h: environment_file= of [worker], files of KEY=VALUE lines read the way
 * systemd reads EnvironmentFile=, at the start and again at every upgrade, so that a
 * reload picks up a changed file. */
#pragma once

#include <stddef.h>

#include "config.h"

/* Parses TEXT (SIZE bytes, the contents of PATH) into a NULL-terminated "KEY=VALUE" list,
 * appended to *ENV (which may be NULL) in file order; a later KEY replaces an earlier one
 * in its place. The grammar is systemd's: blank lines and lines whose first non-blank is
 * '#' or ';' are comments; KEY is letters, digits and '_' not starting with a digit, with
 * blanks allowed around '='; VALUE is
 *   'single quoted' (literal, may span lines),
 *   "double quoted" (a backslash escapes " \ ` $ and a newline; may span lines), or
 *   bare (surrounding blanks removed, a backslash escapes the next byte, and a backslash
 *   at the end of a line joins the next line);
 * text after a closing quote is appended, as a shell would. Pure: no I/O.
 * Returns 0, -ENOMEM, or -EINVAL with "PATH:LINE: message" in ERR. */
int envfile_parse(const char *text, size_t size, const char *path, char ***env, char *err, size_t errlen);

/* Reads every file of SPECS in order ("-PATH": optional, a missing file is skipped) and
 * returns the merged list in *RET (later files win). Returns 0, -ENOMEM, or a negative
 * errno with "PATH: message" or "PATH:LINE: message" in ERR; *RET is untouched then. */
int envfile_load_all(char *const *specs, char ***ret, char *err, size_t errlen);

/* Reads c's environment_files now and sets c->worker_environment: the supervisor's own
 * environment (systemd's EnvironmentFile= of the unit included) < the files, in order <
 * environment=. Returns 0, -ENOMEM, or a negative errno with "FILE:LINE: message" or
 * "FILE: message" in ERR; c is unchanged then. */
int envfile_resolve(struct config *c, char *err, size_t errlen);

/* LOWER overlaid with UPPER: each KEY once, UPPER's value winning, in LOWER's order then
 * UPPER's new keys. A new NULL-terminated list, or NULL when out of memory. */
char **envfile_overlay(char *const *lower, char *const *upper);
