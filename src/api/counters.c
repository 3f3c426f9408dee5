/* counters.c — the dcgm-exporter counters CSV parser (see counters.h for the rules). */
#include "counters.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"

extern const unsigned char counters_default_csv[];
extern const size_t counters_default_csv_len;

/* DCGM field names (both spellings) that dcgm-exporter's files name but Vigil does not collect.
 * Accepted so an existing counters file works; they export nothing, like an unsupported field. */
static const char *const uncollected[] = {
    "DCGM_FI_DEV_OEM_INFOROM_VER",     "DCGM_FI_DEV_INFOROM_OEM_VERSION",
    "DCGM_FI_DEV_ECC_INFOROM_VER",     "DCGM_FI_DEV_INFOROM_ECC_VERSION",
    "DCGM_FI_DEV_POWER_INFOROM_VER",   "DCGM_FI_DEV_INFOROM_POWER_VERSION",
    "DCGM_FI_DEV_NVLINK_BANDWIDTH_L0", "DCGM_FI_DEV_NVLINK_THROUGHPUT_L0",
};

static const char *const type_names[] = {
    [CT_GAUGE] = "gauge",     [CT_COUNTER] = "counter", [CT_HISTOGRAM] = "histogram",
    [CT_SUMMARY] = "summary", [CT_LABEL] = "label",
};

const char *counter_type_name(enum counter_type t)
{
        return (unsigned)t < ARRAY_SIZE(type_names) ? type_names[t] : "gauge";
}

counter_set *counters_free(counter_set *s)
{
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n; i++) {
                free(s->entries[i].name);
                free(s->entries[i].help);
        }
        free(s->entries);
        free(s);
        return NULL;
}

static int fail(char *err, size_t errlen, int r, const char *name, unsigned line, const char *fmt,
                ...) __attribute__((format(printf, 6, 7)));
static int fail(char *err, size_t errlen, int r, const char *name, unsigned line, const char *fmt,
                ...)
{
        va_list ap;
        int n;

        if (!err || !errlen)
                return r;
        n = snprintf(err, errlen, "%s:%u: ", name, line);
        if (n >= 0 && (size_t)n < errlen) {
                va_start(ap, fmt);
                vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
                va_end(ap);
        }
        return r;
}

static bool is_space(char c)
{
        return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Trim [*s, *e) in place. */
static void trim(const char **s, const char **e)
{
        while (*s < *e && is_space(**s))
                (*s)++;
        while (*e > *s && is_space((*e)[-1]))
                (*e)--;
}

static bool valid_metric_name(const char *s)
{
        if (!*s || (*s >= '0' && *s <= '9'))
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                      (*s >= '0' && *s <= '9') || *s == '_' || *s == ':'))
                        return false;
        return true;
}

/* Split one record into at most 3 columns, unquoting "…" columns ("" is a quote).
 * Returns the number of columns (4 means "more than 3"), or -1 for a broken quote. */
static int split(const char *s, const char *e, char cols[3][COUNTERS_MAX_LINE])
{
        int n = 0;

        for (;;) {
                const char *cs = s, *ce;
                size_t k = 0;

                while (s < e && is_space(*s))
                        s++;
                if (n >= 3)
                        return 4;
                if (s < e && *s == '"') {
                        s++;
                        for (;;) {
                                if (s >= e)
                                        return -1;
                                if (*s == '"') {
                                        if (s + 1 < e && s[1] == '"') {
                                                cols[n][k++] = '"';
                                                s += 2;
                                                continue;
                                        }
                                        s++;
                                        break;
                                }
                                cols[n][k++] = *s++;
                        }
                        cols[n][k] = '\0';
                        while (s < e && is_space(*s))
                                s++;
                        if (s < e && *s != ',')
                                return -1;
                } else {
                        cs = s;
                        while (s < e && *s != ',')
                                s++;
                        ce = s;
                        trim(&cs, &ce);
                        if (memchr(cs, '"', (size_t)(ce - cs)))
                                return -1;
                        memcpy(cols[n], cs, (size_t)(ce - cs));
                        cols[n][ce - cs] = '\0';
                }
                n++;
                if (s >= e)
                        return n;
                s++; /* the comma */
        }
}

static bool parse_type(const char *s, enum counter_type *t)
{
        for (size_t i = 0; i < ARRAY_SIZE(type_names); i++)
                if (!strcmp(s, type_names[i])) {
                        *t = (enum counter_type)i;
                        return true;
                }
        return false;
}

static bool is_uncollected(const char *name)
{
        for (size_t i = 0; i < ARRAY_SIZE(uncollected); i++)
                if (!strcmp(name, uncollected[i]))
                        return true;
        return false;
}

/* Resolve a name to a source. Only DCGM spellings count: not Vigil's symbols, native names or
 * numeric ids, which field_by_name also accepts. */
static int resolve(const char *name, counter_entry *ce)
{
        const field_meta *m;

        if (!strcmp(name, "DCGM_EXP_GPU_HEALTH_STATUS")) {
                ce->src = CS_HEALTH;
                return 0;
        }
        if (!strncmp(name, "DCGM_EXP_", 9))
                return -EOPNOTSUPP;
        m = field_by_name(name);
        if (m &&
            (!strcmp(name, m->dcgm_name) || (m->dcgm46_name && !strcmp(name, m->dcgm46_name)))) {
                ce->src = CS_FIELD;
                ce->field = m;
                return 0;
        }
        if (is_uncollected(name)) {
                ce->src = CS_UNCOLLECTED;
                return 0;
        }
        return -ENOENT;
}

int counters_parse(const char *text, size_t len, const char *name, counter_set **ret, char *err,
                   size_t errlen)
{
        counter_set *s;
        const char *p = text, *end = text + len;
        unsigned line = 0;
        size_t cap = 0;
        int r = 0;
        char(*c)[COUNTERS_MAX_LINE];

        if (err && errlen)
                err[0] = '\0';
        if (!name)
                name = "counters.csv";
        if (len > COUNTERS_MAX_FILE_SIZE)
                return fail(err, errlen, -E2BIG, name, 0, "file is over %d bytes",
                            COUNTERS_MAX_FILE_SIZE);
        /* heap scratch: keeps the parser reentrant */
        c = malloc(3 * COUNTERS_MAX_LINE);
        s = calloc(1, sizeof(*s));
        if (!c || !s) {
                free(c);
                free(s);
                return -ENOMEM;
        }
        while (p < end) {
                const char *ls = p, *le = memchr(p, '\n', (size_t)(end - p));
                counter_entry ce = {0};
                int n;

                if (!le)
                        le = end;
                p = le < end ? le + 1 : end;
                line++;
                trim(&ls, &le);
                if (ls == le || *ls == '#')
                        continue;
                if (memchr(ls, '\0', (size_t)(le - ls))) {
                        r = fail(err, errlen, -EINVAL, name, line, "NUL byte in record");
                        goto out;
                }
                if ((size_t)(le - ls) >= COUNTERS_MAX_LINE) {
                        r = fail(err, errlen, -E2BIG, name, line, "record is over %d bytes",
                                 COUNTERS_MAX_LINE - 1);
                        goto out;
                }
                n = split(ls, le, c);
                if (n < 0) {
                        r = fail(err, errlen, -EINVAL, name, line,
                                 "malformed CSV record: unbalanced quote");
                        goto out;
                }
                if (n != 3) {
                        r = fail(err, errlen, -EINVAL, name, line,
                                 "malformed CSV record: expected 3 fields (DCGM field, Prometheus "
                                 "metric type, help message), got %s",
                                 n > 3    ? "more"
                                 : n == 2 ? "2"
                                          : "1");
                        goto out;
                }
                if (!c[0][0] || strlen(c[0]) >= COUNTERS_MAX_NAME || !valid_metric_name(c[0])) {
                        r = fail(err, errlen, -EINVAL, name, line,
                                 "'%.*s' is not a valid field name", COUNTERS_MAX_NAME, c[0]);
                        goto out;
                }
                if (!parse_type(c[1], &ce.type)) {
                        r = fail(err, errlen, -EINVAL, name, line,
                                 "unknown metric type '%.64s' for '%s' (expected gauge, counter, "
                                 "histogram, summary or label)",
                                 c[1], c[0]);
                        goto out;
                }
                switch (resolve(c[0], &ce)) {
                case 0:
                        break;
                case -EOPNOTSUPP:
                        r = fail(err, errlen, -EINVAL, name, line,
                                 "exporter field '%s' is not supported: its windowed counts have "
                                 "no Vigil equivalent yet; use vigil_gpu_xid_errors_total and "
                                 "vigil_gpu_clock_event_active (metrics.naming: vigil)",
                                 c[0]);
                        goto out;
                default:
                        r = fail(err, errlen, -EINVAL, name, line, "unknown DCGM field '%s'", c[0]);
                        goto out;
                }
                if (ce.type != CT_LABEL && ce.src == CS_FIELD &&
                    (ce.field->kind == FK_LABEL || ce.field->type == FT_STR)) {
                        r = fail(err, errlen, -EINVAL, name, line,
                                 "'%s' is an identity field: use type 'label'", c[0]);
                        goto out;
                }
                for (size_t i = 0; i < s->n; i++)
                        if (!strcmp(s->entries[i].name, c[0])) {
                                r = fail(err, errlen, -EINVAL, name, line,
                                         "'%s' is listed twice (first at line %u)", c[0],
                                         s->entries[i].line);
                                goto out;
                        }
                if (s->n >= COUNTERS_MAX_ENTRIES) {
                        r = fail(err, errlen, -E2BIG, name, line, "more than %d records",
                                 COUNTERS_MAX_ENTRIES);
                        goto out;
                }
                if (s->n == cap) {
                        counter_entry *ne = realloc(s->entries, (cap ? cap * 2 : 16) * sizeof(*ne));
                        if (!ne) {
                                r = -ENOMEM;
                                goto out;
                        }
                        s->entries = ne;
                        cap = cap ? cap * 2 : 16;
                }
                ce.name = strdup(c[0]);
                ce.help = strdup(c[2]);
                ce.line = line;
                if (!ce.name || !ce.help) {
                        free(ce.name);
                        free(ce.help);
                        r = -ENOMEM;
                        goto out;
                }
                s->entries[s->n++] = ce;
                if (ce.type == CT_LABEL)
                        s->n_labels++;
        }
out:
        free(c);
        if (r < 0) {
                counters_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

int counters_load(const char *path, counter_set **ret, char *err, size_t errlen)
{
        FILE *f = fopen(path, "re");
        char *data;
        size_t n;
        int r;

        if (!f) {
                r = -errno;
                if (err && errlen)
                        snprintf(err, errlen, "cannot read '%s': %s", path, strerror(-r));
                return r;
        }
        data = malloc(COUNTERS_MAX_FILE_SIZE + 1);
        if (!data) {
                fclose(f);
                return -ENOMEM;
        }
        n = fread(data, 1, COUNTERS_MAX_FILE_SIZE + 1, f);
        if (ferror(f)) {
                r = -EIO;
                if (err && errlen)
                        snprintf(err, errlen, "cannot read '%s': %s", path, strerror(EIO));
        } else if (n > COUNTERS_MAX_FILE_SIZE) {
                r = -E2BIG;
                if (err && errlen)
                        snprintf(err, errlen, "cannot read '%s': file is over %d bytes", path,
                                 COUNTERS_MAX_FILE_SIZE);
        } else {
                r = counters_parse(data, n, path, ret, err, errlen);
        }
        fclose(f);
        free(data);
        return r;
}

const char *counters_default_text(size_t *len)
{
        if (len)
                *len = counters_default_csv_len;
        return (const char *)counters_default_csv;
}

int counters_default(counter_set **ret, char *err, size_t errlen)
{
        return counters_parse((const char *)counters_default_csv, counters_default_csv_len,
                              "default-counters.csv", ret, err, errlen);
}

bool counters_has_health(const counter_set *s)
{
        for (size_t i = 0; s && i < s->n; i++)
                if (s->entries[i].src == CS_HEALTH)
                        return true;
        return false;
}
