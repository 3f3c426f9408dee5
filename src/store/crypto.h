/* crypto.h — encryption at rest: a keyring of AES-256-GCM keys and sealed blobs (OpenSSL EVP).
 *
 * Keys. The configured master secret (security.encryption.encryption_key) is either 64 hex
 * characters (a raw 256-bit key) or a passphrase stretched with HKDF-SHA256. The master key seals
 * the keyring file and backup archives; it never seals data rows. Data keys live in the keyring:
 * key 1 is derived from the master key (so a lost keyring file loses nothing sealed with key 1),
 * later keys (`vigil keys rotate`) are random. The newest key seals; every key still opens.
 *
 * Blob format (also the backup archive format, streamed):
 *   "VIGILENC1" (9 bytes) | key id (4 bytes, big endian) | nonce (12 bytes) | ciphertext | tag (16)
 * The 25-byte header is authenticated with the caller's AAD, so neither the key id nor the
 * nonce can be swapped. Master-key ids have the top bit set (a 31-bit SHA-256 fingerprint of the
 * key), data-key ids are 1, 2, 3, ...
 *
 * For other modules (audit details, incident details, token revocations): seal a column value
 * with crypto_seal(kr, text, len, aad = "table.column:rowkey", ...) and store the blob; open it
 * with crypto_open with the same AAD. Register the column in sealed.def so that key rotation
 * re-encrypts it. Thread-safe: a keyring may be used from any thread (rotation takes a lock).
 * Errors: -EINVAL (not a blob, truncated), -ENOKEY (key id not in the keyring), -EBADMSG
 * (authentication failed: tampered, or another key with the same id), -ENOMEM. */
#ifndef VIGIL_STORE_CRYPTO_H
#define VIGIL_STORE_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRYPTO_KEY_LEN     32
#define CRYPTO_MAGIC       "VIGILENC1"
#define CRYPTO_MAGIC_LEN   9
#define CRYPTO_NONCE_LEN   12
#define CRYPTO_TAG_LEN     16
#define CRYPTO_HEADER_LEN  (CRYPTO_MAGIC_LEN + 4 + CRYPTO_NONCE_LEN) /* 25 bytes */
#define CRYPTO_OVERHEAD    (CRYPTO_HEADER_LEN + CRYPTO_TAG_LEN)      /* 41 bytes */
#define CRYPTO_MASTER_FLAG 0x80000000u                               /* key ids of master keys */
#define CRYPTO_MAX_KEYS    256                                       /* keys in a keyring */
#define CRYPTO_MAX_BLOB    (64u << 20) /* bytes: crypto_seal/crypto_open refuse bigger */

typedef struct crypto_keyring crypto_keyring;

/* A keyring with the master key from secret and data key 1 (created now). Refuses an empty
 * secret (-EINVAL). Caller owns *ret. */
int crypto_keyring_new(const char *secret, crypto_keyring **ret, char *err, size_t errlen);
crypto_keyring *crypto_keyring_free(crypto_keyring *kr);

/* Load the data keys from a keyring file sealed by kr's master key (replacing kr's data keys).
 * -ENOENT when the file does not exist (kr unchanged); -EBADMSG with "wrong encryption key" when
 * the master key does not open it. Nothing is ever written by a load. */
int crypto_keyring_load(crypto_keyring *kr, const char *path, char *err, size_t errlen);
/* Write the data keys sealed by the master key: PATH.tmp (0600), fsync, rename, fsync dir. */
int crypto_keyring_save(const crypto_keyring *kr, const char *path, char *err, size_t errlen);
/* Add a random data key and make it the active one; its id in *new_id (may be NULL). In memory
 * only: a running daemon rotates with crypto_keyring_rotate_save. */
int crypto_keyring_rotate(crypto_keyring *kr, uint32_t *new_id);
/* Rotate durably: write the keyring file with a new random key added (as crypto_keyring_save),
 * and make the key active only once that succeeded, so that nothing is sealed with a key the
 * file does not hold. On failure kr is unchanged and err says which call failed (the file is
 * the old one, or, when only the directory's fsync failed, the new one: a key never used). */
int crypto_keyring_rotate_save(crypto_keyring *kr, const char *path, uint32_t *new_id, char *err,
                               size_t errlen);

uint32_t crypto_keyring_active(const crypto_keyring *kr);
/* usec since epoch when the active key was created. */
int64_t crypto_keyring_active_created(const crypto_keyring *kr);
/* Data keys in the keyring. */
unsigned crypto_keyring_count(const crypto_keyring *kr);
/* Key id of the master key (CRYPTO_MASTER_FLAG | 31-bit fingerprint). */
uint32_t crypto_keyring_master_id(const crypto_keyring *kr);

/* Seal pt with the active data key. *ret (malloc'd, caller frees) gets
 * ptlen + CRYPTO_OVERHEAD bytes. aad may be NULL when aadlen is 0. */
int crypto_seal(crypto_keyring *kr, const void *pt, size_t ptlen, const void *aad, size_t aadlen,
                uint8_t **ret, size_t *retlen);
/* Open a blob sealed by any key of kr (data keys and the master key). *ret is malloc'd with one
 * extra NUL byte after *retlen (handy for text); caller frees. */
int crypto_open(crypto_keyring *kr, const void *blob, size_t bloblen, const void *aad,
                size_t aadlen, uint8_t **ret, size_t *retlen);
/* Key id of a blob (or of an encrypted file's first bytes): 0, or -EINVAL if not a blob. */
int crypto_blob_key_id(const void *blob, size_t bloblen, uint32_t *id);
/* Seal with the master key instead of the active data key (keyring file, small secrets). */
int crypto_seal_master(crypto_keyring *kr, const void *pt, size_t ptlen, const void *aad,
                       size_t aadlen, uint8_t **ret, size_t *retlen);

/* Streaming file encryption with the master key (backup archives): in → out, any size, one
 * nonce per file. out must not exist; it is written 0600 and fsync'd. On failure out is removed.
 * crypto_open_file writes plaintext to out as it goes and removes it if the tag does not match:
 * use out only after a 0 return. err says which of: not an encrypted file, truncated, sealed by
 * another key (with both key ids), authentication failed (tampered). */
int crypto_seal_file(crypto_keyring *kr, const char *in, const char *out, char *err, size_t errlen);
int crypto_open_file(crypto_keyring *kr, const char *in, const char *out, char *err, size_t errlen);

/* Parse a 64-hex-char key; 0 or -EINVAL. */
int crypto_parse_hex_key(const char *s, uint8_t key[CRYPTO_KEY_LEN]);

#endif
