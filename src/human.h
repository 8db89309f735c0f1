/* human.h: figures in units people read at a glance ("12.3 MiB", "1min 20s", "0.52s"),
 * for liveswapctl's status. Pure; --json prints the raw numbers instead. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Bytes in binary units: "512 B", "1.5 KiB", "12.3 MiB", "2.0 GiB" (cut, not rounded up,
 * so a figure never shows more than there is). */
void human_bytes(uint64_t bytes, char *buf, size_t size);
/* A time span as systemctl shows one: "3d 4h", "2h 5min", "1min 2s", "5s". */
void human_span(uint64_t usec, char *buf, size_t size);
/* CPU time: hundredths below a minute ("0.52s", "12.30s"), else as human_span(). */
void human_cpu_time(uint64_t usec, char *buf, size_t size);
