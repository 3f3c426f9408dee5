/* cmd_dmon.c — `vigil dmon`: a rolling table of field values per GPU, like `dcgmi dmon`. One
 * GET /api/v1/gpus?fields=... per tick returns every GPU; -i filters here. Values that are not
 * valid print as N/A, LOST, OFF, ... and never as a number; a stale one prints its last value
 * followed by '*' (docs/cli.md). Ticks are scheduled on a monotonic
 * deadline so that a slow answer does not make the cadence drift. */
#include "commands.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/vtime.h"

static const char usage[] = "vigil dmon [-e FIELDS] [-i GPUS] [-d MS] [-c COUNT] [-l] [-j|--json]";
static const char default_fields[] = "GPU_TEMP,POWER_USAGE,GPU_UTIL,MEM_COPY_UTIL,FB_USED,SM_CLOCK";

static void help(cli_ctx *ctx)
{
        fprintf(ctx->out,
                "usage: %s\n\n"
                "Watch field values per GPU (like `dcgmi dmon`).\n\n"
                "  -e, --field-id FIELDS  comma list of field names or ids\n"
                "                         (default %s)\n"
                "  -i, --gpu-id GPUS      comma list of GPU indices (default: all)\n"
                "  -d, --delay MS         milliseconds between samples (default 1000, min 100)\n"
                "  -c, --count N          stop after N samples (default 0: until Ctrl-C)\n"
                "  -l, --list             list fields with their column tags and exit\n"
                "  -j, --json             one JSON object per sample (JSON lines)\n"
                "  -h, --help             show this help\n",
                usage, default_fields);
}

/* ---- pure helpers ---- */

const char *dmon_field_tag(const char *sym, char *out, size_t len)
{
        static const struct {
                const char *sym;
                const char *tag;
        } tags[] = {
            {"GPU_TEMP", "TMPTR"},
            {"POWER_USAGE", "POWER"},
            {"GPU_UTIL", "GPUTL"},
            {"MEM_COPY_UTIL", "MCUTL"},
            {"FB_USED", "FBUSD"},
            {"FB_FREE", "FBFRE"},
            {"FB_TOTAL", "FBTTL"},
            {"SM_CLOCK", "SMCLK"},
            {"MEM_CLOCK", "MMCLK"},
            {"MEMORY_TEMP", "MMTMP"},
            {"TOTAL_ENERGY_CONSUMPTION", "TOTEC"},
            {"PCIE_REPLAY_COUNTER", "PCIRP"},
            {"XID_ERRORS", "XIDER"},
            {"ENC_UTIL", "ENCUT"},
            {"DEC_UTIL", "DECUT"},
            {"POWER_USAGE_INSTANT", "POWIN"},
            {"PSTATE", "PSTAT"},
            {"POWER_LIMIT", "PWLIM"},
            /* dcgmi's tags for the profiling fields */
            {"PROF_GR_ENGINE_ACTIVE", "GRACT"},
            {"PROF_SM_ACTIVE", "SMACT"},
            {"PROF_SM_OCCUPANCY", "SMOCC"},
            {"PROF_PIPE_TENSOR_ACTIVE", "TENSO"},
            {"PROF_DRAM_ACTIVE", "DRAMA"},
            {"PROF_PIPE_FP64_ACTIVE", "FP64A"},
            {"PROF_PIPE_FP32_ACTIVE", "FP32A"},
            {"PROF_PIPE_FP16_ACTIVE", "FP16A"},
            {"PROF_PCIE_TX_BYTES", "PCITX"},
            {"PROF_PCIE_RX_BYTES", "PCIRX"},
            {"PROF_NVLINK_TX_BYTES", "NVLTX"},
            {"PROF_NVLINK_RX_BYTES", "NVLRX"},
            {"PROF_PIPE_TENSOR_IMMA_ACTIVE", "TIMMA"},
            {"PROF_PIPE_TENSOR_HMMA_ACTIVE", "THMMA"},
            {"PROF_PIPE_TENSOR_DFMA_ACTIVE", "TDFMA"},
            {"PROF_PIPE_INT_ACTIVE", "INTAC"},
        };

        for (size_t i = 0; i < ARRAY_SIZE(tags); i++)
                if (strcasecmp(sym, tags[i].sym) == 0) {
                        snprintf(out, len, "%s", tags[i].tag);
                        return out;
                }
        snprintf(out, len, "%.5s", sym);
        for (char *p = out; *p; p++)
                *p = (char)toupper((unsigned char)*p);
        return out;
}

const char *dmon_format_value(const json_t *fv, char *out, size_t len)
{
        const char *status = json_string_value(json_object_get(fv, "status"));
        const json_t *v = json_object_get(fv, "value");
        bool stale = status && strcmp(status, "stale") == 0;

        if (stale) {
                /* the last value, marked: it is not the GPU's value now */
                v = json_object_get(fv, "last_value");
                if (!v) {
                        snprintf(out, len, "STALE");
                        return out;
                }
                status = "ok";
        }
        if (!fv || !status) {
                snprintf(out, len, "N/A");
        } else if (strcmp(status, "ok") == 0) {
                if (json_is_integer(v)) {
                        snprintf(out, len, "%lld", (long long)json_integer_value(v));
                } else if (json_is_real(v)) {
                        char *dot;
                        snprintf(out, len, "%.3f", json_real_value(v));
                        dot = strchr(out, '.');
                        if (dot) {
                                char *e = out + strlen(out) - 1;
                                while (e > dot && *e == '0')
                                        *e-- = '\0';
                                if (e == dot)
                                        *e = '\0';
                        }
                } else if (json_is_string(v)) {
                        snprintf(out, len, "%s", json_string_value(v));
                } else if (json_is_boolean(v)) {
                        snprintf(out, len, "%d", json_is_true(v) ? 1 : 0);
                } else {
                        /* "ok" without a value breaks the contract; say so rather than invent */
                        snprintf(out, len, "ERR");
                }
                if (stale) {
                        size_t l = strlen(out);
                        if (l + 1 < len) {
                                out[l] = '*';
                                out[l + 1] = '\0';
                        }
                }
        } else if (strcmp(status, "not_supported") == 0 || strcmp(status, "no_permission") == 0) {
                snprintf(out, len, "N/A");
        } else if (strcmp(status, "gpu_lost") == 0) {
                snprintf(out, len, "LOST");
        } else if (strcmp(status, "no_data") == 0 || strcmp(status, "pending") == 0) {
                snprintf(out, len, "-");
        } else if (strcmp(status, "not_watched") == 0) {
                snprintf(out, len, "OFF");
        } else {
                snprintf(out, len, "ERR");
        }
        return out;
}

static bool is_number(const char *s)
{
        if (!*s)
                return false;
        for (; *s; s++)
                if (!isdigit((unsigned char)*s))
                        return false;
        return true;
}

static const json_t *find_meta(const json_t *fields, const char *tok)
{
        size_t i;
        const json_t *m;

        json_array_foreach(fields, i, m)
        {
                const char *keys[] = {"name", "dcgm_name", "dcgm46_name", "native"};

                if (is_number(tok)) {
                        if (json_integer_value(json_object_get(m, "id")) == atoll(tok))
                                return m;
                        continue;
                }
                for (size_t k = 0; k < ARRAY_SIZE(keys); k++) {
                        const char *s = json_string_value(json_object_get(m, keys[k]));
                        if (s && strcasecmp(s, tok) == 0)
                                return m;
                }
        }
        return NULL;
}

int dmon_resolve_fields(const json_t *meta, const char *list, dmon_field *out, size_t max,
                        char *bad, size_t bad_len)
{
        const json_t *fields = json_object_get(meta, "fields");
        _cleanup_free_ char *copy = strdup(list);
        char *save = NULL;
        size_t n = 0;

        if (!copy)
                return -ENOMEM;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                const json_t *m;
                const char *name;

                while (isspace((unsigned char)*tok))
                        tok++;
                for (char *e = tok + strlen(tok); e > tok && isspace((unsigned char)e[-1]);)
                        *--e = '\0';
                if (!*tok)
                        continue;
                m = find_meta(fields, tok);
                name = json_string_value(json_object_get(m, "name"));
                if (!m || !name) {
                        snprintf(bad, bad_len, "%s", tok);
                        return -EINVAL;
                }
                if (n >= max)
                        return -E2BIG;
                out[n].id = (int)json_integer_value(json_object_get(m, "id"));
                snprintf(out[n].name, sizeof(out[n].name), "%s", name);
                dmon_field_tag(name, out[n].tag, sizeof(out[n].tag));
                n++;
        }
        if (n == 0) {
                snprintf(bad, bad_len, "%s", list);
                return -EINVAL;
        }
        return (int)n;
}

static size_t col_width(const dmon_field *f)
{
        return MAX((size_t)DMON_MIN_COL, strlen(f->tag) + 2);
}

/* Append cells padded to their column widths, trimming the trailing blanks of the line. */
static void put_cell(buf *b, const char *s, size_t width)
{
        size_t n = strlen(s);

        buf_puts(b, s);
        /* at least one blank between columns even when a value overflows its column */
        for (size_t i = n; i < MAX(width, n + 1); i++)
                buf_puts(b, " ");
}

static void end_line(buf *b, size_t start)
{
        if (b->data)
                while (b->len > start && b->data[b->len - 1] == ' ')
                        b->data[--b->len] = '\0';
        buf_puts(b, "\n");
}

int dmon_render_header(buf *b, const dmon_field *f, size_t n)
{
        size_t start = b->len;

        put_cell(b, "#Entity", DMON_ENTITY_WIDTH);
        for (size_t i = 0; i < n; i++)
                put_cell(b, f[i].tag, col_width(&f[i]));
        end_line(b, start);
        buf_puts(b, "ID\n");
        return b->err;
}

static const json_t *find_value(const json_t *gpu, int id)
{
        const json_t *vals = json_object_get(gpu, "fields"), *v;
        size_t i;

        json_array_foreach(vals, i,
                           v) if (json_integer_value(json_object_get(v, "id")) == id) return v;
        return NULL;
}

int dmon_render_row(buf *b, const json_t *gpu, const dmon_field *f, size_t n)
{
        const char *state = json_string_value(json_object_get(gpu, "state"));
        bool lost = state && strcmp(state, "lost") == 0;
        size_t start = b->len;
        char cell[128];

        snprintf(cell, sizeof(cell), "GPU %lld",
                 (long long)json_integer_value(json_object_get(gpu, "index")));
        put_cell(b, cell, DMON_ENTITY_WIDTH);
        for (size_t i = 0; i < n; i++) {
                const json_t *v = find_value(gpu, f[i].id);
                if (!v && lost)
                        snprintf(cell, sizeof(cell), "LOST");
                else
                        dmon_format_value(v, cell, sizeof(cell));
                put_cell(b, cell, col_width(&f[i]));
        }
        end_line(b, start);
        return b->err;
}

/* ---- the command ---- */

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
        (void)sig;
        interrupted = 1;
}

/* time_sleep_until_mono() retries on EINTR; Ctrl-C must end the wait at once. */
static void sleep_until(int64_t deadline_us)
{
        struct timespec ts = {
            .tv_sec = deadline_us / USEC_PER_SEC,
            .tv_nsec = (deadline_us % USEC_PER_SEC) * 1000,
        };

        (void)clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

static int parse_gpus(const char *list, long *out, size_t max, size_t *n)
{
        _cleanup_free_ char *copy = strdup(list);
        char *save = NULL;

        if (!copy)
                return -ENOMEM;
        *n = 0;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                long v;
                if (*n >= max || cli_parse_long(tok, 0, 65535, &v) < 0)
                        return -EINVAL;
                out[(*n)++] = v;
        }
        return *n > 0 ? 0 : -EINVAL;
}

static bool gpu_selected(const json_t *gpu, const long *sel, size_t nsel)
{
        long long idx = json_integer_value(json_object_get(gpu, "index"));

        if (nsel == 0)
                return true;
        for (size_t i = 0; i < nsel; i++)
                if (sel[i] == idx)
                        return true;
        return false;
}

static int list_fields(cli_ctx *ctx, const json_t *meta)
{
        const json_t *fields = json_object_get(meta, "fields"), *m;
        size_t i;
        char tag[16];

        fprintf(ctx->out, "%-8s %-6s %s\n", "ID", "TAG", "NAME");
        json_array_foreach(fields, i, m)
        {
                const char *name = json_string_value(json_object_get(m, "name"));
                if (!name)
                        continue;
                fprintf(ctx->out, "%-8lld %-6s %s\n",
                        (long long)json_integer_value(json_object_get(m, "id")),
                        dmon_field_tag(name, tag, sizeof(tag)), name);
        }
        return 0;
}

/* Build "/api/v1/gpus?fields=150,155" from the resolved fields. */
static char *gpus_path(const dmon_field *f, size_t n)
{
        buf b;

        buf_init(&b, 0);
        buf_puts(&b, "/api/v1/gpus?fields=");
        for (size_t i = 0; i < n; i++)
                buf_printf(&b, "%s%d", i ? "," : "", f[i].id);
        if (b.err) {
                buf_release(&b);
                return NULL;
        }
        return buf_steal(&b, NULL);
}

/* One tick: print rows (or one JSON line) for the selected GPUs. *rows counts data rows since
 * the last header. */
static int tick(cli_ctx *ctx, const char *path, const dmon_field *f, size_t nf, const long *sel,
                size_t nsel, size_t *rows, bool first)
{
        json_t *root = NULL, *gpus, *g;
        _cleanup_(buf_release) buf b = {0};
        size_t i;
        int r;

        r = client_get(ctx, path, &root);
        if (r < 0)
                return r;
        gpus = json_object_get(root, "gpus");
        if (first) {
                /* an unknown -i index is a usage error, reported once, before any output */
                for (size_t k = 0; k < nsel; k++) {
                        bool found = false;
                        json_array_foreach(gpus, i, g) if (json_integer_value(json_object_get(
                                                               g, "index")) == sel[k]) found = true;
                        if (!found) {
                                cli_error(ctx, "no GPU with index '%ld'", sel[k]);
                                json_decref(root);
                                return -ENODEV;
                        }
                }
        }
        buf_init(&b, 0);
        if (ctx->json) {
                json_t *keep = json_array();
                json_array_foreach(gpus, i, g) if (gpu_selected(g, sel, nsel))
                    json_array_append(keep, g);
                json_object_set_new(root, "gpus", keep);
                json_object_set_new(root, "count", json_integer((json_int_t)json_array_size(keep)));
                json_object_set_new(root, "timestamp_us", json_integer(time_real_us()));
                r = client_print_json(ctx, root, true);
                fflush(ctx->out);
                json_decref(root);
                return r;
        }
        json_array_foreach(gpus, i, g)
        {
                if (!gpu_selected(g, sel, nsel))
                        continue;
                /* like dcgmi, repeat the header so it stays on screen; only between ticks */
                if (b.len == 0 && (*rows == 0 || *rows >= DMON_HEADER_EVERY)) {
                        dmon_render_header(&b, f, nf);
                        *rows = 0;
                }
                dmon_render_row(&b, g, f, nf);
                (*rows)++;
        }
        json_decref(root);
        if (b.err)
                return b.err;
        cli_write_buf(ctx, &b);
        return 0;
}

int cmd_dmon(int argc, char **argv, cli_ctx *ctx)
{
        static const struct option opts[] = {
            {"field-id", required_argument, NULL, 'e'}, {"gpu-id", required_argument, NULL, 'i'},
            {"delay", required_argument, NULL, 'd'},    {"count", required_argument, NULL, 'c'},
            {"list", no_argument, NULL, 'l'},           {"json", no_argument, NULL, 'j'},
            {"help", no_argument, NULL, 'h'},           {},
        };
        const char *field_list = default_fields;
        long delay_ms = 1000, count = 0, sel[DMON_MAX_GPUS];
        size_t nsel = 0, rows = 0;
        bool list = false;
        dmon_field fields[DMON_MAX_FIELDS];
        char bad[128];
        json_t *meta = NULL;
        _cleanup_free_ char *path = NULL;
        struct sigaction sa = {.sa_handler = on_sigint}, old_int, old_term;
        int c, r, nf;

        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc, argv, "+:e:i:d:c:ljh", opts, NULL)) != -1) {
                switch (c) {
                case 'e':
                        field_list = optarg;
                        break;
                case 'i':
                        if (parse_gpus(optarg, sel, DMON_MAX_GPUS, &nsel) < 0)
                                return cli_usage_error(ctx, usage, "invalid GPU list '%s'", optarg);
                        break;
                case 'd':
                        if (cli_parse_long(optarg, 0, 86400000, &delay_ms) < 0)
                                return cli_usage_error(ctx, usage, "invalid delay '%s'", optarg);
                        if (delay_ms < 100)
                                return cli_usage_error(ctx, usage,
                                                       "delay '%s' is below the minimum of 100 ms",
                                                       optarg);
                        break;
                case 'c':
                        if (cli_parse_long(optarg, 0, 1000000000, &count) < 0)
                                return cli_usage_error(ctx, usage, "invalid count '%s'", optarg);
                        break;
                case 'l':
                        list = true;
                        break;
                case 'j':
                        ctx->json = true;
                        break;
                case 'h':
                        help(ctx);
                        return 0;
                case ':':
                        return cli_usage_error(ctx, usage, "option '%s' needs a value",
                                               argv[optind - 1]);
                default:
                        return cli_usage_error(ctx, usage, "unknown option '%s'", argv[optind - 1]);
                }
        }
        if (optind < argc)
                return cli_usage_error(ctx, usage, "unexpected argument '%s'", argv[optind]);

        /* resolve names first so that a typo fails before any sampling output */
        r = client_get(ctx, "/api/v1/fields", &meta);
        if (r < 0)
                return r;
        if (list) {
                r = ctx->json ? client_print_json(ctx, meta, false) : list_fields(ctx, meta);
                json_decref(meta);
                return r;
        }
        nf = dmon_resolve_fields(meta, field_list, fields, DMON_MAX_FIELDS, bad, sizeof(bad));
        json_decref(meta);
        if (nf == -EINVAL) {
                cli_error(ctx, "unknown field '%s'", bad);
                return -EINVAL;
        }
        if (nf == -E2BIG)
                return cli_usage_error(ctx, usage, "too many fields (at most %d)", DMON_MAX_FIELDS);
        if (nf < 0)
                return nf;
        path = gpus_path(fields, (size_t)nf);
        if (!path)
                return -ENOMEM;

        interrupted = 0;
        ctx->interrupted = &interrupted;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);

        int64_t next = time_mono_us();
        for (long n = 0; count == 0 || n < count; n++) {
                r = tick(ctx, path, fields, (size_t)nf, sel, nsel, &rows, n == 0);
                if (r == -EINTR || interrupted) {
                        r = 0;
                        break;
                }
                if (r < 0)
                        break;
                if (count != 0 && n + 1 >= count)
                        break;
                next += delay_ms * USEC_PER_MSEC;
                if (next < time_mono_us())
                        next = time_mono_us(); /* fell behind: do not burst to catch up */
                while (!interrupted && time_mono_us() < next)
                        sleep_until(next);
                if (interrupted) {
                        r = 0;
                        break;
                }
        }

        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        ctx->interrupted = NULL;
        return r;
}
