/* buf.c — bounded growable buffer. */
#include "buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_DEFAULT_LIMIT (64u << 20)

void buf_init(buf *b, size_t limit)
{
        *b = (buf){.limit = limit ? limit : BUF_DEFAULT_LIMIT};
}

void buf_release(buf *b)
{
        free(b->data);
        b->data = NULL;
        b->len = b->cap = 0;
}

void buf_reset(buf *b)
{
        b->len = 0;
        b->err = 0;
        if (b->data)
                b->data[0] = '\0';
}

int buf_reserve(buf *b, size_t extra)
{
        size_t need, ncap;
        char *n;

        if (b->err)
                return b->err;
        if (extra > b->limit || b->len + extra > b->limit)
                return (b->err = -E2BIG);
        need = b->len + extra + 1;
        if (need <= b->cap)
                return 0;
        ncap = b->cap ? b->cap : 256;
        while (ncap < need)
                ncap *= 2;
        n = realloc(b->data, ncap);
        if (!n)
                return (b->err = -ENOMEM);
        b->data = n;
        b->cap = ncap;
        return 0;
}

int buf_append(buf *b, const void *p, size_t n)
{
        int r = buf_reserve(b, n);

        if (r < 0)
                return r;
        memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
        return 0;
}

int buf_puts(buf *b, const char *s)
{
        return buf_append(b, s, strlen(s));
}

int buf_printf(buf *b, const char *fmt, ...)
{
        va_list ap;
        int n, r;

        if (b->err)
                return b->err;
        for (int attempt = 0; attempt < 2; attempt++) {
                size_t room = b->cap > b->len ? b->cap - b->len : 0;
                va_start(ap, fmt);
                n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap);
                va_end(ap);
                if (n < 0)
                        return (b->err = -EINVAL);
                if ((size_t)n < room) {
                        b->len += (size_t)n;
                        return 0;
                }
                r = buf_reserve(b, (size_t)n);
                if (r < 0)
                        return r;
        }
        return (b->err = -EINVAL);
}

char *buf_steal(buf *b, size_t *len)
{
        char *d = b->data;

        if (len)
                *len = b->len;
        if (!d)
                d = calloc(1, 1);
        b->data = NULL;
        b->len = b->cap = 0;
        return d;
}
