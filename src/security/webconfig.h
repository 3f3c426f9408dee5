/* webconfig.h — Prometheus exporter-toolkit's web-config.yml (`vigild --web-config-file FILE`,
 * config key security.web_config_file), so a file written for node_exporter works unchanged:
 * tls_server_config (mapped onto tls.h; certificate, key and client CA as files or inline PEM,
 * client_allowed_sans), http_server_config.headers (added to every response),
 * http_server_config.http2 (accepted, ignored: vigild speaks HTTP/1.1), rate_limit (one token
 * bucket for the listener, as exporter-toolkit's) and basic_auth_users (bcrypt, checked with
 * libcrypt). Keys vigild cannot honour are refused with FILE:LINE, never silently ignored
 * (docs/security.md lists them).
 *
 * The parser is pure (no I/O but reading the file): unit tests and the fuzz target call
 * webconfig_parse() directly. basic_auth is thread-safe: any HTTP thread may call
 * basic_auth_check(). It is not a policy: the caller (gate.c) decides what a verified user
 * may do, audits and rate-limits. */
#ifndef VIGIL_API_WEBCONFIG_H
#define VIGIL_API_WEBCONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WEBCONFIG_MAX_HEADERS 5    /* the five names exporter-toolkit allows */
#define WEBCONFIG_MAX_USERS   1024 /* basic_auth_users entries */
#define WEBCONFIG_MAX_USER    128  /* bytes of a user name, NUL included */
#define WEBCONFIG_MAX_FILE    (1u << 20)
#define WEBCONFIG_MAX_SANS    64 /* client_allowed_sans entries */

/* Go's tls.ClientAuthType, in Go's order. */
enum webconfig_client_auth {
        WC_NO_CLIENT_CERT = 0,              /* NoClientCert (default) */
        WC_REQUEST_CLIENT_CERT = 1,         /* asked, never verified */
        WC_REQUIRE_ANY_CLIENT_CERT = 2,     /* required in the handshake, never verified */
        WC_VERIFY_CLIENT_CERT_IF_GIVEN = 3, /* asked; verified against client_ca_file if given */
        WC_REQUIRE_AND_VERIFY = 4,          /* required and verified in the handshake */
};

typedef struct webconfig_user {
        char *name; /* owned */
        char *hash; /* owned bcrypt hash ($2a$, $2b$, $2y$) */
} webconfig_user;

typedef struct webconfig {
        bool tls;             /* tls_server_config configures TLS (certificate and key given) */
        char *cert_file;      /* owned; relative paths resolved against the file's dir */
        char *key_file;       /* owned */
        char *client_ca_file; /* owned, or NULL */
        char *cert_pem;       /* owned inline `cert`, or NULL (never with cert_file) */
        char *key_pem;        /* owned inline `key`, or NULL (never with key_file) */
        char *client_ca_pem;  /* owned inline `client_ca`, or NULL (never with client_ca_file) */
        enum webconfig_client_auth client_auth;
        char *sans[WEBCONFIG_MAX_SANS];          /* owned client_allowed_sans */
        size_t n_sans;                           /* 0: no SAN check */
        unsigned min_version;                    /* 12 or 13 (TLS 1.x) */
        unsigned max_version;                    /* 12 or 13 */
        char *headers[WEBCONFIG_MAX_HEADERS][2]; /* owned canonical name and value */
        size_t n_headers;
        bool http2;             /* parsed and ignored (HTTP/1.1 only) */
        int64_t rl_interval_us; /* rate_limit.interval; 0 = no limit */
        unsigned rl_burst;      /* rate_limit.burst (0 with an interval refuses every request) */
        webconfig_user *users;  /* owned, in file order */
        size_t n_users;
} webconfig;

/* Parse text (len bytes) named `name` in messages; dir resolves relative paths (NULL = as
 * given). Returns 0 and *ret (caller owns; webconfig_free), or -EINVAL with "NAME:LINE: why"
 * in err, or -ENOMEM. */
int webconfig_parse(const char *name, const char *dir, const char *text, size_t len,
                    webconfig **ret, char *err, size_t errlen);
/* Read and parse path. -errno with err set on failure. */
int webconfig_load(const char *path, webconfig **ret, char *err, size_t errlen);
webconfig *webconfig_free(webconfig *w);
const char *webconfig_client_auth_name(enum webconfig_client_auth a);

/* ---- HTTP basic authentication against basic_auth_users ---- */

#define BASIC_AUTH_CACHE_SLOTS 256              /* successful verifications remembered */
#define BASIC_AUTH_CACHE_US    (60LL * 1000000) /* usec a success is remembered */

typedef struct basic_auth basic_auth;

/* Copies the users of w (w may be freed afterwards). Computes one decoy hash per bcrypt cost in
 * the file: an unknown user name is verified against the decoy of the cost of a user chosen by a
 * keyed hash of the name, so it costs what a known user costs and always the same for the same
 * name (no enumeration by timing, whatever the costs in the file). slots: how many bcrypt
 * verifications may run at once (0 = no bound); a check that finds them all busy answers
 * -EBUSY at once instead of waiting. Caller owns *ret. */
int basic_auth_new(const webconfig *w, unsigned slots, basic_auth **ret);
basic_auth *basic_auth_free(basic_auth *b);
/* Check an Authorization header value ("Basic base64(user:password)") at now_us (monotonic).
 * Returns 0 and the user name in user[ulen]; -EACCES (wrong password or unknown user; *reason
 * says which, for the audit record only: never tell the client), -EINVAL (not Basic or
 * malformed; *reason "not_basic"/"malformed"), -EBUSY (every bcrypt slot busy; *reason "busy";
 * the caller answers 503). Successful checks are cached for
 * BASIC_AUTH_CACHE_US, keyed by SHA-256 of user, stored hash and password. */
int basic_auth_check(basic_auth *b, const char *header, int64_t now_us, char *user, size_t ulen,
                     const char **reason);
/* Verifications that ran bcrypt (cache misses); for tests. */
uint64_t basic_auth_bcrypt_runs(basic_auth *b);
/* bcrypt verifications running now; for tests. */
unsigned basic_auth_busy(basic_auth *b);
/* The bcrypt cost an unknown user `name` is verified at; for tests. */
unsigned basic_auth_decoy_cost(basic_auth *b, const char *name);

/* ---- request bodies in audit records (security.audit.include_sensitive_data) ---- */

#define AUDIT_BODY_MAX 4096 /* bytes of scrubbed body recorded */

/* Render body (len bytes) for an audit record into out (size outlen, NUL-terminated): a JSON
 * body is re-serialised compactly with the value of every key that looks like a credential
 * (token, secret, password, passwd, key, authorization, credential, cookie; any case, any
 * position in the name) replaced by "<redacted>", then cut to AUDIT_BODY_MAX bytes (marked
 * "...(truncated)"); anything else becomes "<non-JSON body, N bytes>" so raw text never
 * reaches the trail. A body nested deeper than 64 objects/arrays is not recorded at all ("<body
 * nested deeper than 64 levels, N bytes: not recorded>"): every level is redacted or none is
 * kept. Pure. */
void audit_body_scrub(const char *body, size_t len, char *out, size_t outlen);

#endif
