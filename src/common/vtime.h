/* vtime.h — clocks and durations. All times are microseconds in int64_t: "realtime" is
 * microseconds since the Unix epoch, "mono" is CLOCK_MONOTONIC microseconds. */
#ifndef VIGIL_COMMON_VTIME_H
#define VIGIL_COMMON_VTIME_H

#include <stddef.h>
#include <stdint.h>

#define USEC_PER_MSEC INT64_C(1000)
#define USEC_PER_SEC  INT64_C(1000000)

int64_t time_real_us(void);
int64_t time_mono_us(void);
/* Thread CPU time in microseconds (CLOCK_THREAD_CPUTIME_ID). */
int64_t time_thread_cpu_us(void);
/* Sleep until the monotonic deadline; returns early only on a signal. */
void time_sleep_until_mono(int64_t deadline_us);

/* Parse a duration such as "250ms", "1s", "10m", "1h", "7d" or a bare number of seconds.
 * Returns 0 and sets *ret_us, or -EINVAL (empty, unknown unit, negative) / -ERANGE (overflow). */
int time_parse_duration(const char *s, int64_t *ret_us);

/* Format a duration in the shortest exact unit ("1s", "250ms", "1h"); returns buf. */
const char *time_format_duration(int64_t us, char *buf, size_t len);

#endif
