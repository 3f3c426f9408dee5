/* log.c — line-oriented logger with sinks (stderr or journald, a rotating file, syslog), a per
 * call-site rate limiter and secret redaction. A log call must not allocate or fail: it formats
 * into fixed stack buffers, truncates if it must, and writes each line with one write(2) per sink.
 * JSON escaping is done by hand here for the same reason. The file sink's size check, rotation
 * and write happen under one mutex, so a line never straddles two files. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#ifdef VIGIL_HAVE_SYSTEMD
/* sd_journal_sendv would record this file's own line as every entry's CODE_FILE/CODE_LINE */
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>
#endif

#include "vtime.h"

#define LOG_FIELD_MAX 128 /* bytes of one field value after redaction */
#define RL_SLOTS      512 /* rate limiter keys tracked at once */
#define RL_PROBE      8   /* slots probed per key */

static _Atomic int cur_level = LOG_LVL_INFO;
static _Atomic int cur_format = LOG_FMT_TEXT;
static _Atomic unsigned long long counts[4];
static _Atomic unsigned long long dropped;

/* File sink; all guarded by file_lock. */
static pthread_mutex_t file_lock = PTHREAD_MUTEX_INITIALIZER;
static int file_fd = -1;
static char file_path[PATH_MAX];
static uint64_t file_size;      /* bytes in the current file */
static uint64_t file_max_size;  /* bytes; 0 = never rotate */
static unsigned file_max_files; /* rotated files kept */

static _Atomic bool use_syslog;
static _Atomic bool use_journald;
static bool syslog_opened; /* guarded by file_lock (configure/close only) */

/* Rate limiter: one slot per (component, format) call site, keyed by the pointers (formats are
 * literals). Guarded by rl_lock; a message whose key finds no slot is let through. */
struct rl_slot {
        const char *component;         /* key part; NULL = free slot */
        const char *fmt;               /* key part */
        int64_t window_start;          /* monotonic usec */
        unsigned count;                /* messages in this window */
        unsigned long long suppressed; /* dropped in this window */
        int level;                     /* of the suppressed messages (the highest) */
};
static pthread_mutex_t rl_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rl_slot rl[RL_SLOTS];
static _Atomic unsigned rl_burst = 20;
static _Atomic int64_t rl_interval_us = 10 * USEC_PER_SEC;

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

int log_parse_size(const char *s, uint64_t *out)
{
        /* SI prefixes are decimal and IEC prefixes binary, as everywhere else (IEC 80000-13):
         * "100MB" is 10^8 bytes, "100MiB" 100 * 2^20. A bare K/M/G/T is refused rather than
         * guessed: the same text used to mean both in two keys. */
        static const struct {
                const char *suffix;
                uint64_t mult;
        } units[] = {
            {"", 1},
            {"B", 1},
            {"kB", 1000ULL},
            {"KB", 1000ULL},
            {"MB", 1000000ULL},
            {"GB", 1000000000ULL},
            {"TB", 1000000000000ULL},
            {"KiB", 1ULL << 10},
            {"MiB", 1ULL << 20},
            {"GiB", 1ULL << 30},
            {"TiB", 1ULL << 40},
        };
        static const char *const ambiguous[] = {"k",  "K",  "m",  "M",   "g",   "G",   "t",  "T",
                                                "Ki", "Mi", "Gi", "Ti",  "kb",  "mb",  "gb", "tb",
                                                "Mb", "Gb", "Tb", "kiB", "mib", "gib", "tib"};
        unsigned long long v;
        char *end;

        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
                if (strcmp(end, units[i].suffix) != 0)
                        continue;
                if (v > UINT64_MAX / units[i].mult)
                        return -ERANGE;
                *out = (uint64_t)v * units[i].mult;
                return 0;
        }
        for (size_t i = 0; i < ARRAY_SIZE(ambiguous); i++)
                if (strcmp(end, ambiguous[i]) == 0)
                        return -EDOM;
        return -EINVAL;
}

int log_syslog_facility_from_string(const char *s)
{
        static const struct {
                const char *name;
                int fac;
        } facs[] = {
            {"daemon", LOG_DAEMON}, {"user", LOG_USER},     {"auth", LOG_AUTH},
            {"syslog", LOG_SYSLOG}, {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1},
            {"local2", LOG_LOCAL2}, {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4},
            {"local5", LOG_LOCAL5}, {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7},
        };

        for (size_t i = 0; s && i < ARRAY_SIZE(facs); i++)
                if (strcasecmp(s, facs[i].name) == 0)
                        return facs[i].fac;
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

unsigned long long log_dropped(void)
{
        return dropped;
}

bool log_journald_active(void)
{
        return use_journald;
}

void log_options_init(log_options *o)
{
        memset(o, 0, sizeof(*o));
        o->level = LOG_LVL_INFO;
        o->format = LOG_FMT_TEXT;
        o->file_max_size = 100ULL << 20;
        o->file_max_files = 5;
        o->syslog_facility = LOG_DAEMON;
        o->rate_burst = 20;
        o->rate_interval_us = 10 * USEC_PER_SEC;
        o->journald = -1;
}

/* ---- redaction ------------------------------------------------------------------------------ */

static void put(char *out, size_t cap, size_t *o, const char *s, size_t n)
{
        if (*o + 1 >= cap)
                return;
        n = MIN(n, cap - 1 - *o);
        memcpy(out + *o, s, n);
        *o += n;
}

static bool is_word(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
}

static bool is_b64url(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
}

/* Where a secret value ends: whitespace, quotes, separators. */
static size_t value_len(const char *s)
{
        size_t n = 0;

        while (s[n] && !strchr(" \t\r\n\"',&;}]", s[n]))
                n++;
        return n;
}

/* A JWT: eyJ<b64url>.<b64url>[.<b64url>]. Returns its length or 0. */
static size_t jwt_len(const char *s)
{
        size_t n = 3, dots = 0;

        if (strncmp(s, "eyJ", 3) != 0)
                return 0;
        while (is_b64url(s[n]) || s[n] == '.')
                dots += s[n++] == '.';
        return dots >= 1 ? n : 0;
}

size_t log_redact(const char *in, char *out, size_t cap)
{
        static const char *const schemes[] = {"bearer ", "basic "};
        static const char *const keys[] = {"authorization", "password", "passwd",  "jwt_secret",
                                           "client_secret", "secret",   "api_key", "apikey",
                                           "access_token",  "token"};
        size_t o = 0;

        if (!cap)
                return 0;
        for (size_t i = 0; in[i];) {
                bool boundary = i == 0 || !is_word(in[i - 1]);
                size_t n;

                if (boundary) {
                        bool hit = false;
                        for (size_t k = 0; k < ARRAY_SIZE(schemes) && !hit; k++) {
                                size_t sl = strlen(schemes[k]);
                                if (strncasecmp(in + i, schemes[k], sl) != 0)
                                        continue;
                                put(out, cap, &o, in + i, sl);
                                i += sl;
                                while (in[i] == ' ')
                                        put(out, cap, &o, in + i++, 1);
                                n = value_len(in + i);
                                if (n)
                                        put(out, cap, &o, "<redacted>", 10);
                                i += n;
                                hit = true;
                        }
                        if (hit)
                                continue;
                        if ((n = jwt_len(in + i))) {
                                put(out, cap, &o, "<redacted>", 10);
                                i += n;
                                continue;
                        }
                        for (size_t k = 0; k < ARRAY_SIZE(keys) && !hit; k++) {
                                size_t kl = strlen(keys[k]), j;
                                if (strncasecmp(in + i, keys[k], kl) != 0 || is_word(in[i + kl]))
                                        continue;
                                j = i + kl;
                                if (in[j] == '"' || in[j] == '\'')
                                        j++;
                                while (in[j] == ' ')
                                        j++;
                                if (in[j] != ':' && in[j] != '=')
                                        continue;
                                j++;
                                while (in[j] == ' ' || in[j] == '"' || in[j] == '\'')
                                        j++;
                                put(out, cap, &o, in + i, j - i);
                                i = j;
                                /* "Authorization: Bearer x": let the scheme rule keep the word. */
                                for (size_t s = 0; s < ARRAY_SIZE(schemes); s++)
                                        if (!strncasecmp(in + i, schemes[s], strlen(schemes[s])))
                                                hit = true;
                                if (hit)
                                        break;
                                n = value_len(in + i);
                                if (n)
                                        put(out, cap, &o, "<redacted>", 10);
                                i += n;
                                hit = true;
                        }
                        if (hit)
                                continue;
                }
                put(out, cap, &o, in + i, 1);
                i++;
        }
        out[o] = '\0';
        return o;
}

/* ---- formatting ----------------------------------------------------------------------------- */

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

static void raw(char *buf, size_t cap, size_t *pos, const char *s)
{
        for (; *s && *pos + 1 < cap; s++)
                buf[(*pos)++] = *s;
}

/* Text value: bare when it has no space, quote or '='; otherwise quoted and escaped. Newlines
 * never reach a text line (one message, one line). */
static void text_value(char *buf, size_t cap, size_t *pos, const char *s)
{
        if (*s && !strpbrk(s, " \t\"=\n")) {
                raw(buf, cap, pos, s);
                return;
        }
        raw(buf, cap, pos, "\"");
        json_escape(buf, cap, pos, s);
        raw(buf, cap, pos, "\"");
}

static void timestamp(char *ts, size_t len)
{
        int64_t now = time_real_us();
        time_t secs = (time_t)(now / USEC_PER_SEC);
        struct tm tm;

        gmtime_r(&secs, &tm);
        snprintf(ts, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(now % USEC_PER_SEC));
}

/* Build the line (with '\n'); returns its length. */
static size_t format_line(char *line, size_t cap, enum log_level l, const char *component,
                          const log_field *f, size_t n, const char *msg)
{
        char ts[48];
        size_t pos = 0;

        timestamp(ts, sizeof(ts));
        cap -= 2; /* room for the closing brace and newline */
        if (cur_format == LOG_FMT_JSON) {
                raw(line, cap, &pos, "{\"time\":\"");
                raw(line, cap, &pos, ts);
                raw(line, cap, &pos, "\",\"level\":\"");
                raw(line, cap, &pos, log_level_to_string(l));
                raw(line, cap, &pos, "\",\"component\":\"");
                json_escape(line, cap, &pos, component);
                raw(line, cap, &pos, "\",\"msg\":\"");
                json_escape(line, cap, &pos, msg);
                raw(line, cap, &pos, "\"");
                for (size_t i = 0; i < n; i++) {
                        raw(line, cap, &pos, ",\"");
                        json_escape(line, cap, &pos, f[i].key);
                        raw(line, cap, &pos, "\":\"");
                        json_escape(line, cap, &pos, f[i].value);
                        raw(line, cap, &pos, "\"");
                }
                line[pos++] = '}';
        } else {
                char lv[8];
                snprintf(lv, sizeof(lv), "%-5s", log_level_to_string(l));
                raw(line, cap, &pos, ts);
                raw(line, cap, &pos, " ");
                raw(line, cap, &pos, lv);
                raw(line, cap, &pos, " ");
                raw(line, cap, &pos, component);
                raw(line, cap, &pos, ": ");
                for (const char *m = msg; *m && pos + 1 < cap; m++)
                        line[pos++] = *m == '\n' ? ' ' : *m;
                for (size_t i = 0; i < n; i++) {
                        raw(line, cap, &pos, " ");
                        raw(line, cap, &pos, f[i].key);
                        raw(line, cap, &pos, "=");
                        text_value(line, cap, &pos, f[i].value);
                }
        }
        line[pos++] = '\n';
        return pos;
}

/* ---- sinks ---------------------------------------------------------------------------------- */

static bool write_all(int fd, const char *p, size_t len)
{
        while (len) {
                ssize_t w = write(fd, p, len);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        return false;
                p += w;
                len -= (size_t)w;
        }
        return true;
}

static int open_log_file(const char *path, uint64_t *size)
{
        struct stat st;
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);

        if (fd < 0)
                return -errno;
        *size = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
        return fd;
}

/* PATH.N-1 -> PATH.N ... PATH -> PATH.1, then a fresh PATH. Called with file_lock held. */
static void rotate_locked(void)
{
        char from[PATH_MAX + 16], to[PATH_MAX + 16];
        uint64_t sz = 0;
        int fd;

        if (file_max_files == 0) {
                if (ftruncate(file_fd, 0) == 0)
                        file_size = 0;
                return;
        }
        for (unsigned i = file_max_files; i > 1; i--) {
                snprintf(from, sizeof(from), "%s.%u", file_path, i - 1);
                snprintf(to, sizeof(to), "%s.%u", file_path, i);
                rename(from, to);
        }
        snprintf(to, sizeof(to), "%s.1", file_path);
        rename(file_path, to);
        fd = open_log_file(file_path, &sz);
        if (fd < 0)
                return; /* keep writing to the renamed file rather than lose lines */
        close(file_fd);
        __atomic_store_n(&file_fd, fd, __ATOMIC_RELAXED);
        file_size = sz;
}

static void file_write(const char *line, size_t len)
{
        pthread_mutex_lock(&file_lock);
        if (file_fd >= 0) {
                if (file_max_size && file_size > 0 && file_size + len > file_max_size)
                        rotate_locked();
                if (write_all(file_fd, line, len))
                        file_size += len;
                else
                        dropped++;
        }
        pthread_mutex_unlock(&file_lock);
}

static int syslog_priority(enum log_level l)
{
        switch (l) {
        case LOG_LVL_DEBUG:
                return LOG_DEBUG;
        case LOG_LVL_INFO:
                return LOG_INFO;
        case LOG_LVL_WARN:
                return LOG_WARNING;
        default:
                return LOG_ERR;
        }
}

#ifdef VIGIL_HAVE_SYSTEMD
/* MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, VIGIL_COMPONENT, then each field as KEY=value. */
static bool journal_send(enum log_level l, const char *component, const log_field *f, size_t n,
                         const char *msg)
{
        char store[LOG_LINE_MAX + LOG_MAX_FIELDS * (LOG_FIELD_MAX + 40) + 256];
        struct iovec iov[4 + LOG_MAX_FIELDS];
        size_t pos = 0, k = 0;

#define JADD(...)                                                                                  \
        do {                                                                                       \
                int _n = snprintf(store + pos, sizeof(store) - pos, __VA_ARGS__);                  \
                if (_n < 0 || (size_t)_n >= sizeof(store) - pos)                                   \
                        _n = (int)(sizeof(store) - pos - 1);                                       \
                iov[k].iov_base = store + pos;                                                     \
                iov[k++].iov_len = (size_t)_n;                                                     \
                pos += (size_t)_n + 1;                                                             \
        } while (0)
        JADD("MESSAGE=%s: %s", component, msg);
        JADD("PRIORITY=%d", syslog_priority(l));
        JADD("SYSLOG_IDENTIFIER=vigild");
        JADD("VIGIL_COMPONENT=%s", component);
        for (size_t i = 0; i < n && pos + 8 < sizeof(store); i++) {
                char key[40];
                size_t kl = 0;
                for (const char *c = f[i].key; *c && kl + 1 < sizeof(key); c++) {
                        char ch = '_';
                        if (*c >= 'a' && *c <= 'z')
                                ch = (char)(*c - 32);
                        else if ((*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9' && kl))
                                ch = *c;
                        key[kl++] = ch;
                }
                key[kl] = '\0';
                if (!kl || key[0] == '_')
                        continue; /* journald reserves leading underscores */
                JADD("%s=%s", key, f[i].value);
        }
#undef JADD
        return sd_journal_sendv(iov, (int)k) >= 0;
}
#endif

static void emit(enum log_level l, const char *component, const log_field *f, size_t n,
                 const char *msg)
{
        char line[LOG_LINE_MAX + LOG_MAX_FIELDS * (LOG_FIELD_MAX + 40) + 256];
        size_t len = format_line(line, sizeof(line), l, component, f, n, msg);
        bool ok = true;

        counts[l]++;
#ifdef VIGIL_HAVE_SYSTEMD
        if (use_journald)
                ok = journal_send(l, component, f, n, msg);
        else
#endif
                ok = write_all(STDERR_FILENO, line, len);
        /* A peek without the lock (atomic: rotation stores under it); file_write re-checks. */
        if (__atomic_load_n(&file_fd, __ATOMIC_RELAXED) >= 0)
                file_write(line, len);
        if (use_syslog && l >= LOG_LVL_WARN) {
                /* syslog adds its own time; drop ours from a text line */
                const char *body = line;
                int blen = (int)len - 1;
                if (cur_format == LOG_FMT_TEXT && (body = strchr(line, ' '))) {
                        body++;
                        blen = (int)(len - 1 - (size_t)(body - line));
                } else {
                        body = line;
                }
                syslog(syslog_priority(l), "%.*s", blen, body);
        }
        if (!ok)
                dropped++;
}

/* ---- rate limiter --------------------------------------------------------------------------- */

static size_t rl_hash(const char *component, const char *fmt)
{
        uint64_t h =
            (uint64_t)(uintptr_t)fmt * 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)component;

        h ^= h >> 29;
        return (size_t)(h % RL_SLOTS);
}

/* True when the message may be written. *summary gets how many messages of this key were
 * suppressed in its previous window (0 = none), to be reported first. */
static bool rl_admit(enum log_level l, const char *component, const char *fmt,
                     unsigned long long *summary, int *summary_level)
{
        unsigned burst = rl_burst;
        int64_t iv = rl_interval_us, now;
        size_t h;
        struct rl_slot *s = NULL;
        bool ok = true;

        *summary = 0;
        if (!burst || !fmt)
                return true;
        now = time_mono_us();
        h = rl_hash(component, fmt);
        pthread_mutex_lock(&rl_lock);
        for (size_t p = 0; p < RL_PROBE && !s; p++) {
                struct rl_slot *c = &rl[(h + p) % RL_SLOTS];
                if (c->fmt == fmt && c->component == component)
                        s = c;
        }
        for (size_t p = 0; p < RL_PROBE && !s; p++) {
                struct rl_slot *c = &rl[(h + p) % RL_SLOTS];
                if (!c->fmt || (c->suppressed == 0 && now - c->window_start >= iv)) {
                        *c = (struct rl_slot){
                            .component = component, .fmt = fmt, .window_start = now};
                        s = c;
                }
        }
        if (s) {
                if (now - s->window_start >= iv) {
                        *summary = s->suppressed;
                        *summary_level = s->level;
                        s->window_start = now;
                        s->count = 0;
                        s->suppressed = 0;
                }
                if (s->count < burst) {
                        s->count++;
                } else {
                        s->suppressed++;
                        s->level = MAX(s->level, (int)l);
                        ok = false;
                }
        }
        pthread_mutex_unlock(&rl_lock);
        return ok;
}

static void emit_summary(enum log_level l, const char *component, const char *fmt,
                         unsigned long long n)
{
        char msg[LOG_LINE_MAX];
        char iv[32];

        snprintf(msg, sizeof(msg), "suppressed %llu messages like '%s' in the last %s", n, fmt,
                 time_format_duration(rl_interval_us, iv, sizeof(iv)));
        emit(l, component, NULL, 0, msg);
}

void log_tick(void)
{
        struct {
                const char *component, *fmt;
                unsigned long long n;
                int level;
        } due[32];
        size_t nd = 0;
        int64_t now = time_mono_us(), iv = rl_interval_us;

        pthread_mutex_lock(&rl_lock);
        for (size_t i = 0; i < RL_SLOTS && nd < ARRAY_SIZE(due); i++) {
                struct rl_slot *s = &rl[i];
                if (!s->fmt || !s->suppressed || now - s->window_start < iv)
                        continue;
                due[nd].component = s->component;
                due[nd].fmt = s->fmt;
                due[nd].n = s->suppressed;
                due[nd++].level = s->level;
                s->suppressed = 0;
                s->count = 0;
                s->window_start = now;
        }
        pthread_mutex_unlock(&rl_lock);
        for (size_t i = 0; i < nd; i++)
                emit_summary((enum log_level)due[i].level, due[i].component, due[i].fmt, due[i].n);
}

/* ---- entry points --------------------------------------------------------------------------- */

void log_msgfv(enum log_level l, const char *component, const log_field *fields, size_t n,
               const char *fmt, va_list ap)
{
        char raw_msg[LOG_LINE_MAX], msg[LOG_LINE_MAX];
        char vals[LOG_MAX_FIELDS][LOG_FIELD_MAX];
        log_field f[LOG_MAX_FIELDS];
        unsigned long long sup;
        int sup_level = LOG_LVL_INFO;

        if ((unsigned)l > LOG_LVL_ERROR)
                l = LOG_LVL_ERROR;
        if ((int)l < cur_level)
                return;
        if (!component)
                component = "vigild";
        if (!rl_admit(l, component, fmt, &sup, &sup_level)) {
                dropped++;
                return;
        }
        if (sup)
                emit_summary((enum log_level)sup_level, component, fmt, sup);

        vsnprintf(raw_msg, sizeof(raw_msg), fmt ? fmt : "", ap);
        log_redact(raw_msg, msg, sizeof(msg));
        n = fields ? MIN(n, (size_t)LOG_MAX_FIELDS) : 0;
        for (size_t i = 0; i < n; i++) {
                f[i].key = fields[i].key ? fields[i].key : "field";
                log_redact(fields[i].value ? fields[i].value : "", vals[i], LOG_FIELD_MAX);
                f[i].value = vals[i];
        }
        emit(l, component, f, n, msg);
}

void log_msgf(enum log_level l, const char *component, const log_field *fields, size_t n,
              const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        log_msgfv(l, component, fields, n, fmt, ap);
        va_end(ap);
}

void log_msgv(enum log_level l, const char *component, const char *fmt, va_list ap)
{
        log_msgfv(l, component, NULL, 0, fmt, ap);
}

void log_msg(enum log_level l, const char *component, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        log_msgfv(l, component, NULL, 0, fmt, ap);
        va_end(ap);
}

/* ---- configuration -------------------------------------------------------------------------- */

static bool journal_is_stderr(void)
{
        const char *js = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

int log_configure(const log_options *o, char *err, size_t errlen)
{
        int fd = -1;
        uint64_t sz = 0;

        if (err && errlen)
                err[0] = '\0';
        if (o->file_path && o->file_path[0]) {
                if (strlen(o->file_path) >= sizeof(file_path)) {
                        if (err)
                                snprintf(err, errlen, "log file path is too long");
                        return -ENAMETOOLONG;
                }
                fd = open_log_file(o->file_path, &sz);
                if (fd < 0) {
                        if (err)
                                snprintf(err, errlen, "failed to open log file '%s': %s",
                                         o->file_path, strerror(-fd));
                        return fd;
                }
        }
        cur_level = o->level;
        cur_format = o->format;
        rl_burst = o->rate_burst;
        rl_interval_us = o->rate_interval_us > 0 ? o->rate_interval_us : 10 * USEC_PER_SEC;
#ifdef VIGIL_HAVE_SYSTEMD
        use_journald = o->journald > 0 || (o->journald < 0 && journal_is_stderr());
#else
        (void)journal_is_stderr;
        use_journald = false;
#endif

        pthread_mutex_lock(&file_lock);
        if (file_fd >= 0)
                close(file_fd);
        __atomic_store_n(&file_fd, fd, __ATOMIC_RELAXED);
        file_size = sz;
        snprintf(file_path, sizeof(file_path), "%s", fd >= 0 ? o->file_path : "");
        file_max_size = o->file_max_size;
        file_max_files = o->file_max_files;
        if (syslog_opened) {
                closelog();
                syslog_opened = false;
        }
        if (o->syslog) {
                openlog("vigild", LOG_PID | LOG_NDELAY, o->syslog_facility);
                syslog_opened = true;
        }
        use_syslog = o->syslog;
        pthread_mutex_unlock(&file_lock);
        return 0;
}

int log_reopen(void)
{
        int r = 0;

        pthread_mutex_lock(&file_lock);
        if (file_fd >= 0) {
                uint64_t sz = 0;
                int fd = open_log_file(file_path, &sz);
                if (fd >= 0) {
                        close(file_fd);
                        __atomic_store_n(&file_fd, fd, __ATOMIC_RELAXED);
                        file_size = sz;
                } else {
                        r = fd;
                }
        }
        pthread_mutex_unlock(&file_lock);
        return r;
}

void log_close(void)
{
        int64_t iv = rl_interval_us;

        /* Report what is still suppressed, whatever its window. */
        rl_interval_us = 0;
        log_tick();
        rl_interval_us = iv;
        pthread_mutex_lock(&file_lock);
        if (file_fd >= 0)
                close(file_fd);
        __atomic_store_n(&file_fd, -1, __ATOMIC_RELAXED);
        file_path[0] = '\0';
        if (syslog_opened)
                closelog();
        syslog_opened = false;
        use_syslog = false;
        pthread_mutex_unlock(&file_lock);
        use_journald = false;
}
