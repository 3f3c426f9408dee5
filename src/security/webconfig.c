/* webconfig.c — exporter-toolkit web-config.yml parsing, bcrypt basic authentication with a
 * short cache and bounded bcrypt slots, and audit-body scrubbing (see webconfig.h). The YAML is
 * loaded as a document by common/yamldoc.c and walked key by key, so each key is one line and
 * every refusal can point at its line. */
#include "webconfig.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include <jansson.h>
#include <yaml.h>

#include "common/base64.h"
#include "common/fileio.h"
#include "common/macros.h"
#include "common/ossl_dl.h"
#include "common/vtime.h"
#include "common/yamldoc.h"

/* ---- parsing ---- */

struct wp {
        ydoc *d;
        const char *dir; /* base for relative paths, or NULL */
        webconfig *w;
};

#define fail(p, n, ...) ydoc_fail((p)->d, (n), -EINVAL, __VA_ARGS__)

static const char *scalar(const yaml_node_t *n)
{
        return ydoc_scalar(n);
}

/* "key:" with nothing after it: a null, as Go's YAML reads it. */
static bool is_null(const yaml_node_t *n)
{
        const char *s = scalar(n);

        return s && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
               (!*s || !strcmp(s, "~") || !strcmp(s, "null"));
}

static int want_scalar(struct wp *p, const yaml_node_t *n, const char *key, const char **ret)
{
        const char *s = scalar(n);

        if (!s)
                return fail(p, n, "%s: expected a string", key);
        if (strlen(s) != n->data.scalar.length)
                return fail(p, n, "%s: NUL byte in value", key);
        *ret = s;
        return 0;
}

static int want_bool(struct wp *p, const yaml_node_t *n, const char *key, bool *ret)
{
        const char *s = scalar(n);

        if (s && (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")))
                *ret = true;
        else if (s && (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")))
                *ret = false;
        else
                return fail(p, n, "%s: expected true or false", key);
        return 0;
}

/* A string kept as given ("" = not given, as exporter-toolkit reads an empty value). */
static int want_text(struct wp *p, const yaml_node_t *n, const char *key, char **ret)
{
        const char *s;
        int r = want_scalar(p, n, key, &s);

        if (r < 0)
                return r;
        free(*ret);
        *ret = NULL;
        if (!*s)
                return 0;
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

/* A path as given, or joined to the web-config file's directory when relative (as
 * exporter-toolkit does). */
static int want_path(struct wp *p, const yaml_node_t *n, const char *key, char **ret)
{
        const char *s;
        char *v;
        int r = want_scalar(p, n, key, &s);

        if (r < 0)
                return r;
        free(*ret);
        *ret = NULL;
        if (!*s)
                return 0;
        if (s[0] == '/' || !p->dir || !*p->dir)
                v = strdup(s);
        else if (asprintf(&v, "%s/%s", p->dir, s) < 0)
                v = NULL;
        if (!v)
                return -ENOMEM;
        *ret = v;
        return 0;
}

static int parse_version(struct wp *p, const yaml_node_t *n, const char *key, unsigned *ret)
{
        const char *s;
        int r = want_scalar(p, n, key, &s);

        if (r < 0)
                return r;
        if (!strcmp(s, "TLS12"))
                *ret = 12;
        else if (!strcmp(s, "TLS13"))
                *ret = 13;
        else if (!strcmp(s, "TLS10") || !strcmp(s, "TLS11"))
                return fail(p, n, "%s: '%s' is not served: vigild speaks TLS 1.2 and 1.3 only", key,
                            s);
        else
                return fail(p, n, "%s: unknown TLS version '%s' (TLS12 or TLS13)", key, s);
        return 0;
}

static const char *const client_auth_names[] = {
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
};

const char *webconfig_client_auth_name(enum webconfig_client_auth a)
{
        return (unsigned)a < ARRAY_SIZE(client_auth_names) ? client_auth_names[a] : "?";
}

/* Go's names of the suites vigild serves anyway (AEAD with ECDHE): accepted. Anything else is
 * refused, since serving it is not possible with our priority string. */
static const char *const aead_suites[] = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
};
static const char *const curves[] = {"CurveP256", "CurveP384", "CurveP521", "X25519"};

static bool in_list(const char *s, const char *const *l, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (!strcmp(s, l[i]))
                        return true;
        return false;
}

static int parse_name_list(struct wp *p, const yaml_node_t *n, const char *key,
                           const char *const *allowed, size_t n_allowed, const char *why)
{
        const yaml_node_t *e;

        if (n->type != YAML_SEQUENCE_NODE)
                return fail(p, n, "%s: expected a list", key);
        YDOC_FOR_ITEMS(p->d, n, e)
        {
                const char *s = scalar(e);
                if (!s)
                        return fail(p, e, "%s: expected names", key);
                if (!in_list(s, allowed, n_allowed))
                        return fail(p, e, "%s: '%s' %s", key, s, why);
        }
        return 0;
}

/* client_allowed_sans: DNS names, e-mail addresses, IP addresses or URIs, compared as strings
 * with the client certificate's subjectAltName entries (tls.c). */
static int parse_sans(struct wp *p, const yaml_node_t *n)
{
        webconfig *w = p->w;
        const yaml_node_t *e;

        if (n->type != YAML_SEQUENCE_NODE)
                return fail(p, n, "client_allowed_sans: expected a list of SAN values");
        YDOC_FOR_ITEMS(p->d, n, e)
        {
                const char *s;
                int r = want_scalar(p, e, "client_allowed_sans", &s);
                if (r < 0)
                        return r;
                if (!*s || strlen(s) > 1024)
                        return fail(p, e, "client_allowed_sans: a SAN value is 1 to 1024 bytes");
                if (w->n_sans == WEBCONFIG_MAX_SANS)
                        return fail(p, e, "client_allowed_sans: more than %d values",
                                    WEBCONFIG_MAX_SANS);
                if (!(w->sans[w->n_sans] = strdup(s)))
                        return -ENOMEM;
                w->n_sans++;
        }
        if (!w->n_sans) /* Go's empty list refuses every certificate: say so instead */
                return fail(p, n, "client_allowed_sans: an empty list would refuse every client");
        return 0;
}

/* Both forms of one setting: exporter-toolkit would take the file and ignore the text. */
static int one_of(struct wp *p, const yaml_node_t *at, const char *file, const void *fv,
                  const char *text, const void *tv)
{
        if (fv && tv)
                return fail(p, at,
                            "tls_server_config: both %s and %s are given; keep one "
                            "(exporter-toolkit would use %s and ignore %s)",
                            file, text, file, text);
        return 0;
}

static int parse_tls(struct wp *p, const yaml_node_t *m)
{
        webconfig *w = p->w;
        const yaml_node_t *kn, *v, *auth = NULL;
        bool enabled, sans_given = false;
        int r;

        if (is_null(m))
                return 0; /* "tls_server_config:" with nothing */
        if (m->type != YAML_MAPPING_NODE)
                return fail(p, m, "tls_server_config: expected a mapping");
        YDOC_FOR_PAIRS(p->d, m, kn, v)
        {
                const char *k = scalar(kn), *s;

                r = 0;
                if (!k)
                        return fail(p, kn, "tls_server_config: keys must be strings");
                if (!strcmp(k, "cert_file"))
                        r = want_path(p, v, k, &w->cert_file);
                else if (!strcmp(k, "key_file"))
                        r = want_path(p, v, k, &w->key_file);
                else if (!strcmp(k, "client_ca_file"))
                        r = want_path(p, v, k, &w->client_ca_file);
                else if (!strcmp(k, "cert"))
                        r = want_text(p, v, k, &w->cert_pem);
                else if (!strcmp(k, "key"))
                        r = want_text(p, v, k, &w->key_pem);
                else if (!strcmp(k, "client_ca"))
                        r = want_text(p, v, k, &w->client_ca_pem);
                else if (!strcmp(k, "client_auth_type")) {
                        if ((r = want_scalar(p, v, k, &s)) < 0)
                                return r;
                        auth = *s ? v : NULL; /* "": NoClientCert, and TLS not implied */
                } else if (!strcmp(k, "min_version"))
                        r = parse_version(p, v, k, &w->min_version);
                else if (!strcmp(k, "max_version"))
                        r = parse_version(p, v, k, &w->max_version);
                else if (!strcmp(k, "cipher_suites"))
                        r = parse_name_list(p, v, k, aead_suites, ARRAY_SIZE(aead_suites),
                                            "is not served: vigild offers AEAD suites with ECDHE "
                                            "only (docs/security.md)");
                else if (!strcmp(k, "curve_preferences"))
                        r = parse_name_list(p, v, k, curves, ARRAY_SIZE(curves),
                                            "is not a known curve");
                else if (!strcmp(k, "prefer_server_cipher_suites")) {
                        bool b;
                        r = want_bool(p, v, k, &b);
                } else if (!strcmp(k, "client_allowed_sans")) {
                        sans_given = true;
                        r = parse_sans(p, v);
                } else
                        return fail(p, kn, "tls_server_config: unknown key '%s'", k);
                if (r < 0)
                        return r;
        }
        if ((r = one_of(p, m, "cert_file", w->cert_file, "cert", w->cert_pem)) < 0 ||
            (r = one_of(p, m, "key_file", w->key_file, "key", w->key_pem)) < 0 ||
            (r = one_of(p, m, "client_ca_file", w->client_ca_file, "client_ca", w->client_ca_pem)) <
                0)
                return r;
        /* exporter-toolkit's TLSConfig.IsEnabled: any certificate, key or CA setting or a
         * client_auth_type turns TLS on, and then the pair must be complete */
        enabled = auth || w->cert_file || w->cert_pem || w->key_file || w->key_pem ||
                  w->client_ca_file || w->client_ca_pem;
        if (!enabled) {
                if (sans_given)
                        return fail(p, m, "tls_server_config: client_allowed_sans without TLS");
                return 0;
        }
        if (!w->cert_file && !w->cert_pem)
                return fail(p, m, "tls_server_config: missing one of cert or cert_file");
        if (!w->key_file && !w->key_pem)
                return fail(p, m, "tls_server_config: missing one of key or key_file");
        w->tls = true;
        if (auth) { /* checked after the pair, as exporter-toolkit does */
                const char *s = scalar(auth);
                size_t i;
                for (i = 0; i < ARRAY_SIZE(client_auth_names); i++)
                        if (!strcmp(s, client_auth_names[i]))
                                break;
                if (!strcmp(s, "RequireClientCert")) /* Go's old name */
                        i = WC_REQUIRE_ANY_CLIENT_CERT;
                if (i == ARRAY_SIZE(client_auth_names))
                        return fail(p, auth,
                                    "client_auth_type: unknown value '%s' (invalid "
                                    "ClientAuth)",
                                    s);
                w->client_auth = (enum webconfig_client_auth)i;
        }
        if (w->min_version > w->max_version)
                return fail(p, m, "tls_server_config: min_version is above max_version");
        if ((w->client_ca_file || w->client_ca_pem) && w->client_auth == WC_NO_CLIENT_CERT)
                return fail(p, m,
                            "tls_server_config: a client CA is configured without a "
                            "client_auth_type (exporter-toolkit: client CA's have been "
                            "configured without a Client Auth Policy)");
        if (w->n_sans && w->client_auth == WC_NO_CLIENT_CERT)
                return fail(p, m,
                            "tls_server_config: client_allowed_sans needs a client_auth_type "
                            "that asks for a client certificate");
        return 0;
}

/* exporter-toolkit's allowlist, with the values it checks. */
static const struct {
        const char *name;
        const char *const *values; /* NULL = any single-line value */
} header_rules[WEBCONFIG_MAX_HEADERS] = {
    {"Strict-Transport-Security", NULL},
    {"X-Frame-Options", (const char *const[]){"deny", "sameorigin", NULL}},
    {"X-Content-Type-Options", (const char *const[]){"nosniff", NULL}},
    {"X-XSS-Protection", NULL},
    {"Content-Security-Policy", NULL},
};

static int parse_headers(struct wp *p, const yaml_node_t *m)
{
        webconfig *w = p->w;
        const yaml_node_t *kn, *v;

        if (m->type != YAML_MAPPING_NODE)
                return fail(p, m, "http_server_config.headers: expected a mapping");
        YDOC_FOR_PAIRS(p->d, m, kn, v)
        {
                const char *k = scalar(kn), *s;
                size_t i;
                int r;

                if (!k)
                        return fail(p, kn, "headers: keys must be strings");
                for (i = 0; i < ARRAY_SIZE(header_rules); i++)
                        if (!strcasecmp(k, header_rules[i].name))
                                break;
                if (i == ARRAY_SIZE(header_rules))
                        return fail(p, kn, "headers: '%s' is not an allowed header", k);
                if ((r = want_scalar(p, v, k, &s)) < 0)
                        return r;
                if (strpbrk(s, "\r\n") || strlen(s) > 1024)
                        return fail(p, v, "headers: '%s' must be one line of at most 1024 bytes",
                                    k);
                if (header_rules[i].values) {
                        bool ok = false;
                        for (const char *const *a = header_rules[i].values; *a; a++)
                                ok = ok || !strcasecmp(s, *a);
                        if (!ok)
                                return fail(p, v, "headers: invalid value '%s' for %s", s,
                                            header_rules[i].name);
                }
                for (size_t j = 0; j < w->n_headers; j++)
                        if (!strcmp(w->headers[j][0], header_rules[i].name))
                                return fail(p, kn, "headers: '%s' given twice", k);
                w->headers[w->n_headers][0] = strdup(header_rules[i].name);
                w->headers[w->n_headers][1] = strdup(s);
                w->n_headers++;
                if (!w->headers[w->n_headers - 1][0] || !w->headers[w->n_headers - 1][1])
                        return -ENOMEM;
        }
        return 0;
}

static int parse_http(struct wp *p, const yaml_node_t *m)
{
        const yaml_node_t *kn, *v;

        if (is_null(m))
                return 0;
        if (m->type != YAML_MAPPING_NODE)
                return fail(p, m, "http_server_config: expected a mapping");
        YDOC_FOR_PAIRS(p->d, m, kn, v)
        {
                const char *k = scalar(kn);
                int r;

                if (!k)
                        return fail(p, kn, "http_server_config: keys must be strings");
                if (!strcmp(k, "http2"))
                        r = want_bool(p, v, k, &p->w->http2);
                else if (!strcmp(k, "headers"))
                        r = parse_headers(p, v);
                else
                        return fail(p, kn, "http_server_config: unknown key '%s'", k);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* rate_limit: {interval: Go duration, burst: N}, one token bucket for the whole listener. An
 * interval of 0 (or none) turns it off, as in exporter-toolkit. */
static int parse_rate_limit(struct wp *p, const yaml_node_t *m)
{
        webconfig *w = p->w;
        const yaml_node_t *kn, *v;

        if (is_null(m))
                return 0;
        if (m->type != YAML_MAPPING_NODE)
                return fail(p, m, "rate_limit: expected a mapping of interval and burst");
        YDOC_FOR_PAIRS(p->d, m, kn, v)
        {
                const char *k = scalar(kn), *s;
                int r;

                if (!k)
                        return fail(p, kn, "rate_limit: keys must be strings");
                if (strcmp(k, "interval") && strcmp(k, "burst"))
                        return fail(p, kn, "rate_limit: unknown key '%s'", k);
                if ((r = want_scalar(p, v, k, &s)) < 0)
                        return r;
                if (!strcmp(k, "burst")) {
                        char *end;
                        unsigned long b;
                        errno = 0;
                        b = strtoul(s, &end, 10);
                        if (!*s || *end || s[0] == '-' || errno || b > 1000000)
                                return fail(p, v, "rate_limit.burst: expected 0 to 1000000");
                        w->rl_burst = (unsigned)b;
                } else if (!strcmp(s, "0")) {
                        w->rl_interval_us = 0;
                } else if (strspn(s, "0123456789") == strlen(s)) {
                        return fail(p, v,
                                    "rate_limit.interval: '%s' has no unit (Go reads a bare "
                                    "number as nanoseconds); write e.g. 1s or 100ms",
                                    s);
                } else if (time_parse_duration(s, &w->rl_interval_us) < 0 ||
                           w->rl_interval_us < 1000 || w->rl_interval_us > 24LL * 3600 * 1000000) {
                        return fail(
                            p, v, "rate_limit.interval: '%s' is not a duration from 1ms to 24h", s);
                }
        }
        return 0;
}

static bool is_bcrypt(const char *h)
{
        /* $2?$NN$ + 53 characters of salt and hash */
        return strlen(h) == 60 && h[0] == '$' && h[1] == '2' &&
               (h[2] == 'a' || h[2] == 'b' || h[2] == 'y') && h[3] == '$' && h[4] >= '0' &&
               h[4] <= '3' && h[5] >= '0' && h[5] <= '9' && h[6] == '$';
}

static int parse_users(struct wp *p, const yaml_node_t *m)
{
        webconfig *w = p->w;
        const yaml_node_t *kn, *v;
        size_t n;

        if (is_null(m))
                return 0;
        if (m->type != YAML_MAPPING_NODE)
                return fail(p, m, "basic_auth_users: expected a mapping of user: bcrypt hash");
        n = (size_t)(m->data.mapping.pairs.top - m->data.mapping.pairs.start);
        if (n > WEBCONFIG_MAX_USERS)
                return fail(p, m, "basic_auth_users: more than %d users", WEBCONFIG_MAX_USERS);
        if (n == 0)
                return 0;
        w->users = calloc(n, sizeof(*w->users));
        if (!w->users)
                return -ENOMEM;
        YDOC_FOR_PAIRS(p->d, m, kn, v)
        {
                const char *k = scalar(kn), *h;
                int r;

                if (!k || !*k || strlen(k) >= WEBCONFIG_MAX_USER || strchr(k, ':') ||
                    strlen(k) != kn->data.scalar.length)
                        return fail(p, kn,
                                    "basic_auth_users: a user name is 1 to %d bytes without ':'",
                                    WEBCONFIG_MAX_USER - 1);
                if ((r = want_scalar(p, v, k, &h)) < 0)
                        return r;
                if (!is_bcrypt(h))
                        return fail(p, v,
                                    "basic_auth_users: '%s': not a bcrypt hash ($2y$, $2b$ or "
                                    "$2a$; htpasswd -nBC 10 \"\" | tr -d ':\\n')",
                                    k);
                if (strtoul(h + 4, NULL, 10) < 4 || strtoul(h + 4, NULL, 10) > 31)
                        return fail(p, v, "basic_auth_users: '%s': bcrypt cost outside 4 to 31", k);
                for (size_t j = 0; j < w->n_users; j++)
                        if (!strcmp(w->users[j].name, k))
                                return fail(p, kn, "basic_auth_users: '%s' given twice", k);
                w->users[w->n_users].name = strdup(k);
                w->users[w->n_users].hash = strdup(h);
                w->n_users++;
                if (!w->users[w->n_users - 1].name || !w->users[w->n_users - 1].hash)
                        return -ENOMEM;
        }
        return 0;
}

static void free_secret(char *s)
{
        if (s)
                explicit_bzero(s, strlen(s));
        free(s);
}

webconfig *webconfig_free(webconfig *w)
{
        if (!w)
                return NULL;
        free(w->cert_file);
        free(w->key_file);
        free(w->client_ca_file);
        free(w->cert_pem);
        free_secret(w->key_pem);
        free(w->client_ca_pem);
        for (size_t i = 0; i < w->n_sans; i++)
                free(w->sans[i]);
        for (size_t i = 0; i < w->n_headers; i++) {
                free(w->headers[i][0]);
                free(w->headers[i][1]);
        }
        for (size_t i = 0; i < w->n_users; i++) {
                free(w->users[i].name);
                free_secret(w->users[i].hash);
        }
        free(w->users);
        free(w);
        return NULL;
}

static const struct {
        const char *name;
        int (*parse)(struct wp *p, const yaml_node_t *v);
} sections[] = {
    {"tls_server_config", parse_tls},
    {"http_server_config", parse_http},
    {"basic_auth_users", parse_users},
    {"rate_limit", parse_rate_limit},
};

static int walk(struct wp *p)
{
        const yaml_node_t *root = ydoc_root(p->d), *kn, *v;
        unsigned seen = 0;
        size_t i;

        if (!root)
                return 0; /* an empty file: nothing configured, like exporter-toolkit */
        if (is_null(root))
                return 0;
        if (root->type != YAML_MAPPING_NODE)
                return fail(p, root, "expected a mapping at the top level");
        YDOC_FOR_PAIRS(p->d, root, kn, v)
        {
                const char *k = scalar(kn);
                int r;

                if (!k)
                        return fail(p, kn, "keys must be strings");
                for (i = 0; i < ARRAY_SIZE(sections); i++)
                        if (!strcmp(k, sections[i].name))
                                break;
                if (i == ARRAY_SIZE(sections))
                        return fail(p, kn, "unknown key '%s'", k);
                if (seen & (1u << i))
                        return fail(p, kn, "'%s' given twice", k);
                seen |= 1u << i;
                r = sections[i].parse(p, v);
                if (r < 0)
                        return r;
        }
        return 0;
}

int webconfig_parse(const char *name, const char *dir, const char *text, size_t len,
                    webconfig **ret, char *err, size_t errlen)
{
        ydoc d;
        struct wp p = {.d = &d, .dir = dir};
        int r;

        if (len > WEBCONFIG_MAX_FILE) {
                snprintf(err, errlen, "%s: larger than %u bytes", name, WEBCONFIG_MAX_FILE);
                return -EINVAL;
        }
        if (memchr(text, '\0', len)) {
                snprintf(err, errlen, "%s: NUL byte in the file", name);
                return -EINVAL;
        }
        p.w = calloc(1, sizeof(*p.w));
        if (!p.w)
                return -ENOMEM;
        p.w->min_version = 12;
        p.w->max_version = 13;
        p.w->http2 = true;
        r = ydoc_load(&d, text, len, name, err, errlen);
        if (r == 0)
                r = walk(&p);
        ydoc_release(&d);
        if (r < 0) {
                webconfig_free(p.w);
                return r;
        }
        *ret = p.w;
        return 0;
}

int webconfig_load(const char *path, webconfig **ret, char *err, size_t errlen)
{
        _cleanup_free_ char *text = NULL, *dir = NULL;
        size_t n = 0;
        char *slash;
        int r = file_read_all(path, WEBCONFIG_MAX_FILE, &text, &n);

        if (r < 0) {
                file_read_strerror(r, "web config", path, WEBCONFIG_MAX_FILE, err, errlen);
                return r;
        }
        dir = strdup(path);
        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (slash)
                *slash = '\0';
        else
                dir[0] = '\0';
        return webconfig_parse(path, slash ? (dir[0] ? dir : "/") : NULL, text, n, ret, err,
                               errlen);
}

/* ---- basic authentication ---- */

struct cache_slot {
        unsigned char key[32]; /* SHA-256(user NUL hash NUL password) */
        int64_t expires;       /* usec, monotonic; 0 = empty */
};

#define BCRYPT_MAX_COST 31

struct basic_auth {
        webconfig_user *users; /* owned copies */
        size_t n_users;
        /* decoy[c]: a bcrypt string of cost c that no password matches (random salt and
         * digest), for every cost a user has; "" otherwise */
        char decoy[BCRYPT_MAX_COST + 1][64];
        unsigned char name_key[32]; /* keys the hash that picks an unknown name's decoy */
        unsigned slots;             /* bcrypt runs at once; 0 = unbounded */
        pthread_mutex_t lock;       /* guards cache, runs and busy */
        struct cache_slot cache[BASIC_AUTH_CACHE_SLOTS];
        uint64_t runs; /* bcrypt computations */
        unsigned busy; /* bcrypt computations running */
};

basic_auth *basic_auth_free(basic_auth *b)
{
        if (!b)
                return NULL;
        for (size_t i = 0; i < b->n_users; i++) {
                free(b->users[i].name);
                free(b->users[i].hash);
        }
        free(b->users);
        pthread_mutex_destroy(&b->lock);
        explicit_bzero(b, sizeof(*b));
        free(b);
        return NULL;
}

static unsigned hash_cost(const char *h)
{
        return (unsigned)strtoul(h + 4, NULL, 10); /* "$2?$NN$": checked by is_bcrypt */
}

/* A bcrypt string of `cost` whose digest is random: verifying any password against it costs
 * what a real hash of that cost costs, and never succeeds. Nothing is computed here, so a high
 * cost does not slow the start. */
static int make_decoy(unsigned cost, char out[64])
{
        static const char alphabet[] =
            "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        char salt[CRYPT_GENSALT_OUTPUT_SIZE];
        unsigned char rnd[31 + 16];
        size_t n;

        if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd) ||
            !crypt_gensalt_rn("$2b$", cost, (const char *)rnd + 31, 16, salt, sizeof(salt)))
                return -EIO;
        n = strlen(salt);
        if (n != 29 || n + 31 >= 64)
                return -EIO;
        memcpy(out, salt, n);
        for (size_t i = 0; i < 31; i++)
                out[n + i] = alphabet[rnd[i] % 64];
        out[n + 31] = '\0';
        return 0;
}

int basic_auth_new(const webconfig *w, unsigned slots, basic_auth **ret)
{
        basic_auth *b = calloc(1, sizeof(*b));
        int r;

        if (!b)
                return -ENOMEM;
        pthread_mutex_init(&b->lock, NULL);
        b->slots = slots;
        if (w->n_users) {
                b->users = calloc(w->n_users, sizeof(*b->users));
                if (!b->users)
                        return basic_auth_free(b), -ENOMEM;
        }
        if (getrandom(b->name_key, sizeof(b->name_key), 0) != sizeof(b->name_key))
                return basic_auth_free(b), -EIO;
        for (size_t i = 0; i < w->n_users; i++) {
                unsigned c = hash_cost(w->users[i].hash);
                b->users[i].name = strdup(w->users[i].name);
                b->users[i].hash = strdup(w->users[i].hash);
                b->n_users++;
                if (!b->users[i].name || !b->users[i].hash)
                        return basic_auth_free(b), -ENOMEM;
                if (c <= BCRYPT_MAX_COST && !b->decoy[c][0] && (r = make_decoy(c, b->decoy[c])) < 0)
                        return basic_auth_free(b), r;
        }
        if (!b->n_users && (r = make_decoy(10, b->decoy[10])) < 0) /* exporter-toolkit's cost */
                return basic_auth_free(b), r;
        *ret = b;
        return 0;
}

uint64_t basic_auth_bcrypt_runs(basic_auth *b)
{
        uint64_t n;

        pthread_mutex_lock(&b->lock);
        n = b->runs;
        pthread_mutex_unlock(&b->lock);
        return n;
}

/* The decoy for an unknown name: that of the cost of the user a keyed hash of the name picks.
 * The same name always costs the same, and unknown names cost what the file's users cost, in
 * the same proportions, so timing tells a name that exists from one that does not no better
 * than chance. */
static const char *decoy_for(basic_auth *b, const char *name)
{
        const ossl_dl *o = ossl_dl_lib();
        unsigned char mac[32];
        unsigned len = sizeof(mac);
        uint64_t v = 0;

        if (!b->n_users)
                return b->decoy[10];
        if (!o || !o->HMAC(o->EVP_sha256(), b->name_key, sizeof(b->name_key),
                           (const unsigned char *)name, strlen(name), mac, &len))
                return b->decoy[hash_cost(b->users[0].hash)];
        for (size_t i = 0; i < 8; i++)
                v = v << 8 | mac[i];
        return b->decoy[hash_cost(b->users[v % b->n_users].hash)];
}

unsigned basic_auth_busy(basic_auth *b)
{
        unsigned n;

        pthread_mutex_lock(&b->lock);
        n = b->busy;
        pthread_mutex_unlock(&b->lock);
        return n;
}

unsigned basic_auth_decoy_cost(basic_auth *b, const char *name)
{
        return hash_cost(decoy_for(b, name));
}

static bool ct_equal_n(const unsigned char *a, const unsigned char *b, size_t n)
{
        unsigned char d = 0;

        for (size_t i = 0; i < n; i++)
                d |= (unsigned char)(a[i] ^ b[i]);
        return d == 0;
}

static bool ct_equal(const char *a, const char *b)
{
        size_t la = strlen(a), lb = strlen(b);

        /* & rather than &&: the bytes are compared whether or not the lengths agree */
        return ct_equal_n((const unsigned char *)a, (const unsigned char *)b, MIN(la, lb)) &
               (la == lb);
}

/* The cache slot's key for (user, hash, password). False when it could not be computed: the
 * caller then neither looks up nor stores (an all-zero key would match every password). */
static bool cache_key(const char *user, const char *hash, const char *pw, size_t pwlen,
                      unsigned char key[32])
{
        const ossl_dl *o = ossl_dl_lib();
        EVP_MD_CTX *c = o ? o->EVP_MD_CTX_new() : NULL;
        unsigned n = 0;
        bool ok;

        memset(key, 0, 32);
        if (!c)
                return false;
        ok = o->EVP_DigestInit_ex(c, o->EVP_sha256(), NULL) == 1 &&
             o->EVP_DigestUpdate(c, user, strlen(user) + 1) == 1 &&
             o->EVP_DigestUpdate(c, hash, strlen(hash) + 1) == 1 &&
             o->EVP_DigestUpdate(c, pw, pwlen) == 1 && o->EVP_DigestFinal_ex(c, key, &n) == 1 &&
             n == 32;
        o->EVP_MD_CTX_free(c);
        return ok;
}

static bool cache_hit(basic_auth *b, const unsigned char key[32], int64_t now)
{
        bool hit = false;

        pthread_mutex_lock(&b->lock);
        for (size_t i = 0; i < ARRAY_SIZE(b->cache) && !hit; i++)
                hit = b->cache[i].expires > now && ct_equal_n(b->cache[i].key, key, 32);
        pthread_mutex_unlock(&b->lock);
        return hit;
}

static void cache_put(basic_auth *b, const unsigned char key[32], int64_t now)
{
        size_t victim = 0;

        pthread_mutex_lock(&b->lock);
        for (size_t i = 0; i < ARRAY_SIZE(b->cache); i++)
                if (b->cache[i].expires < b->cache[victim].expires)
                        victim = i; /* the oldest (or an empty) slot */
        memcpy(b->cache[victim].key, key, 32);
        b->cache[victim].expires = now + BASIC_AUTH_CACHE_US;
        pthread_mutex_unlock(&b->lock);
}

int basic_auth_check(basic_auth *b, const char *header, int64_t now_us, char *user, size_t ulen,
                     const char **reason)
{
        char dec[512];
        const char *p = header, *hash = NULL, *pw, *verify;
        struct crypt_data *cd;
        unsigned char key[32];
        ssize_t n;
        char *colon;
        bool ok, busy, keyed = false;

        if (strncasecmp(p, "Basic", 5) != 0 || (p[5] != ' ' && p[5] != '\t')) {
                *reason = "not_basic";
                return -EINVAL;
        }
        p += 6;
        while (*p == ' ' || *p == '\t')
                p++;
        n = base64_decode(p, strlen(p), BASE64_STD, dec, sizeof(dec)); /* RFC 7617 */
        if (n < 0 || memchr(dec, '\0', (size_t)n) || !(colon = strchr(dec, ':'))) {
                explicit_bzero(dec, sizeof(dec));
                *reason = "malformed";
                return -EINVAL;
        }
        *colon = '\0';
        pw = colon + 1;
        for (size_t i = 0; i < b->n_users && !hash; i++)
                if (!strcmp(b->users[i].name, dec))
                        hash = b->users[i].hash;
        if (hash) {
                keyed = cache_key(dec, hash, pw, strlen(pw), key);
                if (keyed && cache_hit(b, key, now_us)) {
                        snprintf(user, ulen, "%s", dec);
                        explicit_bzero(dec, sizeof(dec));
                        return 0;
                }
        }
        /* A bounded number of bcrypt runs at once, so slow hashes never hold every HTTP
         * thread: the rest answer at once (503) and keep serving cached users and probes. */
        pthread_mutex_lock(&b->lock);
        busy = b->slots && b->busy >= b->slots;
        if (!busy)
                b->busy++;
        pthread_mutex_unlock(&b->lock);
        if (busy) {
                explicit_bzero(dec, sizeof(dec));
                *reason = "busy";
                return -EBUSY;
        }
        cd = calloc(1, sizeof(*cd));
        /* Unknown users are checked against a decoy of a user's cost: both cost one bcrypt. */
        verify = hash ? hash : decoy_for(b, dec);
        ok = cd && crypt_rn(pw, verify, cd, sizeof(*cd)) != NULL && ct_equal(cd->output, verify) &&
             hash != NULL;
        if (cd)
                explicit_bzero(cd, sizeof(*cd));
        free(cd);
        pthread_mutex_lock(&b->lock);
        b->busy--;
        b->runs++;
        pthread_mutex_unlock(&b->lock);
        if (!cd) {
                explicit_bzero(dec, sizeof(dec));
                *reason = "internal";
                return -ENOMEM;
        }
        if (!ok) {
                *reason = hash ? "bad_password" : "unknown_user";
                explicit_bzero(dec, sizeof(dec));
                return -EACCES;
        }
        if (keyed)
                cache_put(b, key, now_us);
        snprintf(user, ulen, "%s", dec);
        explicit_bzero(dec, sizeof(dec));
        return 0;
}

/* ---- audit bodies ---- */

static bool sensitive_key(const char *k)
{
        static const char *const words[] = {"token",      "secret", "password",
                                            "passwd",     "key",    "authorization",
                                            "credential", "cookie", "passphrase"};

        for (size_t i = 0; i < ARRAY_SIZE(words); i++)
                if (strcasestr(k, words[i]))
                        return true;
        return false;
}

#define SCRUB_MAX_DEPTH 64 /* deeper bodies are not recorded at all */

/* Redact sensitive keys at every level. false when the body nests deeper than SCRUB_MAX_DEPTH:
 * then nothing of it may be recorded (a secret below the limit would stay in clear). */
static bool scrub(json_t *j, int depth)
{
        const char *k;
        json_t *v;
        size_t i;
        bool ok = true;

        if (!json_is_object(j) && !json_is_array(j))
                return true;
        if (depth >= SCRUB_MAX_DEPTH)
                return false;
        if (json_is_object(j)) {
                json_object_foreach(j, k, v)
                {
                        if (sensitive_key(k))
                                json_object_set_new(j, k, json_string("<redacted>"));
                        else if (!scrub(v, depth + 1))
                                ok = false;
                }
        } else {
                json_array_foreach(j, i, v) if (!scrub(v, depth + 1)) ok = false;
        }
        return ok;
}

void audit_body_scrub(const char *body, size_t len, char *out, size_t outlen)
{
        json_error_t e;
        json_t *j;
        char *s;
        static const char cut[] = "...(truncated)";

        if (!outlen)
                return;
        out[0] = '\0';
        j = len ? json_loadb(body, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e) : NULL;
        if (!j) {
                snprintf(out, outlen, "<non-JSON body, %zu bytes>", len);
                return;
        }
        if (!scrub(j, 0)) {
                json_decref(j);
                snprintf(out, outlen,
                         "<body nested deeper than %d levels, %zu bytes: not recorded>",
                         SCRUB_MAX_DEPTH, len);
                return;
        }
        s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
        json_decref(j);
        if (!s) {
                snprintf(out, outlen, "<body, %zu bytes>", len);
                return;
        }
        if (strlen(s) > AUDIT_BODY_MAX && outlen > AUDIT_BODY_MAX + sizeof(cut))
                snprintf(out, outlen, "%.*s%s", AUDIT_BODY_MAX, s, cut);
        else if (strlen(s) >= outlen && outlen > sizeof(cut))
                snprintf(out, outlen, "%.*s%s", (int)(outlen - sizeof(cut)), s, cut);
        else
                snprintf(out, outlen, "%s", s);
        free(s);
}
