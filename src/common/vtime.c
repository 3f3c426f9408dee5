/* vtime.c — clock helpers and the duration parser shared by config, CLI and API. */
#include "vtime.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t clock_us(clockid_t id)
{
        struct timespec ts;

        clock_gettime(id, &ts);
        return (int64_t)ts.tv_sec * USEC_PER_SEC + ts.tv_nsec / 1000;
}

int64_t time_real_us(void)
{
        return clock_us(CLOCK_REALTIME);
}

int64_t time_mono_us(void)
{
        return clock_us(CLOCK_MONOTONIC);
}

int64_t time_thread_cpu_us(void)
{
        return clock_us(CLOCK_THREAD_CPUTIME_ID);
}

void time_sleep_until_mono(int64_t deadline_us)
{
        struct timespec ts = {
            .tv_sec = deadline_us / USEC_PER_SEC,
            .tv_nsec = (deadline_us % USEC_PER_SEC) * 1000,
        };

        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
                ;
}

static const struct {
        const char *suffix;
        int64_t us;
} units[] = {
    {"us", 1},
    {"ms", USEC_PER_MSEC},
    {"s", USEC_PER_SEC},
    {"m", 60 * USEC_PER_SEC},
    {"h", 3600 * USEC_PER_SEC},
    {"d", 86400 * USEC_PER_SEC},
};

int time_parse_duration(const char *s, int64_t *ret_us)
{
        const char *p = s;
        int64_t total = 0;
        int parts = 0;

        if (!s || !*s)
                return -EINVAL;
        /* Accept compound forms such as "1h30m" as Go and Prometheus do. */
        while (*p) {
                char *end;
                unsigned long long n;
                int64_t mult = -1;

                if (*p < '0' || *p > '9')
                        return -EINVAL;
                errno = 0;
                n = strtoull(p, &end, 10);
                if (errno == ERANGE || n > (unsigned long long)INT64_MAX)
                        return -ERANGE;
                p = end;
                if (!*p) {
                        if (parts > 0)
                                return -EINVAL; /* "1h30" is ambiguous */
                        mult = USEC_PER_SEC;
                } else {
                        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
                                size_t l = strlen(units[i].suffix);
                                /* "m" must not swallow the "m" of "ms". */
                                if (strncmp(p, units[i].suffix, l) == 0 &&
                                    !(l == 1 && p[0] == 'm' && p[1] == 's')) {
                                        mult = units[i].us;
                                        p += l;
                                        break;
                                }
                        }
                        if (mult < 0)
                                return -EINVAL;
                }
                if (n > (unsigned long long)(INT64_MAX / mult) ||
                    total > INT64_MAX - (int64_t)n * mult)
                        return -ERANGE;
                total += (int64_t)n * mult;
                parts++;
        }
        *ret_us = total;
        return 0;
}

const char *time_format_duration(int64_t us, char *buf, size_t len)
{
        for (int i = (int)(sizeof(units) / sizeof(units[0])) - 1; i >= 0; i--) {
                if (us != 0 && us % units[i].us == 0) {
                        snprintf(buf, len, "%lld%s", (long long)(us / units[i].us),
                                 units[i].suffix);
                        return buf;
                }
        }
        snprintf(buf, len, "%lldus", (long long)us);
        return buf;
}
