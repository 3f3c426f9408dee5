/* counters.h — dcgm-exporter's counters CSV ("DCGM FIELD, Prometheus metric type, help message"):
 * which DCGM fields to export, under which name, type and help. It is a parser and a list; the
 * rendering is expo.c's. Parsing follows dcgm-exporter (internal/pkg/counters): '#' lines are
 * comments, blank lines are skipped, each record has exactly 3 comma-separated columns (trimmed;
 * a column may be double-quoted to contain commas), the type is gauge, counter, histogram,
 * summary or label. Names resolve through field_by_name, so both the pre-4.6 and the 4.6 DCGM
 * spellings work; the entry keeps the spelling the file used. Unlike dcgm-exporter, DCP fields
 * (1001..1010) are accepted, and names DCGM knows but Vigil does not collect are accepted and
 * export nothing (like an unsupported field). Unknown names are refused, and so are dcgm-exporter's
 * own DCGM_EXP_* fields (windowed counts Vigil does not keep).
 * Not thread-safe while parsing; a parsed set is read-only and may be shared. */
#ifndef VIGIL_API_COUNTERS_H
#define VIGIL_API_COUNTERS_H

#include <stdbool.h>
#include <stddef.h>

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
} counter_entry;

typedef struct counter_set {
        counter_entry *entries; /* file order */
        size_t n;               /* entries */
        size_t n_labels;        /* entries of type label */
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
/* True when the set lists DCGM_EXP_GPU_HEALTH_STATUS (dcgm-exporter's opt-in health family). */
bool counters_has_health(const counter_set *s);

#endif
