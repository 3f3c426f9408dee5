/* crypto.c — the keyring and AES-256-GCM sealing (OpenSSL EVP). See crypto.h for the formats.
 * Nonces are random (RAND_bytes, 96 bits): with at most 2^32 seals per key the collision
 * probability stays below 2^-32 (NIST SP 800-38D §8.3); rotate long before that. */
#include "crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/macros.h"
#include "common/ossl_dl.h"
#include "common/vtime.h"
#include "store.h"
#include "sysio.h"

#define CRYPTO_KEYRING_MAX (1u << 20) /* bytes: a sealed keyring is a few KiB */

typedef struct crypto_key {
        uint32_t id;                 /* 1, 2, ... (data keys) */
        int64_t created_us;          /* usec since epoch */
        uint8_t key[CRYPTO_KEY_LEN]; /* secret */
} crypto_key;

struct crypto_keyring {
        pthread_mutex_t lock;             /* guards keys/n (rotation vs use) */
        const ossl_dl *o;                 /* libcrypto, loaded by crypto_keyring_new */
        uint8_t master[CRYPTO_KEY_LEN];   /* from the configured secret; secret */
        uint32_t master_id;               /* CRYPTO_MASTER_FLAG | fingerprint */
        crypto_key keys[CRYPTO_MAX_KEYS]; /* data keys, ascending id; the last is active */
        unsigned n;                       /* entries in keys */
};

static int hkdf(const ossl_dl *o, const uint8_t *ikm, size_t ikmlen, const char *salt,
                const char *info, uint8_t out[CRYPTO_KEY_LEN])
{
        EVP_PKEY_CTX *c = o->EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
        size_t outlen = CRYPTO_KEY_LEN;
        int ok =
            c && o->EVP_PKEY_derive_init(c) > 0 &&
            o->EVP_PKEY_CTX_set_hkdf_md(c, o->EVP_sha256()) > 0 &&
            o->EVP_PKEY_CTX_set1_hkdf_salt(c, (const unsigned char *)salt, (int)strlen(salt)) > 0 &&
            o->EVP_PKEY_CTX_set1_hkdf_key(c, ikm, (int)ikmlen) > 0 &&
            o->EVP_PKEY_CTX_add1_hkdf_info(c, (const unsigned char *)info, (int)strlen(info)) > 0 &&
            o->EVP_PKEY_derive(c, out, &outlen) > 0 && outlen == CRYPTO_KEY_LEN;
        o->EVP_PKEY_CTX_free(c);
        return ok ? 0 : -EIO;
}

int crypto_parse_hex_key(const char *s, uint8_t key[CRYPTO_KEY_LEN])
{
        uint8_t k[CRYPTO_KEY_LEN];

        if (!s || strlen(s) != 2 * CRYPTO_KEY_LEN)
                return -EINVAL;
        for (size_t i = 0; i < CRYPTO_KEY_LEN; i++) {
                unsigned v;
                char h[3] = {s[2 * i], s[2 * i + 1], 0};
                char *end;
                if (!strchr("0123456789abcdefABCDEF", h[0]) ||
                    !strchr("0123456789abcdefABCDEF", h[1]))
                        return -EINVAL;
                v = (unsigned)strtoul(h, &end, 16);
                k[i] = (uint8_t)v;
        }
        memcpy(key, k, sizeof(k));
        explicit_bzero(k, sizeof(k));
        return 0;
}

static void put_be32(uint8_t *p, uint32_t v)
{
        p[0] = (uint8_t)(v >> 24);
        p[1] = (uint8_t)(v >> 16);
        p[2] = (uint8_t)(v >> 8);
        p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int crypto_keyring_new(const char *secret, crypto_keyring **ret, char *err, size_t errlen)
{
        uint8_t fp[SHA256_DIGEST_LENGTH];

        if (!secret || !secret[0]) {
                snprintf(err, errlen,
                         "no encryption key configured "
                         "(security.encryption.encryption_key, e.g. "
                         "\"${VIGIL_ENCRYPTION_KEY}\")");
                return -EINVAL;
        }
        crypto_keyring *kr = calloc(1, sizeof(*kr));
        if (!kr) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        pthread_mutex_init(&kr->lock, NULL);
        if (ossl_dl_get(&kr->o, err, errlen) < 0) {
                crypto_keyring_free(kr);
                return -ELIBACC;
        }
        if (crypto_parse_hex_key(secret, kr->master) < 0) {
                if (strlen(secret) < 16) {
                        snprintf(err, errlen,
                                 "the encryption key is too short (%zu characters): "
                                 "use 64 hex characters or a passphrase of at "
                                 "least 16",
                                 strlen(secret));
                        crypto_keyring_free(kr);
                        return -EINVAL;
                }
                if (hkdf(kr->o, (const uint8_t *)secret, strlen(secret), "vigil-master-v1",
                         "vigil master key", kr->master) < 0) {
                        snprintf(err, errlen, "cannot derive the master key (OpenSSL HKDF)");
                        crypto_keyring_free(kr);
                        return -EIO;
                }
        }
        kr->o->SHA256(kr->master, CRYPTO_KEY_LEN, fp);
        kr->master_id = CRYPTO_MASTER_FLAG | (get_be32(fp) & ~CRYPTO_MASTER_FLAG);
        kr->keys[0].id = 1;
        kr->keys[0].created_us = time_real_us();
        if (hkdf(kr->o, kr->master, CRYPTO_KEY_LEN, "vigil-data-v1", "vigil data key 1",
                 kr->keys[0].key) < 0) {
                snprintf(err, errlen, "cannot derive the data key (OpenSSL HKDF)");
                crypto_keyring_free(kr);
                return -EIO;
        }
        kr->n = 1;
        *ret = kr;
        return 0;
}

crypto_keyring *crypto_keyring_free(crypto_keyring *kr)
{
        if (!kr)
                return NULL;
        pthread_mutex_destroy(&kr->lock);
        explicit_bzero(kr, sizeof(*kr));
        free(kr);
        return NULL;
}

/* The readers below take the lock: rotation (an HTTP thread) appends keys while the backup
 * timer and handlers read the active one. */
uint32_t crypto_keyring_active(const crypto_keyring *kr)
{
        pthread_mutex_t *lock = kr ? (pthread_mutex_t *)&kr->lock : NULL;
        uint32_t id;

        if (!kr)
                return 0;
        pthread_mutex_lock(lock);
        id = kr->n ? kr->keys[kr->n - 1].id : 0;
        pthread_mutex_unlock(lock);
        return id;
}

int64_t crypto_keyring_active_created(const crypto_keyring *kr)
{
        pthread_mutex_t *lock = kr ? (pthread_mutex_t *)&kr->lock : NULL;
        int64_t created;

        if (!kr)
                return 0;
        pthread_mutex_lock(lock);
        created = kr->n ? kr->keys[kr->n - 1].created_us : 0;
        pthread_mutex_unlock(lock);
        return created;
}

unsigned crypto_keyring_count(const crypto_keyring *kr)
{
        pthread_mutex_t *lock = kr ? (pthread_mutex_t *)&kr->lock : NULL;
        unsigned n;

        if (!kr)
                return 0;
        pthread_mutex_lock(lock);
        n = kr->n;
        pthread_mutex_unlock(lock);
        return n;
}

uint32_t crypto_keyring_master_id(const crypto_keyring *kr)
{
        return kr ? kr->master_id : 0;
}

/* ---- sealing ---- */

static int seal_with(const ossl_dl *o, const uint8_t *key, uint32_t id, const void *pt,
                     size_t ptlen, const void *aad, size_t aadlen, uint8_t **ret, size_t *retlen)
{
        int len, ok;

        if (ptlen > CRYPTO_MAX_BLOB || aadlen > INT_MAX)
                return -E2BIG;
        uint8_t *out = malloc(ptlen + CRYPTO_OVERHEAD);
        if (!out)
                return -ENOMEM;
        memcpy(out, CRYPTO_MAGIC, CRYPTO_MAGIC_LEN);
        put_be32(out + CRYPTO_MAGIC_LEN, id);
        if (o->RAND_bytes(out + CRYPTO_MAGIC_LEN + 4, CRYPTO_NONCE_LEN) != 1) {
                free(out);
                return -EIO;
        }
        EVP_CIPHER_CTX *c = o->EVP_CIPHER_CTX_new();
        ok = c && o->EVP_EncryptInit_ex(c, o->EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
             o->EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, CRYPTO_NONCE_LEN, NULL) == 1 &&
             o->EVP_EncryptInit_ex(c, NULL, NULL, key, out + CRYPTO_MAGIC_LEN + 4) == 1 &&
             o->EVP_EncryptUpdate(c, NULL, &len, out, CRYPTO_HEADER_LEN) == 1 &&
             (aadlen == 0 || o->EVP_EncryptUpdate(c, NULL, &len, aad, (int)aadlen) == 1) &&
             (ptlen == 0 ||
              o->EVP_EncryptUpdate(c, out + CRYPTO_HEADER_LEN, &len, pt, (int)ptlen) == 1) &&
             o->EVP_EncryptFinal_ex(c, out + CRYPTO_HEADER_LEN + ptlen, &len) == 1 &&
             o->EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, CRYPTO_TAG_LEN,
                                    out + CRYPTO_HEADER_LEN + ptlen) == 1;
        o->EVP_CIPHER_CTX_free(c);
        if (!ok) {
                free(out);
                return -EIO;
        }
        *ret = out;
        *retlen = ptlen + CRYPTO_OVERHEAD;
        return 0;
}

int crypto_seal(crypto_keyring *kr, const void *pt, size_t ptlen, const void *aad, size_t aadlen,
                uint8_t **ret, size_t *retlen)
{
        uint8_t key[CRYPTO_KEY_LEN];
        uint32_t id;

        if (!kr || (!pt && ptlen) || !ret || !retlen)
                return -EINVAL;
        pthread_mutex_lock(&kr->lock);
        memcpy(key, kr->keys[kr->n - 1].key, CRYPTO_KEY_LEN);
        id = kr->keys[kr->n - 1].id;
        pthread_mutex_unlock(&kr->lock);
        int r = seal_with(kr->o, key, id, pt, ptlen, aad, aadlen, ret, retlen);
        explicit_bzero(key, sizeof(key));
        return r;
}

int crypto_seal_master(crypto_keyring *kr, const void *pt, size_t ptlen, const void *aad,
                       size_t aadlen, uint8_t **ret, size_t *retlen)
{
        if (!kr || (!pt && ptlen) || !ret || !retlen)
                return -EINVAL;
        return seal_with(kr->o, kr->master, kr->master_id, pt, ptlen, aad, aadlen, ret, retlen);
}

int crypto_blob_key_id(const void *blob, size_t bloblen, uint32_t *id)
{
        const uint8_t *b = blob;

        if (!b || bloblen < CRYPTO_MAGIC_LEN + 4 || memcmp(b, CRYPTO_MAGIC, CRYPTO_MAGIC_LEN) != 0)
                return -EINVAL;
        *id = get_be32(b + CRYPTO_MAGIC_LEN);
        return 0;
}

/* Copy the key with that id out of kr; -ENOKEY if none. */
static int find_key(crypto_keyring *kr, uint32_t id, uint8_t key[CRYPTO_KEY_LEN])
{
        int r = -ENOKEY;

        if (id == kr->master_id) {
                memcpy(key, kr->master, CRYPTO_KEY_LEN);
                return 0;
        }
        pthread_mutex_lock(&kr->lock);
        for (unsigned i = 0; i < kr->n; i++)
                if (kr->keys[i].id == id) {
                        memcpy(key, kr->keys[i].key, CRYPTO_KEY_LEN);
                        r = 0;
                        break;
                }
        pthread_mutex_unlock(&kr->lock);
        return r;
}

int crypto_open(crypto_keyring *kr, const void *blob, size_t bloblen, const void *aad,
                size_t aadlen, uint8_t **ret, size_t *retlen)
{
        const uint8_t *b = blob;
        uint8_t key[CRYPTO_KEY_LEN];
        uint32_t id;
        int len, ok, r;

        if (!kr || !ret || !retlen)
                return -EINVAL;
        if (bloblen < CRYPTO_OVERHEAD || crypto_blob_key_id(blob, bloblen, &id) < 0)
                return -EINVAL;
        if (bloblen - CRYPTO_OVERHEAD > CRYPTO_MAX_BLOB || aadlen > INT_MAX)
                return -E2BIG;
        r = find_key(kr, id, key);
        if (r < 0)
                return r;
        size_t ctlen = bloblen - CRYPTO_OVERHEAD;
        uint8_t *out = malloc(ctlen + 1);
        if (!out) {
                explicit_bzero(key, sizeof(key));
                return -ENOMEM;
        }
        EVP_CIPHER_CTX *c = kr->o->EVP_CIPHER_CTX_new();
        ok = c && kr->o->EVP_DecryptInit_ex(c, kr->o->EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
             kr->o->EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, CRYPTO_NONCE_LEN, NULL) == 1 &&
             kr->o->EVP_DecryptInit_ex(c, NULL, NULL, key, b + CRYPTO_MAGIC_LEN + 4) == 1 &&
             kr->o->EVP_DecryptUpdate(c, NULL, &len, b, CRYPTO_HEADER_LEN) == 1 &&
             (aadlen == 0 || kr->o->EVP_DecryptUpdate(c, NULL, &len, aad, (int)aadlen) == 1) &&
             (ctlen == 0 ||
              kr->o->EVP_DecryptUpdate(c, out, &len, b + CRYPTO_HEADER_LEN, (int)ctlen) == 1) &&
             kr->o->EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, CRYPTO_TAG_LEN,
                                        (void *)(b + CRYPTO_HEADER_LEN + ctlen)) == 1 &&
             kr->o->EVP_DecryptFinal_ex(c, out + ctlen, &len) == 1;
        kr->o->EVP_CIPHER_CTX_free(c);
        explicit_bzero(key, sizeof(key));
        if (!ok) {
                explicit_bzero(out, ctlen);
                free(out);
                return -EBADMSG;
        }
        out[ctlen] = 0;
        *ret = out;
        *retlen = ctlen;
        return 0;
}

/* ---- keyring file ---- */

int crypto_keyring_rotate(crypto_keyring *kr, uint32_t *new_id)
{
        crypto_key k = {0};

        if (!kr)
                return -EINVAL;
        if (kr->o->RAND_bytes(k.key, CRYPTO_KEY_LEN) != 1)
                return -EIO;
        k.created_us = time_real_us();
        pthread_mutex_lock(&kr->lock);
        if (kr->n >= CRYPTO_MAX_KEYS) {
                pthread_mutex_unlock(&kr->lock);
                explicit_bzero(&k, sizeof(k));
                return -E2BIG;
        }
        k.id = kr->keys[kr->n - 1].id + 1;
        kr->keys[kr->n++] = k;
        pthread_mutex_unlock(&kr->lock);
        if (new_id)
                *new_id = k.id;
        explicit_bzero(&k, sizeof(k));
        return 0;
}

#define KEYRING_AAD    "vigil-keyring-v1"
#define KEYRING_HEADER "vigil-keyring 1\n"

/* Write kr's data keys, and extra after them when not NULL, sealed by the master key. */
static int keyring_write(crypto_keyring *kr, const crypto_key *extra, const char *path, char *err,
                         size_t errlen)
{
        char tmp[PATH_MAX];
        size_t cap = sizeof(KEYRING_HEADER) + (size_t)CRYPTO_MAX_KEYS * 128, len = 0;
        _cleanup_free_ char *text = malloc(cap);
        _cleanup_free_ uint8_t *blob = NULL;
        size_t bloblen = 0;
        int r;

        if (!text)
                return -ENOMEM;
        len = (size_t)snprintf(text, cap, "%s", KEYRING_HEADER);
        pthread_mutex_lock(&kr->lock);
        for (unsigned i = 0; i < kr->n; i++) {
                len += (size_t)snprintf(text + len, cap - len, "%u %lld ", kr->keys[i].id,
                                        (long long)kr->keys[i].created_us);
                for (int j = 0; j < CRYPTO_KEY_LEN; j++)
                        len += (size_t)snprintf(text + len, cap - len, "%02x", kr->keys[i].key[j]);
                text[len++] = '\n';
        }
        pthread_mutex_unlock(&kr->lock);
        if (extra) {
                len += (size_t)snprintf(text + len, cap - len, "%u %lld ", extra->id,
                                        (long long)extra->created_us);
                for (int j = 0; j < CRYPTO_KEY_LEN; j++)
                        len += (size_t)snprintf(text + len, cap - len, "%02x", extra->key[j]);
                text[len++] = '\n';
        }
        r = crypto_seal_master(kr, text, len, KEYRING_AAD, strlen(KEYRING_AAD), &blob, &bloblen);
        explicit_bzero(text, len);
        if (r < 0) {
                snprintf(err, errlen, "cannot seal the keyring: %s", strerror(-r));
                return r;
        }
        if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
                return -ENAMETOOLONG;
        /* tmp + fsync + rename + fsync of the directory, each through sysio (sysio.h): the
         * keyring at path is the old one or the new one, never a part of either. */
        const char *op = "open";
        _cleanup_close_ int fd = sysio.open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        r = fd < 0 ? -errno : (op = "write", sysio_write_all(fd, blob, bloblen));
        if (r == 0 && sysio.fsync(fd) < 0) {
                r = -errno;
                op = "fsync";
        }
        if (r < 0) {
                snprintf(err, errlen, "cannot write keyring '%s': %s failed: %s", tmp, op,
                         strerror(-r));
                if (fd >= 0)
                        sysio.unlink(tmp);
                return r;
        }
        if (sysio.rename(tmp, path) < 0) {
                r = -errno;
                snprintf(err, errlen, "cannot write keyring '%s': rename failed: %s", path,
                         strerror(-r));
                sysio.unlink(tmp);
                return r;
        }
        r = sysio_fsync_dir_of(path);
        if (r < 0) {
                /* The new keyring is in place but may not survive a power loss: say so, so
                 * that a rotation is not reported done. */
                snprintf(err, errlen,
                         "cannot make keyring '%s' durable: fsync of its directory failed: %s",
                         path, strerror(-r));
                return r;
        }
        return 0;
}

int crypto_keyring_save(const crypto_keyring *kr, const char *path, char *err, size_t errlen)
{
        return keyring_write((crypto_keyring *)kr, NULL, path, err, errlen);
}

int crypto_keyring_rotate_save(crypto_keyring *kr, const char *path, uint32_t *new_id, char *err,
                               size_t errlen)
{
        static pthread_mutex_t rotating = PTHREAD_MUTEX_INITIALIZER;
        crypto_key k = {0};
        int r;

        if (!kr)
                return -EINVAL;
        if (kr->o->RAND_bytes(k.key, CRYPTO_KEY_LEN) != 1) {
                snprintf(err, errlen, "cannot make a key: no randomness");
                return -EIO;
        }
        k.created_us = time_real_us();
        pthread_mutex_lock(&rotating);
        pthread_mutex_lock(&kr->lock);
        r = kr->n >= CRYPTO_MAX_KEYS ? -E2BIG : 0;
        k.id = kr->keys[kr->n - 1].id + 1;
        pthread_mutex_unlock(&kr->lock);
        if (r < 0)
                snprintf(err, errlen, "the keyring holds %d keys, the most it can",
                         CRYPTO_MAX_KEYS);
        /* The file first: a key seals nothing before the file that holds it is on disk. */
        if (r == 0)
                r = keyring_write(kr, &k, path, err, errlen);
        if (r == 0) {
                pthread_mutex_lock(&kr->lock);
                kr->keys[kr->n++] = k;
                pthread_mutex_unlock(&kr->lock);
                if (new_id)
                        *new_id = k.id;
        }
        pthread_mutex_unlock(&rotating);
        explicit_bzero(&k, sizeof(k));
        return r;
}

int crypto_keyring_load(crypto_keyring *kr, const char *path, char *err, size_t errlen)
{
        _cleanup_free_ uint8_t *text = NULL;
        _cleanup_free_ char *raw = NULL;
        const uint8_t *blob;
        size_t len = 0, tlen = 0;
        uint32_t id;
        int r;

        r = file_read_all(path, CRYPTO_KEYRING_MAX, &raw, &len);
        if (r == -EFBIG) {
                snprintf(err, errlen, "keyring '%s' is too large", path);
                return r;
        }
        if (r < 0) {
                if (r != -ENOENT)
                        snprintf(err, errlen, "cannot read keyring '%s': %s", path, strerror(-r));
                return r;
        }
        blob = (const uint8_t *)raw;
        if (crypto_blob_key_id(blob, len, &id) < 0) {
                snprintf(err, errlen, "keyring '%s' is not a sealed vigil keyring", path);
                return -EINVAL;
        }
        if (id != kr->master_id) {
                snprintf(err, errlen,
                         "keyring '%s' is sealed by key %08x but the configured encryption key is "
                         "%08x: wrong encryption key (nothing was changed)",
                         path, id, kr->master_id);
                return -EBADMSG;
        }
        r = crypto_open(kr, blob, len, KEYRING_AAD, strlen(KEYRING_AAD), &text, &tlen);
        if (r < 0) {
                snprintf(err, errlen, "cannot open keyring '%s': %s", path,
                         r == -EBADMSG ? "authentication failed (damaged or tampered)"
                                       : strerror(-r));
                return r;
        }
        if (tlen < strlen(KEYRING_HEADER) ||
            memcmp(text, KEYRING_HEADER, strlen(KEYRING_HEADER)) != 0) {
                snprintf(err, errlen, "keyring '%s': unknown format", path);
                explicit_bzero(text, tlen);
                return -EINVAL;
        }
        crypto_key *keys = calloc(CRYPTO_MAX_KEYS, sizeof(*keys));
        unsigned n = 0;
        if (!keys)
                return -ENOMEM;
        char *save = NULL;
        r = 0;
        for (char *line = strtok_r((char *)text + strlen(KEYRING_HEADER), "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
                unsigned kid;
                long long created;
                char hex[2 * CRYPTO_KEY_LEN + 2];
                if (n >= CRYPTO_MAX_KEYS ||
                    sscanf(line, "%u %lld %65s", &kid, &created, hex) != 3 ||
                    crypto_parse_hex_key(hex, keys[n].key) < 0 ||
                    (n > 0 && kid <= keys[n - 1].id) || kid == 0 || kid & CRYPTO_MASTER_FLAG) {
                        r = -EINVAL;
                        break;
                }
                keys[n].id = kid;
                keys[n].created_us = created;
                n++;
        }
        explicit_bzero(text, tlen);
        if (r < 0 || n == 0) {
                snprintf(err, errlen, "keyring '%s': malformed contents", path);
                explicit_bzero(keys, CRYPTO_MAX_KEYS * sizeof(*keys));
                free(keys);
                return -EINVAL;
        }
        pthread_mutex_lock(&kr->lock);
        memcpy(kr->keys, keys, n * sizeof(*keys));
        kr->n = n;
        pthread_mutex_unlock(&kr->lock);
        explicit_bzero(keys, CRYPTO_MAX_KEYS * sizeof(*keys));
        free(keys);
        return 0;
}

/* ---- files ---- */

#define CHUNK (64 * 1024)

static int write_all(int fd, const void *p, size_t n)
{
        return sysio_write_all(fd, p, n);
}

static int read_all(int fd, void *p, size_t n)
{
        uint8_t *b = p;
        while (n) {
                ssize_t r = read(fd, b, n);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (r == 0)
                        return -ENODATA;
                b += r;
                n -= (size_t)r;
        }
        return 0;
}

int crypto_seal_file(crypto_keyring *kr, const char *in, const char *out, char *err, size_t errlen)
{
        uint8_t hdr[CRYPTO_HEADER_LEN], tag[CRYPTO_TAG_LEN];
        _cleanup_free_ uint8_t *ibuf = malloc(CHUNK), *obuf = malloc(CHUNK + 32);
        int len, r = 0;
        ssize_t n;

        if (!ibuf || !obuf)
                return -ENOMEM;
        _cleanup_close_ int ifd = open(in, O_RDONLY | O_CLOEXEC);
        if (ifd < 0) {
                r = -errno;
                snprintf(err, errlen, "cannot read '%s': %s", in, strerror(-r));
                return r;
        }
        _cleanup_close_ int ofd = sysio.open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (ofd < 0) {
                r = -errno;
                snprintf(err, errlen, "cannot create '%s': %s", out, strerror(-r));
                return r;
        }
        memcpy(hdr, CRYPTO_MAGIC, CRYPTO_MAGIC_LEN);
        put_be32(hdr + CRYPTO_MAGIC_LEN, kr->master_id);
        EVP_CIPHER_CTX *c = kr->o->EVP_CIPHER_CTX_new();
        if (kr->o->RAND_bytes(hdr + CRYPTO_MAGIC_LEN + 4, CRYPTO_NONCE_LEN) != 1 || !c ||
            kr->o->EVP_EncryptInit_ex(c, kr->o->EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
            kr->o->EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, CRYPTO_NONCE_LEN, NULL) != 1 ||
            kr->o->EVP_EncryptInit_ex(c, NULL, NULL, kr->master, hdr + CRYPTO_MAGIC_LEN + 4) != 1 ||
            kr->o->EVP_EncryptUpdate(c, NULL, &len, hdr, sizeof(hdr)) != 1) {
                r = -EIO;
                goto fail;
        }
        r = write_all(ofd, hdr, sizeof(hdr));
        while (r == 0 && (n = read(ifd, ibuf, CHUNK)) != 0) {
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                if (kr->o->EVP_EncryptUpdate(c, obuf, &len, ibuf, (int)n) != 1) {
                        r = -EIO;
                        break;
                }
                r = write_all(ofd, obuf, (size_t)len);
        }
        if (r == 0 &&
            (kr->o->EVP_EncryptFinal_ex(c, obuf, &len) != 1 ||
             kr->o->EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, CRYPTO_TAG_LEN, tag) != 1))
                r = -EIO;
        if (r == 0)
                r = write_all(ofd, tag, sizeof(tag));
        if (r == 0 && sysio.fsync(ofd) < 0)
                r = -errno;
fail:
        kr->o->EVP_CIPHER_CTX_free(c);
        if (r < 0) {
                snprintf(err, errlen, "cannot encrypt '%s' to '%s': %s", in, out, strerror(-r));
                sysio.unlink(out);
        }
        return r;
}

int crypto_open_file(crypto_keyring *kr, const char *in, const char *out, char *err, size_t errlen)
{
        uint8_t hdr[CRYPTO_HEADER_LEN], tag[CRYPTO_TAG_LEN], key[CRYPTO_KEY_LEN];
        _cleanup_free_ uint8_t *ibuf = malloc(CHUNK), *obuf = malloc(CHUNK + 32);
        struct stat st;
        uint32_t id;
        int len, r = 0;
        EVP_CIPHER_CTX *c = NULL;
        _cleanup_close_ int ofd = -1;

        if (!ibuf || !obuf)
                return -ENOMEM;
        _cleanup_close_ int ifd = open(in, O_RDONLY | O_CLOEXEC);
        if (ifd < 0 || fstat(ifd, &st) < 0) {
                r = -errno;
                snprintf(err, errlen, "cannot read '%s': %s", in, strerror(-r));
                return r;
        }
        if (st.st_size < CRYPTO_MAGIC_LEN + 4 ||
            read_all(ifd, hdr, MIN((size_t)st.st_size, sizeof(hdr))) < 0 ||
            memcmp(hdr, CRYPTO_MAGIC, CRYPTO_MAGIC_LEN) != 0) {
                snprintf(err, errlen, "'%s' is not an encrypted vigil file (no VIGILENC1 header)",
                         in);
                return -EINVAL;
        }
        id = get_be32(hdr + CRYPTO_MAGIC_LEN);
        if (st.st_size < CRYPTO_OVERHEAD) {
                snprintf(err, errlen, "'%s' is truncated (%lld bytes)", in, (long long)st.st_size);
                return -EBADMSG;
        }
        if (find_key(kr, id, key) < 0) {
                snprintf(err, errlen,
                         "'%s' was encrypted with key %08x but the configured encryption key is "
                         "%08x: wrong encryption key",
                         in, id, kr->master_id);
                return -ENOKEY;
        }
        uint64_t ctlen = (uint64_t)st.st_size - CRYPTO_OVERHEAD;
        if (pread(ifd, tag, sizeof(tag), st.st_size - CRYPTO_TAG_LEN) != CRYPTO_TAG_LEN) {
                r = -EIO;
                goto fail;
        }
        ofd = sysio.open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (ofd < 0) {
                r = -errno;
                snprintf(err, errlen, "cannot create '%s': %s", out, strerror(-r));
                explicit_bzero(key, sizeof(key));
                return r;
        }
        c = kr->o->EVP_CIPHER_CTX_new();
        if (!c || kr->o->EVP_DecryptInit_ex(c, kr->o->EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
            kr->o->EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, CRYPTO_NONCE_LEN, NULL) != 1 ||
            kr->o->EVP_DecryptInit_ex(c, NULL, NULL, key, hdr + CRYPTO_MAGIC_LEN + 4) != 1 ||
            kr->o->EVP_DecryptUpdate(c, NULL, &len, hdr, sizeof(hdr)) != 1) {
                r = -EIO;
                goto fail_out;
        }
        while (ctlen > 0) {
                size_t want = (size_t)MIN(ctlen, (uint64_t)CHUNK);
                r = read_all(ifd, ibuf, want);
                if (r < 0)
                        goto fail_out;
                if (kr->o->EVP_DecryptUpdate(c, obuf, &len, ibuf, (int)want) != 1) {
                        r = -EIO;
                        goto fail_out;
                }
                r = write_all(ofd, obuf, (size_t)len);
                if (r < 0)
                        goto fail_out;
                ctlen -= want;
        }
        if (kr->o->EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, CRYPTO_TAG_LEN, tag) != 1 ||
            kr->o->EVP_DecryptFinal_ex(c, obuf, &len) != 1) {
                snprintf(err, errlen,
                         "'%s': authentication failed: the file is damaged, truncated or was "
                         "tampered with",
                         in);
                r = -EBADMSG;
                sysio.unlink(out);
                goto done;
        }
        if (sysio.fsync(ofd) < 0)
                r = -errno;
fail_out:
        if (r < 0) {
                snprintf(err, errlen, "cannot decrypt '%s' to '%s': %s", in, out, strerror(-r));
                sysio.unlink(out);
        }
done:
        kr->o->EVP_CIPHER_CTX_free(c);
        explicit_bzero(key, sizeof(key));
        return r;
fail:
        snprintf(err, errlen, "cannot decrypt '%s': %s", in, strerror(-r));
        explicit_bzero(key, sizeof(key));
        return r;
}
