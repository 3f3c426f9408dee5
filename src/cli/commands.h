/* commands.h — the CLI's command table entries and the pure helpers the commands share (and that
 * tests call directly). A command is `int fn(int argc, char **argv, cli_ctx *ctx)`: argv[0] is the
 * command name; it returns an exit status (>= 0) or a negative errno that main() maps through
 * src/common/errmap.h. A command prints its own messages (via cli_error) before returning. */
#ifndef VIGIL_CLI_COMMANDS_H
#define VIGIL_CLI_COMMANDS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "client.h"

typedef struct cli_command {
        const char *name;    /* as typed: "discovery" */
        const char *summary; /* one line for `vigil --help` */
        int (*fn)(int argc, char **argv, cli_ctx *ctx);
} cli_command;

int cmd_discovery(int argc, char **argv, cli_ctx *ctx);
int cmd_dmon(int argc, char **argv, cli_ctx *ctx);
int cmd_status(int argc, char **argv, cli_ctx *ctx);
int cmd_fields(int argc, char **argv, cli_ctx *ctx);
int cmd_health(int argc, char **argv, cli_ctx *ctx);    /* cmd_health.c */
int cmd_incidents(int argc, char **argv, cli_ctx *ctx); /* cmd_incidents.c */
int cmd_token(int argc, char **argv, cli_ctx *ctx);     /* cmd_token.c */
int cmd_audit(int argc, char **argv, cli_ctx *ctx);     /* cmd_audit.c */
int cmd_backup(int argc, char **argv, cli_ctx *ctx);
int cmd_keys(int argc, char **argv, cli_ctx *ctx);
int cmd_diag(int argc, char **argv, cli_ctx *ctx);   /* cmd_diag.c */
int cmd_nvlink(int argc, char **argv, cli_ctx *ctx); /* cmd_nvlink.c */
int cmd_topo(int argc, char **argv, cli_ctx *ctx);   /* cmd_topo.c */
int cmd_ps(int argc, char **argv, cli_ctx *ctx);     /* cmd_ps.c */
int cmd_config(int argc, char **argv, cli_ctx *ctx); /* cmd_config.c */
int cmd_job(int argc, char **argv, cli_ctx *ctx);    /* cmd_job.c */

/* ---- shared helpers (cmd_util.c) ---- */

/* A read-only command that GETs one endpoint and prints it as a table, or raw with --json. */
typedef struct cli_view {
        const char *usage;                               /* one usage line */
        void (*help)(cli_ctx *ctx);                      /* --help text */
        const char *path;                                /* API path to GET */
        int (*render)(cli_ctx *ctx, const json_t *root); /* the readable form */
        const char *ignored_flags;                       /* short flags accepted as no-ops ("l") */
} cli_view;
/* Parse -j/--json and -h/--help (plus v->ignored_flags), GET v->path, print. */
int cli_run_view(int argc, char **argv, cli_ctx *ctx, const cli_view *v);

/* Parse a decimal integer in [min, max] with nothing after it. Returns 0 or -EINVAL / -ERANGE;
 * *ret untouched on failure. */
int cli_parse_long(const char *s, long min, long max, long *ret);
/* "3d 4h", "1h 2m", "5m 3s", "12.5s" */
const char *cli_format_uptime(double seconds, char *out, size_t len);
/* Print a command's usage line to ctx->err and return -EINVAL (exit 2). */
int cli_usage_error(cli_ctx *ctx, const char *usage, const char *fmt, ...) _printf_(3, 4);
/* Write b to ctx->out. */
void cli_write_buf(cli_ctx *ctx, const buf *b);

/* ---- dmon (cmd_dmon.c) ---- */

#define DMON_MAX_FIELDS   64
#define DMON_MAX_GPUS     256
#define DMON_HEADER_EVERY 20 /* data rows between repeated headers, like dcgmi */
#define DMON_ENTITY_WIDTH 10 /* "GPU 0" column */
#define DMON_MIN_COL      8  /* field column width */

/* dcgmi-like short column tag for a field symbol (GPU_TEMP → TMPTR); others get the first five
 * characters of the symbol. Returns out. */
const char *dmon_field_tag(const char *sym, char *out, size_t len);

/* Text for one FIELDVALUE object: its value when status is "ok" (integers as is, reals with up
 * to 3 decimals and no trailing zeros, strings as is), "N/A" for not_supported / no_permission,
 * "LOST" for gpu_lost, "-" for no_data, "ERR" otherwise. NULL fv (field absent) is "N/A". */
const char *dmon_format_value(const json_t *fv, char *out, size_t len);

typedef struct dmon_field {
        int id;        /* DCGM field id */
        char name[64]; /* symbol from GET /api/v1/fields */
        char tag[16];  /* column tag */
} dmon_field;

/* Resolve a comma-separated list of names / ids / DCGM names against the "fields" array of
 * GET /api/v1/fields. Returns the number resolved, or -EINVAL with the bad token copied into bad
 * (bad_len bytes), or -E2BIG beyond max. */
int dmon_resolve_fields(const json_t *meta, const char *list, dmon_field *out, size_t max,
                        char *bad, size_t bad_len);

/* Append the two header lines ("#Entity   TMPTR ..." and "ID") to b. */
int dmon_render_header(buf *b, const dmon_field *f, size_t n);
/* Append one row for a GPU object (with "index", "state" and "fields") to b. */
int dmon_render_row(buf *b, const json_t *gpu, const dmon_field *f, size_t n);

#endif
