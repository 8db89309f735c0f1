/* test-notify.c: notify_parse(), the parser of the datagrams workers send to the
 * supervisor's NOTIFY_SOCKET. It sees whatever bytes a worker writes: every message
 * either parses into flags and a NUL-terminated STATUS= or is refused with -EBADMSG,
 * and a refused message reports nothing (no half-parsed READY=1). */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "notify.h"

static int parse(const char *data, size_t len, struct notify_message *m) {
        /* Poison the result: notify_parse() must set every field itself. */
        memset(m, 0xa5, sizeof(*m));
        return notify_parse(data, len, m);
}

static int parse_str(const char *s, struct notify_message *m) {
        return parse(s, strlen(s), m);
}

Test(notify, ready) {
        struct notify_message m;
        cr_assert_eq(parse_str("READY=1", &m), 0);
        cr_assert(m.ready);
        cr_assert(!m.has_status);
        cr_assert_str_eq(m.status, "");
}

Test(notify, ready_needs_exactly_one) {
        struct notify_message m;
        const char *not_ready[] = { "READY=0", "READY=", "READY=11", "READY=1 ", "READY=yes", "ready=1", " READY=1" };
        for (size_t i = 0; i < sizeof(not_ready) / sizeof(not_ready[0]); i++) {
                cr_assert_eq(parse_str(not_ready[i], &m), 0, "%s", not_ready[i]);
                cr_assert(!m.ready, "'%s' is not READY=1", not_ready[i]);
        }
}

Test(notify, stopping_is_accepted_and_ignored) {
        /* Workers may send it (sd_notify's vocabulary); the supervisor learns of a
         * worker's end from its exit, so it carries nothing. */
        struct notify_message m;
        cr_assert_eq(parse_str("STOPPING=1", &m), 0);
        cr_assert(!m.ready && !m.has_status);
}

Test(notify, status) {
        struct notify_message m;
        cr_assert_eq(parse_str("STATUS=serving 12 connections", &m), 0);
        cr_assert(m.has_status);
        cr_assert_str_eq(m.status, "serving 12 connections");
        cr_assert(!m.ready);

        /* An empty STATUS= clears the status: it is still a status. */
        cr_assert_eq(parse_str("STATUS=", &m), 0);
        cr_assert(m.has_status);
        cr_assert_str_eq(m.status, "");

        /* Only the first '=' separates: the value may hold more. */
        cr_assert_eq(parse_str("STATUS=a=b=c", &m), 0);
        cr_assert_str_eq(m.status, "a=b=c");
}

/* Keys we do not act on are accepted and ignored, as systemd does with keys it does not
 * know: a worker written for systemd must not be refused. */
Test(notify, unknown_keys_are_ignored) {
        struct notify_message m;
        const char *ignored[] = { "MAINPID=42",       "ERRNO=2",          "X_CUSTOM=1",
                                  "WATCHDOG=0",       "WATCHDOG=yes",     "WATCHDOG_USEC=",
                                  "WATCHDOG_USEC=-1", "WATCHDOG_USEC=1s", "WATCHDOG_USEC=99999999999999999999999" };
        for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++) {
                cr_assert_eq(parse_str(ignored[i], &m), 0, "%s", ignored[i]);
                cr_assert(!m.ready && !m.has_status && !m.watchdog && !m.watchdog_trigger && !m.has_watchdog_usec, "%s",
                          ignored[i]);
        }
}

/* The watchdog's vocabulary, as sd_notify(3) has it. */
Test(notify, watchdog) {
        struct notify_message m;
        cr_assert_eq(parse_str("WATCHDOG=1", &m), 0);
        cr_assert(m.watchdog && !m.watchdog_trigger && !m.has_watchdog_usec);
        cr_assert_eq(parse_str("WATCHDOG=trigger", &m), 0);
        cr_assert(!m.watchdog && m.watchdog_trigger);
        cr_assert_eq(parse_str("WATCHDOG_USEC=2500000\nWATCHDOG=1", &m), 0);
        cr_assert(m.watchdog && m.has_watchdog_usec);
        cr_assert_eq(m.watchdog_usec, 2500000);
        cr_assert_eq(parse_str("WATCHDOG_USEC=0", &m), 0);
        cr_assert(m.has_watchdog_usec);
        cr_assert_eq(m.watchdog_usec, 0);
        cr_assert_eq(parse_str("WATCHDOG_USEC=18446744073709551615", &m), 0);
        cr_assert_eq(m.watchdog_usec, UINT64_MAX);
}

Test(notify, several_lines) {
        struct notify_message m;
        cr_assert_eq(parse_str("STATUS=up\nWATCHDOG=1\nREADY=1\n", &m), 0);
        cr_assert(m.ready);
        cr_assert_str_eq(m.status, "up");

        /* Blank lines are skipped; of two STATUS= the last one counts. */
        cr_assert_eq(parse_str("\n\nSTATUS=first\n\nSTOPPING=1\nSTATUS=second\n\n", &m), 0);
        cr_assert(!m.ready);
        cr_assert_str_eq(m.status, "second");

        /* An empty datagram is a message with nothing in it. */
        cr_assert_eq(parse("", 0, &m), 0);
        cr_assert(!m.ready && !m.has_status);
}

/* A carriage return is part of the value (systemd does not strip it either). */
Test(notify, crlf_is_not_a_line_end) {
        struct notify_message m;
        cr_assert_eq(parse_str("READY=1\r\n", &m), 0);
        cr_assert(!m.ready);
        cr_assert_eq(parse_str("STATUS=x\r\n", &m), 0);
        cr_assert_str_eq(m.status, "x\r");
}

static void refused(const char *data, size_t len, const char *what) {
        struct notify_message m;
        cr_assert_eq(parse(data, len, &m), -EBADMSG, "%s must be refused", what);
        /* Nothing from before the bad line leaks out of a refused message. */
        cr_assert(!m.ready && !m.has_status, "%s: refused but reported", what);
}

Test(notify, malformed_lines_are_refused) {
        refused("READY", 5, "a line without '='");
        refused("READY=1\nSTOPPING", 16, "a bad line after a good one");
        refused("=1", 2, "an empty key");
        refused("READY=1\n=x\n", 11, "an empty key after a good line");
        refused("just some text\n", 15, "free text");
}

Test(notify, embedded_nul_is_refused) {
        refused("READY=1\0", 8, "a trailing NUL");
        refused("STATUS=a\0b", 10, "a NUL inside a value");
        refused("\0READY=1", 8, "a leading NUL");
        refused("READY=1\nX\0=1\n", 12, "a NUL in a key");
}

Test(notify, oversize_status_is_truncated_and_terminated) {
        char msg[NOTIFY_MAX_MESSAGE];
        memcpy(msg, "STATUS=", 7);
        memset(msg + 7, 'x', sizeof(msg) - 7);
        struct notify_message m;
        cr_assert_eq(parse(msg, sizeof(msg), &m), 0);
        cr_assert(m.has_status);
        cr_assert_eq(strlen(m.status), NOTIFY_MAX_STATUS - 1);
        cr_assert_eq(m.status[0], 'x');
        cr_assert_eq(m.status[NOTIFY_MAX_STATUS - 2], 'x');

        /* A status of exactly NOTIFY_MAX_STATUS - 1 bytes fits whole. */
        char exact[7 + NOTIFY_MAX_STATUS - 1];
        memcpy(exact, "STATUS=", 7);
        memset(exact + 7, 'y', sizeof(exact) - 7);
        cr_assert_eq(parse(exact, sizeof(exact), &m), 0);
        cr_assert_eq(strlen(m.status), NOTIFY_MAX_STATUS - 1);
}

/* A long message whose READY=1 comes after a long status is still ready: the parser
 * reads the whole datagram, not a prefix of it. */
Test(notify, oversize_message_is_read_to_the_end) {
        char msg[NOTIFY_MAX_MESSAGE];
        size_t n = sizeof(msg) - strlen("\nREADY=1");
        memcpy(msg, "STATUS=", 7);
        memset(msg + 7, 'z', n - 7);
        memcpy(msg + n, "\nREADY=1", strlen("\nREADY=1"));
        struct notify_message m;
        cr_assert_eq(parse(msg, sizeof(msg), &m), 0);
        cr_assert(m.ready);
        cr_assert_eq(strlen(m.status), NOTIFY_MAX_STATUS - 1);
}

/* STATUS= is opaque bytes here: invalid UTF-8 is kept as sent (whoever shows it on the
 * bus or a terminal escapes it), and nothing after it is lost. */
Test(notify, non_utf8_status_is_kept_as_bytes) {
        struct notify_message m;
        const char msg[] = "STATUS=caf\xe9 \xff\xfe \xc3\n"
                           "READY=1";
        cr_assert_eq(parse(msg, sizeof(msg) - 1, &m), 0);
        cr_assert(m.has_status && m.ready);
        cr_assert_str_eq(m.status, "caf\xe9 \xff\xfe \xc3");
}
