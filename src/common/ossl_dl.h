/* ossl_dl.h — OpenSSL's libcrypto, loaded with dlopen at first use. Loading libcrypto.so.3 costs
 * ~1.4 MiB of RSS before a single call (its symbol tables read for relocation, .data.rel.ro made
 * private), and an idle vigild with the default configuration calls it never: only the audit
 * chain (a mutation or a refusal), JWT and basic auth, webhook signatures and encryption at rest
 * do. So vigild does not link it; those modules ask for this table on their first use.
 *
 * Types, constants and prototypes still come from OpenSSL's headers: every entry has the type of
 * a pointer to the real function (__typeof__(&EVP_sha256)), so calls are checked by the compiler
 * as direct calls would be. Add a line to OSSL_DL_FUNCS to use another function.
 *
 * Memory is wiped with explicit_bzero(3), not OPENSSL_cleanse, so that code which only wipes a
 * key does not need the library. */
#ifndef VIGIL_COMMON_OSSL_DL_H
#define VIGIL_COMMON_OSSL_DL_H

#include <stddef.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#define OSSL_DL_SONAME "libcrypto.so.3"

/* X(name): the member `name` points to the libcrypto function of that name. */
#define OSSL_DL_FUNCS(X)                                                                           \
        X(EVP_sha256)                                                                              \
        X(EVP_MD_CTX_new)                                                                          \
        X(EVP_MD_CTX_free)                                                                         \
        X(EVP_DigestInit_ex)                                                                       \
        X(EVP_DigestUpdate)                                                                        \
        X(EVP_DigestFinal_ex)                                                                      \
        X(HMAC)                                                                                    \
        X(SHA256)                                                                                  \
        X(RAND_bytes)                                                                              \
        X(EVP_aes_256_gcm)                                                                         \
        X(EVP_CIPHER_CTX_new)                                                                      \
        X(EVP_CIPHER_CTX_free)                                                                     \
        X(EVP_CIPHER_CTX_ctrl)                                                                     \
        X(EVP_EncryptInit_ex)                                                                      \
        X(EVP_EncryptUpdate)                                                                       \
        X(EVP_EncryptFinal_ex)                                                                     \
        X(EVP_DecryptInit_ex)                                                                      \
        X(EVP_DecryptUpdate)                                                                       \
        X(EVP_DecryptFinal_ex)                                                                     \
        X(EVP_PKEY_CTX_new_id)                                                                     \
        X(EVP_PKEY_CTX_free)                                                                       \
        X(EVP_PKEY_derive_init)                                                                    \
        X(EVP_PKEY_derive)                                                                         \
        X(EVP_PKEY_CTX_set_hkdf_md)                                                                \
        X(EVP_PKEY_CTX_set1_hkdf_salt)                                                             \
        X(EVP_PKEY_CTX_set1_hkdf_key)                                                              \
        X(EVP_PKEY_CTX_add1_hkdf_info)                                                             \
        X(BIO_new_mem_buf)                                                                         \
        X(BIO_free)                                                                                \
        X(PEM_read_bio_PUBKEY)                                                                     \
        X(EVP_PKEY_free)                                                                           \
        X(EVP_PKEY_get_base_id)                                                                    \
        X(EVP_PKEY_get_bits)                                                                       \
        X(EVP_PKEY_get_utf8_string_param)

typedef struct ossl_dl {
#define OSSL_DL_MEMBER(name) __typeof__(&name) name;
        OSSL_DL_FUNCS(OSSL_DL_MEMBER)
#undef OSSL_DL_MEMBER
} ossl_dl;

/* Load libcrypto on the first call (once per process; any thread) and return its table in *ret.
 * Returns 0, or -ELIBACC with the reason in err ("cannot load 'libcrypto.so.3': …; … needs the
 * libssl3 package") when the library or one of its symbols is missing; the same error on every
 * later call. The library is never unloaded. *ret is untouched on failure. err may be NULL. */
int ossl_dl_get(const ossl_dl **ret, char *err, size_t errlen);

/* The table, or NULL if libcrypto cannot be loaded (the reason is logged once, at warn). For code
 * with no error text to fill: callers turn NULL into -ELIBACC. */
const ossl_dl *ossl_dl_lib(void);

#endif
