/* log.h — the daemon's logger: one line per message, text or JSON lines, on stderr.
 * Thread-safe: each line is formatted into a local buffer and written with one write(2).
 * Library code returns errors; the caller that decides logs them, once. */
#ifndef VIGIL_COMMON_LOG_H
#define VIGIL_COMMON_LOG_H

#include <stdarg.h>

#include "macros.h"

enum log_level {
        LOG_LVL_DEBUG = 0,
        LOG_LVL_INFO = 1,
        LOG_LVL_WARN = 2,
        LOG_LVL_ERROR = 3,
};

enum log_format {
        LOG_FMT_TEXT = 0,
        LOG_FMT_JSON = 1,
};

/* Parse "debug", "info", "warn"/"warning", "error". Returns the level or -EINVAL. */
int log_level_from_string(const char *s);
const char *log_level_to_string(enum log_level l);
/* Parse "text" or "json". Returns the format or -EINVAL. */
int log_format_from_string(const char *s);

void log_set_level(enum log_level l);
void log_set_format(enum log_format f);
enum log_level log_get_level(void);

/* Messages counted per level since start (for self-metrics). */
unsigned long long log_count(enum log_level l);

/* component: short subsystem name ("sampler", "http"). fmt: lowercase, action first. */
void log_msg(enum log_level l, const char *component, const char *fmt, ...) _printf_(3, 4);
void log_msgv(enum log_level l, const char *component, const char *fmt, va_list ap);

#define log_debug(c, ...) log_msg(LOG_LVL_DEBUG, c, __VA_ARGS__)
#define log_info(c, ...)  log_msg(LOG_LVL_INFO, c, __VA_ARGS__)
#define log_warn(c, ...)  log_msg(LOG_LVL_WARN, c, __VA_ARGS__)
#define log_error(c, ...) log_msg(LOG_LVL_ERROR, c, __VA_ARGS__)

#endif
