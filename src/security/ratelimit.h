/* ratelimit.h — token buckets keyed by a string (a principal "jwt:alice" or an address
 * "ip:10.0.0.1"). Each key holds at most `burst` tokens, refilled at `per_minute`/60 per second.
 * The table has a fixed size (RATELIMIT_SLOTS): when full, the least recently used key is
 * forgotten (it starts again with a full bucket), so memory is bounded whatever clients send.
 * Thread-safe (one mutex). Time is passed in (usec, monotonic) so tests control it. */
#ifndef VIGIL_API_RATELIMIT_H
#define VIGIL_API_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#define RATELIMIT_SLOTS   4096 /* keys tracked at once */
#define RATELIMIT_KEY_MAX 96   /* bytes of a key kept; longer keys are cut */

typedef struct ratelimit ratelimit;

/* Caller owns *ret. per_minute >= 1, burst >= 1. */
int ratelimit_new(unsigned per_minute, unsigned burst, ratelimit **ret);
ratelimit *ratelimit_free(ratelimit *rl);
/* Change the rates (on reload); existing buckets are clamped to the new burst. */
void ratelimit_set(ratelimit *rl, unsigned per_minute, unsigned burst);
/* Take one token for key at now_us. true = allowed; false = refused, and *retry_after_s (may be
 * NULL) says in whole seconds (>= 1) when a token will be there. */
bool ratelimit_take(ratelimit *rl, const char *key, int64_t now_us, unsigned *retry_after_s);

#endif
