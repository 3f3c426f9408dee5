/* counters.c — the dcgm-exporter counters CSV parser (see counters.h for the rules). */
#include "counters.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
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

/* dcgm-exporter 1.x names (etc/1.x-compatibility-metrics.csv) and the DCGM field ids go-dcgm
 * maps them to (its legacy field table). The family keeps the 1.x name. */
static const struct {
        const char *name; /* 1.x metric name */
        unsigned id;      /* DCGM field id */
} legacy[] = {
    {"dcgm_board_limit_violation", 243},
    {"dcgm_dec_utilization", 207},
    {"dcgm_ecc_dbe_aggregate_total", 313},
    {"dcgm_ecc_dbe_volatile_total", 311},
    {"dcgm_ecc_sbe_aggregate_total", 312},
    {"dcgm_ecc_sbe_volatile_total", 310},
    {"dcgm_enc_utilization", 206},
    {"dcgm_fb_free", 251},
    {"dcgm_fb_used", 252},
    {"dcgm_fi_prof_dram_active", 1005},
    {"dcgm_fi_prof_gr_engine_active", 1001},
    {"dcgm_fi_prof_pcie_rx_bytes", 1010},
    {"dcgm_fi_prof_pcie_tx_bytes", 1009},
    {"dcgm_fi_prof_pipe_tensor_active", 1004},
    {"dcgm_fi_prof_sm_active", 1002},
    {"dcgm_fi_prof_sm_occupancy", 1003},
    {"dcgm_gpu_temp", 150},
    {"dcgm_gpu_utilization", 203},
    {"dcgm_low_util_violation", 244},
    {"dcgm_mem_copy_utilization", 204},
    {"dcgm_memory_clock", 101},
    {"dcgm_memory_temp", 140},
    {"dcgm_nvlink_bandwidth_total", 449},
    {"dcgm_nvlink_data_crc_error_count_total", 419},
    {"dcgm_nvlink_flit_crc_error_count_total", 409},
    {"dcgm_nvlink_recovery_error_count_total", 439},
    {"dcgm_nvlink_replay_error_count_total", 429},
    {"dcgm_pcie_replay_counter", 202},
    {"dcgm_pcie_rx_throughput", 201},
    {"dcgm_pcie_tx_throughput", 200},
    {"dcgm_power_usage", 155},
    {"dcgm_power_violation", 240},
    {"dcgm_reliability_violation", 245},
    {"dcgm_retired_pages_dbe", 391},
    {"dcgm_retired_pages_pending", 392},
    {"dcgm_retired_pages_sbe", 390},
    {"dcgm_sm_clock", 100},
    {"dcgm_sync_boost_violation", 242},
    {"dcgm_thermal_violation", 241},
    {"dcgm_total_energy_consumption", 156},
    {"dcgm_xid_errors", 230},
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
        for (size_t i = 0; i < s->n_skipped; i++)
                free(s->skipped[i].name);
        free(s->skipped);
        free(s->entries);
        free(s->path);
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
 * numeric ids, which field_by_name also accepts. -EOPNOTSUPP: a dcgm-exporter name Vigil does
 * not read (*why says which kind); -ENOENT: not a DCGM name at all. */
static int resolve(const char *name, counter_entry *ce, const char **why)
{
        const field_meta *m;

        for (size_t i = 0; i < ARRAY_SIZE(legacy); i++)
                if (!strcmp(name, legacy[i].name)) {
                        ce->legacy = true;
                        m = field_by_id(legacy[i].id);
                        if (!m) {
                                *why = "a DCGM field Vigil does not collect";
                                return -EOPNOTSUPP;
                        }
                        ce->src = CS_FIELD;
                        ce->field = m;
                        return 0;
                }
        if (!strcmp(name, "DCGM_EXP_GPU_HEALTH_STATUS")) {
                ce->src = CS_HEALTH;
                return 0;
        }
        if (!strncmp(name, "DCGM_EXP_", 9)) {
                *why = "a windowed exporter count Vigil does not keep (see "
                       "vigil_gpu_xid_errors_total, vigil_gpu_clock_event_active)";
                return -EOPNOTSUPP;
        }
        m = field_by_name(name);
        if (m &&
            (!strcmp(name, m->dcgm_name) || (m->dcgm46_name && !strcmp(name, m->dcgm46_name)))) {
                ce->src = CS_FIELD;
                ce->field = m;
                return 0;
        }
        if (is_uncollected(name) || !strncmp(name, "DCGM_FI_", 8)) {
                *why = "a DCGM field Vigil does not collect";
                return -EOPNOTSUPP;
        }
        return -ENOENT;
}

/* Remember a record that is skipped: the daemon logs each by name at start. */
static int skip(counter_set *s, const char *name, unsigned line, const char *why)
{
        counter_skip *ns;

        if (s->n_skipped >= COUNTERS_MAX_ENTRIES)
                return -E2BIG;
        ns = realloc(s->skipped, (s->n_skipped + 1) * sizeof(*ns));
        if (!ns)
                return -ENOMEM;
        s->skipped = ns;
        ns[s->n_skipped].name = strdup(name);
        if (!ns[s->n_skipped].name)
                return -ENOMEM;
        ns[s->n_skipped].line = line;
        ns[s->n_skipped].why = why;
        s->n_skipped++;
        return 0;
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
                const char *why = "";
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
                switch (resolve(c[0], &ce, &why)) {
                case 0:
                        break;
                case -EOPNOTSUPP:
                        r = skip(s, c[0], line, why);
                        if (r < 0)
                                goto out;
                        continue;
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
                {
                        /* dcgm-exporter's own 1.x file lists two PCIe counters twice: the first
                         * row wins, a repeat is skipped (two families of one name would not
                         * parse) */
                        bool dup = false;
                        for (size_t i = 0; i < s->n && !dup; i++)
                                dup = !strcmp(s->entries[i].name, c[0]);
                        if (dup) {
                                r = skip(s, c[0], line, "listed before; the first row counts");
                                if (r < 0)
                                        goto out;
                                continue;
                        }
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
                else
                        s->n_families++;
                if (ce.legacy)
                        s->legacy = true;
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
                struct stat st;
                r = counters_parse(data, n, path, ret, err, errlen);
                if (r >= 0 && fstat(fileno(f), &st) == 0) {
                        (*ret)->path = strdup(path);
                        (*ret)->file_id = counters_file_id(&st);
                }
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

uint64_t counters_file_id(const struct stat *st)
{
        /* inode, size and mtime (ns) folded: an editor's rename, an in-place write and a
         * ConfigMap symlink swap all change it */
        uint64_t h = 1469598103934665603ull;
        const uint64_t parts[] = {(uint64_t)st->st_ino, (uint64_t)st->st_size,
                                  (uint64_t)st->st_mtim.tv_sec, (uint64_t)st->st_mtim.tv_nsec,
                                  (uint64_t)st->st_dev};
        for (size_t i = 0; i < ARRAY_SIZE(parts); i++)
                h = (h ^ parts[i]) * 1099511628211ull;
        return h;
}

void counters_log(const counter_set *s, const char *name)
{
        if (!s)
                return;
        for (size_t i = 0; i < s->n_skipped; i++)
                log_warn("vigild", "skipping '%s' (%s:%u): %s", s->skipped[i].name, name,
                         s->skipped[i].line, s->skipped[i].why);
        log_info("vigild", "counters file '%s': %zu families and %zu labels read, %zu rows skipped",
                 name, s->n_families, s->n_labels, s->n_skipped);
}

bool counters_has_health(const counter_set *s)
{
        for (size_t i = 0; s && i < s->n; i++)
                if (s->entries[i].src == CS_HEALTH)
                        return true;
        return false;
}
