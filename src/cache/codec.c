/* codec.c — bit writer/reader and the value codes described in codec.h. No allocation, no
 * state outside the arguments; the encoder and decoder halves of each code sit side by side so
 * that they are read (and changed) together. */
#include "codec.h"

#include <math.h>
#include <string.h>

static const double pow10_tab[CODEC_DEC_EMAX + 1] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7};
static const int64_t pow10_int[CODEC_DEC_EMAX + 1] = {1,     10,     100,     1000,
                                                      10000, 100000, 1000000, 10000000};

#define DEC_MANT_LIMIT (INT64_C(1) << 53) /* integers up to 2^53 are exact doubles */

void bitw_init(bitw *w, uint8_t *buf, size_t cap_bits, size_t pos_bits)
{
        w->buf = buf;
        w->cap = cap_bits;
        w->pos = pos_bits;
        w->overflow = pos_bits > cap_bits;
}

void bitw_put(bitw *w, uint64_t v, unsigned n)
{
        size_t pos;

        if (n == 0)
                return;
        if (w->overflow || w->cap - w->pos < n) {
                w->overflow = true;
                return;
        }
        if (n < 64)
                v &= (UINT64_C(1) << n) - 1;
        pos = w->pos;
        while (n > 0) {
                unsigned used = pos & 7, space = 8 - used, k = n < space ? n : space;
                uint8_t bits = (uint8_t)((v >> (n - k)) & ((1u << k) - 1));
                uint8_t *b = &w->buf[pos >> 3];

                /* The first write into a byte assigns it, so reused chunk memory needs no clearing. */
                if (used == 0)
                        *b = (uint8_t)(bits << (space - k));
                else
                        *b |= (uint8_t)(bits << (space - k));
                pos += k;
                n -= k;
        }
        w->pos = pos;
}

void bitr_init(bitr *r, const uint8_t *buf, size_t len_bits)
{
        r->buf = buf;
        r->len = len_bits;
        r->pos = 0;
        r->err = false;
}

uint64_t bitr_get(bitr *r, unsigned n)
{
        uint64_t v = 0;
        size_t pos;

        if (n == 0)
                return 0;
        if (r->err || r->len - r->pos < n) {
                r->err = true;
                r->pos = r->len;
                return 0;
        }
        pos = r->pos;
        /* Fast path: one unaligned big-endian load covers up to 57 bits at any bit offset. */
        if (n <= 57 && (pos >> 3) + 8 <= (r->len + 7) / 8) {
                uint64_t word;

                memcpy(&word, r->buf + (pos >> 3), sizeof(word));
                r->pos = pos + n;
                return (__builtin_bswap64(word) << (pos & 7)) >> (64 - n);
        }
        while (n > 0) {
                unsigned used = pos & 7, space = 8 - used, k = n < space ? n : space;
                unsigned bits = ((unsigned)r->buf[pos >> 3] >> (space - k)) & ((1u << k) - 1);

                v = (v << k) | bits;
                pos += k;
                n -= k;
        }
        r->pos = pos;
        return v;
}

static inline unsigned width_of(uint64_t z)
{
        return 64 - (unsigned)__builtin_clzll(z); /* z != 0 */
}

void codec_put_int(bitw *w, int64_t d, uint8_t *wp)
{
        uint64_t z;
        unsigned bw;

        if (d == 0) {
                bitw_put(w, 0, 1);
                return;
        }
        z = zigzag_enc(d);
        bw = width_of(z);
        /* Reuse the last width unless a fresh one saves more than its 6-bit header. */
        if (*wp && bw <= *wp && *wp - bw <= 6) {
                if (*wp <= 62) {
                        bitw_put(w, (UINT64_C(2) << *wp) | z, 2u + *wp);
                } else {
                        bitw_put(w, 2, 2);
                        bitw_put(w, z, *wp);
                }
                return;
        }
        if (bw <= 56) {
                bitw_put(w, ((UINT64_C(0xc0) | (bw - 1)) << bw) | z, 8u + bw);
        } else {
                bitw_put(w, UINT64_C(0xc0) | (bw - 1), 8);
                bitw_put(w, z, bw);
        }
        *wp = (uint8_t)bw;
}

int64_t codec_get_int(bitr *r, uint8_t *wp)
{
        unsigned bw;

        if (!bitr_get(r, 1))
                return 0;
        if (!bitr_get(r, 1))
                return zigzag_dec(bitr_get(r, *wp));
        bw = (unsigned)bitr_get(r, 6) + 1;
        *wp = (uint8_t)bw;
        return zigzag_dec(bitr_get(r, bw));
}

void codec_put_i64(bitw *w, codec_state *s, int64_t v, bool dod)
{
        int64_t delta;

        if (!s->have) {
                bitw_put(w, (uint64_t)v, 64);
                s->prev = (uint64_t)v;
                s->prev_delta = 0;
                s->have = true;
                return;
        }
        delta = (int64_t)((uint64_t)v - s->prev);
        codec_put_int(w, dod ? (int64_t)((uint64_t)delta - (uint64_t)s->prev_delta) : delta, &s->w);
        s->prev = (uint64_t)v;
        s->prev_delta = delta;
}

int64_t codec_get_i64(bitr *r, codec_state *s, bool dod)
{
        int64_t d, delta;

        if (!s->have) {
                s->prev = bitr_get(r, 64);
                s->prev_delta = 0;
                s->have = true;
                return (int64_t)s->prev;
        }
        d = codec_get_int(r, &s->w);
        delta = dod ? (int64_t)((uint64_t)d + (uint64_t)s->prev_delta) : d;
        s->prev += (uint64_t)delta;
        s->prev_delta = delta;
        return (int64_t)s->prev;
}

static inline uint64_t dbl_bits(double d)
{
        uint64_t u;

        memcpy(&u, &d, sizeof(u));
        return u;
}

static inline double bits_dbl(uint64_t u)
{
        double d;

        memcpy(&d, &u, sizeof(d));
        return d;
}

bool codec_dec_repr(double v, unsigned e, int64_t *m)
{
        double s;
        int64_t k;

        if (e > CODEC_DEC_EMAX || !isfinite(v))
                return false;
        s = v * pow10_tab[e];
        if (!(fabs(s) < (double)DEC_MANT_LIMIT))
                return false;
        k = llrint(s);
        /* Division by an exact power of ten is correctly rounded: this is how a value such as
         * mW / 1000.0 was made, and how the decoder will remake it. -0 fails (k = 0 gives +0). */
        if (dbl_bits((double)k / pow10_tab[e]) != dbl_bits(v))
                return false;
        *m = k;
        return true;
}

/* After a value was taken verbatim (raw or XOR), find the decimal view of it for the next one. */
static void dec_reset(codec_state *s, double v)
{
        int64_t m;

        if (s->dec_ok && codec_dec_repr(v, s->dec_e, &m)) {
                s->dec_m = m;
                return;
        }
        for (unsigned e = 0; e <= CODEC_DEC_EMAX; e++) {
                if (codec_dec_repr(v, e, &m)) {
                        s->dec_ok = true;
                        s->dec_e = (uint8_t)e;
                        s->dec_m = m;
                        return;
                }
        }
        s->dec_ok = false;
}

void codec_put_xor(bitw *w, codec_state *s, uint64_t x)
{
        unsigned lead = (unsigned)__builtin_clzll(x), trail = (unsigned)__builtin_ctzll(x);
        unsigned len = 64 - lead - trail;

        if (s->win && lead >= s->lead && trail >= s->trail) {
                unsigned wlen = 64u - s->lead - s->trail;

                /* Gorilla's reuse, unless the old window is so wide that a new one is cheaper. */
                if (wlen <= len + 13) {
                        bitw_put(w, 0, 1);
                        bitw_put(w, x >> s->trail, wlen);
                        return;
                }
        }
        bitw_put(w, (UINT64_C(1) << 12) | ((uint64_t)lead << 6) | (len - 1), 13);
        bitw_put(w, x >> trail, len);
        s->win = true;
        s->lead = (uint8_t)lead;
        s->trail = (uint8_t)trail;
}

uint64_t codec_get_xor(bitr *r, codec_state *s)
{
        unsigned lead, len;

        if (!bitr_get(r, 1)) {
                if (!s->win)
                        return 0;
                return bitr_get(r, 64u - s->lead - s->trail) << s->trail;
        }
        lead = (unsigned)bitr_get(r, 6);
        len = (unsigned)bitr_get(r, 6) + 1;
        if (lead + len > 64) { /* corrupt input; keep shifts defined */
                r->err = true;
                return 0;
        }
        s->win = true;
        s->lead = (uint8_t)lead;
        s->trail = (uint8_t)(64 - lead - len);
        return bitr_get(r, len) << s->trail;
}

void codec_put_f64(bitw *w, codec_state *s, double v)
{
        uint64_t b = dbl_bits(v);
        int64_t m;

        if (!s->have) {
                bitw_put(w, b, 64);
                s->prev = b;
                s->have = true;
                s->win = false;
                s->dec_ok = false;
                dec_reset(s, v);
                return;
        }
        if (b == s->prev) {
                bitw_put(w, 0, 1);
                return;
        }
        if (s->dec_ok) {
                if (codec_dec_repr(v, s->dec_e, &m)) {
                        bitw_put(w, 2, 2);
                        codec_put_int(w, (int64_t)((uint64_t)m - (uint64_t)s->dec_m), &s->dec_w);
                        s->dec_m = m;
                        s->prev = b;
                        return;
                }
                for (unsigned e = s->dec_e + 1u; e <= CODEC_DEC_EMAX; e++) {
                        int64_t scale = pow10_int[e - s->dec_e], pm;

                        if (__builtin_mul_overflow(s->dec_m, scale, &pm) || pm >= DEC_MANT_LIMIT ||
                            pm <= -DEC_MANT_LIMIT)
                                break;
                        if (!codec_dec_repr(v, e, &m))
                                continue;
                        bitw_put(w, (UINT64_C(6) << 3) | e, 6);
                        codec_put_int(w, (int64_t)((uint64_t)m - (uint64_t)pm), &s->dec_w);
                        s->dec_e = (uint8_t)e;
                        s->dec_m = m;
                        s->prev = b;
                        return;
                }
        }
        bitw_put(w, 7, 3);
        codec_put_xor(w, s, b ^ s->prev);
        s->prev = b;
        dec_reset(s, v);
}

double codec_get_f64(bitr *r, codec_state *s)
{
        double v;

        if (!s->have) {
                s->prev = bitr_get(r, 64);
                s->have = true;
                s->win = false;
                s->dec_ok = false;
                v = bits_dbl(s->prev);
                dec_reset(s, v);
                return v;
        }
        if (!bitr_get(r, 1))
                return bits_dbl(s->prev);
        if (!bitr_get(r, 1)) {
                s->dec_m = (int64_t)((uint64_t)s->dec_m + (uint64_t)codec_get_int(r, &s->dec_w));
                v = (double)s->dec_m / pow10_tab[s->dec_e];
                s->prev = dbl_bits(v);
                return v;
        }
        if (!bitr_get(r, 1)) {
                unsigned e = (unsigned)bitr_get(r, 3);

                if (e <= s->dec_e) { /* corrupt input */
                        r->err = true;
                        return 0;
                }
                s->dec_m = (int64_t)((uint64_t)s->dec_m * (uint64_t)pow10_int[e - s->dec_e] +
                                     (uint64_t)codec_get_int(r, &s->dec_w));
                s->dec_e = (uint8_t)e;
                v = (double)s->dec_m / pow10_tab[s->dec_e];
                s->prev = dbl_bits(v);
                return v;
        }
        s->prev ^= codec_get_xor(r, s);
        v = bits_dbl(s->prev);
        dec_reset(s, v);
        return v;
}
