/* auth.h — who may do what: roles and permissions, and bearer-JWT verification.
 *
 * libjwt 1.10 verifies signatures only (reference/security-reliability.md §2.2): it accepts
 * expired tokens, skips the signature when given a NULL key and falls for algorithm confusion.
 * So everything around the signature is ours and happens here: size and shape of the token, the
 * header (alg pinned to the one algorithm of the configured key, checked BEFORE libjwt runs;
 * "none" refused; typ JWT if present; crit refused), a non-empty key always, and the claims
 * (exp, nbf, iat with leeway; iss and aud when configured; sub; role; jti).
 * Pure functions, no global state: thread-safe. */
#ifndef VIGIL_API_AUTH_H
#define VIGIL_API_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define AUTH_MAX_TOKEN   8192 /* bytes; longer bearer tokens are refused unread */
#define AUTH_MAX_SUBJECT 128  /* bytes of sub kept */
#define AUTH_MAX_JTI     128  /* bytes of jti kept */

/* What a route needs. Pinned values: 0 (unset) means admin, so a route added without thinking
 * about permissions is denied to everyone but admins (default deny). */
enum auth_perm {
        PERM_UNSET = 0,   /* treated as PERM_ADMIN */
        PERM_OPEN = 1,    /* anyone who can connect: /healthz, /readyz */
        PERM_METRICS = 2, /* open when security.metrics_public, else read */
        PERM_READ = 3,
        PERM_WRITE = 4,
        PERM_EXECUTE = 5,
        PERM_ADMIN = 6,
};

enum auth_role {
        ROLE_NONE = 0, /* unauthenticated */
        ROLE_VIEWER = 1,
        ROLE_OPERATOR = 2,
        ROLE_ADMIN = 3,
        ROLE_COUNT,
};

enum auth_alg {
        AUTH_ALG_HS256 = 0,
        AUTH_ALG_RS256 = 1,
        AUTH_ALG_ES256 = 2,
};

const char *auth_perm_name(enum auth_perm p);
const char *auth_role_name(enum auth_role r);
/* "admin" → ROLE_ADMIN; -EINVAL for anything else (no ROLE_NONE by name). */
int auth_role_from_name(const char *s, enum auth_role *ret);
const char *auth_alg_name(enum auth_alg a);

/* Permission bitmask per role (bit = 1u << perm), from config lists such as "read,write" or
 * "*". */
typedef struct auth_roles {
        unsigned mask[ROLE_COUNT]; /* ROLE_NONE's is always 0 */
} auth_roles;

/* Parse "read,write,execute" / "*" into a mask. 0 or -EINVAL. */
int auth_perm_mask(const char *list, unsigned *ret);
/* Whether role holds perm (PERM_UNSET counts as PERM_ADMIN). */
bool auth_role_allows(const auth_roles *roles, enum auth_role role, enum auth_perm perm);

/* Where a request came from, for the decision below. */
enum auth_transport {
        AUTH_TCP = 0,  /* the TCP listener (maybe TLS) */
        AUTH_UNIX = 1, /* the unix socket: role from peer credentials */
};

typedef struct auth_policy {
        bool authn;          /* security.authentication.enabled */
        bool authz;          /* security.authorization.enabled */
        bool metrics_public; /* /metrics open */
        bool inject_open;    /* --simulate and no security section: POST /api/v1/inject on TCP */
        auth_roles roles;
} auth_policy;

/* The one decision: may a request with this role (ROLE_NONE = no credentials; *authenticated
 * says whether credentials were presented and valid) on this transport use a route needing
 * perm? Returns 0 (allow), 401 (credentials needed) or 403 (not allowed). is_inject marks POST
 * /api/v1/inject (the simulate exception). Table-tested cell by cell in test_rbac. */
int auth_decide(const auth_policy *p, enum auth_transport t, enum auth_role role,
                bool authenticated, enum auth_perm perm, bool is_inject);

/* ---- JWT ---- */

typedef struct auth_jwt_key {
        enum auth_alg alg;    /* the only algorithm this key may be used with */
        unsigned char *key;   /* HS256: the secret; RS256/ES256: the PEM public key; owned */
        size_t key_len;       /* bytes, > 0 */
        const char *issuer;   /* required iss, or NULL or "" */
        const char *audience; /* required aud (string or in array), or NULL or "" */
        int64_t leeway_s;     /* seconds of clock skew on exp/nbf/iat */
} auth_jwt_key;

typedef struct auth_claims {
        char sub[AUTH_MAX_SUBJECT]; /* subject */
        char jti[AUTH_MAX_JTI];     /* token id ("" when absent) */
        enum auth_role role;        /* from the "role" claim */
        int64_t exp;                /* seconds since epoch */
} auth_claims;

/* Load the key for HS256 (secret) or a PEM public key file (RS256 for RSA, ES256 for P-256).
 * key_out receives owned bytes. Returns 0, -EINVAL (why in err), -errno on read failure. */
int auth_jwt_key_load(const char *secret, const char *pubkey_file, auth_jwt_key *k, char *err,
                      size_t errlen);
void auth_jwt_key_release(auth_jwt_key *k);

/* Check a decoded JOSE header against the pinned algorithm. 0 or -EACCES with *reason. */
int auth_check_header(const json_t *hdr, enum auth_alg alg, const char **reason);
/* Check decoded claims at now (seconds since epoch). Fills *out on success. 0 or -EACCES with
 * *reason (a short static string for logs and audit: "expired", "bad_issuer", ...). */
int auth_check_claims(const json_t *claims, const auth_jwt_key *k, int64_t now, auth_claims *out,
                      const char **reason);
/* The whole verification of a compact JWT (len bytes, need not be NUL-terminated). */
int auth_jwt_verify(const auth_jwt_key *k, const char *token, size_t len, int64_t now,
                    auth_claims *out, const char **reason);

/* Split "Bearer TOKEN" (case-insensitive scheme, one or more spaces). Returns 0 with *tok and *toklen
 * pointing into hdr, or -EINVAL. */
int auth_parse_bearer(const char *hdr, const char **tok, size_t *toklen);
/* Decode base64url without padding (padding tolerated). Caller owns *ret (NUL-terminated).
 * 0 or -EINVAL / -ENOMEM. */
int auth_b64url_decode(const char *s, size_t len, unsigned char **ret, size_t *retlen);

/* Mint an HS256 token (the CLI's `vigil token create`). Caller owns *ret. */
int auth_jwt_mint(const unsigned char *secret, size_t secret_len, const char *subject,
                  enum auth_role role, int64_t now, int64_t ttl_s, const char *issuer,
                  const char *audience, char **ret, char *jti_out, size_t jti_len);

#endif
