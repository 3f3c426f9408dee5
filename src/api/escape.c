/* escape.c — Prometheus label-value escaping, shared by the exposition (expo.c) and the
 * self-monitoring families (selfmetrics.c); below both so neither calls the other back. */
#include "api-internal.h"

int expo_escape(buf *b, const char *s)
{
        const char *run = s;

        for (; *s; s++) {
                const char *rep = NULL;
                if (*s == '\\')
                        rep = "\\\\";
                else if (*s == '"')
                        rep = "\\\"";
                else if (*s == '\n')
                        rep = "\\n";
                if (!rep)
                        continue;
                buf_append(b, run, (size_t)(s - run));
                buf_puts(b, rep);
                run = s + 1;
        }
        return buf_append(b, run, (size_t)(s - run));
}
