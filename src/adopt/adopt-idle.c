/* adopt-idle.c: when the drain closes an idle connection (see adopt-idle.h). */
#include "adopt-idle.h"

bool adopt_conn_idle(const struct adopt_conn_times *t, uint64_t now, uint64_t start, uint64_t grace,
                     uint64_t new_grace) {
        if (t->in > t->out)
                return false; /* a request read and not yet answered */
        uint64_t since = start;
        if (!t->in && !t->out) {
                if (t->accepted > since)
                        since = t->accepted;
                grace = new_grace;
        } else if (t->out > since)
                since = t->out;
        /* Unsigned: NOW - SINCE would wrap to "idle for ever" for a write made after NOW
         * was read, and the drain would shut down a response half written. */
        return now >= since && now - since >= grace;
}
