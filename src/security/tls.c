/* tls.c — HTTPS settings, certificate hot swap and the client-certificate policy (see tls.h).
 * Every certificate pair ever loaded stays allocated until tls_free: a handshake in flight may
 * still use the previous one, and reloads are rare. */
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "common/macros.h"

#define MAX_CHAIN 8
#define MAX_PAIRS 64 /* reloads kept before refusing more */

struct pair {
        gnutls_pcert_st pcert[MAX_CHAIN]; /* the chain */
        unsigned n;                       /* certificates in pcert */
        gnutls_privkey_t key;             /* the private key */
};

struct tls_ctx {
        char *cert_file, *key_file; /* owned paths */
        char *ca_pem;               /* CA PEM text, owned, or NULL */
        char *priority;             /* owned */
        enum tls_client_auth client_auth;
        char *hdr[TLS_MAX_HEADERS][2]; /* owned */
        size_t n_hdr;
        pthread_mutex_t lock; /* guards pairs/n_pairs/cur */
        struct pair *pairs[MAX_PAIRS];
        size_t n_pairs;
        struct pair *cur; /* served now */
};

static tls_ctx *the_ctx; /* for the GnuTLS callback */

const char *tls_priority(bool min_tls13, bool max_tls12)
{
        if (min_tls13)
                return "NONE:+VERS-TLS1.3:+AEAD:+ECDHE-ECDSA:+ECDHE-RSA:+AES-256-GCM:+AES-128-GCM:"
                       "+CHACHA20-POLY1305:+SIGN-ALL:+GROUP-ALL:+COMP-NULL:+CTYPE-ALL:"
                       "%SERVER_PRECEDENCE";
        if (max_tls12)
                return "NONE:+VERS-TLS1.2:+AEAD:+ECDHE-ECDSA:+ECDHE-RSA:+AES-256-GCM:+AES-128-GCM:"
                       "+CHACHA20-POLY1305:+SIGN-ALL:+GROUP-ALL:+COMP-NULL:+CTYPE-ALL:"
                       "%SERVER_PRECEDENCE";
        return "NONE:+VERS-TLS1.3:+VERS-TLS1.2:+AEAD:+ECDHE-ECDSA:+ECDHE-RSA:+AES-256-GCM:"
               "+AES-128-GCM:+CHACHA20-POLY1305:+SIGN-ALL:+GROUP-ALL:+COMP-NULL:+CTYPE-ALL:"
               "%SERVER_PRECEDENCE";
}

static int read_file(const char *path, char **ret)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        char *b;
        size_t n = 0;

        if (fd < 0)
                return -errno;
        b = malloc(1 << 20);
        if (!b)
                return -ENOMEM;
        for (;;) {
                ssize_t k = read(fd, b + n, (1 << 20) - 1 - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        int e = -errno;
                        free(b);
                        return e;
                }
                if (k == 0)
                        break;
                n += (size_t)k;
                if (n == (1 << 20) - 1) {
                        free(b);
                        return -E2BIG;
                }
        }
        b[n] = '\0';
        *ret = b;
        return 0;
}

static void pair_free(struct pair *p)
{
        if (!p)
                return;
        for (unsigned i = 0; i < p->n; i++)
                gnutls_pcert_deinit(&p->pcert[i]);
        if (p->key)
                gnutls_privkey_deinit(p->key);
        free(p);
}

static int pair_load(const char *cert_file, const char *key_file, struct pair **ret, char *err,
                     size_t errlen)
{
        _cleanup_free_ char *cert = NULL, *key = NULL;
        struct pair *p;
        gnutls_datum_t cd, kd;
        int r;

        if ((r = read_file(cert_file, &cert)) < 0) {
                snprintf(err, errlen, "cannot read certificate '%s': %s", cert_file, strerror(-r));
                return r;
        }
        if ((r = read_file(key_file, &key)) < 0) {
                snprintf(err, errlen, "cannot read key '%s': %s", key_file, strerror(-r));
                return r;
        }
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->n = MAX_CHAIN;
        cd = (gnutls_datum_t){(unsigned char *)cert, (unsigned)strlen(cert)};
        kd = (gnutls_datum_t){(unsigned char *)key, (unsigned)strlen(key)};
        r = gnutls_pcert_list_import_x509_raw(p->pcert, &p->n, &cd, GNUTLS_X509_FMT_PEM, 0);
        if (r < 0 || p->n == 0) {
                p->n = 0;
                pair_free(p);
                snprintf(err, errlen, "'%s' is not a PEM certificate chain: %s", cert_file,
                         gnutls_strerror(r));
                return -EINVAL;
        }
        if (gnutls_privkey_init(&p->key) < 0 ||
            (r = gnutls_privkey_import_x509_raw(p->key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
                pair_free(p);
                snprintf(err, errlen, "'%s' is not a PEM private key", key_file);
                return -EINVAL;
        }
        /* The key must belong to the certificate: sign and verify a probe. */
        {
                gnutls_datum_t data = {(unsigned char *)"vigil", 5}, sig = {0};
                int alg = gnutls_privkey_get_pk_algorithm(p->key, NULL);
                gnutls_sign_algorithm_t sa =
                    gnutls_pk_to_sign((gnutls_pk_algorithm_t)alg, GNUTLS_DIG_SHA256);
                r = gnutls_privkey_sign_data(p->key, GNUTLS_DIG_SHA256, 0, &data, &sig);
                if (r >= 0)
                        r = gnutls_pubkey_verify_data2(p->pcert[0].pubkey, sa, 0, &data, &sig);
                gnutls_free(sig.data);
                if (r < 0) {
                        pair_free(p);
                        snprintf(err, errlen, "key '%s' does not match certificate '%s'", key_file,
                                 cert_file);
                        return -EINVAL;
                }
        }
        *ret = p;
        return 0;
}

static int cert_cb(gnutls_session_t s, const gnutls_datum_t *req_ca_rdn, int nreqs,
                   const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                   gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
        struct pair *p;

        (void)req_ca_rdn;
        (void)nreqs;
        (void)pk_algos;
        (void)pk_algos_length;
        if (!the_ctx)
                return -1;
        /* Called while the ClientHello is processed, before the CertificateRequest is sent:
         * the place to turn libmicrohttpd's "request" into Go's handshake-time requirements. */
        switch (the_ctx->client_auth) {
        case TLS_CLIENT_ASK_ANY:
                gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUEST);
                break;
        case TLS_CLIENT_REQUIRE_ANY:
                gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
                break;
        case TLS_CLIENT_REQUIRE_VERIFY:
                gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
                gnutls_session_set_verify_cert(s, NULL, 0);
                break;
        default:
                break;
        }
        pthread_mutex_lock(&the_ctx->lock);
        p = the_ctx->cur;
        pthread_mutex_unlock(&the_ctx->lock);
        *pcert = p->pcert;
        *pcert_length = p->n;
        *pkey = p->key;
        return 0;
}

static int add_pair(tls_ctx *t, struct pair *p)
{
        int r = 0;

        pthread_mutex_lock(&t->lock);
        if (t->n_pairs == MAX_PAIRS)
                r = -ENOSPC;
        else {
                t->pairs[t->n_pairs++] = p;
                t->cur = p;
        }
        pthread_mutex_unlock(&t->lock);
        return r;
}

static bool needs_ca(enum tls_client_auth a)
{
        return a == TLS_CLIENT_REQUEST || a == TLS_CLIENT_REQUIRE || a == TLS_CLIENT_REQUIRE_VERIFY;
}

int tls_new(const tls_options *o, tls_ctx **ret, char *err, size_t errlen)
{
        tls_ctx *t;
        struct pair *p = NULL;
        int r;

        if (the_ctx)
                return -EBUSY;
        if (!o->cert_file || !*o->cert_file || !o->key_file || !*o->key_file) {
                snprintf(err, errlen, "TLS needs cert_file and key_file");
                return -EINVAL;
        }
        if (needs_ca(o->client_auth) && (!o->ca_file || !*o->ca_file)) {
                snprintf(err, errlen, "client_auth needs ca_file");
                return -EINVAL;
        }
        r = pair_load(o->cert_file, o->key_file, &p, err, errlen);
        if (r < 0)
                return r;
        t = calloc(1, sizeof(*t));
        if (!t) {
                pair_free(p);
                return -ENOMEM;
        }
        pthread_mutex_init(&t->lock, NULL);
        t->cert_file = strdup(o->cert_file);
        t->key_file = strdup(o->key_file);
        t->priority = strdup(tls_priority(o->min_tls13, o->max_tls12));
        t->client_auth = o->client_auth;
        if (o->ca_file && *o->ca_file && o->client_auth != TLS_CLIENT_NONE &&
            (r = read_file(o->ca_file, &t->ca_pem)) < 0) {
                snprintf(err, errlen, "cannot read CA '%s': %s", o->ca_file, strerror(-r));
                pair_free(p);
                tls_free(t);
                return r;
        }
        for (size_t i = 0; i < o->n_headers && i < TLS_MAX_HEADERS; i++) {
                t->hdr[i][0] = strdup(o->headers[i][0]);
                t->hdr[i][1] = strdup(o->headers[i][1]);
                t->n_hdr++;
        }
        add_pair(t, p);
        the_ctx = t;
        *ret = t;
        return 0;
}

int tls_reload(tls_ctx *t, char *err, size_t errlen)
{
        struct pair *p = NULL;
        int r = pair_load(t->cert_file, t->key_file, &p, err, errlen);

        if (r < 0)
                return r;
        r = add_pair(t, p);
        if (r < 0) {
                pair_free(p);
                snprintf(err, errlen, "too many certificate reloads; restart vigild");
        }
        return r;
}

tls_ctx *tls_free(tls_ctx *t)
{
        if (!t)
                return NULL;
        if (the_ctx == t)
                the_ctx = NULL;
        for (size_t i = 0; i < t->n_pairs; i++)
                pair_free(t->pairs[i]);
        for (size_t i = 0; i < t->n_hdr; i++) {
                free(t->hdr[i][0]);
                free(t->hdr[i][1]);
        }
        free(t->cert_file);
        free(t->key_file);
        free(t->ca_pem);
        free(t->priority);
        pthread_mutex_destroy(&t->lock);
        free(t);
        return NULL;
}

void tls_params(tls_ctx *t, tls_server_params *out)
{
        out->priority = t->priority;
        out->cert_callback = (void *)cert_cb;
        out->ca_pem = t->ca_pem;
}

bool tls_session_client_ok(tls_ctx *t, void *gnutls_session)
{
        gnutls_session_t s = gnutls_session;
        unsigned status = 0, n = 0;

        if (!t || t->client_auth == TLS_CLIENT_NONE || t->client_auth == TLS_CLIENT_ASK_ANY ||
            t->client_auth == TLS_CLIENT_REQUIRE_ANY)
                return true; /* Go does not verify these; REQUIRE_ANY's handshake needed one */
        if (!s)
                return false;
        if (!gnutls_certificate_get_peers(s, &n) || n == 0)
                return t->client_auth == TLS_CLIENT_REQUEST;
        if (gnutls_certificate_verify_peers2(s, &status) < 0 || status != 0)
                return false;
        return true;
}

void tls_each_header(tls_ctx *t, gate_header_fn fn, void *ctx)
{
        if (!t)
                return;
        /* web-config.yml may have set its own (the gate's headers are added first) */
        fn(ctx, "Strict-Transport-Security", "max-age=31536000", true);
        for (size_t i = 0; i < t->n_hdr; i++)
                fn(ctx, t->hdr[i][0], t->hdr[i][1], false);
}
