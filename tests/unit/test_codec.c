/* test_codec.c — the bit codecs round-trip exactly: bit writer/reader, zig-zag, the integer code,
 * delta and delta-of-delta series, and the float code (NaN payloads, ±0, ±inf, decimals, random
 * bit patterns). Random sequences use fixed seeds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <float.h>
#include <cmocka.h>

#include "cache/codec.h"

#define BUF_BYTES (1 << 20)
static uint8_t buf[BUF_BYTES + 16];

static uint64_t rng_state;

static uint64_t rng(void)
{
        /* splitmix64: deterministic for a given seed */
        uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));

        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

static uint64_t dbits(double d)
{
        uint64_t u;

        memcpy(&u, &d, sizeof(u));
        return u;
}

static double bdbl(uint64_t u)
{
        double d;

        memcpy(&d, &u, sizeof(d));
        return d;
}

static void test_bits_roundtrip(void **state)
{
        enum { N = 20000 };
        static uint64_t vals[N];
        static unsigned widths[N];
        bitw w;
        bitr r;

        (void)state;
        rng_state = 1;
        memset(buf, 0xa5, sizeof(buf)); /* garbage: the writer must not depend on zeroed memory */
        bitw_init(&w, buf, BUF_BYTES * 8, 0);
        for (size_t i = 0; i < N; i++) {
                widths[i] = (unsigned)(rng() % 65);
                vals[i] = rng();
                bitw_put(&w, vals[i], widths[i]);
        }
        assert_false(w.overflow);
        bitr_init(&r, buf, w.pos);
        for (size_t i = 0; i < N; i++) {
                uint64_t want = widths[i] == 64  ? vals[i]
                                : widths[i] == 0 ? 0
                                                 : vals[i] & ((UINT64_C(1) << widths[i]) - 1);
                assert_int_equal(bitr_get(&r, widths[i]), want);
        }
        assert_false(r.err);
        assert_int_equal(r.pos, w.pos);
        bitr_get(&r, 1);
        assert_true(r.err);
}

static void test_bits_overflow(void **state)
{
        uint8_t small[4 + 4];
        bitw w;

        (void)state;
        memset(small, 0x5a, sizeof(small));
        bitw_init(&w, small, 32, 0);
        bitw_put(&w, 0xffffffff, 30);
        assert_false(w.overflow);
        bitw_put(&w, 0xf, 4); /* does not fit: refused whole */
        assert_true(w.overflow);
        assert_int_equal(w.pos, 30);
        for (size_t i = 4; i < sizeof(small); i++)
                assert_int_equal(small[i], 0x5a); /* nothing written past cap */
        bitw_put(&w, 0, 1);                       /* sticky */
        assert_true(w.overflow);
}

static void test_zigzag(void **state)
{
        static const int64_t t[] = {0, 1, -1, 2, -2, 63, -64, INT64_MAX, INT64_MIN, INT64_MIN + 1};

        (void)state;
        assert_int_equal(zigzag_enc(0), 0);
        assert_int_equal(zigzag_enc(-1), 1);
        assert_int_equal(zigzag_enc(1), 2);
        assert_int_equal(zigzag_enc(INT64_MIN), UINT64_MAX);
        for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
                assert_int_equal(zigzag_dec(zigzag_enc(t[i])), t[i]);
}

static void test_int_code(void **state)
{
        static const int64_t t[] = {0,       1,       -1,        5,         5, -3, 0,
                                    1000000, -999999, INT64_MAX, INT64_MIN, 0, 7,  INT64_MIN + 1,
                                    -7,      1,       1 << 20,   -(1 << 20)};
        uint8_t ws = 0, wr = 0;
        bitw w;
        bitr r;

        (void)state;
        bitw_init(&w, buf, BUF_BYTES * 8, 0);
        for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
                codec_put_int(&w, t[i], &ws);
        bitr_init(&r, buf, w.pos);
        for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
                assert_int_equal(codec_get_int(&r, &wr), t[i]);
        assert_false(r.err);
        assert_int_equal(r.pos, w.pos);

        /* sizes: zero is one bit, a repeat of a small width is 2 + width */
        ws = 0;
        bitw_init(&w, buf, BUF_BYTES * 8, 0);
        codec_put_int(&w, 0, &ws);
        assert_int_equal(w.pos, 1);
        codec_put_int(&w, 1, &ws); /* zz 2: width 2, new: 2 + 6 + 2 */
        assert_int_equal(w.pos, 11);
        codec_put_int(&w, -1, &ws); /* zz 1 fits width 2: 2 + 2 */
        assert_int_equal(w.pos, 15);
}

static void i64_roundtrip(const int64_t *v, size_t n, bool dod)
{
        codec_state es = {0}, ds = {0};
        bitw w;
        bitr r;

        bitw_init(&w, buf, BUF_BYTES * 8, 0);
        for (size_t i = 0; i < n; i++)
                codec_put_i64(&w, &es, v[i], dod);
        assert_false(w.overflow);
        bitr_init(&r, buf, w.pos);
        for (size_t i = 0; i < n; i++) {
                int64_t got = codec_get_i64(&r, &ds, dod);

                if (got != v[i])
                        fail_msg("i64 %s #%zu: got %lld want %lld", dod ? "dod" : "delta", i,
                                 (long long)got, (long long)v[i]);
        }
        assert_false(r.err);
        assert_int_equal(r.pos, w.pos);
}

static void test_i64_edges(void **state)
{
        static const int64_t t[] = {
            INT64_MIN,     INT64_MAX,    INT64_MIN, 0,  -1, INT64_MAX, INT64_MAX, 1,
            INT64_MIN,     INT64_MIN,    42,        42, 43, -43,       0,         0,
            INT64_MAX - 1, INT64_MIN + 1};
        static const int64_t one[] = {INT64_MIN};
        static const int64_t counter[] = {3243480, 3256015, 3268333, 3280653,     3292900,
                                          3305100, 3305100, 3305100, 9000000000LL};

        (void)state;
        for (int dod = 0; dod <= 1; dod++) {
                i64_roundtrip(t, sizeof(t) / sizeof(t[0]), dod);
                i64_roundtrip(one, 1, dod);
                i64_roundtrip(counter, sizeof(counter) / sizeof(counter[0]), dod);
        }
}

static void test_i64_random(void **state)
{
        enum { N = 50000 };
        static int64_t v[N];

        (void)state;
        for (unsigned seed = 1; seed <= 4; seed++) {
                rng_state = seed;
                int64_t x = 0;

                for (size_t i = 0; i < N; i++) {
                        switch (rng() % 4) {
                        case 0: /* small random walk */
                                x += (int64_t)(rng() % 7) - 3;
                                break;
                        case 1: /* any 64-bit value */
                                x = (int64_t)rng();
                                break;
                        case 2: /* value of random width */
                                x = (int64_t)(rng() >> (rng() % 64));
                                break;
                        default: /* repeat */
                                break;
                        }
                        v[i] = x;
                }
                i64_roundtrip(v, N, false);
                i64_roundtrip(v, N, true);
        }
}

static size_t f64_roundtrip(const double *v, size_t n)
{
        codec_state es = {0}, ds = {0};
        bitw w;
        bitr r;

        bitw_init(&w, buf, BUF_BYTES * 8, 0);
        for (size_t i = 0; i < n; i++)
                codec_put_f64(&w, &es, v[i]);
        assert_false(w.overflow);
        bitr_init(&r, buf, w.pos);
        for (size_t i = 0; i < n; i++) {
                double got = codec_get_f64(&r, &ds);

                if (dbits(got) != dbits(v[i]))
                        fail_msg("f64 #%zu: got %016llx want %016llx (%.17g)", i,
                                 (unsigned long long)dbits(got), (unsigned long long)dbits(v[i]),
                                 v[i]);
        }
        assert_false(r.err);
        assert_int_equal(r.pos, w.pos);
        return w.pos;
}

static void test_f64_edges(void **state)
{
        double t[] = {
            0.0,
            -0.0,
            0.0,
            -0.0,
            -0.0,
            INFINITY,
            -INFINITY,
            NAN,
            bdbl(UINT64_C(0x7ff8000000000001)), /* quiet NaN, payload 1 */
            bdbl(UINT64_C(0x7ff0000000000001)), /* signalling NaN */
            bdbl(UINT64_C(0xfff8dead0000beef)), /* negative NaN with payload */
            bdbl(UINT64_C(0x7ff8000000000001)),
            DBL_MIN,
            DBL_TRUE_MIN,
            -DBL_TRUE_MIN,
            DBL_MAX,
            -DBL_MAX,
            1.0,
            87.958,
            93.039,
            97.223,
            97.223,
            130.435,
            0.1,
            0.25,
            1e300,
            9007199254740993.0, /* beyond the decimal mantissa range */
            -9007199254740992.0,
            123456.7,
            1.5e-7,
            1e-8,
            3.14159265358979,
            0.0,
        };
        const double one[] = {-0.0};

        (void)state;
        f64_roundtrip(t, sizeof(t) / sizeof(t[0]));
        f64_roundtrip(one, 1);
}

static void test_f64_random(void **state)
{
        enum { N = 50000 };
        static double v[N];

        (void)state;
        for (unsigned seed = 1; seed <= 4; seed++) {
                double x = 100.0;

                rng_state = seed * 7919;
                for (size_t i = 0; i < N; i++) {
                        switch (rng() % 5) {
                        case 0: /* any bit pattern, NaNs and denormals included */
                                x = bdbl(rng());
                                break;
                        case 1: /* milli-unit readings (power in W from mW) */
                                x = (double)(int64_t)(rng() % 700000) / 1000.0;
                                break;
                        case 2: /* readings with a random number of decimals */
                                x = (double)(int64_t)(rng() % 100000000) /
                                    pow(10.0, (double)(rng() % 9));
                                break;
                        case 3: /* a random walk of doubles */
                                x = x + (double)((int64_t)(rng() % 2001) - 1000) * 0.37;
                                break;
                        default:
                                break;
                        }
                        v[i] = x;
                }
                f64_roundtrip(v, N);
        }
}

static void test_f64_decimal_is_compact(void **state)
{
        /* Power in W as the sampler makes it (mW / 1000.0): the decimal path keeps it near the
         * cost of the integer milliwatt delta, far below Gorilla XOR on such values. */
        enum { N = 1000 };
        static double v[N];
        size_t bits;

        (void)state;
        rng_state = 99;
        int64_t mw = 300000;

        for (size_t i = 0; i < N; i++) {
                mw += (int64_t)(rng() % 2001) - 1000;
                v[i] = (double)mw / 1000.0;
        }
        bits = f64_roundtrip(v, N);
        assert_true(bits < (size_t)N * 16);
}

static void test_dec_repr(void **state)
{
        int64_t m;

        (void)state;
        assert_true(codec_dec_repr(87.958, 3, &m));
        assert_int_equal(m, 87958);
        assert_false(codec_dec_repr(87.958, 2, &m));
        assert_true(codec_dec_repr(42.0, 0, &m));
        assert_int_equal(m, 42);
        assert_false(codec_dec_repr(-0.0, 0, &m));
        assert_true(codec_dec_repr(0.0, 0, &m));
        assert_false(codec_dec_repr(NAN, 0, &m));
        assert_false(codec_dec_repr(INFINITY, 0, &m));
        assert_false(codec_dec_repr(1e300, 0, &m));
        assert_false(codec_dec_repr(1.0, CODEC_DEC_EMAX + 1, &m));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_bits_roundtrip),
            cmocka_unit_test(test_bits_overflow),
            cmocka_unit_test(test_zigzag),
            cmocka_unit_test(test_int_code),
            cmocka_unit_test(test_i64_edges),
            cmocka_unit_test(test_i64_random),
            cmocka_unit_test(test_f64_edges),
            cmocka_unit_test(test_f64_random),
            cmocka_unit_test(test_f64_decimal_is_compact),
            cmocka_unit_test(test_dec_repr),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
