/* log.c — line-oriented logger. JSON escaping is done by hand here because a log call must
 * not allocate or fail: it writes into a fixed stack buffer and truncates if it must. */
#include "log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "vtime.h"

#define LOG_LINE_MAX 2048

static _Atomic int cur_level = LOG_LVL_INFO;
static _Atomic int cur_format = LOG_FMT_TEXT;
static _Atomic unsigned long long counts[4];

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int log_level_from_string(const char *s)
{
        if (!s)
                return -EINVAL;
        for (int i = 0; i < 4; i++)
                if (strcasecmp(s, level_names[i]) == 0)
                        return i;
        if (strcasecmp(s, "warning") == 0)
                return LOG_LVL_WARN;
        return -EINVAL;
}

const char *log_level_to_string(enum log_level l)
{
        return (unsigned)l < 4 ? level_names[l] : "unknown";
}

int log_format_from_string(const char *s)
{
        if (s && strcasecmp(s, "text") == 0)
                return LOG_FMT_TEXT;
        if (s && strcasecmp(s, "json") == 0)
                return LOG_FMT_JSON;
        return -EINVAL;
}

void log_set_level(enum log_level l)
{
        cur_level = l;
}

void log_set_format(enum log_format f)
{
        cur_format = f;
}

enum log_level log_get_level(void)
{
        return cur_level;
}

unsigned long long log_count(enum log_level l)
{
        return (unsigned)l < 4 ? counts[l] : 0;
}

/* Append s to buf[*pos..cap) as a JSON string body; truncates silently. */
static void json_escape(char *buf, size_t cap, size_t *pos, const char *s)
{
        static const char hex[] = "0123456789abcdef";

        for (; *s && *pos + 7 < cap; s++) {
                unsigned char c = (unsigned char)*s;
                if (c == '"' || c == '\\') {
                        buf[(*pos)++] = '\\';
                        buf[(*pos)++] = (char)c;
                } else if (c == '\n') {
                        buf[(*pos)++] = '\\';
                        buf[(*pos)++] = 'n';
                } else if (c < 0x20) {
                        buf[(*pos)++] = '\\';
                        buf[(*pos)++] = 'u';
                        buf[(*pos)++] = '0';
                        buf[(*pos)++] = '0';
                        buf[(*pos)++] = hex[c >> 4];
                        buf[(*pos)++] = hex[c & 15];
                } else {
                        buf[(*pos)++] = (char)c;
                }
        }
}

void log_msgv(enum log_level l, const char *component, const char *fmt, va_list ap)
{
        char msg[LOG_LINE_MAX];
        char line[LOG_LINE_MAX + 256];
        char ts[96];
        size_t pos = 0;
        int64_t now;
        time_t secs;
        struct tm tm;
        ssize_t w _unused_;

        if ((int)l < cur_level)
                return;
        counts[l < 4 ? l : 3]++;

        vsnprintf(msg, sizeof(msg), fmt, ap);
        now = time_real_us();
        secs = (time_t)(now / USEC_PER_SEC);
        gmtime_r(&secs, &tm);
        snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(now % USEC_PER_SEC));

        if (cur_format == LOG_FMT_JSON) {
                pos = (size_t)snprintf(line, sizeof(line),
                                       "{\"time\":\"%s\",\"level\":\"%s\",\"component\":\"", ts,
                                       log_level_to_string(l));
                json_escape(line, sizeof(line) - 4, &pos, component ? component : "vigild");
                memcpy(line + pos, "\",\"msg\":\"", 9);
                pos += 9;
                json_escape(line, sizeof(line) - 4, &pos, msg);
                memcpy(line + pos, "\"}\n", 3);
                pos += 3;
        } else {
                int n = snprintf(line, sizeof(line), "%s %-5s %s: %s\n", ts, log_level_to_string(l),
                                 component ? component : "vigild", msg);
                pos = n < 0 ? 0 : MIN((size_t)n, sizeof(line) - 1);
                line[pos - 1] = '\n';
        }
        w = write(STDERR_FILENO, line, pos);
}

void log_msg(enum log_level l, const char *component, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        log_msgv(l, component, fmt, ap);
        va_end(ap);
}
