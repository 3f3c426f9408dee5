/* buf.h — a growable byte buffer with a hard size limit, for rendering text (exposition, JSON
 * lines) without unbounded growth. Append functions return 0 or -ENOMEM / -E2BIG (limit hit);
 * after a failure the buffer keeps what it had and further appends fail until buf_reset(). */
#ifndef VIGIL_COMMON_BUF_H
#define VIGIL_COMMON_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "macros.h"

typedef struct buf {
        char *data;   /* NUL-terminated contents; owned */
        size_t len;   /* bytes used, excluding the NUL */
        size_t cap;   /* bytes allocated */
        size_t limit; /* maximum len; 0 = 64 MiB */
        int err;      /* first error, sticky until buf_reset */
} buf;

void buf_init(buf *b, size_t limit);
void buf_release(buf *b);
void buf_reset(buf *b);
int buf_reserve(buf *b, size_t extra);
int buf_append(buf *b, const void *p, size_t n);
int buf_puts(buf *b, const char *s);
int buf_printf(buf *b, const char *fmt, ...) _printf_(2, 3);
/* Take the contents; the buffer is left empty. Caller owns the result (free()). */
char *buf_steal(buf *b, size_t *len);

#endif
