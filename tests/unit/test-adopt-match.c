/* test-adopt-match.c: which bind() addresses adopt a passed socket (adopt-match.c), and
 * the static-binary check (elf-kind.c). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <elf.h>
#include <string.h>
#include <sys/un.h>

#include "adopt/adopt-match.h"
#include "elf-kind.h"

static struct sockaddr_in v4(const char *addr, unsigned port) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port) };
        cr_assert_eq(inet_pton(AF_INET, addr, &a.sin_addr), 1);
        return a;
}

static struct sockaddr_in6 v6(const char *addr, unsigned port) {
        struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t) port) };
        cr_assert_eq(inet_pton(AF_INET6, addr, &a.sin6_addr), 1);
        return a;
}

#define MATCH(w, h) adopt_address_matches((struct sockaddr *) &(w), sizeof(w), (struct sockaddr *) &(h), sizeof(h))

Test(adopt_match, tcp_same_port_same_or_wildcard) {
        struct sockaddr_in have = v4("127.0.0.1", 3000);
        struct sockaddr_in same = v4("127.0.0.1", 3000), any = v4("0.0.0.0", 3000), other = v4("127.0.0.2", 3000),
                           port = v4("127.0.0.1", 3001), zero = v4("0.0.0.0", 0);
        cr_assert(MATCH(same, have));
        cr_assert(MATCH(any, have));
        cr_assert_not(MATCH(other, have));
        cr_assert_not(MATCH(port, have));
        cr_assert_not(MATCH(zero, have));
}

Test(adopt_match, ipv6_app_ipv4_socket_and_back) {
        struct sockaddr_in have4 = v4("127.0.0.1", 3000);
        struct sockaddr_in6 any6 = v6("::", 3000), mapped = v6("::ffff:127.0.0.1", 3000), lo6 = v6("::1", 3000),
                            any6_other = v6("::", 3001);
        cr_assert(MATCH(any6, have4)); /* Node binds :: by default */
        cr_assert(MATCH(mapped, have4));
        cr_assert_not(MATCH(lo6, have4));
        cr_assert_not(MATCH(any6_other, have4));
        struct sockaddr_in6 have6 = v6("::1", 8080);
        struct sockaddr_in any4 = v4("0.0.0.0", 8080), lo4 = v4("127.0.0.1", 8080);
        struct sockaddr_in6 lo6b = v6("::1", 8080);
        cr_assert(MATCH(any4, have6));
        cr_assert_not(MATCH(lo4, have6));
        cr_assert(MATCH(lo6b, have6));
}

static socklen_t un(struct sockaddr_un *a, const char *path, size_t len) {
        memset(a, 0, sizeof(*a));
        a->sun_family = AF_UNIX;
        memcpy(a->sun_path, path, len);
        return (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len);
}

Test(adopt_match, unix_paths) {
        struct sockaddr_un have, want;
        socklen_t hl = un(&have, "/run/app.sock", 14), wl = un(&want, "/run/app.sock", 13); /* no NUL: also fine */
        cr_assert(adopt_address_matches((struct sockaddr *) &want, wl, (struct sockaddr *) &have, hl));
        wl = un(&want, "/run/app.sock2", 15);
        cr_assert_not(adopt_address_matches((struct sockaddr *) &want, wl, (struct sockaddr *) &have, hl));
        hl = un(&have, "\0abc", 4);
        wl = un(&want, "\0abc", 4);
        cr_assert(adopt_address_matches((struct sockaddr *) &want, wl, (struct sockaddr *) &have, hl));
        wl = un(&want, "\0abd", 4);
        cr_assert_not(adopt_address_matches((struct sockaddr *) &want, wl, (struct sockaddr *) &have, hl));
        wl = un(&want, "", 1); /* autobind */
        hl = un(&have, "", 1);
        cr_assert_not(adopt_address_matches((struct sockaddr *) &want, wl, (struct sockaddr *) &have, hl));
}

Test(adopt_match, mixed_and_malformed) {
        struct sockaddr_un u;
        socklen_t ul = un(&u, "/x", 3);
        struct sockaddr_in in = v4("127.0.0.1", 80);
        cr_assert_not(adopt_address_matches((struct sockaddr *) &u, ul, (struct sockaddr *) &in, sizeof(in)));
        cr_assert_not(adopt_address_matches((struct sockaddr *) &in, sizeof(in), (struct sockaddr *) &u, ul));
        cr_assert_not(adopt_address_matches((struct sockaddr *) &in, 4, (struct sockaddr *) &in, sizeof(in)));
        cr_assert_not(adopt_address_matches(NULL, 0, (struct sockaddr *) &in, sizeof(in)));
}

static size_t make_elf(unsigned char *buf, bool interp) {
        memset(buf, 0, 512);
        Elf64_Ehdr *h = (Elf64_Ehdr *) buf;
        memcpy(h->e_ident, ELFMAG, SELFMAG);
        h->e_ident[EI_CLASS] = ELFCLASS64;
        h->e_ident[EI_DATA] = ELFDATA2LSB;
        h->e_phoff = sizeof(Elf64_Ehdr);
        h->e_phentsize = sizeof(Elf64_Phdr);
        h->e_phnum = 3;
        Elf64_Phdr *p = (Elf64_Phdr *) (buf + sizeof(Elf64_Ehdr));
        p[0].p_type = PT_PHDR;
        p[1].p_type = interp ? PT_INTERP : PT_NOTE;
        p[2].p_type = PT_LOAD;
        return sizeof(Elf64_Ehdr) + 3 * sizeof(Elf64_Phdr);
}

Test(elf_kind, static_dynamic_and_not_elf) {
        unsigned char buf[512];
        size_t n = make_elf(buf, true);
        cr_assert_eq(elf_classify(buf, n), ELF_DYNAMIC);
        n = make_elf(buf, false);
        cr_assert_eq(elf_classify(buf, n), ELF_STATIC);
        cr_assert_eq(elf_classify(buf, n - 1), ELF_NOT_ELF); /* program headers cut off */
        cr_assert_eq(elf_classify((const unsigned char *) "#!/bin/sh\n", 10), ELF_NOT_ELF);
        ((Elf64_Ehdr *) buf)->e_phoff = 1u << 30;
        cr_assert_eq(elf_classify(buf, n), ELF_NOT_ELF);
}

Test(elf_kind, real_files) {
        cr_assert_eq(elf_classify_file(NULL, "/bin/sh"), ELF_DYNAMIC);
        cr_assert_eq(elf_classify_file(NULL, "sh"), ELF_DYNAMIC); /* through PATH */
        cr_assert_eq(elf_classify_file(NULL, "/nonexistent/x"), ELF_NOT_ELF);
}
