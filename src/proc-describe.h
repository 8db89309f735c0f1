/* proc-describe.h: what /proc says of a process that should be gone, for the log: a
 * worker killed for not exiting in time, or one that stays after SIGKILL (stuck in the
 * kernel, or held by a tracer). Where it waits tells a user where to look. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* "state D, waiting in nfs_wait_bit_killable", "a zombie traced by pid 812" or
 * "state ?" (gone meanwhile) into BUF. */
void proc_describe(pid_t pid, char *buf, size_t size);
