/* proc-describe.c: what /proc says of a process that should be gone (proc-describe.h). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs-util.h"
#include "proc-describe.h"
#include "proc-stat.h"

void proc_describe(pid_t pid, char *buf, size_t size) {
        char path[64], text[1024], wchan[128] = "";
        char state = '?';
        long tracer = 0;
        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        ssize_t n = read_small_file_at(AT_FDCWD, path, text, sizeof(text));
        struct proc_stat st;
        if (n > 0 && proc_stat_parse(text, (size_t) n, &st) >= 0)
                state = st.state;
        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        n = read_small_file_at(AT_FDCWD, path, text, sizeof(text) - 1);
        if (n > 0) {
                text[n] = 0;
                const char *t = strstr(text, "\nTracerPid:");
                if (t)
                        tracer = strtol(t + strlen("\nTracerPid:"), NULL, 10);
        }
        snprintf(path, sizeof(path), "/proc/%d/wchan", (int) pid);
        n = read_small_file_at(AT_FDCWD, path, wchan, sizeof(wchan) - 1);
        wchan[n > 0 ? n : 0] = 0;
        if (tracer > 0)
                snprintf(buf, size, "%s traced by pid %ld", state == 'Z' ? "a zombie" : "a process", tracer);
        else if (wchan[0] && strcmp(wchan, "0") != 0)
                snprintf(buf, size, "state %c, waiting in %s", state, wchan);
        else
                snprintf(buf, size, "state %c", state);
}
