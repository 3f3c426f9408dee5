/* codec.h — the bit-level codecs of the cache: a bounded MSB-first bit writer/reader, zig-zag,
 * an integer code with width reuse, delta / delta-of-delta integer series, and a float series
 * code (bit-identical repeat, decimal-scaled integer delta, Gorilla XOR). It is not the chunk
 * layout (cache.c frames samples and chunks) and it knows nothing about fields or locking.
 *
 * Every function here is pure over its arguments: no allocation, no globals, any thread. An
 * encoder and a decoder run the same state machine (codec_state), so a decoder fed the bits an
 * encoder wrote, from the same initial state, reproduces the values bit for bit.
 *
 * Codes (bits are written most significant first):
 *   int code of d (int64, two's-complement wrap):
 *     0                      d == 0
 *     10 <w_prev bits>       zigzag(d) fits the width used last time (w_prev > 0)
 *     11 <6: w-1> <w bits>   new width w in 1..64, remembered as w_prev
 *   i64 value:   int code of (v - prev) for gauges, of ((v - prev) - prev_delta) for counters
 *   f64 value:
 *     0                      same bits as the previous value (NaN payloads and -0 included)
 *     10 <int code>          decimal: v == m / 10^e exactly; int code of (m - m_prev)
 *     110 <3: e'> <int code> decimal with a larger exponent e' (m_prev rescaled to e')
 *     111 <xor code>         Gorilla XOR of the bit patterns:
 *        0 <bits>            meaningful bits inside the previous leading/trailing window
 *        1 <6: lead> <6: len-1> <len bits>   new window
 *   raw: 64 bits verbatim (first value of a series in a chunk). */
#ifndef VIGIL_CACHE_CODEC_H
#define VIGIL_CACHE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest decimal exponent the f64 code tries (values with up to 7 decimals stay integers). */
#define CODEC_DEC_EMAX 7

typedef struct bitw {
        uint8_t *buf;  /* destination; bytes past pos may hold garbage */
        size_t cap;    /* capacity in bits */
        size_t pos;    /* bits written */
        bool overflow; /* a put did not fit; pos and buf are then undefined past the old end */
} bitw;

typedef struct bitr {
        const uint8_t *buf; /* source */
        size_t len;         /* readable bits */
        size_t pos;         /* bits read */
        bool err;           /* a get ran past len (returned bits are 0) */
} bitr;

/* Predictor state of one series (encoder and decoder use the same struct). Zeroed = empty. */
typedef struct codec_state {
        uint64_t prev;       /* previous value: int64 as uint64, or the double's bit pattern */
        int64_t prev_delta;  /* previous delta (delta-of-delta series); wraps */
        int64_t dec_m;       /* previous value as decimal mantissa: prev == dec_m / 10^dec_e */
        int32_t prev_status; /* status of the previous sample (0 or -errno) */
        uint8_t w;           /* int code: last width used, 0 = none (bits) */
        uint8_t dec_w;       /* int code width of the decimal path (bits) */
        uint8_t lead;        /* XOR window: leading zero bits */
        uint8_t trail;       /* XOR window: trailing zero bits */
        uint8_t dec_e;       /* decimal exponent in 0..CODEC_DEC_EMAX */
        bool have;           /* prev holds a value (else the next value is written raw) */
        bool win;            /* lead/trail hold a window */
        bool dec_ok;         /* dec_m/dec_e are valid for prev */
} codec_state;

void bitw_init(bitw *w, uint8_t *buf, size_t cap_bits, size_t pos_bits);
/* Append the low n bits of v (n in 0..64). Sets overflow instead of writing past cap. */
void bitw_put(bitw *w, uint64_t v, unsigned n);

/* buf must hold (len_bits + 7) / 8 readable bytes. */
void bitr_init(bitr *r, const uint8_t *buf, size_t len_bits);
/* Read n bits (0..64). Past the end returns 0 and sets err. */
uint64_t bitr_get(bitr *r, unsigned n);

static inline uint64_t zigzag_enc(int64_t v)
{
        return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline int64_t zigzag_dec(uint64_t u)
{
        return (int64_t)((u >> 1) ^ (~(u & 1) + 1));
}

/* Integer code with width reuse (*wp is the width state, 0 initially). */
void codec_put_int(bitw *w, int64_t d, uint8_t *wp);
int64_t codec_get_int(bitr *r, uint8_t *wp);

/* Integer series. dod selects delta-of-delta (counters) over plain delta (gauges). The first
 * value after codec_state is zeroed is written raw. */
void codec_put_i64(bitw *w, codec_state *s, int64_t v, bool dod);
int64_t codec_get_i64(bitr *r, codec_state *s, bool dod);

/* Float series (bit-exact: NaN payloads, -0, inf). */
void codec_put_f64(bitw *w, codec_state *s, double v);
double codec_get_f64(bitr *r, codec_state *s);

/* Gorilla XOR code of x != 0 against the window in s (exposed for tests). */
void codec_put_xor(bitw *w, codec_state *s, uint64_t x);
uint64_t codec_get_xor(bitr *r, codec_state *s);

/* True when v == m / 10^e exactly (bit pattern), |m| < 2^53; sets *m. */
bool codec_dec_repr(double v, unsigned e, int64_t *m);

#endif
