/* prehead.h — the judge of a request head, before libmicrohttpd parses it (framer.c feeds it every
 * head of every connection), so that what libmicrohttpd 0.9.75 would refuse with its own HTML page
 * or a silently closed connection (a request line that is not METHOD TARGET VERSION, a version
 * other than 1.0/1.1, a head over the budget, a NUL byte in the head, a header line without a
 * colon, a bad Content-Length) is answered with the documented JSON error instead (docs/api.md).
 * Pure functions: no I/O. */
#ifndef VIGIL_API_PREHEAD_H
#define VIGIL_API_PREHEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The head budget: a request line or head longer than this is refused (414 / 431) before
 * libmicrohttpd sees it; it accepts less than its 32 KiB connection memory anyway. */
#define PREHEAD_MAX 16384
/* At most this many header fields plus cookies (431), and this many query arguments (414):
 * libmicrohttpd keeps each in its per-connection pool (32 KiB, the head included) and answers
 * more than fits with its HTML 431 (fields, cookies) or not at all (arguments). 100 of each in a
 * 16 KiB head fit (tests/integ/test_framing.py). */
#define PREHEAD_MAX_FIELDS 100
#define PREHEAD_MAX_ARGS   100

/* Judge a request head as far as it came (b[0..n), at most PREHEAD_MAX, from its first byte).
 * Returns 0 when what is there is acceptable (or too little to judge yet), else the HTTP status
 * to refuse it with and *msg, a static lowercase reason. At PREHEAD_MAX bytes without the end of
 * the head it always decides (414 or 431). */
unsigned prehead_check(const char *b, size_t n, const char **msg);

/* The end of the head (just past its blank line) in b[0..n), or 0 while it has not come. */
size_t prehead_end(const char *b, size_t n);

/* How the body after a head that passed prehead_check (b[0..end), starting at its request line)
 * is framed, as libmicrohttpd 0.9.75 frames it: the first Transfer-Encoding field makes it
 * chunked when it says "chunked" and unframed otherwise (the access handler refuses that with
 * 501), and wins over Content-Length; else *len bytes (the first Content-Length, 0 without). */
typedef enum { PREHEAD_BODY_LENGTH, PREHEAD_BODY_CHUNKED, PREHEAD_BODY_UNKNOWN } prehead_body_kind;
prehead_body_kind prehead_body(const char *b, size_t end, uint64_t *len);

#endif
