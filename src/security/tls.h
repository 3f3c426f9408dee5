/* tls.h — HTTPS settings for the TCP listener: TLS 1.2 and 1.3 only, AEAD ciphers only (a GnuTLS
 * priority string), the certificate pair served through a GnuTLS retrieve callback, the CA for
 * client certificates and the client-auth policy, the protocol bounds and the response headers
 * TLS adds. All of these are one tls_settings: a reload builds a new one (tls_settings_new: a bad
 * certificate, key or CA refuses it) and tls_apply swaps it in, so new connections get the new
 * settings without a restart or a dropped connection.
 * What it is not: the HTTP server's wiring (src/api/https.c hands these to libmicrohttpd and
 * asks tls_session_client_ok on every request, since libmicrohttpd only *requests* a client
 * certificate). One TLS context per process (GnuTLS's retrieve callback has no user pointer).
 * tls_new/tls_apply/tls_free: main thread; the rest: any thread. */
#ifndef VIGIL_SECURITY_TLS_H
#define VIGIL_SECURITY_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "gate.h"

typedef struct tls_ctx tls_ctx;
typedef struct tls_settings tls_settings;

enum tls_client_auth {
        TLS_CLIENT_NONE = 0,    /* no client certificate asked */
        TLS_CLIENT_REQUEST = 1, /* asked; verified when given */
        TLS_CLIENT_REQUIRE = 2, /* a valid certificate from ca_file on every request */
        /* Go's tls.ClientAuthType for web-config.yml (webconfig.h), enforced in the handshake: */
        TLS_CLIENT_ASK_ANY = 3,         /* RequestClientCert: asked, never verified */
        TLS_CLIENT_REQUIRE_ANY = 4,     /* RequireAnyClientCert: handshake needs one, unverified */
        TLS_CLIENT_REQUIRE_VERIFY = 5,  /* RequireAndVerifyClientCert: handshake needs a cert
                                        * that verifies against ca_file; checked per request too */
        TLS_CLIENT_VERIFY_IF_GIVEN = 6, /* VerifyClientCertIfGiven: a cert given must verify in
                                         * the handshake; checked per request too */
};

#define TLS_MAX_HEADERS 16

#define TLS_MAX_SANS 64

typedef struct tls_options {
        const char *cert_file;   /* PEM chain */
        const char *key_file;    /* PEM key */
        const char *ca_file;     /* PEM CA for clients, or NULL/"" */
        const char *cert_pem;    /* the chain as PEM text instead of cert_file, or NULL */
        const char *key_pem;     /* the key as PEM text instead of key_file, or NULL */
        const char *ca_pem;      /* the client CA as PEM text instead of ca_file, or NULL */
        const char *const *sans; /* client_allowed_sans: a client certificate must carry one of
                                  * these subjectAltName values (DNS, e-mail, IP, URI) */
        size_t n_sans;           /* 0: no SAN check */
        bool system_ca;          /* verifying client_auth without a CA: the system's CAs, as Go does
                         * (web-config); false: such a client_auth is refused */
        enum tls_client_auth client_auth;
        bool min_tls13;                          /* refuse TLS 1.2 */
        bool max_tls12;                          /* refuse TLS 1.3 */
        const char *headers[TLS_MAX_HEADERS][2]; /* extra response headers (web-config) */
        size_t n_headers;
} tls_options;

/* What an HTTPS server needs from the context; all borrowed until tls_free. */
typedef struct tls_server_params {
        const char *priority; /* GnuTLS priority string */
        void *cert_callback;  /* a gnutls_certificate_retrieve_function2 serving the current pair */
        const char *ca_pem;   /* CA PEM text for client certificates, or NULL */
} tls_server_params;

/* The GnuTLS priority string for these bounds (exposed for tests and `gnutls-cli --priority X
 * -l`). The listener is given tls_priority(false, false); the bounds are checked per handshake. */
const char *tls_priority(bool min_tls13, bool max_tls12);

/* The context, serving the settings of o. -EBUSY when one exists (one per process). */
int tls_new(const tls_options *o, tls_ctx **ret, char *err, size_t errlen);
/* Read and check everything o names (pair, key matching the certificate, a key usage GnuTLS can
 * serve with, CA) into new settings; caller owns *ret until tls_apply. 0 or -errno with the
 * reason in err. Touches nothing that runs. */
int tls_settings_new(const tls_options *o, tls_settings **ret, char *err, size_t errlen);
tls_settings *tls_settings_free(tls_settings *st);
/* Serve st from the next handshake and request on; t takes st (the previous settings stay
 * allocated for handshakes in flight, until tls_free). Cannot fail. */
void tls_apply(tls_ctx *t, tls_settings *st);
tls_ctx *tls_free(tls_ctx *t);
void tls_params(tls_ctx *t, tls_server_params *out);
/* Whether a connection's GnuTLS session (gnutls_session_t, NULL when unknown) satisfies
 * client_auth and client_allowed_sans. True for NONE, ASK_ANY and REQUIRE_ANY without SANs (the
 * handshake did their part). */
bool tls_session_client_ok(tls_ctx *t, void *gnutls_session);
/* Call fn for HSTS (when absent) and the configured headers. */
void tls_each_header(tls_ctx *t, gate_header_fn fn, void *ctx);

#endif
