/* elf-kind.h: is a program statically linked? A preload library (adopt, contract section 9)
 * cannot reach into a program without a dynamic loader; the supervisor checks before it
 * starts one, to say why the app's bind() will fail. */
#pragma once

#include <stddef.h>

enum elf_kind {
        ELF_NOT_ELF, /* a script, or something else: cannot tell */
        ELF_DYNAMIC, /* has a PT_INTERP: the dynamic loader runs, LD_PRELOAD works */
        ELF_STATIC, /* no PT_INTERP: nothing can be preloaded */
};

/* Pure: the kind of the ELF file whose first LEN bytes are BUF (64-bit or 32-bit, either
 * byte order). Program headers beyond LEN, or a malformed header, give ELF_NOT_ELF. */
enum elf_kind elf_classify(const unsigned char *buf, size_t len);

/* Reads the start of the file at PATH (relative to DIRECTORY unless absolute) and
 * classifies it; ELF_NOT_ELF when it cannot be read. */
enum elf_kind elf_classify_file(const char *directory, const char *path);
