/* tls.h — HTTPS for the TCP listener through libmicrohttpd's GnuTLS: TLS 1.2 and 1.3 only, AEAD
 * ciphers only (a GnuTLS priority string), the certificate served through
 * MHD_OPTION_HTTPS_CERT_CALLBACK so tls_reload can swap it without a restart or a dropped
 * connection (a bad new pair keeps the old one), and optional client certificates against a CA.
 * MHD_OPTION_HTTPS_MEM_TRUST only *requests* a client certificate: tls_client_ok() must be
 * checked on every request (auth_gate does). One TLS context per process (GnuTLS's retrieve
 * callback has no user pointer). */
#ifndef VIGIL_API_TLS_H
#define VIGIL_API_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <microhttpd.h>

typedef struct tls_ctx tls_ctx;

enum tls_client_auth {
        TLS_CLIENT_NONE = 0,    /* no client certificate asked */
        TLS_CLIENT_REQUEST = 1, /* asked; verified when given */
        TLS_CLIENT_REQUIRE = 2, /* a valid certificate from ca_file on every request */
        /* Go's tls.ClientAuthType for web-config.yml (webconfig.h), enforced in the handshake: */
        TLS_CLIENT_ASK_ANY = 3,        /* RequestClientCert: asked, never verified */
        TLS_CLIENT_REQUIRE_ANY = 4,    /* RequireAnyClientCert: handshake needs one, unverified */
        TLS_CLIENT_REQUIRE_VERIFY = 5, /* RequireAndVerifyClientCert: handshake needs a cert
                                        * that verifies against ca_file; checked per request too */
};

#define TLS_MAX_HEADERS 16

typedef struct tls_options {
        const char *cert_file; /* PEM chain */
        const char *key_file;  /* PEM key */
        const char *ca_file;   /* PEM CA for clients, or NULL/"" */
        enum tls_client_auth client_auth;
        bool min_tls13;                          /* refuse TLS 1.2 */
        bool max_tls12;                          /* refuse TLS 1.3 */
        const char *headers[TLS_MAX_HEADERS][2]; /* extra response headers (web-config) */
        size_t n_headers;
} tls_options;

/* The GnuTLS priority string used (exposed for tests and `gnutls-cli --priority X -l`). */
const char *tls_priority(bool min_tls13, bool max_tls12);

int tls_new(const tls_options *o, tls_ctx **ret, char *err, size_t errlen);
/* Re-read cert_file and key_file; on failure the old pair stays served. */
int tls_reload(tls_ctx *t, char *err, size_t errlen);
tls_ctx *tls_free(tls_ctx *t);
/* MHD options (MHD_OPTION_ARRAY) for the TLS listener, and an empty list for others. */
struct MHD_OptionItem *tls_mhd_options(tls_ctx *t);
struct MHD_OptionItem *tls_no_options(void);
/* Whether the connection satisfies client_auth (always true for NONE). */
bool tls_client_ok(tls_ctx *t, struct MHD_Connection *c);
/* Add HSTS and configured headers. */
void tls_decorate(tls_ctx *t, struct MHD_Response *resp);

#endif
