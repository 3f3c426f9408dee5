/* jwt_dl.h — libjwt, loaded with dlopen at first use. libjwt needs libcrypto, whose loading alone
 * costs ~1.4 MiB of RSS (common/ossl_dl.h); a vigild without JWT authentication never maps either.
 * The table is asked for when a key is loaded (auth_jwt_key_load: authentication configured),
 * a token verified or one minted.
 *
 * Types and prototypes come from <jwt.h>; every entry has the type of a pointer to the real
 * function (__typeof__(&jwt_decode)), so calls are checked as direct calls would be. */
#ifndef VIGIL_SECURITY_JWT_DL_H
#define VIGIL_SECURITY_JWT_DL_H

#include <stddef.h>

#include <jwt.h>

#define JWT_DL_SONAME "libjwt.so.0"

/* X(suffix): the member `suffix` points to jwt_<suffix>. */
#define JWT_DL_FUNCS(X)                                                                            \
        X(new)                                                                                     \
        X(free)                                                                                    \
        X(decode)                                                                                  \
        X(get_alg)                                                                                 \
        X(set_alg)                                                                                 \
        X(add_grant)                                                                               \
        X(add_grant_int)                                                                           \
        X(encode_str)

typedef struct jwt_dl {
#define JWT_DL_MEMBER(name) __typeof__(&jwt_##name) name; /* jwt_<name> */
        JWT_DL_FUNCS(JWT_DL_MEMBER)
#undef JWT_DL_MEMBER
} jwt_dl;

/* Load libjwt on the first call (once per process; any thread) and return its table in *ret.
 * Returns 0, or -ELIBACC with the reason in err ("cannot load 'libjwt.so.0': …; JWT
 * authentication needs the libjwt0 package"), the same on every later call. err may be NULL. */
int jwt_dl_get(const jwt_dl **ret, char *err, size_t errlen);

#endif
