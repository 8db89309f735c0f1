/* test-sockets.c: sockets_parse_inet(), which turns --listen/-p/-a specs into the
 * address the supervisor binds: ADDR:PORT, [V6ADDR]:PORT, :PORT and a bare PORT on the
 * default address; ports 1..65535 written as plain decimal digits; no name lookup. A
 * spec it refuses must be refused whole (the supervisor then reports it and binds
 * nothing), never bound somewhere else. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "sockets.h"

static void parses_v4(const char *spec, const char *default_address, const char *address, uint16_t port) {
        struct sockaddr_storage ss;
        socklen_t len = 0;
        cr_assert_eq(sockets_parse_inet(spec, default_address, &ss, &len), 0, "'%s' should parse", spec);
        const struct sockaddr_in *in = (const struct sockaddr_in *) &ss;
        cr_assert_eq(in->sin_family, AF_INET, "'%s' is IPv4", spec);
        cr_assert_eq(len, sizeof(struct sockaddr_in));
        cr_assert_eq(ntohs(in->sin_port), port, "'%s': port %u, expected %u", spec, ntohs(in->sin_port), port);
        char text[INET_ADDRSTRLEN];
        cr_assert(inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text)));
        cr_assert_str_eq(text, address, "'%s'", spec);
}

static void parses_v6(const char *spec, const char *default_address, const char *address, uint16_t port) {
        struct sockaddr_storage ss;
        socklen_t len = 0;
        cr_assert_eq(sockets_parse_inet(spec, default_address, &ss, &len), 0, "'%s' should parse", spec);
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) &ss;
        cr_assert_eq(in6->sin6_family, AF_INET6, "'%s' is IPv6", spec);
        cr_assert_eq(len, sizeof(struct sockaddr_in6));
        cr_assert_eq(ntohs(in6->sin6_port), port, "'%s'", spec);
        char text[INET6_ADDRSTRLEN];
        cr_assert(inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text)));
        cr_assert_str_eq(text, address, "'%s'", spec);
}

static void refused(const char *spec, const char *default_address) {
        struct sockaddr_storage ss;
        socklen_t len = 0;
        cr_assert_eq(sockets_parse_inet(spec, default_address, &ss, &len), -EINVAL, "'%s' must be refused", spec);
}

Test(sockets, address_and_port) {
        parses_v4("127.0.0.1:8080", "127.0.0.1", "127.0.0.1", 8080);
        parses_v4("0.0.0.0:1", "127.0.0.1", "0.0.0.0", 1);
        parses_v4("10.1.2.3:65535", "127.0.0.1", "10.1.2.3", 65535);
        parses_v4("127.0.0.1:080", "127.0.0.1", "127.0.0.1", 80); /* leading zeros are still decimal */
}

Test(sockets, bracketed_ipv6) {
        parses_v6("[::1]:80", "127.0.0.1", "::1", 80);
        parses_v6("[::]:443", "127.0.0.1", "::", 443);
        parses_v6("[fe80::1:2]:65535", "127.0.0.1", "fe80::1:2", 65535);
}

Test(sockets, port_alone_takes_the_default_address) {
        parses_v4("8080", "127.0.0.1", "127.0.0.1", 8080);
        parses_v4(":8080", "127.0.0.1", "127.0.0.1", 8080);
        parses_v4("8080", "0.0.0.0", "0.0.0.0", 8080);
        parses_v6("8080", "::1", "::1", 8080); /* -a ::1 -p 8080 */
        parses_v6(":8080", "::", "::", 8080);
}

Test(sockets, bad_ports) {
        refused("127.0.0.1:0", "127.0.0.1");
        refused("127.0.0.1:65536", "127.0.0.1");
        refused("127.0.0.1:99999999999999999999999", "127.0.0.1");
        refused("127.0.0.1:abc", "127.0.0.1");
        refused("127.0.0.1:80abc", "127.0.0.1");
        refused("127.0.0.1:8.0", "127.0.0.1");
        refused("0", "127.0.0.1");
        refused("65536", "127.0.0.1");
        refused("[::1]:0", "127.0.0.1");
        refused("[::1]:65536", "127.0.0.1");
}

/* strtoul() alone takes leading blanks and a sign (and wraps "-1" to a huge number):
 * a port is digits only. */
Test(sockets, port_is_digits_only) {
        refused("127.0.0.1:+80", "127.0.0.1");
        refused("127.0.0.1: 80", "127.0.0.1");
        refused("127.0.0.1:-1", "127.0.0.1");
        refused("127.0.0.1:-65456", "127.0.0.1"); /* wraps to 80 modulo 2^16, not 2^64 */
        refused(" 80", "127.0.0.1");
        refused("+80", "127.0.0.1");
        refused("[::1]:+80", "127.0.0.1");
}

Test(sockets, missing_port) {
        refused("127.0.0.1:", "127.0.0.1");
        refused("127.0.0.1", "127.0.0.1"); /* read as a port, and not a number */
        refused(":", "127.0.0.1");
        refused("", "127.0.0.1");
        refused("[::1]", "127.0.0.1");
        refused("[::1]:", "127.0.0.1");
        refused("[::1]8080", "127.0.0.1"); /* not the port 080 */
}

Test(sockets, bad_address) {
        refused("localhost:80", "127.0.0.1"); /* no name lookup */
        refused("256.0.0.1:80", "127.0.0.1");
        refused("1.2.3:80", "127.0.0.1");
        refused("[::1:80", "127.0.0.1");
        refused("[]:80", "127.0.0.1");
        refused("[::g]:80", "127.0.0.1");
        refused("80", "not-an-address");
}

Test(sockets, overlong_address) {
        char spec[600];
        memset(spec, '1', sizeof(spec));
        memcpy(spec + sizeof(spec) - 4, ":80", 4);
        refused(spec, "127.0.0.1");
        spec[0] = '[';
        memcpy(spec + sizeof(spec) - 5, "]:80", 5);
        refused(spec, "127.0.0.1");
}
