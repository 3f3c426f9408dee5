/* test_jwt.c — JWT verification table: every refusal case of security-reliability.md §2.2 and
 * the claim checks (exp/nbf/iat with leeway, iss, aud, sub, role, jti), plus roles and bearer
 * parsing. Tokens are built here with OpenSSL HMAC so forged headers (alg none, alg confusion)
 * can be made that libjwt itself would refuse to produce. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "security/auth.h"
#include "common/base64.h"

#define SECRET "0123456789abcdef0123456789abcdef-test-secret"
#define NOW    1700000000LL

static const char rsa_pub[] =
    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAexample\n-----END "
    "PUBLIC KEY-----\n";

/* The callers' buffers are sized for the encoding. */
static void b64url(const unsigned char *in, size_t n, char *out)
{
        base64_encode(in, n, BASE64_URL, out, base64_encoded_len(n, BASE64_URL) + 1);
}

/* header.payload.HMAC-SHA256(key) */
static char *make(const char *hdr, const char *payload, const void *key, size_t keylen)
{
        char *t = malloc(16384), sig[128];
        unsigned char mac[32];
        unsigned ml = 0;
        size_t n;

        b64url((const unsigned char *)hdr, strlen(hdr), t);
        n = strlen(t);
        t[n++] = '.';
        b64url((const unsigned char *)payload, strlen(payload), t + n);
        HMAC(EVP_sha256(), key, (int)keylen, (unsigned char *)t, strlen(t), mac, &ml);
        b64url(mac, ml, sig);
        n = strlen(t);
        snprintf(t + n, 16384 - n, ".%s", sig);
        return t;
}

static auth_jwt_key hs_key(void)
{
        auth_jwt_key k = {.alg = AUTH_ALG_HS256,
                          .key = (unsigned char *)SECRET,
                          .key_len = strlen(SECRET),
                          .issuer = "vigil-test",
                          .audience = "vigild",
                          .leeway_s = 60};
        return k;
}

static char *claims(const char *extra_fmt, ...)
{
        static char b[4096];
        char e[2048];
        va_list ap;

        va_start(ap, extra_fmt);
        vsnprintf(e, sizeof(e), extra_fmt, ap);
        va_end(ap);
        snprintf(b, sizeof(b), "{%s}", e);
        return b;
}

#define STD "\"sub\":\"alice\",\"iss\":\"vigil-test\",\"aud\":\"vigild\",\"jti\":\"j1\""
#define HS  "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

static void t_valid(void **state)
{
        auth_jwt_key k = hs_key();
        auth_claims c;
        const char *why = NULL;
        char *t = make(
            HS, claims(STD ",\"role\":\"operator\",\"iat\":%lld,\"exp\":%lld", NOW, NOW + 3600),
            SECRET, strlen(SECRET));

        (void)state;
        assert_int_equal(auth_jwt_verify(&k, t, strlen(t), NOW, &c, &why), 0);
        assert_string_equal(c.sub, "alice");
        assert_int_equal(c.role, ROLE_OPERATOR);
        assert_string_equal(c.jti, "j1");
        free(t);
}

static void t_negative_table(void **state)
{
        static const char big_key[] = SECRET;
        struct {
                const char *name, *hdr;
                char payload[1024];
                const void *key;
                size_t keylen;
                const char *reason;
        } cases[] = {
            {"expired (exp = now - 61, leeway 60)", HS, "", big_key, 0, "expired"},
            {"nbf in the future beyond leeway", HS, "", big_key, 0, "not_yet_valid"},
            {"iat in the future beyond leeway", HS, "", big_key, 0, "iat_in_future"},
            {"wrong issuer", HS, "", big_key, 0, "bad_issuer"},
            {"wrong audience", HS, "", big_key, 0, "bad_audience"},
            {"alg none", "{\"alg\":\"none\",\"typ\":\"JWT\"}", "", big_key, 0, "alg_none"},
            {"alg confusion: HS256 signed with the RSA public key", HS, "", rsa_pub, 0,
             "bad_signature"},
            {"RS256 header against an HS256 key", "{\"alg\":\"RS256\"}", "", big_key, 0,
             "alg_mismatch"},
            {"wrong signature", HS, "", "another-secret-of-32-bytes-or-more!!", 0, "bad_signature"},
            {"missing role", HS, "", big_key, 0, "missing_role"},
            {"unknown role", HS, "", big_key, 0, "unknown_role"},
            {"missing exp", HS, "", big_key, 0, "missing_exp"},
            {"missing iat", HS, "", big_key, 0, "missing_iat"},
            {"typ not JWT", "{\"alg\":\"HS256\",\"typ\":\"JOSE+XML\"}", "", big_key, 0, "bad_typ"},
            {"crit header", "{\"alg\":\"HS256\",\"crit\":[\"x\"]}", "", big_key, 0,
             "crit_unsupported"},
            {"empty subject", HS, "", big_key, 0, "bad_subject"},
            {"aud array without us", HS, "", big_key, 0, "bad_audience"},
        };
        const char *std_ok = STD ",\"role\":\"admin\"";
        auth_jwt_key k = hs_key();

        (void)state;
        snprintf(cases[0].payload, 1024, "{%s,\"iat\":%lld,\"exp\":%lld}", std_ok, NOW - 4000,
                 NOW - 61);
        snprintf(cases[1].payload, 1024, "{%s,\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld}", std_ok, NOW,
                 NOW + 61, NOW + 999);
        snprintf(cases[2].payload, 1024, "{%s,\"iat\":%lld,\"exp\":%lld}", std_ok, NOW + 61,
                 NOW + 999);
        snprintf(cases[3].payload, 1024,
                 "{\"sub\":\"a\",\"role\":\"admin\",\"iss\":\"evil\",\"aud\":\"vigild\",\"iat\":%"
                 "lld,\"exp\":%lld}",
                 NOW, NOW + 9);
        snprintf(cases[4].payload, 1024,
                 "{\"sub\":\"a\",\"role\":\"admin\",\"iss\":\"vigil-test\",\"aud\":\"other\","
                 "\"iat\":%lld,\"exp\":%lld}",
                 NOW, NOW + 9);
        for (int i = 5; i < 9; i++)
                snprintf(cases[i].payload, 1024, "{%s,\"iat\":%lld,\"exp\":%lld}", std_ok, NOW,
                         NOW + 99);
        snprintf(cases[9].payload, 1024, "{%s,\"iat\":%lld,\"exp\":%lld}", STD, NOW, NOW + 99);
        snprintf(cases[10].payload, 1024, "{%s,\"role\":\"root\",\"iat\":%lld,\"exp\":%lld}", STD,
                 NOW, NOW + 99);
        snprintf(cases[11].payload, 1024, "{%s,\"iat\":%lld}", std_ok, NOW);
        snprintf(cases[12].payload, 1024, "{%s,\"exp\":%lld}", std_ok, NOW + 99);
        for (int i = 13; i < 15; i++)
                snprintf(cases[i].payload, 1024, "{%s,\"iat\":%lld,\"exp\":%lld}", std_ok, NOW,
                         NOW + 99);
        snprintf(cases[15].payload, 1024,
                 "{\"sub\":\"\",\"role\":\"admin\",\"iss\":\"vigil-test\",\"aud\":\"vigild\","
                 "\"iat\":%lld,\"exp\":%lld}",
                 NOW, NOW + 9);
        snprintf(cases[16].payload, 1024,
                 "{\"sub\":\"a\",\"role\":\"admin\",\"iss\":\"vigil-test\",\"aud\":[\"x\",\"y\"],"
                 "\"iat\":%lld,\"exp\":%lld}",
                 NOW, NOW + 9);

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                size_t kl = cases[i].key == rsa_pub ? strlen(rsa_pub) : strlen(cases[i].key);
                char *t = make(cases[i].hdr, cases[i].payload, cases[i].key, kl);
                auth_claims c;
                const char *why = NULL;
                int r = auth_jwt_verify(&k, t, strlen(t), NOW, &c, &why);
                if (r != -EACCES || !why || strcmp(why, cases[i].reason) != 0)
                        fail_msg("case '%s': r=%d reason=%s (expected %s)", cases[i].name, r,
                                 why ? why : "(null)", cases[i].reason);
                free(t);
        }
}

/* Alg confusion against an RS256-configured key: the HS256 header is refused before libjwt. */
static void t_alg_confusion_rs_key(void **state)
{
        auth_jwt_key k = {.alg = AUTH_ALG_RS256,
                          .key = (unsigned char *)rsa_pub,
                          .key_len = strlen(rsa_pub),
                          .leeway_s = 60};
        char p[256];
        char *t;
        auth_claims c;
        const char *why = NULL;

        (void)state;
        snprintf(p, sizeof(p), "{\"sub\":\"x\",\"role\":\"admin\",\"iat\":%lld,\"exp\":%lld}", NOW,
                 NOW + 99);
        t = make(HS, p, rsa_pub, strlen(rsa_pub));
        assert_int_equal(auth_jwt_verify(&k, t, strlen(t), NOW, &c, &why), -EACCES);
        assert_string_equal(why, "alg_mismatch");
        free(t);
}

static void t_leeway_edges(void **state)
{
        auth_jwt_key k = hs_key();
        char p[512];
        auth_claims c;
        const char *why;
        char *t;

        (void)state;
        /* exp = now - 59: inside the 60 s leeway, accepted */
        snprintf(p, sizeof(p), "{%s,\"role\":\"viewer\",\"iat\":%lld,\"exp\":%lld}", STD, NOW - 100,
                 NOW - 59);
        t = make(HS, p, SECRET, strlen(SECRET));
        assert_int_equal(auth_jwt_verify(&k, t, strlen(t), NOW, &c, &why), 0);
        free(t);
        /* nbf = now + 59 accepted */
        snprintf(p, sizeof(p), "{%s,\"role\":\"viewer\",\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld}",
                 STD, NOW, NOW + 59, NOW + 99);
        t = make(HS, p, SECRET, strlen(SECRET));
        assert_int_equal(auth_jwt_verify(&k, t, strlen(t), NOW, &c, &why), 0);
        free(t);
        /* aud as an array containing us */
        snprintf(p, sizeof(p),
                 "{\"sub\":\"a\",\"role\":\"viewer\",\"iss\":\"vigil-test\",\"aud\":[\"x\","
                 "\"vigild\"],\"iat\":%lld,\"exp\":%lld}",
                 NOW, NOW + 99);
        t = make(HS, p, SECRET, strlen(SECRET));
        assert_int_equal(auth_jwt_verify(&k, t, strlen(t), NOW, &c, &why), 0);
        free(t);
}

static void t_shape(void **state)
{
        auth_jwt_key k = hs_key(), nokey = hs_key();
        auth_claims c;
        const char *why;
        char *big = malloc(AUTH_MAX_TOKEN + 2), p[256], *t;
        static const char *const bad[] = {
            "", "a", "a.b", "a.b.c.d", "..", "a..c", "!!!.abc.def", "eyJ.eyJ.", "%%%%.e.e",
        };

        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                why = NULL;
                assert_int_equal(auth_jwt_verify(&k, bad[i], strlen(bad[i]), NOW, &c, &why),
                                 -EACCES);
                assert_non_null(why);
        }
        memset(big, 'A', AUTH_MAX_TOKEN + 1);
        big[AUTH_MAX_TOKEN + 1] = '\0';
        assert_int_equal(auth_jwt_verify(&k, big, strlen(big), NOW, &c, &why), -EACCES);
        assert_string_equal(why, "too_large");
        free(big);
        /* a valid token, truncated */
        snprintf(p, sizeof(p), "{%s,\"role\":\"viewer\",\"iat\":%lld,\"exp\":%lld}", STD, NOW,
                 NOW + 99);
        t = make(HS, p, SECRET, strlen(SECRET));
        assert_int_equal(auth_jwt_verify(&k, t, strlen(t) - 5, NOW, &c, &why), -EACCES);
        /* never a NULL/empty key to libjwt */
        nokey.key = NULL;
        nokey.key_len = 0;
        assert_int_equal(auth_jwt_verify(&nokey, t, strlen(t), NOW, &c, &why), -EACCES);
        assert_string_equal(why, "no_key");
        free(t);
}

static void t_mint_roundtrip(void **state)
{
        auth_jwt_key k = hs_key();
        char *t = NULL, jti[64];
        auth_claims c;
        const char *why;

        (void)state;
        assert_int_equal(auth_jwt_mint((const unsigned char *)SECRET, strlen(SECRET), "bob",
                                       ROLE_ADMIN, NOW, 3600, "vigil-test", "vigild", &t, jti,
                                       sizeof(jti)),
                         0);
        assert_int_equal(auth_jwt_verify(&k, t, strlen(t), NOW, &c, &why), 0);
        assert_string_equal(c.sub, "bob");
        assert_int_equal(c.role, ROLE_ADMIN);
        assert_string_equal(c.jti, jti);
        free(t);
        /* short secrets are refused */
        assert_int_equal(auth_jwt_mint((const unsigned char *)"short", 5, "bob", ROLE_ADMIN, NOW,
                                       60, NULL, NULL, &t, NULL, 0),
                         -EINVAL);
}

static void t_bearer(void **state)
{
        const char *tok;
        size_t n;

        (void)state;
        assert_int_equal(auth_parse_bearer("Bearer abc", &tok, &n), 0);
        assert_int_equal(n, 3);
        assert_int_equal(auth_parse_bearer("bearer   abc  ", &tok, &n), 0);
        assert_int_equal(n, 3);
        assert_int_equal(auth_parse_bearer("Basic abc", &tok, &n), -EINVAL);
        assert_int_equal(auth_parse_bearer("Bearer", &tok, &n), -EINVAL);
        assert_int_equal(auth_parse_bearer("Bearer ", &tok, &n), -EINVAL);
        assert_int_equal(auth_parse_bearer("Bearerabc", &tok, &n), -EINVAL);
        assert_int_equal(auth_parse_bearer("Bearer a b", &tok, &n), -EINVAL);
        assert_int_equal(auth_parse_bearer(NULL, &tok, &n), -EINVAL);
}

static void t_key_load(void **state)
{
        auth_jwt_key k;
        char err[256];

        (void)state;
        assert_int_equal(auth_jwt_key_load("short", NULL, &k, err, sizeof(err)), -EINVAL);
        assert_int_equal(auth_jwt_key_load("", "", &k, err, sizeof(err)), -EINVAL);
        assert_int_equal(auth_jwt_key_load(SECRET, "", &k, err, sizeof(err)), 0);
        assert_int_equal(k.alg, AUTH_ALG_HS256);
        auth_jwt_key_release(&k);
        assert_true(auth_jwt_key_load(NULL, "/nonexistent.pem", &k, err, sizeof(err)) < 0);
}

/* exp/nbf/iat at the ends of int64 and beyond (as doubles): a clean verdict each, no signed
 * overflow. The test_jwt_ubsan target builds this file and auth.c with -fsanitize=undefined
 * -fno-sanitize-recover, so an overflow aborts it. */
static void t_time_extremes(void **state)
{
        static const struct {
                const char *times; /* the time claims, JSON */
                const char *why;   /* NULL: accepted */
        } cases[] = {
            {"\"iat\":1700000000,\"exp\":9223372036854775807", NULL},
            {"\"iat\":1700000000,\"exp\":-9223372036854775808", "expired"},
            {"\"iat\":1700000000,\"exp\":9.3e18", "bad_exp"},
            {"\"iat\":1700000000,\"exp\":-9.3e18", "bad_exp"},
            {"\"iat\":1700000000,\"exp\":1e300", "bad_exp"},
            {"\"iat\":1700000000,\"exp\":9223372036854775807,\"nbf\":-9223372036854775808", NULL},
            {"\"iat\":1700000000,\"exp\":9223372036854775807,\"nbf\":9223372036854775807",
             "not_yet_valid"},
            {"\"iat\":1700000000,\"exp\":9223372036854775807,\"nbf\":9.3e18", "bad_nbf"},
            {"\"iat\":9223372036854775807,\"exp\":9223372036854775807", "iat_in_future"},
            {"\"iat\":-9223372036854775808,\"exp\":9223372036854775807", NULL},
            {"\"iat\":9.3e18,\"exp\":9223372036854775807", "bad_iat"},
        };
        int64_t nows[] = {NOW, INT64_MAX, INT64_MIN, 0};
        auth_jwt_key k = hs_key();

        (void)state;
        for (size_t n = 0; n < sizeof(nows) / sizeof(nows[0]); n++)
                for (int leeway = 0; leeway <= 300; leeway += 300)
                        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                                char p[512];
                                json_error_t e;
                                auth_claims c;
                                const char *why = NULL;
                                json_t *j;
                                int r;

                                snprintf(p, sizeof(p), "{%s,\"role\":\"viewer\",%s}", STD,
                                         cases[i].times);
                                j = json_loads(p, 0, &e);
                                assert_non_null(j);
                                k.leeway_s = leeway;
                                r = auth_check_claims(j, &k, nows[n], &c, &why);
                                json_decref(j);
                                if (nows[n] != NOW)
                                        continue; /* only "no overflow" at absurd clocks */
                                if (!cases[i].why) {
                                        assert_int_equal(r, 0);
                                } else {
                                        assert_int_not_equal(r, 0);
                                        assert_string_equal(why, cases[i].why);
                                }
                        }
        /* and the same through the whole verifier */
        {
                auth_claims c;
                const char *why = NULL;
                char *t = make(HS,
                               claims(STD ",\"role\":\"viewer\",\"iat\":%lld,\"exp\":"
                                          "9223372036854775807,\"nbf\":-9223372036854775808",
                                      NOW),
                               SECRET, strlen(SECRET));
                assert_int_equal(auth_jwt_verify(&k, t, strlen(t), NOW, &c, &why), 0);
                free(t);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(t_valid),
            cmocka_unit_test(t_negative_table),
            cmocka_unit_test(t_alg_confusion_rs_key),
            cmocka_unit_test(t_leeway_edges),
            cmocka_unit_test(t_shape),
            cmocka_unit_test(t_mint_roundtrip),
            cmocka_unit_test(t_bearer),
            cmocka_unit_test(t_key_load),
            cmocka_unit_test(t_time_extremes),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
