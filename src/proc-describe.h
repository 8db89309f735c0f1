/* proc-describe.h: what /proc says of a process that should be gone, for the log: a
 * killed worker that stays is stuck in the kernel or held by a tracer, and which one it
 * is tells a user where to look. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* "state D, waiting in nfs_wait_bit_killable", "a zombie traced by pid 812" or
 * "state ?" (gone meanwhile) into BUF. */
void proc_describe_stuck(pid_t pid, char *buf, size_t size);
