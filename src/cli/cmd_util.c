/* cmd_util.c — small helpers shared by the command files: strict number parsing, usage errors,
 * uptime formatting. */
#include "commands.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int cli_parse_long(const char *s, long min, long max, long *ret)
{
        char *end = NULL;
        long v;

        if (!s || !*s)
                return -EINVAL;
        errno = 0;
        v = strtol(s, &end, 10);
        if (end == s || *end != '\0')
                return -EINVAL;
        if (errno == ERANGE || v < min || v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

const char *cli_format_uptime(double seconds, char *out, size_t len)
{
        long long s = (long long)seconds;

        if (seconds < 0)
                seconds = 0, s = 0;
        if (s >= 86400)
                snprintf(out, len, "%lldd %lldh %lldm", s / 86400, s % 86400 / 3600, s % 3600 / 60);
        else if (s >= 3600)
                snprintf(out, len, "%lldh %lldm %llds", s / 3600, s % 3600 / 60, s % 60);
        else if (s >= 60)
                snprintf(out, len, "%lldm %llds", s / 60, s % 60);
        else
                snprintf(out, len, "%.1fs", seconds);
        return out;
}

int cli_usage_error(cli_ctx *ctx, const char *usage, const char *fmt, ...)
{
        va_list ap;
        FILE *f = ctx->err ? ctx->err : stderr;

        if (fmt) {
                fputs("vigil: ", f);
                va_start(ap, fmt);
                vfprintf(f, fmt, ap);
                va_end(ap);
                fputc('\n', f);
        }
        fprintf(f, "usage: %s\n", usage);
        fflush(f);
        return -EINVAL;
}

void cli_write_buf(cli_ctx *ctx, const buf *b)
{
        if (b->data && b->len)
                fwrite(b->data, 1, b->len, ctx->out);
        fflush(ctx->out);
}

int cli_run_view(int argc, char **argv, cli_ctx *ctx, const cli_view *v)
{
        static const struct option opts[] = {
            {"list", no_argument, NULL, 'l'},
            {"json", no_argument, NULL, 'j'},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        char shortopts[16];
        json_t *root = NULL;
        int c, r;

        snprintf(shortopts, sizeof(shortopts), "+jh%s", v->ignored_flags ? v->ignored_flags : "");
        optind = 0;
        opterr = 0;
        while ((c = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
                if (c == 'j') {
                        ctx->json = true;
                } else if (c == 'h') {
                        v->help(ctx);
                        return 0;
                } else if (c == '?' || !v->ignored_flags || !strchr(v->ignored_flags, c)) {
                        return cli_usage_error(ctx, v->usage, "unknown option '%s'",
                                               argv[optind - 1]);
                }
        }
        if (optind < argc)
                return cli_usage_error(ctx, v->usage, "unexpected argument '%s'", argv[optind]);
        r = client_get(ctx, v->path, &root);
        if (r < 0)
                return r;
        r = ctx->json ? client_print_json(ctx, root, false) : v->render(ctx, root);
        json_decref(root);
        return r;
}
