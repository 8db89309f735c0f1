/* adopt-match.c: which passed socket an app's bind() means (see adopt-match.h). Pure: the
 * preload library and the unit tests share it. */
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/un.h>

#include "adopt-match.h"

/* An IP address as 16 bytes (IPv4 as IPv4-mapped IPv6) and a port in host order. */
struct ip {
        unsigned char addr[16];
        unsigned port;
};

static bool get_ip(const struct sockaddr *sa, socklen_t len, struct ip *ret) {
        if (sa->sa_family == AF_INET && len >= (socklen_t) sizeof(struct sockaddr_in)) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) sa;
                memset(ret->addr, 0, 10);
                ret->addr[10] = ret->addr[11] = 0xff;
                memcpy(ret->addr + 12, &in->sin_addr, 4);
                ret->port = ntohs(in->sin_port);
                return true;
        }
        if (sa->sa_family == AF_INET6 && len >= (socklen_t) sizeof(struct sockaddr_in6)) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;
                memcpy(ret->addr, &in6->sin6_addr, 16);
                ret->port = ntohs(in6->sin6_port);
                return true;
        }
        return false;
}

static bool is_wildcard(const unsigned char a[16]) {
        static const unsigned char any6[16];
        static const unsigned char any4[16] = { [10] = 0xff, [11] = 0xff };
        return memcmp(a, any6, 16) == 0 || memcmp(a, any4, 16) == 0;
}

/* The name of a unix socket address: for a pathname up to its first NUL, for an abstract
 * one all of it (a leading NUL, then bytes that may contain NULs). */
static bool get_unix_name(const struct sockaddr *sa, socklen_t len, const char **ret, size_t *ret_len) {
        size_t off = offsetof(struct sockaddr_un, sun_path);
        if (sa->sa_family != AF_UNIX || (size_t) len <= off || (size_t) len > sizeof(struct sockaddr_un))
                return false;
        const char *p = ((const struct sockaddr_un *) sa)->sun_path;
        size_t n = (size_t) len - off;
        if (p[0] != 0) {
                const char *nul = memchr(p, 0, n);
                if (nul)
                        n = (size_t) (nul - p);
        } else if (n == 1)
                return false; /* a lone NUL: autobind, not a name */
        *ret = p;
        *ret_len = n;
        return true;
}

bool adopt_address_matches(const struct sockaddr *want, socklen_t want_len, const struct sockaddr *have,
                           socklen_t have_len) {
        if (!want || !have || want_len < (socklen_t) sizeof(sa_family_t) || have_len < (socklen_t) sizeof(sa_family_t))
                return false;
        struct ip w, h;
        if (get_ip(want, want_len, &w) && get_ip(have, have_len, &h))
                return w.port != 0 && w.port == h.port && (is_wildcard(w.addr) || memcmp(w.addr, h.addr, 16) == 0);
        const char *wn, *hn;
        size_t wl, hl;
        if (get_unix_name(want, want_len, &wn, &wl) && get_unix_name(have, have_len, &hn, &hl))
                return wl == hl && memcmp(wn, hn, wl) == 0;
        return false;
}
