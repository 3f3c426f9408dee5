/* counters.h — dcgm-exporter's counters CSV ("DCGM FIELD, Prometheus metric type, help message"):
 * which DCGM fields to export, under which name, type and help. It is a parser and a list; the
 * rendering is expo.c's. Parsing follows dcgm-exporter (internal/pkg/counters): '#' lines are
 * comments, blank lines are skipped, each record has exactly 3 comma-separated columns (trimmed;
 * a column may be double-quoted to contain commas), the type is gauge, counter, histogram,
 * summary or label. Names resolve through field_by_name, so both the pre-4.6 and the 4.6 DCGM
 * spellings work; the entry keeps the spelling the file used. Unlike dcgm-exporter, DCP fields
 * (1001..1010) are accepted, and so are dcgm-exporter 1.x names (dcgm_sm_clock …, mapped to field
 * ids as go-dcgm maps them). A record naming a DCGM field Vigil does not collect (any other
 * DCGM_FI_* name) or one of dcgm-exporter's own DCGM_EXP_* windowed counts is skipped and listed
 * in skipped, for the daemon to log by name; a name that is not a DCGM name is refused.
 * Not thread-safe while parsing; a parsed set is read-only and may be shared. */
#ifndef VIGIL_API_COUNTERS_H
#define VIGIL_API_COUNTERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "fields/fields.h"

#define COUNTERS_MAX_FILE_SIZE (1024 * 1024) /* bytes */
#define COUNTERS_MAX_ENTRIES   512           /* records */
#define COUNTERS_MAX_LINE      4096          /* bytes of one record */
#define COUNTERS_MAX_NAME      128           /* bytes of a field name */

enum counter_type {
        CT_GAUGE = 0,
        CT_COUNTER = 1,
        CT_HISTOGRAM = 2, /* printed untyped: one value is not a histogram */
        CT_SUMMARY = 3,   /* printed untyped */
        CT_LABEL = 4,     /* the value becomes a label on every family */
};

enum counter_source {
        CS_FIELD = 0,       /* a catalog field (field != NULL) */
        CS_UNCOLLECTED = 1, /* a DCGM field Vigil does not collect: exports nothing */
        CS_HEALTH = 2,      /* DCGM_EXP_GPU_HEALTH_STATUS, rendered by the health sampler */
};

typedef struct counter_entry {
        char *name;              /* as the file spells it; the exported family name */
        char *help;              /* HELP text, verbatim */
        enum counter_type type;  /* column 2 */
        enum counter_source src; /* where the value comes from */
        const field_meta *field; /* CS_FIELD: the catalog entry; else NULL */
        unsigned line;           /* 1-based line in the file */
        bool legacy;             /* a dcgm-exporter 1.x name (dcgm_gpu_temp) */
} counter_entry;

/* A record read but not exported. */
typedef struct counter_skip {
        char *name;      /* as the file spells it */
        unsigned line;   /* 1-based */
        const char *why; /* static text: why Vigil cannot read it */
} counter_skip;

typedef struct counter_set {
        counter_entry *entries; /* file order */
        size_t n;               /* entries */
        size_t n_labels;        /* entries of type label */
        size_t n_families;      /* entries exported as families (n - n_labels) */
        bool legacy;            /* some entry uses a 1.x name: the UUID label is "uuid" */
        counter_skip *skipped;  /* records skipped, file order */
        size_t n_skipped;       /* entries in skipped */
        char *path;             /* counters_load: the file read; else NULL */
        uint64_t file_id;       /* counters_load: counters_file_id of what was read */
} counter_set;

/* Parse text[0..len) (need not be NUL-terminated); name is used in messages. Returns 0 and *ret
 * (caller owns it: counters_free), or -EINVAL (bad input; err = "NAME:LINE: reason"), -E2BIG
 * (over a limit), -ENOMEM. err may be NULL. */
int counters_parse(const char *text, size_t len, const char *name, counter_set **ret, char *err,
                   size_t errlen);
/* Read the file at path and parse it; read failures return -errno with
 * "cannot read 'PATH': reason" in err. */
int counters_load(const char *path, counter_set **ret, char *err, size_t errlen);
/* dcgm-exporter's default set (deploy/dcgm/default-counters.csv, built in). */
int counters_default(counter_set **ret, char *err, size_t errlen);
/* The built-in default file's text. */
const char *counters_default_text(size_t *len);
/* NULL ok; returns NULL. */
counter_set *counters_free(counter_set *s);
const char *counter_type_name(enum counter_type t);
/* A fingerprint of a file's identity and contents' stat (inode, size, mtime): changes when the
 * file is replaced or rewritten. */
uint64_t counters_file_id(const struct stat *st);
/* Log what was read from name: each skipped row by name, line and reason (warning), and how
 * many families and labels the file lists. What is exported after the first sweep is logged by
 * the exposition ("exporting N dcgm-exporter families"). */
void counters_log(const counter_set *s, const char *name);
/* True when the set lists DCGM_EXP_GPU_HEALTH_STATUS (dcgm-exporter's opt-in health family). */
bool counters_has_health(const counter_set *s);

#endif
