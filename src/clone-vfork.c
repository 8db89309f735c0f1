/* clone-vfork.c: see clone-vfork.h. A few instructions per architecture, because only the
 * child side needs them: right after the system call it is on the new stack with nothing
 * to return to, so it calls FN and exits without touching a C frame. The parent side is
 * an ordinary system call. Registers the kernel keeps across it carry FN and ARG over. */
#include <errno.h>
#include <sys/syscall.h>

#include "clone-vfork.h"

long clone3_vfork(struct clone_args *args, int (*fn)(void *), void *arg) {
#if defined(__x86_64__)
        register long rax __asm__("rax") = SYS_clone3;
        register long rdi __asm__("rdi") = (long) args;
        register long rsi __asm__("rsi") = (long) sizeof(*args);
        register long r8 __asm__("r8") = (long) fn;
        register long r9 __asm__("r9") = (long) arg;
        __asm__ volatile("syscall\n\t"
                         "test %%rax, %%rax\n\t"
                         "jnz 1f\n\t"
                         /* The child: the stack top is 16-byte aligned (mmap), as a call wants. */
                         "xor %%ebp, %%ebp\n\t"
                         "mov %%r9, %%rdi\n\t"
                         "call *%%r8\n\t"
                         "mov %%eax, %%edi\n\t"
                         "mov %[exit], %%eax\n\t"
                         "syscall\n\t"
                         "hlt\n"
                         "1:"
                         : "+r"(rax)
                         : "r"(rdi), "r"(rsi), "r"(r8), "r"(r9), [exit] "i"(SYS_exit)
                         : "rcx", "r11", "memory", "cc");
        if (rax < 0 && rax > -4096) {
                errno = (int) -rax;
                return -1;
        }
        return rax;
#else
        (void) args;
        (void) fn;
        (void) arg;
        errno = ENOSYS;
        return -1;
#endif
}
