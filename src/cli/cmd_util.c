/* cmd_util.c — small helpers shared by the command files: strict number parsing, usage errors,
 * uptime formatting. */
#include "commands.h"

#include <errno.h>
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
