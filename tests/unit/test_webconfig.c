/* test_webconfig.c — exporter-toolkit web-config.yml: the accepted schema, every refusal with its
 * line, bcrypt basic auth ($2a$/$2b$/$2y$, wrong password, unknown user, malformed headers, the
 * success cache and its expiry), and the scrubbing of audit bodies. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "security/webconfig.h"
#include "common/base64.h"

/* htpasswd-style hashes at cost 4 (fast tests): alice/s3cret, bob/hunter2 */
#define H_ALICE "$2b$04$iUIS4sWgyi3Cv/QNjjCQ8ehmnVipn9mEdhs4BUQsMCCT.i0Q8UEN."
#define H_BOB_Y "$2y$04$d1RMvOPBW1VCc3FW//PpJ.xd/ky3cbLOeDYEEyN/CBWcDrzXi1OcS"

static int parse(const char *text, webconfig **w, char *err, size_t errlen)
{
        return webconfig_parse("web.yml", "/etc/vigil", text, strlen(text), w, err, errlen);
}

static void t_full_file(void **state)
{
        const char *y = "tls_server_config:\n"
                        "  cert_file: server.pem\n"
                        "  key_file: /abs/server.key\n"
                        "  client_ca_file: ca.pem\n"
                        "  client_auth_type: RequireAndVerifyClientCert\n"
                        "  min_version: TLS13\n"
                        "  max_version: TLS13\n"
                        "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n"
                        "  prefer_server_cipher_suites: true\n"
                        "  curve_preferences: [X25519, CurveP256]\n"
                        "http_server_config:\n"
                        "  http2: false\n"
                        "  headers:\n"
                        "    X-Frame-Options: deny\n"
                        "    strict-transport-security: max-age=60\n"
                        "basic_auth_users:\n"
                        "  alice: " H_ALICE "\n"
                        "  bob: " H_BOB_Y "\n";
        webconfig *w = NULL;
        char err[256] = "";

        (void)state;
        assert_int_equal(parse(y, &w, err, sizeof(err)), 0);
        assert_true(w->tls);
        assert_string_equal(w->cert_file, "/etc/vigil/server.pem");
        assert_string_equal(w->key_file, "/abs/server.key");
        assert_string_equal(w->client_ca_file, "/etc/vigil/ca.pem");
        assert_int_equal(w->client_auth, WC_REQUIRE_AND_VERIFY);
        assert_int_equal(w->min_version, 13);
        assert_false(w->http2);
        assert_int_equal(w->n_headers, 2);
        assert_string_equal(w->headers[1][0], "Strict-Transport-Security"); /* canonical name */
        assert_int_equal(w->n_users, 2);
        assert_string_equal(w->users[1].name, "bob");
        webconfig_free(w);

        /* empty file and empty sections: nothing configured */
        assert_int_equal(parse("", &w, err, sizeof(err)), 0);
        assert_false(w->tls);
        assert_int_equal(w->n_users, 0);
        assert_int_equal(w->min_version, 12);
        assert_int_equal(w->max_version, 13);
        webconfig_free(w);
        assert_int_equal(parse("tls_server_config:\nbasic_auth_users:\n", &w, err, sizeof(err)), 0);
        webconfig_free(w);
}

static void t_refusals(void **state)
{
        static const struct {
                const char *yaml;
                const char *want; /* substring of the error, with the line */
        } cases[] = {
            {"tls_server_config:\n  cert_file: a\n  key_file: b\n  bogus: 1\n",
             "web.yml:4: tls_server_config: unknown key 'bogus'"},
            {"http_server_config:\n  headers:\n    Server: x\n", "web.yml:3: headers: 'Server'"},
            {"http_server_config:\n  headers:\n    X-Frame-Options: allow\n", "web.yml:3:"},
            {"http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n",
             "invalid value"},
            {"http_server_config:\n  spdy: true\n", "web.yml:2: http_server_config: unknown key"},
            {"http_server_config:\n  http2: maybe\n", "expected true or false"},
            {"basic_auth_users:\n  alice: plain\n",
             "web.yml:2: basic_auth_users: 'alice': not a bcrypt"},
            {"basic_auth_users:\n  alice: $1$abc$def\n", "not a bcrypt"},
            {"basic_auth_users:\n  'a:b': " H_ALICE "\n", "without ':'"},
            {"nope: 1\n", "web.yml:1: unknown key 'nope'"},
            {"rate_limit:\n  interval: 1s\n", "rate_limit is not supported"},
            {"tls_server_config:\n  cert_file: a\n", "cert_file and key_file go together"},
            {"tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS11\n",
             "web.yml:4: min_version: 'TLS11' is not served"},
            {"tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS13\n"
             "  max_version: TLS12\n",
             "min_version is above max_version"},
            {"tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Maybe\n",
             "unknown value 'Maybe'"},
            {"tls_server_config:\n  cert_file: a\n  key_file: b\n"
             "  client_auth_type: RequireAndVerifyClientCert\n",
             "needs client_ca_file"},
            {"tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n",
             "client_ca_file without"},
            {"tls_server_config:\n  cert_file: a\n  key_file: b\n"
             "  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n",
             "web.yml:4: cipher_suites: 'TLS_RSA_WITH_AES_128_CBC_SHA' is not served"},
            {"tls_server_config:\n  cert: |\n    PEM\n", "inline PEM is not supported"},
            {"tls_server_config:\n  cert_file: a\n  key_file: b\n  client_allowed_sans: [x]\n",
             "client_allowed_sans is not supported"},
            {"tls_server_config: [1]\n", "expected a mapping"},
            {"- a\n- b\n", "expected a mapping at the top level"},
            {"a: [\n", "web.yml:2:"},
        };
        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                webconfig *w = NULL;
                char err[256] = "";
                int r = parse(cases[i].yaml, &w, err, sizeof(err));
                if (r != -EINVAL || !strstr(err, cases[i].want)) {
                        print_error("case %zu: r=%d err='%s' want '%s'\n", i, r, err,
                                    cases[i].want);
                        fail();
                }
                assert_null(w);
        }
}

/* out holds base64_encoded_len(strlen(s)) + 1 bytes (the callers' 200). */
static const char *b64(const char *s, char *out)
{
        base64_encode(s, strlen(s), BASE64_STD, out, base64_encoded_len(strlen(s), BASE64_STD) + 1);
        return out;
}

static int check(basic_auth *b, const char *userpass, int64_t now, char *user, const char **why)
{
        char hdr[256], enc[200];

        snprintf(hdr, sizeof(hdr), "Basic %s", b64(userpass, enc));
        return basic_auth_check(b, hdr, now, user, WEBCONFIG_MAX_USER, why);
}

static void t_basic_auth(void **state)
{
        const char *y = "basic_auth_users:\n  alice: " H_ALICE "\n  bob: " H_BOB_Y "\n"
                        "  carol: $2a$04$d1RMvOPBW1VCc3FW//PpJ.xd/ky3cbLOeDYEEyN/CBWcDrzXi1OcS\n";
        webconfig *w = NULL;
        basic_auth *b = NULL;
        char err[256], user[WEBCONFIG_MAX_USER];
        const char *why = NULL;
        int64_t t = 1000000;
        uint64_t runs;

        (void)state;
        assert_int_equal(parse(y, &w, err, sizeof(err)), 0);
        assert_int_equal(basic_auth_new(w, &b), 0);
        webconfig_free(w);

        assert_int_equal(check(b, "alice:s3cret", t, user, &why), 0);
        assert_string_equal(user, "alice");
        assert_int_equal(check(b, "bob:hunter2", t, user, &why), 0);   /* $2y$ */
        assert_int_equal(check(b, "carol:hunter2", t, user, &why), 0); /* $2a$ */
        assert_int_equal(check(b, "alice:wrong", t, user, &why), -EACCES);
        assert_string_equal(why, "bad_password");
        assert_int_equal(check(b, "alice:s3cretX", t, user, &why), -EACCES);
        assert_int_equal(check(b, "alice:", t, user, &why), -EACCES);
        assert_int_equal(check(b, "mallory:s3cret", t, user, &why), -EACCES);
        assert_string_equal(why, "unknown_user");
        assert_int_equal(check(b, "ALICE:s3cret", t, user, &why), -EACCES); /* names are exact */
        /* a password with a colon: split at the first one */
        assert_int_equal(check(b, "alice:s3cret:x", t, user, &why), -EACCES);

        /* malformed */
        assert_int_equal(basic_auth_check(b, "Bearer abc", t, user, sizeof(user), &why), -EINVAL);
        assert_string_equal(why, "not_basic");
        assert_int_equal(basic_auth_check(b, "Basic !!!!", t, user, sizeof(user), &why), -EINVAL);
        assert_int_equal(basic_auth_check(b, "Basic YWxpY2U=", t, user, sizeof(user), &why),
                         -EINVAL); /* "alice", no colon */
        assert_int_equal(basic_auth_check(b, "Basic YWxp", t, user, sizeof(user), &why), -EINVAL);
        assert_int_equal(basic_auth_check(b, "Basic", t, user, sizeof(user), &why), -EINVAL);
        {
                char big[2048];
                memset(big, 'A', sizeof(big) - 1);
                big[0] = 'B', big[1] = 'a', big[2] = 's', big[3] = 'i', big[4] = 'c', big[5] = ' ';
                big[sizeof(big) - 1] = '\0';
                assert_int_equal(basic_auth_check(b, big, t, user, sizeof(user), &why), -EINVAL);
        }

        /* the cache: a success is remembered for a minute, failures never */
        runs = basic_auth_bcrypt_runs(b);
        assert_int_equal(check(b, "alice:s3cret", t + 1000, user, &why), 0);
        assert_int_equal(basic_auth_bcrypt_runs(b), runs);
        assert_int_equal(check(b, "alice:wrong", t + 1000, user, &why), -EACCES);
        assert_int_equal(basic_auth_bcrypt_runs(b), runs + 1);
        assert_int_equal(check(b, "alice:s3cret", t + BASIC_AUTH_CACHE_US + 1, user, &why), 0);
        assert_int_equal(basic_auth_bcrypt_runs(b), runs + 2);
        basic_auth_free(b);
}

static void t_audit_scrub(void **state)
{
        static const struct {
                const char *in;
                const char *want;
        } cases[] = {
            {"{\"gpu\":0,\"xid\":79}", "{\"gpu\": 0, \"xid\": 79}"},
            {"{\"jti\":\"j1\",\"token\":\"eyJ.x.y\"}", "\"token\": \"<redacted>\""},
            {"{\"a\":{\"Password\":\"p\",\"api_key\":\"k\",\"n\":[{\"client_secret\":\"s\"}]}}",
             "<redacted>"},
            {"password=hunter2", "<non-JSON body, 16 bytes>"},
            {"", "<non-JSON body, 0 bytes>"},
            {"{\"x\":1,\"x\":2}", "<non-JSON body"},
        };
        char out[AUDIT_BODY_MAX + 64];

        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                audit_body_scrub(cases[i].in, strlen(cases[i].in), out, sizeof(out));
                if (!strstr(out, cases[i].want) && strcmp(out, cases[i].want)) {
                        /* jansson's compact output has no spaces */
                        char want[256];
                        size_t k = 0;
                        for (const char *p = cases[i].want; *p && k < sizeof(want) - 1; p++)
                                if (!(*p == ' ' && p > cases[i].want &&
                                      (p[-1] == ':' || p[-1] == ',')))
                                        want[k++] = *p;
                        want[k] = '\0';
                        if (!strstr(out, want)) {
                                print_error("case %zu: '%s' → '%s'\n", i, cases[i].in, out);
                                fail();
                        }
                }
                assert_null(strstr(out, "hunter2"));
                assert_null(strstr(out, "eyJ"));
                assert_null(strstr(out, "\"k\""));
        }
        /* size cap */
        {
                size_t n = 3 * AUDIT_BODY_MAX;
                char *big = malloc(n + 16);
                assert_non_null(big);
                memcpy(big, "{\"v\":\"", 6);
                memset(big + 6, 'a', n);
                memcpy(big + 6 + n, "\"}", 3);
                audit_body_scrub(big, strlen(big), out, sizeof(out));
                assert_true(strlen(out) <= AUDIT_BODY_MAX + 20);
                assert_non_null(strstr(out, "...(truncated)"));
                free(big);
        }
        /* a small output buffer is never overrun */
        audit_body_scrub("{\"a\":\"0123456789012345678901234567890\"}", 38, out, 24);
        assert_true(strlen(out) < 24);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(t_full_file),
            cmocka_unit_test(t_refusals),
            cmocka_unit_test(t_basic_auth),
            cmocka_unit_test(t_audit_scrub),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
