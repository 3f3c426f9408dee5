/* test_webconfig.c — exporter-toolkit web-config.yml: the accepted schema, every refusal with its
 * line, exporter-toolkit's own test files (tests/data/exporter-toolkit) with the meaning of the
 * errors its tests expect, inline PEM and client_allowed_sans into the TLS settings, bcrypt basic
 * auth ($2a$/$2b$/$2y$, wrong password, unknown user and its decoy cost, malformed headers, the
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
#include <crypt.h>
#include <pthread.h>
#include <unistd.h>

#include "security/gate_config.h"
#include "security/tls.h"
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
            {"rate_limit:\n  interval: 1\n", "web.yml:2: rate_limit.interval: '1' has no unit"},
            {"rate_limit:\n  interval: soon\n", "not a duration"},
            {"rate_limit:\n  burst: -1\n", "rate_limit.burst: expected 0 to"},
            {"rate_limit:\n  every: 1s\n", "rate_limit: unknown key 'every'"},
            {"rate_limit: 5\n", "rate_limit: expected a mapping"},
            {"rate_limit: {}\nrate_limit: {}\n", "web.yml:2: 'rate_limit' given twice"},
            {"tls_server_config:\n  cert_file: a\n", "missing one of key or key_file"},
            {"tls_server_config:\n  key: |\n    PEM\n", "missing one of cert or cert_file"},
            {"tls_server_config:\n  cert_file: ''\n  key_file: ''\n  client_auth_type: x\n",
             "web.yml:2: tls_server_config: missing one of cert or cert_file"},
            {"tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: x\n",
             "web.yml:4: client_auth_type: unknown value 'x'"},
            {"tls_server_config:\n  cert_file: a\n  cert: |\n    PEM\n  key_file: b\n",
             "both cert_file and cert are given"},
            {"tls_server_config:\n  cert_file: a\n  key: k\n  key_file: b\n",
             "both key_file and key are given"},
            {"tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca: c\n"
             "  client_ca_file: d\n  client_auth_type: RequestClientCert\n",
             "both client_ca_file and client_ca"},
            {"tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca: c\n",
             "client CA is configured without a client_auth_type"},
            {"tls_server_config:\n  cert_file: a\n  key_file: b\n  client_allowed_sans: [x]\n",
             "client_allowed_sans needs a client_auth_type"},
            {"tls_server_config:\n  cert_file: a\n  key_file: b\n"
             "  client_auth_type: RequireAnyClientCert\n  client_allowed_sans: []\n",
             "web.yml:5: client_allowed_sans: an empty list"},
            {"tls_server_config:\n  client_allowed_sans: [x]\n", "without TLS"},
            {"tls_server_config:\n  cert_file: a\n  key_file: b\n"
             "  client_auth_type: RequireAnyClientCert\n  client_allowed_sans: [[x]]\n",
             "web.yml:5: client_allowed_sans: expected a string"},
            {"basic_auth_users:\n  alice: "
             "$2y$03$iUIS4sWgyi3Cv/QNjjCQ8ehmnVipn9mEdhs4BUQsMCCT.i0Q8UEN.\n",
             "bcrypt cost outside 4 to 31"},
            {"tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS11\n",
             "web.yml:4: min_version: 'TLS11' is not served"},
            {"tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS13\n"
             "  max_version: TLS12\n",
             "min_version is above max_version"},
            {"tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Maybe\n",
             "unknown value 'Maybe'"},
            {"tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n",
             "without a client_auth_type"},
            {"tls_server_config:\n  cert_file: a\n  key_file: b\n"
             "  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n",
             "web.yml:4: cipher_suites: 'TLS_RSA_WITH_AES_128_CBC_SHA' is not served"},
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
        assert_int_equal(basic_auth_new(w, 0, &b), 0);
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

/* ---- exporter-toolkit's own test files (tests/data/exporter-toolkit, from web/testdata) ---- */

static char *data_path(const char *name)
{
        const char *src = getenv("VIGIL_SOURCE_DIR");
        char *p = NULL;

        if (asprintf(&p, "%s/tests/data/exporter-toolkit/%s", src ? src : ".", name) < 0)
                return NULL;
        return p;
}

static char *slurp(const char *name)
{
        char *path = data_path(name), *buf = NULL;
        FILE *f = path ? fopen(path, "r") : NULL;
        size_t n;

        assert_non_null(f);
        buf = calloc(1, 1 << 16);
        assert_non_null(buf);
        n = fread(buf, 1, (1 << 16) - 1, f);
        buf[n] = '\0';
        fclose(f);
        free(path);
        return buf;
}

/* webconfig_load, then the TLS settings as the daemon builds them (files read, pair checked) */
static int load_all(const char *name, webconfig **w, char *err, size_t errlen)
{
        char *path = data_path(name);
        security_config sc = {0};
        tls_options o;
        tls_settings *st = NULL;
        int r = webconfig_load(path, w, err, errlen);

        free(path);
        if (r < 0)
                return r;
        r = tls_options_from_config(&sc, *w, name, &o, err, errlen);
        if (r == 1) {
                r = tls_settings_new(&o, &st, err, errlen);
                tls_settings_free(st);
        }
        return r < 0 ? r : 0;
}

static void t_upstream_files(void **state)
{
        static const struct {
                const char *file;
                const char *want; /* NULL: accepted; else a substring of the refusal */
        } cases[] = {
            /* TestYAMLFiles, in its order, with the meaning of its expected errors */
            {"web_config_empty.yml", NULL},
            {"web_config_junk.yml", "expected a mapping at the top level"},
            {"web_config_junk_key.yml", "unknown key 'cert_filse'"},
            {"web_config_noAuth_certPath_empty.bad.yml", "missing one of cert or cert_file"},
            {"web_config_noAuth_cert_empty.bad.yml", "missing one of cert or cert_file"},
            {"web_config_noAuth_keyPath_empty.bad.yml", "missing one of key or key_file"},
            {"web_config_noAuth_key_empty.bad.yml", "missing one of key or key_file"},
            {"web_config_noAuth_certPath_keyPath_empty.bad.yml",
             "missing one of cert or cert_file"},
            {"web_config_noAuth_certPath_invalid.bad.yml", "No such file"},
            {"web_config_noAuth_keyPath_invalid.bad.yml", "No such file"},
            {"web_config_noAuth_certPath_keyPath_invalid.bad.yml", "No such file"},
            {"web_config_noAuth.bad.yml", "client CA is configured without a client_auth_type"},
            {"web_config_auth_clientCAs_invalid.bad.yml", "without a client_auth_type"},
            {"web_config_auth_user_list_invalid.bad.yml", "'john': not a bcrypt hash"},
            {"web_config_noAuth_inventedCiphers.bad.yml", "is not served"},
            {"web_config_noAuth_inventedCurves.bad.yml", "is not a known curve"},
            {"web_config_noAuth_wrongTLSVersion.bad.yml", "unknown TLS version 'TLS111'"},
            /* TestServerBehaviour's files that need no certificate */
            {"web_config_headers.good.yml", NULL},
            {"web_config_headers_content_type_options.bad.yml", "invalid value"},
            {"web_config_headers_frame_options.bad.yml", "invalid value"},
            {"web_config_headers_extra_header.bad.yml", "'Content-Type' is not an allowed"},
            {"web_config_rate_limiter_nonblocking.yaml", NULL},
            {"web_config_rate_limiter_one_second.yaml", NULL},
            {"web_config_users_noTLS.good.yml", NULL},
            /* upstream's server.crt is RSA with keyUsage keyEncipherment only: Go serves it to
             * TLS 1.2 RSA key exchange; GnuTLS (TLS 1.3, ECDHE) cannot, and vigild says so */
            {"web_config_noAuth_tlsInline.good.yml",
             "certificate (inline cert) has keyUsage keyEncipherment without digitalSignature"},
            {"tls_config_noAuth.requireanyclientcertkeyinline.good.yml",
             "has keyUsage keyEncipherment without digitalSignature"},
            {"tls_config_noAuth.requireanyclientcert.good.yml",
             "has keyUsage keyEncipherment without digitalSignature"},
            {"web_config_auth_client_san.good.yaml", "keyUsage keyEncipherment"},
            /* a cipher vigild does not offer (CBC, RSA key exchange) */
            {"web_config_noAuth_allCiphers.good.yml", "is not served"},
        };
        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                webconfig *w = NULL;
                char err[512] = "";
                int r = load_all(cases[i].file, &w, err, sizeof(err));
                bool ok = cases[i].want ? r < 0 && strstr(err, cases[i].want) : r == 0;
                if (!ok) {
                        print_error("%s: r=%d err='%s' want %s\n", cases[i].file, r, err,
                                    cases[i].want ? cases[i].want : "success");
                        fail();
                }
                webconfig_free(w);
        }
}

/* What the accepted upstream files mean once parsed. */
static void t_upstream_meaning(void **state)
{
        webconfig *w = NULL;
        char err[512] = "", *path;

        (void)state;
        path = data_path("web_config_rate_limiter_one_second.yaml");
        assert_int_equal(webconfig_load(path, &w, err, sizeof(err)), 0);
        assert_int_equal(w->rl_interval_us, 1000000);
        assert_int_equal(w->rl_burst, 0);
        w = webconfig_free(w);
        free(path);

        path = data_path("web_config_rate_limiter_nonblocking.yaml");
        assert_int_equal(webconfig_load(path, &w, err, sizeof(err)), 0);
        assert_int_equal(w->rl_interval_us, 0);
        w = webconfig_free(w);
        free(path);

        path = data_path("web_config_auth_client_san.good.yaml");
        assert_int_equal(webconfig_load(path, &w, err, sizeof(err)), 0);
        assert_int_equal(w->n_sans, 3);
        assert_string_equal(w->sans[1], "test3");
        assert_int_equal(w->client_auth, WC_REQUIRE_AND_VERIFY);
        assert_non_null(strstr(w->client_ca_file, "/client2_selfsigned.pem"));
        w = webconfig_free(w);
        free(path);

        path = data_path("web_config_noAuth_tlsInline.good.yml");
        assert_int_equal(webconfig_load(path, &w, err, sizeof(err)), 0);
        assert_true(w->tls);
        assert_null(w->cert_file);
        assert_non_null(strstr(w->cert_pem, "-----BEGIN CERTIFICATE-----\nMIIFsDCC"));
        assert_non_null(strstr(w->key_pem, "PRIVATE KEY-----"));
        w = webconfig_free(w);
        free(path);

        /* client_ca_file is optional where Go allows it: RequireAnyClientCert (and Go's old name
         * RequireClientCert) and RequestClientCert need none; the verifying kinds use the
         * system's CAs without one, as Go does (upstream's "good" and "blocking" files) */
        static const char *const no_ca[] = {"tls_config_noAuth.requireanyclientcert.good.yml",
                                            "web_config_noAuth.good.yml",
                                            "web_config_noAuth.good.blocking.yml"};
        for (size_t i = 0; i < sizeof(no_ca) / sizeof(no_ca[0]); i++) {
                path = data_path(no_ca[i]);
                assert_int_equal(webconfig_load(path, &w, err, sizeof(err)), 0);
                assert_true(w->tls);
                assert_null(w->client_ca_file);
                w = webconfig_free(w);
                free(path);
        }
        assert_int_equal(parse("tls_server_config:\n  cert_file: a\n  key_file: b\n"
                               "  client_auth_type: RequireClientCert\n",
                               &w, err, sizeof(err)),
                         0);
        assert_int_equal(w->client_auth, WC_REQUIRE_ANY_CLIENT_CERT);
        w = webconfig_free(w);
}

/* Inline PEM served: a certificate without keyUsage (upstream's client_selfsigned pair) as the
 * server's, as text in the YAML and as files; a key that is not the certificate's refused. */
static void t_inline_pem(void **state)
{
        char *cert = slurp("client_selfsigned.pem"), *key = slurp("client_selfsigned.key");
        char *ca = slurp("client2_selfsigned.pem"), *y = NULL, err[512] = "";
        char *indented[3] = {NULL, NULL, NULL};
        const char *src[3] = {cert, key, ca};
        security_config sc = {0};
        webconfig *w = NULL;
        tls_options o;
        tls_settings *st = NULL;

        (void)state;
        for (int i = 0; i < 3; i++) { /* a YAML block scalar: every line indented by 4 */
                size_t n = 0;
                indented[i] = calloc(1, strlen(src[i]) * 2 + 8);
                assert_non_null(indented[i]);
                for (const char *c = src[i]; *c; c++) {
                        if (c == src[i] || c[-1] == '\n')
                                n += (size_t)snprintf(indented[i] + n, 8, "    ");
                        indented[i][n++] = *c;
                }
        }
        assert_true(asprintf(&y,
                             "tls_server_config:\n  cert: |\n%s  key: |\n%s  client_ca: |\n%s"
                             "  client_auth_type: RequireAndVerifyClientCert\n"
                             "  client_allowed_sans: [test3]\n",
                             indented[0], indented[1], indented[2]) > 0);
        assert_int_equal(parse(y, &w, err, sizeof(err)), 0);
        assert_string_equal(w->cert_pem, cert);
        assert_string_equal(w->key_pem, key);
        assert_string_equal(w->client_ca_pem, ca);
        assert_int_equal(tls_options_from_config(&sc, w, "web.yml", &o, err, sizeof(err)), 1);
        assert_int_equal(o.n_sans, 1);
        assert_int_equal(tls_settings_new(&o, &st, err, sizeof(err)), 0);
        st = tls_settings_free(st);
        /* the key of another certificate */
        free(w->key_pem);
        w->key_pem = slurp("client2_selfsigned.key");
        assert_int_equal(tls_options_from_config(&sc, w, "web.yml", &o, err, sizeof(err)), 1);
        assert_int_equal(tls_settings_new(&o, &st, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "key (inline key) does not match certificate (inline cert)"));
        /* a CA that is no PEM */
        free(w->key_pem);
        w->key_pem = strdup(key);
        free(w->client_ca_pem);
        w->client_ca_pem = strdup("not a certificate\n");
        assert_int_equal(tls_options_from_config(&sc, w, "web.yml", &o, err, sizeof(err)), 1);
        assert_int_equal(tls_settings_new(&o, &st, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "CA (inline client_ca) holds no PEM certificate"));
        webconfig_free(w);
        free(y);
        for (int i = 0; i < 3; i++)
                free(indented[i]);
        free(cert);
        free(key);
        free(ca);
}

/* Unknown names cost what the file's users cost: each name always the same cost, drawn from
 * the users' costs. */
static void t_decoy_costs(void **state)
{
        const char *y = "basic_auth_users:\n  alice: " H_ALICE "\n"
                        "  dave: $2y$05$d1RMvOPBW1VCc3FW//PpJ.xd/ky3cbLOeDYEEyN/CBWcDrzXi1OcS\n";
        webconfig *w = NULL;
        basic_auth *b = NULL;
        char err[256], name[32], user[WEBCONFIG_MAX_USER];
        const char *why;
        unsigned seen[32] = {0};

        (void)state;
        assert_int_equal(parse(y, &w, err, sizeof(err)), 0);
        assert_int_equal(basic_auth_new(w, 0, &b), 0);
        webconfig_free(w);
        for (int i = 0; i < 200; i++) {
                unsigned c;
                snprintf(name, sizeof(name), "user%d", i);
                c = basic_auth_decoy_cost(b, name);
                assert_true(c == 4 || c == 5);
                assert_int_equal(basic_auth_decoy_cost(b, name), c);
                seen[c]++;
        }
        assert_true(seen[4] > 40 && seen[5] > 40); /* 200 draws of a fair coin */
        /* and the decoy really is verified, and never matches */
        assert_int_equal(check(b, "user1:decoy", 1, user, &why), -EACCES);
        assert_string_equal(why, "unknown_user");
        assert_int_equal(basic_auth_bcrypt_runs(b), 1);
        basic_auth_free(b);
}

/* One bcrypt slot: while a slow verification holds it, another answers -EBUSY at once, and a
 * cached success still passes. */
struct slow_arg {
        basic_auth *b;
        int r;
};

static void *slow_check(void *p)
{
        struct slow_arg *a = p;
        char user[WEBCONFIG_MAX_USER];
        const char *why;

        a->r = check(a->b, "carol:wrong", 1, user, &why);
        return NULL;
}

static void t_bcrypt_slots(void **state)
{
        /* carol: cost 13 (about half a second), so the slot is seen busy */
        static char y[640];
        webconfig *w = NULL;
        basic_auth *b = NULL;
        char err[256], user[WEBCONFIG_MAX_USER], salt[CRYPT_GENSALT_OUTPUT_SIZE];
        struct crypt_data cd = {0};
        const char *why;
        struct slow_arg a = {.r = 1};
        pthread_t th;

        (void)state;
        assert_non_null(crypt_gensalt_rn("$2b$", 13, NULL, 0, salt, sizeof(salt)));
        assert_non_null(crypt_rn("pw", salt, &cd, sizeof(cd)));
        snprintf(y, sizeof(y), "basic_auth_users:\n  alice: %s\n  carol: %s\n", H_ALICE, cd.output);
        assert_int_equal(parse(y, &w, err, sizeof(err)), 0);
        assert_int_equal(basic_auth_new(w, 1, &b), 0);
        webconfig_free(w);
        assert_int_equal(check(b, "alice:s3cret", 1, user, &why), 0); /* now cached */
        a.b = b;
        assert_int_equal(pthread_create(&th, NULL, slow_check, &a), 0);
        for (int i = 0; i < 10000 && !basic_auth_busy(b); i++)
                usleep(1000);
        assert_int_equal(basic_auth_busy(b), 1);
        assert_int_equal(check(b, "alice:wrong", 1, user, &why), -EBUSY);
        assert_string_equal(why, "busy");
        assert_int_equal(check(b, "nobody:x", 1, user, &why), -EBUSY);
        assert_int_equal(check(b, "alice:s3cret", 2, user, &why), 0); /* the cache needs no slot */
        pthread_join(th, NULL);
        assert_int_equal(a.r, -EACCES);
        assert_int_equal(basic_auth_busy(b), 0);
        assert_int_equal(check(b, "alice:wrong", 3, user, &why), -EACCES); /* free again */
        basic_auth_free(b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(t_full_file),      cmocka_unit_test(t_refusals),
            cmocka_unit_test(t_basic_auth),     cmocka_unit_test(t_audit_scrub),
            cmocka_unit_test(t_upstream_files), cmocka_unit_test(t_upstream_meaning),
            cmocka_unit_test(t_inline_pem),     cmocka_unit_test(t_decoy_costs),
            cmocka_unit_test(t_bcrypt_slots),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
