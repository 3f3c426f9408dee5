/* log.h — the daemon's logger: one line per message, text or JSON lines, with structured fields
 * (gpu, uuid, incident, request id, ...). Sinks: stderr (or journald with fields when stderr is
 * the journal's stream), a file with size-based rotation, and syslog for warnings and above.
 * A per call-site rate limiter ("suppressed N messages") keeps a fault storm off the disk, and
 * every message and field value passes through log_redact() so tokens and passwords never land
 * in a log. docs/internals/logging.md says how the pieces fit.
 *
 * Thread-safe: each line is formatted into a stack buffer (no allocation) and written with one
 * write(2) per sink; the file sink rotates under a lock, so no line is lost or split.
 * Library code returns errors; the caller that decides logs them, once. */
#ifndef VIGIL_COMMON_LOG_H
#define VIGIL_COMMON_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

#define LOG_LINE_MAX   2048 /* bytes of one formatted message; longer ones are truncated */
#define LOG_MAX_FIELDS 16   /* structured fields per message; more are ignored */

/* One structured field. key: lowercase identifier ("gpu", "uuid", "incident", "request_id");
 * in journald it becomes the upper-cased field name (GPU, UUID, ...). value: any text. */
typedef struct log_field {
        const char *key;
        const char *value;
} log_field;

/* Parse "debug", "info", "warn"/"warning", "error". Returns the level or -EINVAL. */
int log_level_from_string(const char *s);
const char *log_level_to_string(enum log_level l);
/* Parse "text" or "json". Returns the format or -EINVAL. */
int log_format_from_string(const char *s);
/* Vigil's one size parser (every size key of the configuration uses it): "1048576" or "NB" bytes;
 * kB/KB, MB, GB, TB are powers of 1000; KiB, MiB, GiB, TiB powers of 1024. Returns 0, -EDOM for
 * a suffix that could mean either ("100M", "1g", "5Mi": refused, not guessed), -ERANGE on
 * overflow or -EINVAL; *out untouched on failure. */
int log_parse_size(const char *s, uint64_t *out);
/* Syslog facility by name ("daemon", "user", "local0".."local7", "auth", "syslog"): the LOG_*
 * value, or -EINVAL. */
int log_syslog_facility_from_string(const char *s);

void log_set_level(enum log_level l);
void log_set_format(enum log_format f);
enum log_level log_get_level(void);

typedef struct log_options {
        enum log_level level;     /* minimum level logged */
        enum log_format format;   /* text or JSON lines, for every sink */
        const char *file_path;    /* NULL or "" = no file sink */
        uint64_t file_max_size;   /* bytes; rotate before a line would pass it (0 = never) */
        unsigned file_max_files;  /* rotated files kept: PATH.1 .. PATH.N (0 = truncate) */
        bool syslog;              /* warnings and above to syslog(3) */
        int syslog_facility;      /* LOG_DAEMON, LOG_LOCAL0, ... */
        unsigned rate_burst;      /* messages per key per interval; 0 = no rate limit */
        int64_t rate_interval_us; /* usec; the rate limiter's window */
        int journald;             /* -1 auto ($JOURNAL_STREAM is stderr), 0 off, 1 force */
} log_options;

/* Defaults: info, text, stderr only, no syslog, 20 messages per 10 s per key, journald auto. */
void log_options_init(log_options *o);
/* Apply o (any thread; also on reload). Opens the file (creating it 0640) before dropping the old
 * one, so a bad path keeps the running sinks. Returns 0 or -errno with "reason" in err. */
int log_configure(const log_options *o, char *err, size_t errlen);
/* Reopen the log file at its path (SIGHUP, after logrotate moved it). 0, -errno, or 0 without a
 * file sink. */
int log_reopen(void);
/* Emit pending "suppressed N messages" lines whose window has ended. Call about once a second. */
void log_tick(void);
/* Flush suppression summaries, close the file and syslog. Logging afterwards goes to stderr. */
void log_close(void);

/* Messages written per level since start (after level filter and rate limit; self-metrics). */
unsigned long long log_count(enum log_level l);
/* Messages dropped: suppressed by the rate limiter or failed to write. */
unsigned long long log_dropped(void);
/* True while lines go to journald instead of stderr. */
bool log_journald_active(void);

/* Copy in to out (cap bytes, always NUL-terminated) with secrets replaced by "<redacted>":
 * "Bearer X", "Basic X", JWTs (eyJ….….…), and values after authorization, password, passwd,
 * secret, token, api_key/apikey, jwt_secret keys (':' or '='). Returns the length written. */
size_t log_redact(const char *in, char *out, size_t cap);

/* component: short subsystem name ("sampler", "http"). fmt: lowercase, action first.
 * The pair (component, fmt) is the rate limiter's key: pass a literal format. */
void log_msg(enum log_level l, const char *component, const char *fmt, ...) _printf_(3, 4);
void log_msgv(enum log_level l, const char *component, const char *fmt, va_list ap);
/* The same with structured fields (fields may be NULL when n is 0). */
void log_msgf(enum log_level l, const char *component, const log_field *fields, size_t n,
              const char *fmt, ...) _printf_(5, 6);
void log_msgfv(enum log_level l, const char *component, const log_field *fields, size_t n,
               const char *fmt, va_list ap);

#define log_debug(c, ...) log_msg(LOG_LVL_DEBUG, c, __VA_ARGS__)
#define log_info(c, ...)  log_msg(LOG_LVL_INFO, c, __VA_ARGS__)
#define log_warn(c, ...)  log_msg(LOG_LVL_WARN, c, __VA_ARGS__)
#define log_error(c, ...) log_msg(LOG_LVL_ERROR, c, __VA_ARGS__)

/* log_fields(LOG_LVL_WARN, "health", ((log_field[]){{"gpu", "3"}, {"uuid", u}}), "…", …) */
#define log_fields(l, c, arr, ...) log_msgf(l, c, arr, ARRAY_SIZE(arr), __VA_ARGS__)

#endif
