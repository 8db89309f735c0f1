/* clone-vfork.h: clone3() with CLONE_VM | CLONE_VFORK and a child function on a stack of
 * its own, which glibc (2.36) does not offer: its clone() cannot pass clone3's arguments
 * (CLONE_INTO_CGROUP), and a plain syscall(SYS_clone3) child would return into the
 * caller's frames on the new stack. */
#pragma once

#include <linux/sched.h>

/* Runs FN(ARG) in a child made by clone3(ARGS), which must set CLONE_VM, a stack and
 * its size; the child exits with FN's return value if FN returns. Returns the child's
 * pid, or -1 with errno; ENOSYS also on architectures other than x86-64, which have no
 * implementation here yet (spawn.c then starts such workers fork-like). */
long clone3_vfork(struct clone_args *args, int (*fn)(void *), void *arg);
