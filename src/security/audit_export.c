/* audit_export.c — the audit key (plain or sealed by the master key) and the export of the
 * chain's head to the sidecar file, syslog and a webhook (see audit_export.h). The webhook uses
 * libcurl loaded with dlopen at the first export that needs it, so a daemon without a webhook
 * never maps it. */
#include "audit_export.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "common/macros.h"
#include "store/crypto.h"
#include "store/store.h"

#define SEALED_AAD "vigil.audit-key"

int audit_export_options_check(const audit_export_options *o, char *err, size_t errlen)
{
        if (o->webhook_url && *o->webhook_url && strncmp(o->webhook_url, "http://", 7) != 0 &&
            strncmp(o->webhook_url, "https://", 8) != 0) {
                snprintf(err, errlen, "webhook_url: '%s' must start with http:// or https://",
                         o->webhook_url);
                return -EINVAL;
        }
        if (o->interval_s > 7 * 86400) {
                snprintf(err, errlen, "interval: %lld s is more than a week",
                         (long long)o->interval_s);
                return -EINVAL;
        }
        if (o->webhook_timeout_ms < 0 || o->webhook_timeout_ms > 60000) {
                snprintf(err, errlen, "webhook_timeout: must be between 0 and 60 s");
                return -EINVAL;
        }
        return 0;
}

/* ---- files ---- */

static int read_small(const char *path, char *buf, size_t len, size_t *n)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        ssize_t r;

        if (fd < 0)
                return -errno;
        r = read(fd, buf, len);
        if (r < 0)
                return -errno;
        *n = (size_t)r;
        return 0;
}

/* path.tmp (0600), fsync, rename over path, fsync the directory. */
static int write_atomic(const char *path, const void *data, size_t len)
{
        char tmp[PATH_MAX];
        int fd, r = 0;

        if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
                return -ENAMETOOLONG;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        for (size_t off = 0; off < len && r == 0;) {
                ssize_t w = write(fd, (const char *)data + off, len - off);
                if (w < 0)
                        r = -errno;
                else
                        off += (size_t)w;
        }
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        close(fd);
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                (void)unlink(tmp);
                return r;
        }
        return store_fsync_dir_of(path);
}

/* A new file that must not exist yet (two first starts race: one wins, the other loads). */
static int write_new(const char *path, const void *data, size_t len)
{
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        size_t off = 0;

        if (fd < 0)
                return -errno;
        while (off < len) {
                ssize_t w = write(fd, (const char *)data + off, len - off);
                if (w < 0) {
                        int r = -errno;
                        (void)unlink(path);
                        return r;
                }
                off += (size_t)w;
        }
        if (fsync(fd) < 0) {
                int r = -errno;
                (void)unlink(path);
                return r;
        }
        return store_fsync_dir_of(path);
}

static int hex_decode(const char *s, size_t n, unsigned char *out)
{
        for (size_t i = 0; i < n; i++) {
                unsigned v = 0;
                for (int k = 0; k < 2; k++) {
                        char c = s[2 * i + k];
                        v <<= 4;
                        if (c >= '0' && c <= '9')
                                v |= (unsigned)(c - '0');
                        else if (c >= 'a' && c <= 'f')
                                v |= (unsigned)(c - 'a' + 10);
                        else if (c >= 'A' && c <= 'F')
                                v |= (unsigned)(c - 'A' + 10);
                        else
                                return -EINVAL;
                }
                out[i] = (unsigned char)v;
        }
        return 0;
}

int audit_key_load_file(const char *path, audit_key *key, char *err, size_t errlen)
{
        char buf[2 * AUDIT_KEY_LEN + 8];
        size_t n = 0;
        int r = read_small(path, buf, sizeof(buf), &n);

        if (r < 0) {
                snprintf(err, errlen, "cannot read the audit key '%s': %s", path, strerror(-r));
                return r;
        }
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
                n--;
        if (n != 2 * AUDIT_KEY_LEN || hex_decode(buf, AUDIT_KEY_LEN, key->k) < 0) {
                explicit_bzero(buf, sizeof(buf));
                snprintf(err, errlen, "the audit key '%s' is not %d hex digits", path,
                         2 * AUDIT_KEY_LEN);
                return -EINVAL;
        }
        explicit_bzero(buf, sizeof(buf));
        key->set = true;
        return 0;
}

static int key_load_sealed(const char *path, crypto_keyring *kr, audit_key *key, char *err,
                           size_t errlen)
{
        unsigned char blob[AUDIT_KEY_LEN + CRYPTO_OVERHEAD + 8];
        uint8_t *pt = NULL;
        size_t n = 0, ptlen = 0;
        int r = read_small(path, (char *)blob, sizeof(blob), &n);

        if (r < 0) {
                snprintf(err, errlen, "cannot read the audit key '%s': %s", path, strerror(-r));
                return r;
        }
        r = crypto_open(kr, blob, n, SEALED_AAD, strlen(SEALED_AAD), &pt, &ptlen);
        if (r < 0 || ptlen != AUDIT_KEY_LEN) {
                snprintf(err, errlen,
                         "cannot open the audit key '%s' with the master key: %s (wrong "
                         "encryption key?)",
                         path, r < 0 ? strerror(-r) : "bad length");
                if (pt)
                        explicit_bzero(pt, ptlen);
                free(pt);
                return r < 0 ? r : -EBADMSG;
        }
        memcpy(key->k, pt, AUDIT_KEY_LEN);
        explicit_bzero(pt, ptlen);
        free(pt);
        key->set = true;
        return 0;
}

int audit_key_load(const char *dir, crypto_keyring *kr, bool create, audit_key *key, bool *created,
                   char *err, size_t errlen)
{
        char plain[PATH_MAX], sealed[PATH_MAX];
        unsigned char k[AUDIT_KEY_LEN];
        int r;

        memset(key, 0, sizeof(*key));
        if (created)
                *created = false;
        if (snprintf(plain, sizeof(plain), "%s/" AUDIT_KEY_FILE, dir) >= (int)sizeof(plain) ||
            snprintf(sealed, sizeof(sealed), "%s/" AUDIT_KEY_SEALED_FILE, dir) >=
                (int)sizeof(sealed)) {
                snprintf(err, errlen, "data directory '%s': path too long", dir);
                return -ENAMETOOLONG;
        }
        if (kr && access(sealed, F_OK) == 0)
                return key_load_sealed(sealed, kr, key, err, errlen);
        if (!kr && access(plain, F_OK) == 0)
                return audit_key_load_file(plain, key, err, errlen);
        if (!kr && access(sealed, F_OK) == 0) {
                snprintf(err, errlen,
                         "the audit key '%s' is sealed by the master key: give the encryption key",
                         sealed);
                return -ENOKEY;
        }
        if (kr && access(plain, F_OK) == 0) {
                /* encryption was turned on later: seal the existing key, keep the plain one out */
                r = audit_key_load_file(plain, key, err, errlen);
                if (r < 0 || !create)
                        return r;
        } else if (!create) {
                snprintf(err, errlen, "no audit key in '%s' (%s)", dir,
                         kr ? AUDIT_KEY_SEALED_FILE : AUDIT_KEY_FILE);
                return -ENOENT;
        } else if (getrandom(k, sizeof(k), 0) != (ssize_t)sizeof(k)) {
                r = -errno;
                snprintf(err, errlen, "cannot make an audit key: %s", strerror(-r));
                return r;
        } else {
                memcpy(key->k, k, sizeof(k));
                explicit_bzero(k, sizeof(k));
                key->set = true;
        }
        if (kr) {
                uint8_t *blob = NULL;
                size_t bloblen = 0;
                r = crypto_seal_master(kr, key->k, AUDIT_KEY_LEN, SEALED_AAD, strlen(SEALED_AAD),
                                       &blob, &bloblen);
                if (r == 0)
                        r = write_new(sealed, blob, bloblen);
                free(blob);
                if (r == 0)
                        (void)unlink(plain);
        } else {
                char hex[2 * AUDIT_KEY_LEN + 2];
                for (size_t i = 0; i < AUDIT_KEY_LEN; i++)
                        snprintf(hex + 2 * i, 3, "%02x", key->k[i]);
                hex[2 * AUDIT_KEY_LEN] = '\n';
                r = write_new(plain, hex, 2 * AUDIT_KEY_LEN + 1);
                explicit_bzero(hex, sizeof(hex));
        }
        if (r == -EEXIST) /* another process created it first: use that one */
                return audit_key_load(dir, kr, false, key, NULL, err, errlen);
        if (r < 0) {
                memset(key, 0, sizeof(*key));
                snprintf(err, errlen, "cannot write the audit key in '%s': %s", dir, strerror(-r));
                return r;
        }
        if (created)
                *created = true;
        return 0;
}

int audit_head_write(const char *path, const audit_head *h, const char *mac)
{
        char line[256];
        int n = snprintf(line, sizeof(line), "%lld:%s:%s\n", (long long)h->seq, h->hash,
                         mac ? mac : "");

        if (n < 0 || n >= (int)sizeof(line))
                return -EINVAL;
        return write_atomic(path, line, (size_t)n);
}

int audit_head_read(const char *path, audit_head *h, char mac_out[AUDIT_HASH_HEX])
{
        char buf[256];
        size_t n = 0;
        int r = read_small(path, buf, sizeof(buf) - 1, &n);

        if (r < 0)
                return r;
        buf[n] = '\0';
        r = audit_head_parse(buf, h);
        if (r < 0)
                return r;
        if (mac_out) {
                const char *m = strchr(strchr(buf, ':') + 1, ':');
                mac_out[0] = '\0';
                if (m && strlen(m + 1) >= AUDIT_HASH_HEX - 1) {
                        memcpy(mac_out, m + 1, AUDIT_HASH_HEX - 1);
                        mac_out[AUDIT_HASH_HEX - 1] = '\0';
                }
        }
        return 0;
}

/* ---- the webhook: libcurl, loaded when first needed ---- */

static struct {
        __typeof__(&curl_easy_init) init;
        __typeof__(&curl_easy_setopt) setopt;
        __typeof__(&curl_easy_perform) perform;
        __typeof__(&curl_easy_getinfo) getinfo;
        __typeof__(&curl_easy_strerror) strerror;
        __typeof__(&curl_easy_cleanup) cleanup;
        __typeof__(&curl_slist_append) slist_append;
        __typeof__(&curl_slist_free_all) slist_free_all;
        bool ok;
} cu;
static pthread_once_t cu_once = PTHREAD_ONCE_INIT;

static void cu_load(void)
{
        void *h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);

        if (!h)
                return;
#define SYM(m, name) (*(void **)&cu.m = dlsym(h, name))
        cu.ok = SYM(init, "curl_easy_init") && SYM(setopt, "curl_easy_setopt") &&
                SYM(perform, "curl_easy_perform") && SYM(getinfo, "curl_easy_getinfo") &&
                SYM(strerror, "curl_easy_strerror") && SYM(cleanup, "curl_easy_cleanup") &&
                SYM(slist_append, "curl_slist_append") &&
                SYM(slist_free_all, "curl_slist_free_all");
#undef SYM
}

static int post_webhook(const audit_export_options *o, const char *body, char *err, size_t errlen)
{
        struct curl_slist *hdr = NULL;
        long code = 0;
        CURLcode rc;
        CURL *c;

        pthread_once(&cu_once, cu_load);
        if (!cu.ok) {
                snprintf(err, errlen, "webhook: cannot load libcurl.so.4 (install libcurl4)");
                return -ELIBACC;
        }
        c = cu.init();
        if (!c)
                return -ENOMEM;
        hdr = cu.slist_append(NULL, "Content-Type: application/json");
        cu.setopt(c, CURLOPT_URL, o->webhook_url);
        cu.setopt(c, CURLOPT_HTTPHEADER, hdr);
        cu.setopt(c, CURLOPT_POSTFIELDS, body);
        cu.setopt(c, CURLOPT_TIMEOUT_MS, o->webhook_timeout_ms ? o->webhook_timeout_ms : 5000L);
        cu.setopt(c, CURLOPT_NOSIGNAL, 1L);
        cu.setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        rc = cu.perform(c);
        if (rc == CURLE_OK)
                cu.getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        cu.slist_free_all(hdr);
        cu.cleanup(c);
        if (rc != CURLE_OK) {
                snprintf(err, errlen, "webhook '%s': %s", o->webhook_url, cu.strerror(rc));
                return -EIO;
        }
        if (code < 200 || code > 299) {
                snprintf(err, errlen, "webhook '%s' answered %ld", o->webhook_url, code);
                return -EIO;
        }
        return 0;
}

int audit_export_head(const audit_export_options *o, const audit_key *key, const audit_head *h,
                      const char *sidecar, char *err, size_t errlen)
{
        char mac[AUDIT_HASH_HEX] = "", host[256] = "";
        int r, first = 0;

        err[0] = '\0';
        if (key && key->set && audit_mac(key, "vigil-audit-head", h->seq, h->hash, mac) < 0)
                return -ENOMEM;
        if (sidecar && !o->no_sidecar && (r = audit_head_write(sidecar, h, mac)) < 0) {
                snprintf(err, errlen, "cannot write the audit head to '%s': %s", sidecar,
                         strerror(-r));
                first = r;
        }
        if (o->syslog) {
                openlog("vigild", LOG_PID | LOG_NDELAY, LOG_AUTHPRIV);
                syslog(LOG_AUTHPRIV | LOG_NOTICE, "vigil-audit-head seq=%lld hash=%s mac=%s",
                       (long long)h->seq, h->hash, mac[0] ? mac : "-");
        }
        if (o->webhook_url && *o->webhook_url) {
                json_t *j;
                char *body;
                (void)gethostname(host, sizeof(host) - 1);
                j = json_pack("{s:s,s:I,s:s,s:s,s:I,s:s}", "event", "vigil-audit-head", "seq",
                              (json_int_t)h->seq, "hash", h->hash, "mac", mac, "ts",
                              (json_int_t)time(NULL), "host", host);
                body = j ? json_dumps(j, JSON_COMPACT) : NULL;
                json_decref(j);
                if (!body)
                        r = -ENOMEM;
                else if (first == 0)
                        r = post_webhook(o, body, err, errlen);
                else {
                        char e2[256];
                        r = post_webhook(o, body, e2, sizeof(e2));
                }
                free(body);
                if (r < 0 && first == 0)
                        first = r;
        }
        return first;
}
