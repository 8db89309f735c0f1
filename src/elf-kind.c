/* elf-kind.c: tells a statically linked program from a dynamically linked one by its program
 * headers: only a dynamically linked one has PT_INTERP (see elf-kind.h). */
#include <elf.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "elf-kind.h"
#include "macro.h"

#define ELF_READ_MAX 65536

static uint64_t get(const unsigned char *p, size_t n, bool big) {
        uint64_t v = 0;
        for (size_t i = 0; i < n; i++)
                v |= (uint64_t) p[big ? n - 1 - i : i] << (8 * i);
        return v;
}

enum elf_kind elf_classify(const unsigned char *buf, size_t len) {
        if (len < EI_NIDENT || memcmp(buf, ELFMAG, SELFMAG) != 0)
                return ELF_NOT_ELF;
        bool is64 = buf[EI_CLASS] == ELFCLASS64, big = buf[EI_DATA] == ELFDATA2MSB;
        if ((!is64 && buf[EI_CLASS] != ELFCLASS32) || (!big && buf[EI_DATA] != ELFDATA2LSB))
                return ELF_NOT_ELF;
        size_t ehsize = is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
        if (len < ehsize)
                return ELF_NOT_ELF;
        uint64_t phoff = is64 ? get(buf + offsetof(Elf64_Ehdr, e_phoff), 8, big)
                              : get(buf + offsetof(Elf32_Ehdr, e_phoff), 4, big);
        uint64_t phentsize = is64 ? get(buf + offsetof(Elf64_Ehdr, e_phentsize), 2, big)
                                  : get(buf + offsetof(Elf32_Ehdr, e_phentsize), 2, big);
        uint64_t phnum = is64 ? get(buf + offsetof(Elf64_Ehdr, e_phnum), 2, big)
                              : get(buf + offsetof(Elf32_Ehdr, e_phnum), 2, big);
        if (phentsize < 4 || phoff > len || phnum > (len - phoff) / phentsize)
                return ELF_NOT_ELF;
        for (uint64_t i = 0; i < phnum; i++)
                if (get(buf + phoff + i * phentsize, 4, big) == PT_INTERP)
                        return ELF_DYNAMIC;
        return ELF_STATIC;
}

/* A bare name is looked up in PATH, as execvpe() does. */
static enum elf_kind classify_path(const char *directory, const char *path, int depth) {
        char full[4096];
        if (!strchr(path, '/')) {
                const char *p = getenv("PATH") ?: "/usr/local/bin:/usr/bin:/bin";
                while (*p) {
                        size_t n = strcspn(p, ":");
                        if (n > 0 && snprintf(full, sizeof(full), "%.*s/%s", (int) n, p, path) < (int) sizeof(full) &&
                            access(full, X_OK) == 0)
                                return classify_path(directory, full, depth);
                        p += n + (p[n] == ':');
                }
                return ELF_NOT_ELF;
        }
        if (path[0] != '/' && directory) {
                if (snprintf(full, sizeof(full), "%s/%s", directory, path) >= (int) sizeof(full))
                        return ELF_NOT_ELF;
                path = full;
        }
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return ELF_NOT_ELF;
        static unsigned char buf[ELF_READ_MAX];
        size_t got = 0;
        while (got < sizeof(buf)) {
                ssize_t n = read(fd, buf + got, sizeof(buf) - got);
                if (n <= 0)
                        break;
                got += (size_t) n;
        }
        if (got > 2 && buf[0] == '#' && buf[1] == '!' && depth == 0) {
                /* A script: its interpreter is what runs (and what the library must reach). */
                size_t i = 2, end;
                while (i < got && (buf[i] == ' ' || buf[i] == '\t'))
                        i++;
                for (end = i; end < got && buf[end] != ' ' && buf[end] != '\t' && buf[end] != '\n'; end++)
                        ;
                if (end == got || end == i || buf[i] != '/' || end - i >= sizeof(full))
                        return ELF_NOT_ELF;
                memcpy(full, buf + i, end - i);
                full[end - i] = 0;
                return classify_path(NULL, full, depth + 1);
        }
        return elf_classify(buf, got);
}

enum elf_kind elf_classify_file(const char *directory, const char *path) {
        return classify_path(directory, path, 0);
}
