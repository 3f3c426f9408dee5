/* tls.c — HTTPS settings, their hot swap and the client-certificate policy (see tls.h). The
 * settings a handshake or a request sees are one immutable tls_settings (certificate pair,
 * client-auth policy, CA trust list, protocol versions, headers); a reload prepares a new one and
 * tls_apply swaps the pointer, as node_exporter re-reads its web config per connection. Every
 * settings object ever applied stays allocated until tls_free: a handshake in flight may still
 * use the previous one, and reloads are rare. */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "common/fileio.h"
#include "common/macros.h"

#define MAX_CHAIN    8
#define TLS_FILE_MAX (1 << 20) /* bytes of a certificate, key or CA file */

struct pair {
        gnutls_pcert_st pcert[MAX_CHAIN]; /* the chain */
        unsigned n;                       /* certificates in pcert */
        gnutls_privkey_t key;             /* the private key */
};

struct tls_settings {
        struct pair *pair;                /* the certificate chain and key served */
        enum tls_client_auth client_auth; /* policy */
        bool min_tls13, max_tls12;        /* protocol bounds, checked per handshake */
        char *ca_pem;                     /* CA PEM text, or NULL */
        gnutls_x509_trust_list_t trust;   /* from ca_pem, or NULL */
        char *hdr[TLS_MAX_HEADERS][2];    /* extra response headers */
        size_t n_hdr;
        char *sans[TLS_MAX_SANS]; /* client_allowed_sans */
        size_t n_sans;
        struct tls_settings *older; /* applied before this one (kept until tls_free) */
};

struct tls_ctx {
        char *priority;       /* owned; what libmicrohttpd was given: TLS 1.2 and 1.3 */
        pthread_mutex_t lock; /* guards cur */
        struct tls_settings *cur;
};

static tls_ctx *the_ctx; /* for the GnuTLS callbacks */

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

/* The leaf certificate's keyUsage must allow digitalSignature when it has a keyUsage at all:
 * every handshake vigild offers (TLS 1.3, and ECDHE in TLS 1.2) is signed with the key, and
 * GnuTLS refuses to sign with a certificate that forbids it, so such a listener would drop every
 * handshake. (Go still serves an RSA keyEncipherment-only certificate to TLS 1.2 clients through
 * the RSA key exchange, which vigild does not offer.) */
static int check_key_usage(const gnutls_datum_t *der, const char *what, char *err, size_t errlen)
{
        gnutls_x509_crt_t crt;
        unsigned usage = 0, critical = 0;
        int r;

        if (gnutls_x509_crt_init(&crt) < 0)
                return -ENOMEM;
        r = gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER);
        if (r >= 0)
                r = gnutls_x509_crt_get_key_usage(crt, &usage, &critical);
        gnutls_x509_crt_deinit(crt);
        if (r == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
                return 0; /* no keyUsage extension: any use */
        if (r < 0) {
                snprintf(err, errlen, "certificate %s: cannot read its key usage: %s", what,
                         gnutls_strerror(r));
                return -EINVAL;
        }
        if (!(usage & GNUTLS_KEY_DIGITAL_SIGNATURE)) {
                snprintf(err, errlen,
                         "certificate %s has keyUsage%s%s without digitalSignature: TLS 1.3 and "
                         "ECDHE handshakes are signed with the key, so GnuTLS cannot serve it "
                         "(every handshake would fail); reissue it with keyUsage "
                         "digitalSignature",
                         what, usage & GNUTLS_KEY_KEY_ENCIPHERMENT ? " keyEncipherment" : "",
                         usage & ~GNUTLS_KEY_KEY_ENCIPHERMENT ? " (and others)" : "");
                return -EINVAL;
        }
        return 0;
}

/* The pair from files or inline PEM text (web-config `cert`/`key`); what names either in
 * messages. */
static int pair_load(const tls_options *o, struct pair **ret, char *err, size_t errlen)
{
        _cleanup_free_ char *cert_buf = NULL, *key_buf = NULL;
        const char *cert, *key;
        char cert_what[300], key_what[300];
        struct pair *p;
        gnutls_datum_t cd, kd;
        size_t len;
        int r;

        if (o->cert_pem && *o->cert_pem) {
                cert = o->cert_pem;
                snprintf(cert_what, sizeof(cert_what), "(inline cert)");
        } else {
                if ((r = file_read_all(o->cert_file, TLS_FILE_MAX, &cert_buf, &len)) < 0) {
                        file_read_strerror(r, "certificate", o->cert_file, TLS_FILE_MAX, err,
                                           errlen);
                        return r;
                }
                cert = cert_buf;
                snprintf(cert_what, sizeof(cert_what), "'%s'", o->cert_file);
        }
        if (o->key_pem && *o->key_pem) {
                key = o->key_pem;
                snprintf(key_what, sizeof(key_what), "(inline key)");
        } else {
                if ((r = file_read_all(o->key_file, TLS_FILE_MAX, &key_buf, &len)) < 0) {
                        file_read_strerror(r, "key", o->key_file, TLS_FILE_MAX, err, errlen);
                        return r;
                }
                key = key_buf;
                snprintf(key_what, sizeof(key_what), "'%s'", o->key_file);
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
                snprintf(err, errlen, "%s is not a PEM certificate chain: %s", cert_what,
                         gnutls_strerror(r));
                return -EINVAL;
        }
        if ((r = check_key_usage(&p->pcert[0].cert, cert_what, err, errlen)) < 0) {
                pair_free(p);
                return r;
        }
        if (gnutls_privkey_init(&p->key) < 0 ||
            (r = gnutls_privkey_import_x509_raw(p->key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
                pair_free(p);
                snprintf(err, errlen, "%s is not a PEM private key", key_what);
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
                        snprintf(err, errlen, "key %s does not match certificate %s", key_what,
                                 cert_what);
                        return -EINVAL;
                }
        }
        *ret = p;
        return 0;
}

static bool needs_ca(enum tls_client_auth a)
{
        return a == TLS_CLIENT_REQUEST || a == TLS_CLIENT_REQUIRE ||
               a == TLS_CLIENT_REQUIRE_VERIFY || a == TLS_CLIENT_VERIFY_IF_GIVEN;
}

tls_settings *tls_settings_free(tls_settings *st)
{
        if (!st)
                return NULL;
        pair_free(st->pair);
        if (st->trust)
                gnutls_x509_trust_list_deinit(st->trust, 1);
        free(st->ca_pem);
        for (size_t i = 0; i < st->n_sans; i++)
                free(st->sans[i]);
        for (size_t i = 0; i < st->n_hdr; i++) {
                free(st->hdr[i][0]);
                free(st->hdr[i][1]);
        }
        free(st);
        return NULL;
}

int tls_settings_new(const tls_options *o, tls_settings **ret, char *err, size_t errlen)
{
        tls_settings *st;
        int r;

        bool have_ca = (o->ca_file && *o->ca_file) || (o->ca_pem && *o->ca_pem);

        if ((!o->cert_file || !*o->cert_file) && (!o->cert_pem || !*o->cert_pem)) {
                snprintf(err, errlen, "TLS needs a certificate (cert_file)");
                return -EINVAL;
        }
        if ((!o->key_file || !*o->key_file) && (!o->key_pem || !*o->key_pem)) {
                snprintf(err, errlen, "TLS needs a key (key_file)");
                return -EINVAL;
        }
        if (needs_ca(o->client_auth) && !have_ca && !o->system_ca) {
                snprintf(err, errlen, "client_auth needs ca_file");
                return -EINVAL;
        }
        if (o->min_tls13 && o->max_tls12) {
                snprintf(err, errlen, "min_version TLS13 is above max_version TLS12");
                return -EINVAL;
        }
        if (o->n_sans > TLS_MAX_SANS) {
                snprintf(err, errlen, "more than %d client_allowed_sans", TLS_MAX_SANS);
                return -EINVAL;
        }
        st = calloc(1, sizeof(*st));
        if (!st)
                return -ENOMEM;
        st->client_auth = o->client_auth;
        st->min_tls13 = o->min_tls13;
        st->max_tls12 = o->max_tls12;
        r = pair_load(o, &st->pair, err, errlen);
        if (r < 0)
                goto fail;
        if (have_ca && o->client_auth != TLS_CLIENT_NONE) {
                gnutls_datum_t d;
                size_t len;
                char what[300];
                if (o->ca_pem && *o->ca_pem) {
                        snprintf(what, sizeof(what), "(inline client_ca)");
                        st->ca_pem = strdup(o->ca_pem);
                        r = st->ca_pem ? 0 : -ENOMEM;
                } else {
                        snprintf(what, sizeof(what), "'%s'", o->ca_file);
                        r = file_read_all(o->ca_file, TLS_FILE_MAX, &st->ca_pem, &len);
                        if (r < 0)
                                file_read_strerror(r, "CA", o->ca_file, TLS_FILE_MAX, err, errlen);
                }
                if (r < 0)
                        goto fail;
                d = (gnutls_datum_t){(unsigned char *)st->ca_pem, (unsigned)strlen(st->ca_pem)};
                if (gnutls_x509_trust_list_init(&st->trust, 0) < 0) {
                        r = -ENOMEM;
                        goto fail;
                }
                r = gnutls_x509_trust_list_add_trust_mem(st->trust, &d, NULL, GNUTLS_X509_FMT_PEM,
                                                         0, 0);
                if (r <= 0) {
                        snprintf(err, errlen, "CA %s holds no PEM certificate", what);
                        r = -EINVAL;
                        goto fail;
                }
        }
        if (needs_ca(o->client_auth) && !have_ca) {
                /* Go's tls.Config with no ClientCAs verifies against the system's roots */
                if (gnutls_x509_trust_list_init(&st->trust, 0) < 0) {
                        r = -ENOMEM;
                        goto fail;
                }
                r = gnutls_x509_trust_list_add_system_trust(st->trust, 0, 0);
                if (r < 0) {
                        snprintf(err, errlen,
                                 "cannot load the system's CA certificates to verify clients "
                                 "(%s); give client_ca_file",
                                 gnutls_strerror(r));
                        r = -EINVAL;
                        goto fail;
                }
        }
        for (size_t i = 0; i < o->n_sans; i++) {
                if (!(st->sans[i] = strdup(o->sans[i]))) {
                        r = -ENOMEM;
                        goto fail;
                }
                st->n_sans++;
        }
        for (size_t i = 0; i < o->n_headers && i < TLS_MAX_HEADERS; i++) {
                st->hdr[i][0] = strdup(o->headers[i][0]);
                st->hdr[i][1] = strdup(o->headers[i][1]);
                st->n_hdr++;
                if (!st->hdr[i][0] || !st->hdr[i][1]) {
                        r = -ENOMEM;
                        goto fail;
                }
        }
        *ret = st;
        return 0;
fail:
        tls_settings_free(st);
        return r;
}

/* The settings handshakes and requests use now; never freed before tls_free. */
static const tls_settings *current(tls_ctx *t)
{
        const tls_settings *st;

        pthread_mutex_lock(&t->lock);
        st = t->cur;
        pthread_mutex_unlock(&t->lock);
        return st;
}

/* Verify the peer's chain against the CA of st: true when it verifies. */
static bool peer_verifies(const tls_settings *st, gnutls_session_t s)
{
        const gnutls_datum_t *raw;
        gnutls_x509_crt_t crts[MAX_CHAIN];
        unsigned n = 0, k = 0, status = 1;

        if (!st->trust)
                return false;
        raw = gnutls_certificate_get_peers(s, &n);
        if (!raw || !n)
                return false;
        for (; k < n && k < MAX_CHAIN; k++)
                if (gnutls_x509_crt_init(&crts[k]) < 0 ||
                    gnutls_x509_crt_import(crts[k], &raw[k], GNUTLS_X509_FMT_DER) < 0) {
                        gnutls_x509_crt_deinit(crts[k]);
                        break;
                }
        if (k == MIN(n, (unsigned)MAX_CHAIN) &&
            gnutls_x509_trust_list_verify_crt(st->trust, crts, k, 0, &status, NULL) < 0)
                status = 1;
        for (unsigned i = 0; i < k; i++)
                gnutls_x509_crt_deinit(crts[i]);
        return status == 0;
}

/* Whether the peer's leaf certificate carries one of st's client_allowed_sans, compared as Go's
 * exporter-toolkit does: DNS names, e-mail addresses, IP addresses (Go's text form) and URIs
 * as strings. True when no SANs are configured. */
static bool peer_san_ok(const tls_settings *st, gnutls_session_t s)
{
        const gnutls_datum_t *raw;
        gnutls_x509_crt_t crt;
        unsigned n = 0;
        bool ok = false;

        if (!st->n_sans)
                return true;
        raw = gnutls_certificate_get_peers(s, &n);
        if (!raw || !n || gnutls_x509_crt_init(&crt) < 0)
                return false;
        if (gnutls_x509_crt_import(crt, &raw[0], GNUTLS_X509_FMT_DER) < 0) {
                gnutls_x509_crt_deinit(crt);
                return false;
        }
        for (unsigned seq = 0; !ok; seq++) {
                char buf[1100], ip[INET6_ADDRSTRLEN];
                size_t len = sizeof(buf) - 1;
                const char *v = buf;
                int type = gnutls_x509_crt_get_subject_alt_name(crt, seq, buf, &len, NULL);
                if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
                        break;
                if (type < 0)
                        continue; /* too long or unreadable: cannot match */
                if (type == GNUTLS_SAN_IPADDRESS) {
                        static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0,    0,
                                                                   0, 0, 0, 0, 0xff, 0xff};
                        if (len == 16 && !memcmp(buf, v4mapped, 12)) /* Go prints these as v4 */
                                v = inet_ntop(AF_INET, buf + 12, ip, sizeof(ip));
                        else if (len == 4 || len == 16)
                                v = inet_ntop(len == 4 ? AF_INET : AF_INET6, buf, ip, sizeof(ip));
                        else
                                continue;
                } else if (type == GNUTLS_SAN_DNSNAME || type == GNUTLS_SAN_RFC822NAME ||
                           type == GNUTLS_SAN_URI) {
                        buf[len] = '\0';
                        if (strlen(buf) != len)
                                continue;
                } else {
                        continue;
                }
                for (size_t i = 0; v && i < st->n_sans && !ok; i++)
                        ok = !strcmp(v, st->sans[i]);
        }
        gnutls_x509_crt_deinit(crt);
        return ok;
}

/* In the handshake, once the client's Certificate arrived: RequireAndVerifyClientCert needs a
 * chain that verifies against the CA of the running settings, VerifyClientCertIfGiven one that
 * verifies when given, and client_allowed_sans a leaf that carries one of them (Go's
 * VerifyPeerCertificate: "bad certificate"). */
static int verify_cb(gnutls_session_t s)
{
        const tls_settings *st;
        unsigned n = 0;

        if (!the_ctx)
                return GNUTLS_E_CERTIFICATE_ERROR;
        st = current(the_ctx);
        if (!gnutls_certificate_get_peers(s, &n) || n == 0)
                return st->client_auth == TLS_CLIENT_REQUIRE_VERIFY ||
                               st->client_auth == TLS_CLIENT_REQUIRE_ANY ||
                               st->client_auth == TLS_CLIENT_REQUIRE
                           ? GNUTLS_E_CERTIFICATE_ERROR
                           : 0;
        if ((st->client_auth == TLS_CLIENT_REQUIRE_VERIFY ||
             st->client_auth == TLS_CLIENT_VERIFY_IF_GIVEN ||
             st->client_auth == TLS_CLIENT_REQUEST) &&
            !peer_verifies(st, s))
                return GNUTLS_E_CERTIFICATE_ERROR;
        return peer_san_ok(st, s) ? 0 : GNUTLS_E_CERTIFICATE_ERROR;
}

static int cert_cb(gnutls_session_t s, const gnutls_datum_t *req_ca_rdn, int nreqs,
                   const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                   gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
        const tls_settings *st;
        gnutls_protocol_t v = gnutls_protocol_get_version(s);

        (void)req_ca_rdn;
        (void)nreqs;
        (void)pk_algos;
        (void)pk_algos_length;
        if (!the_ctx)
                return -1;
        st = current(the_ctx);
        /* libmicrohttpd was given both versions; the running settings' bounds apply here, once
         * the version is negotiated, so a reload can move them. */
        if ((st->min_tls13 && v != GNUTLS_TLS1_3) || (st->max_tls12 && v == GNUTLS_TLS1_3))
                return -1;
        /* Called while the ClientHello is processed, before the CertificateRequest is sent:
         * the place to turn libmicrohttpd's "request" into Go's handshake-time requirements. */
        switch (st->client_auth) {
        case TLS_CLIENT_REQUEST:
        case TLS_CLIENT_VERIFY_IF_GIVEN:
        case TLS_CLIENT_REQUIRE:
        case TLS_CLIENT_ASK_ANY:
                gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUEST);
                break;
        case TLS_CLIENT_REQUIRE_ANY:
                gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
                break;
        case TLS_CLIENT_REQUIRE_VERIFY:
                gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
                break;
        default:
                gnutls_certificate_server_set_request(s, GNUTLS_CERT_IGNORE);
                break;
        }
        /* web-config's client_auth_type checks happen in the handshake, as Go does them */
        if (st->client_auth == TLS_CLIENT_REQUIRE_VERIFY ||
            st->client_auth == TLS_CLIENT_VERIFY_IF_GIVEN ||
            (st->n_sans && st->client_auth != TLS_CLIENT_NONE))
                gnutls_session_set_verify_function(s, verify_cb);
        *pcert = st->pair->pcert;
        *pcert_length = st->pair->n;
        *pkey = st->pair->key;
        return 0;
}

int tls_new(const tls_options *o, tls_ctx **ret, char *err, size_t errlen)
{
        tls_settings *st = NULL;
        tls_ctx *t;
        int r;

        if (the_ctx)
                return -EBUSY;
        r = tls_settings_new(o, &st, err, errlen);
        if (r < 0)
                return r;
        t = calloc(1, sizeof(*t));
        if (!t || !(t->priority = strdup(tls_priority(false, false)))) {
                free(t);
                tls_settings_free(st);
                return -ENOMEM;
        }
        pthread_mutex_init(&t->lock, NULL);
        t->cur = st;
        the_ctx = t;
        *ret = t;
        return 0;
}

void tls_apply(tls_ctx *t, tls_settings *st)
{
        pthread_mutex_lock(&t->lock);
        st->older = t->cur;
        t->cur = st;
        pthread_mutex_unlock(&t->lock);
}

tls_ctx *tls_free(tls_ctx *t)
{
        if (!t)
                return NULL;
        if (the_ctx == t)
                the_ctx = NULL;
        for (tls_settings *st = t->cur, *next; st; st = next) {
                next = st->older;
                tls_settings_free(st);
        }
        free(t->priority);
        pthread_mutex_destroy(&t->lock);
        free(t);
        return NULL;
}

void tls_params(tls_ctx *t, tls_server_params *out)
{
        out->priority = t->priority;
        out->cert_callback = (void *)cert_cb;
        out->ca_pem = NULL; /* client certificates: asked in cert_cb, verified against cur */
}

bool tls_session_client_ok(tls_ctx *t, void *gnutls_session)
{
        gnutls_session_t s = gnutls_session;
        const tls_settings *st;
        unsigned n = 0;

        if (!t)
                return true;
        st = current(t);
        if (st->client_auth == TLS_CLIENT_NONE)
                return true;
        if (st->client_auth == TLS_CLIENT_ASK_ANY || st->client_auth == TLS_CLIENT_REQUIRE_ANY) {
                /* Go does not verify these (REQUIRE_ANY's handshake needed one); only the SANs */
                if (!st->n_sans)
                        return true;
                return s && gnutls_certificate_get_peers(s, &n) && n && peer_san_ok(st, s);
        }
        if (!s)
                return false;
        if (!gnutls_certificate_get_peers(s, &n) || n == 0)
                return (st->client_auth == TLS_CLIENT_REQUEST ||
                        st->client_auth == TLS_CLIENT_VERIFY_IF_GIVEN) &&
                       !st->n_sans;
        return peer_verifies(st, s) && peer_san_ok(st, s);
}

void tls_each_header(tls_ctx *t, gate_header_fn fn, void *ctx)
{
        const tls_settings *st;

        if (!t)
                return;
        st = current(t);
        /* web-config.yml may have set its own (the gate's headers are added first) */
        fn(ctx, "Strict-Transport-Security", "max-age=31536000", true);
        for (size_t i = 0; i < st->n_hdr; i++)
                fn(ctx, st->hdr[i][0], st->hdr[i][1], false);
}
