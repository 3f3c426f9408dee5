/* auth.c — roles, the access decision, and JWT verification around libjwt (which only checks
 * signatures; see auth.h). Every refusal carries a short reason for the audit trail and the log;
 * the token itself is never copied into a message. */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include <jwt.h>
#include <openssl/core_names.h>

#include "common/base64.h"
#include "common/fileio.h"
#include "common/macros.h"
#include "common/ossl_dl.h"
#include "jwt_dl.h"

static const char *const perm_names[] = {
    [PERM_UNSET] = "admin", [PERM_OPEN] = "open",   [PERM_METRICS] = "metrics",
    [PERM_READ] = "read",   [PERM_WRITE] = "write", [PERM_EXECUTE] = "execute",
    [PERM_ADMIN] = "admin",
};
static const char *const role_names[] = {
    [ROLE_NONE] = "none",
    [ROLE_VIEWER] = "viewer",
    [ROLE_OPERATOR] = "operator",
    [ROLE_ADMIN] = "admin",
};
static const char *const alg_names[] = {
    [AUTH_ALG_HS256] = "HS256",
    [AUTH_ALG_RS256] = "RS256",
    [AUTH_ALG_ES256] = "ES256",
};
static const jwt_alg_t alg_libjwt[] = {
    [AUTH_ALG_HS256] = JWT_ALG_HS256,
    [AUTH_ALG_RS256] = JWT_ALG_RS256,
    [AUTH_ALG_ES256] = JWT_ALG_ES256,
};

const char *auth_perm_name(enum auth_perm p)
{
        return (unsigned)p < ARRAY_SIZE(perm_names) ? perm_names[p] : "admin";
}

const char *auth_role_name(enum auth_role r)
{
        return (unsigned)r < ARRAY_SIZE(role_names) ? role_names[r] : "none";
}

const char *auth_alg_name(enum auth_alg a)
{
        return (unsigned)a < ARRAY_SIZE(alg_names) ? alg_names[a] : "?";
}

int auth_role_from_name(const char *s, enum auth_role *ret)
{
        for (int i = ROLE_VIEWER; i < ROLE_COUNT; i++)
                if (s && !strcmp(s, role_names[i])) {
                        *ret = (enum auth_role)i;
                        return 0;
                }
        return -EINVAL;
}

int auth_perm_mask(const char *list, unsigned *ret)
{
        static const struct {
                const char *name;
                unsigned mask;
        } words[] = {
            {"*",
             (1u << PERM_READ) | (1u << PERM_WRITE) | (1u << PERM_EXECUTE) | (1u << PERM_ADMIN)},
            {"read", 1u << PERM_READ},
            {"write", 1u << PERM_WRITE},
            {"execute", 1u << PERM_EXECUTE},
            {"admin", 1u << PERM_ADMIN},
        };
        unsigned m = 0;

        while (list && *list) {
                const char *e = strchrnul(list, ',');
                bool found = false;
                for (size_t i = 0; i < ARRAY_SIZE(words); i++)
                        if (strlen(words[i].name) == (size_t)(e - list) &&
                            !strncmp(words[i].name, list, (size_t)(e - list))) {
                                m |= words[i].mask;
                                found = true;
                        }
                if (!found)
                        return -EINVAL;
                list = *e ? e + 1 : e;
        }
        *ret = m;
        return 0;
}

bool auth_role_allows(const auth_roles *roles, enum auth_role role, enum auth_perm perm)
{
        if (perm == PERM_UNSET)
                perm = PERM_ADMIN;
        if ((unsigned)role >= ROLE_COUNT || role == ROLE_NONE)
                return false;
        return (roles->mask[role] >> perm) & 1u;
}

int auth_decide(const auth_policy *p, enum auth_transport t, enum auth_role role,
                bool authenticated, enum auth_perm perm, bool is_inject)
{
        if (perm == PERM_UNSET || (unsigned)perm > PERM_ADMIN)
                perm = PERM_ADMIN; /* default deny: unknown means admin only */
        if (perm == PERM_OPEN)
                return 0;
        if (perm == PERM_METRICS) {
                if (p->metrics_public)
                        return 0;
                perm = PERM_READ;
        }
        if (t == AUTH_UNIX) /* the peer's uid/gid decided the role; nobody is anonymous here */
                return auth_role_allows(&p->roles, role, perm) ? 0 : 403;
        if (!p->authn) {
                /* Secure default: TCP without authentication is read-only. */
                if (is_inject && p->inject_open)
                        return 0;
                return perm == PERM_READ ? 0 : 403;
        }
        if (!authenticated)
                return 401;
        if (!p->authz)
                return 0;
        return auth_role_allows(&p->roles, role, perm) ? 0 : 403;
}

/* ---- base64url ---- */

/* A character of the base64url alphabet (a token holds only these and dots). */
static bool b64url_char(char c)
{
        return c && strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", c);
}

int auth_b64url_decode(const char *s, size_t len, unsigned char **ret, size_t *retlen)
{
        unsigned char *out = malloc(len * 3 / 4 + 2);
        ssize_t n;

        if (!out)
                return -ENOMEM;
        n = base64_decode(s, len, BASE64_URL, out, len * 3 / 4 + 2);
        if (n < 0) {
                free(out);
                return (int)n;
        }
        *ret = out;
        *retlen = (size_t)n;
        return 0;
}

static json_t *b64_json(const char *s, size_t len)
{
        _cleanup_free_ unsigned char *raw = NULL;
        size_t n = 0;
        json_error_t e;

        if (auth_b64url_decode(s, len, &raw, &n) < 0)
                return NULL;
        return json_loadb((const char *)raw, n, JSON_REJECT_DUPLICATES, &e);
}

int auth_parse_bearer(const char *hdr, const char **tok, size_t *toklen)
{
        const char *t;
        size_t n;

        if (!hdr || strncasecmp(hdr, "Bearer", 6) != 0 || (hdr[6] != ' ' && hdr[6] != '\t'))
                return -EINVAL;
        t = hdr + 6;
        while (*t == ' ' || *t == '\t')
                t++;
        n = strlen(t);
        while (n && (t[n - 1] == ' ' || t[n - 1] == '\t'))
                n--;
        if (n == 0 || memchr(t, ' ', n))
                return -EINVAL;
        *tok = t;
        *toklen = n;
        return 0;
}

/* ---- header and claims ---- */

#define REFUSE(why)                                                                                \
        do {                                                                                       \
                *reason = (why);                                                                   \
                return -EACCES;                                                                    \
        } while (0)

int auth_check_header(const json_t *hdr, enum auth_alg alg, const char **reason)
{
        const json_t *a, *typ;

        if (!json_is_object(hdr))
                REFUSE("malformed");
        a = json_object_get(hdr, "alg");
        if (!json_is_string(a))
                REFUSE("missing_alg");
        if (!strcasecmp(json_string_value(a), "none"))
                REFUSE("alg_none");
        /* RFC 8725 §3.1: one key, one algorithm, checked before any cryptography. */
        if (strcmp(json_string_value(a), alg_names[alg]) != 0)
                REFUSE("alg_mismatch");
        typ = json_object_get(hdr, "typ");
        if (typ && (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT") != 0))
                REFUSE("bad_typ");
        if (json_object_get(hdr, "crit"))
                REFUSE("crit_unsupported");
        return 0;
}

static bool num_claim(const json_t *c, const char *name, int64_t *v)
{
        const json_t *j = json_object_get(c, name);

        if (json_is_integer(j)) {
                *v = json_integer_value(j);
                return true;
        }
        /* |v| < 9e18 < 2^63: the conversion is defined (a double beyond int64 is not) */
        if (json_is_real(j) && json_real_value(j) > -9e18 && json_real_value(j) < 9e18) {
                *v = (int64_t)json_real_value(j);
                return true;
        }
        return false;
}

/* a + b, clamped to [INT64_MIN, INT64_MAX] */
static int64_t sat_add(int64_t a, int64_t b)
{
        int64_t r;

        if (__builtin_add_overflow(a, b, &r))
                return b > 0 ? INT64_MAX : INT64_MIN;
        return r;
}

int auth_check_claims(const json_t *c, const auth_jwt_key *k, int64_t now, auth_claims *out,
                      const char **reason)
{
        const json_t *j;
        int64_t exp, nbf, iat, L = k->leeway_s;
        auth_claims r = {0};

        if (L < 0 || L > 86400) /* config allows 0..300 s; never negate INT64_MIN */
                L = L < 0 ? 0 : 86400;
        if (!json_is_object(c))
                REFUSE("malformed");
        if (json_object_get(c, "exp") && !num_claim(c, "exp", &exp))
                REFUSE("bad_exp");
        if (!json_object_get(c, "exp"))
                REFUSE("missing_exp");
        /* Claims may be anything int64 holds: saturate instead of overflowing (now >= exp + L,
         * now < nbf - L, iat > now + L). */
        if (now >= sat_add(exp, L))
                REFUSE("expired");
        if (json_object_get(c, "nbf")) {
                if (!num_claim(c, "nbf", &nbf))
                        REFUSE("bad_nbf");
                if (now < sat_add(nbf, -L))
                        REFUSE("not_yet_valid");
        }
        if (!json_object_get(c, "iat"))
                REFUSE("missing_iat");
        if (!num_claim(c, "iat", &iat))
                REFUSE("bad_iat");
        if (iat > sat_add(now, L))
                REFUSE("iat_in_future");
        if (k->issuer && *k->issuer) {
                j = json_object_get(c, "iss");
                if (!json_is_string(j) || strcmp(json_string_value(j), k->issuer) != 0)
                        REFUSE("bad_issuer");
        }
        if (k->audience && *k->audience) {
                bool ok = false;
                size_t i;
                const json_t *v;
                j = json_object_get(c, "aud");
                if (json_is_string(j))
                        ok = !strcmp(json_string_value(j), k->audience);
                else if (json_is_array(j))
                        json_array_foreach(j, i, v) ok |=
                            json_is_string(v) && !strcmp(json_string_value(v), k->audience);
                if (!ok)
                        REFUSE("bad_audience");
        }
        j = json_object_get(c, "sub");
        if (!json_is_string(j) || !json_string_length(j) ||
            json_string_length(j) >= sizeof(r.sub) ||
            memchr(json_string_value(j), '\0', json_string_length(j)))
                REFUSE("bad_subject");
        snprintf(r.sub, sizeof(r.sub), "%s", json_string_value(j));
        j = json_object_get(c, "role");
        if (!j)
                REFUSE("missing_role");
        if (!json_is_string(j) || auth_role_from_name(json_string_value(j), &r.role) < 0)
                REFUSE("unknown_role");
        j = json_object_get(c, "jti");
        if (j) {
                if (!json_is_string(j) || !json_string_length(j) ||
                    json_string_length(j) >= sizeof(r.jti) ||
                    memchr(json_string_value(j), '\0', json_string_length(j)))
                        REFUSE("bad_jti");
                snprintf(r.jti, sizeof(r.jti), "%s", json_string_value(j));
        }
        r.exp = exp;
        *out = r;
        return 0;
}

int auth_jwt_verify(const auth_jwt_key *k, const char *token, size_t len, int64_t now,
                    auth_claims *out, const char **reason)
{
        const char *d1, *d2;
        _cleanup_free_ char *copy = NULL;
        const jwt_dl *lib;
        json_t *hdr, *claims;
        jwt_t *jwt = NULL;
        int r;

        if (len == 0)
                REFUSE("malformed");
        if (len > AUTH_MAX_TOKEN)
                REFUSE("too_large");
        for (size_t i = 0; i < len; i++)
                if (token[i] != '.' && !b64url_char(token[i]))
                        REFUSE("malformed");
        d1 = memchr(token, '.', len);
        d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
        if (!d1 || !d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)) || d1 == token ||
            d2 == d1 + 1 || d2 + 1 == token + len)
                REFUSE("malformed");
        hdr = b64_json(token, (size_t)(d1 - token));
        if (!hdr)
                REFUSE("malformed");
        r = auth_check_header(hdr, k->alg, reason);
        json_decref(hdr);
        if (r < 0)
                return r;
        /* Never hand libjwt a NULL or empty key: it would skip the signature. */
        if (!k->key || k->key_len == 0)
                REFUSE("no_key");
        if (jwt_dl_get(&lib, NULL, 0) < 0)
                REFUSE("no_library");
        copy = strndup(token, len);
        if (!copy)
                REFUSE("no_memory");
        if (lib->decode(&jwt, copy, k->key, (int)k->key_len) != 0 || !jwt) {
                lib->free(jwt);
                REFUSE("bad_signature");
        }
        if (lib->get_alg(jwt) != alg_libjwt[k->alg]) { /* belt and braces */
                lib->free(jwt);
                REFUSE("alg_mismatch");
        }
        lib->free(jwt);
        claims = b64_json(d1 + 1, (size_t)(d2 - d1 - 1));
        if (!claims)
                REFUSE("malformed");
        r = auth_check_claims(claims, k, now, out, reason);
        json_decref(claims);
        return r;
}

/* ---- keys ---- */

#define PUBKEY_MAX 65535 /* bytes of a PEM public key file */

int auth_jwt_key_load(const char *secret, const char *pubkey_file, auth_jwt_key *k, char *err,
                      size_t errlen)
{
        const jwt_dl *lib;
        const ossl_dl *o;

        memset(k, 0, sizeof(*k));
        /* Refused here, at start or reload, rather than at the first request. */
        if (jwt_dl_get(&lib, err, errlen) < 0 || ossl_dl_get(&o, err, errlen) < 0)
                return -ELIBACC;
        if (pubkey_file && *pubkey_file) {
                char *pem = NULL;
                size_t n = 0;
                BIO *bio;
                EVP_PKEY *pk;
                int r = file_read_all(pubkey_file, PUBKEY_MAX, &pem, &n);
                if (r < 0) {
                        file_read_strerror(r, "public key", pubkey_file, PUBKEY_MAX, err, errlen);
                        return r;
                }
                bio = o->BIO_new_mem_buf(pem, (int)n);
                pk = bio ? o->PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
                o->BIO_free(bio);
                if (!pk) {
                        free(pem);
                        snprintf(err, errlen, "'%s' is not a PEM public key", pubkey_file);
                        return -EINVAL;
                }
                if (o->EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA &&
                    o->EVP_PKEY_get_bits(pk) >= 2048) {
                        k->alg = AUTH_ALG_RS256;
                } else if (o->EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC) {
                        char grp[64] = "";
                        size_t gl = 0;
                        o->EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, grp,
                                                          sizeof(grp), &gl);
                        if (strcmp(grp, "prime256v1") != 0 && strcmp(grp, "P-256") != 0) {
                                o->EVP_PKEY_free(pk);
                                free(pem);
                                snprintf(err, errlen, "'%s': EC keys must be P-256 (ES256)",
                                         pubkey_file);
                                return -EINVAL;
                        }
                        k->alg = AUTH_ALG_ES256;
                } else {
                        o->EVP_PKEY_free(pk);
                        free(pem);
                        snprintf(err, errlen,
                                 "'%s': need an RSA (>= 2048 bits, RS256) or P-256 (ES256) key",
                                 pubkey_file);
                        return -EINVAL;
                }
                o->EVP_PKEY_free(pk);
                k->key = (unsigned char *)pem;
                k->key_len = n;
                return 0;
        }
        if (!secret || strlen(secret) < 32) {
                snprintf(err, errlen,
                         "authentication needs jwt_secret (at least 32 bytes) or "
                         "public_key_file");
                return -EINVAL;
        }
        k->alg = AUTH_ALG_HS256;
        k->key = (unsigned char *)strdup(secret);
        if (!k->key)
                return -ENOMEM;
        k->key_len = strlen(secret);
        return 0;
}

void auth_jwt_key_release(auth_jwt_key *k)
{
        if (!k)
                return;
        if (k->key) {
                explicit_bzero(k->key, k->key_len);
                free(k->key);
        }
        k->key = NULL;
        k->key_len = 0;
}

int auth_jwt_mint(const unsigned char *secret, size_t secret_len, const char *subject,
                  enum auth_role role, int64_t now, int64_t ttl_s, const char *issuer,
                  const char *audience, char **ret, char *jti_out, size_t jti_len)
{
        unsigned char rnd[16];
        char jti[33];
        const jwt_dl *lib;
        jwt_t *jwt = NULL;
        char *s;
        int r = 0;

        if (!secret || secret_len < 32)
                return -EINVAL;
        if (jwt_dl_get(&lib, NULL, 0) < 0)
                return -ELIBACC;
        if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
                return -EIO;
        for (size_t i = 0; i < sizeof(rnd); i++)
                snprintf(jti + 2 * i, 3, "%02x", rnd[i]);
        if (lib->new (&jwt) != 0)
                return -ENOMEM;
        r = r ?: -lib->add_grant(jwt, "sub", subject);
        r = r ?: -lib->add_grant(jwt, "role", auth_role_name(role));
        r = r ?: -lib->add_grant(jwt, "jti", jti);
        r = r ?: -lib->add_grant_int(jwt, "iat", (long)now);
        r = r ?: -lib->add_grant_int(jwt, "exp", (long)(now + ttl_s));
        if (!r && issuer && *issuer)
                r = -lib->add_grant(jwt, "iss", issuer);
        if (!r && audience && *audience)
                r = -lib->add_grant(jwt, "aud", audience);
        r = r ?: -lib->set_alg(jwt, JWT_ALG_HS256, secret, (int)secret_len);
        if (r) {
                lib->free(jwt);
                return r;
        }
        s = lib->encode_str(jwt);
        lib->free(jwt);
        if (!s)
                return -ENOMEM;
        if (jti_out && jti_len)
                snprintf(jti_out, jti_len, "%s", jti);
        *ret = s;
        return 0;
}
