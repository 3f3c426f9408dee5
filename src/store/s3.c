/* s3.c — the S3 client of the backups: one signed HTTP request per operation through libcurl's
 * own SigV4 signer (CURLOPT_AWS_SIGV4 "aws:amz:REGION:s3"), ListObjectsV2 parsed with a few
 * bounded string scans (the answer is small, flat XML; no XML library for it), and retention on
 * the bucket. See s3.h for the contract. Not a general client: no multipart upload, no redirects
 * (an S3 endpoint answers 301 with the right region in the body, which is reported as is). */
#include "s3.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "backup-internal.h"
#include "backup.h"
#include "common/buf.h"
#include "common/curl_dl.h"
#include "common/macros.h"
#include "common/vtime.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define CREDS_MAX    65536 /* bytes of a credentials file */

typedef struct s3_creds {
        char id[256];     /* access key id */
        char secret[256]; /* secret access key */
        char token[4096]; /* session token, "" = none */
} s3_creds;

static void creds_wipe(s3_creds *c)
{
        explicit_bzero(c, sizeof(*c));
}

static void trim(char *s)
{
        size_t n = strlen(s);
        while (n && isspace((unsigned char)s[n - 1]))
                s[--n] = 0;
        size_t i = 0;
        while (s[i] && isspace((unsigned char)s[i]))
                i++;
        memmove(s, s + i, strlen(s + i) + 1);
}

/* Copy a credential value, refusing one that does not fit (never cut into another key). */
static int put_value(char *dst, size_t len, const char *v, const char *what, const char *src,
                     char *err, size_t errlen)
{
        if (strlen(v) >= len) {
                snprintf(err, errlen, "%s in %s is longer than %zu bytes", what, src, len - 1);
                return -EINVAL;
        }
        snprintf(dst, len, "%s", v);
        return 0;
}

/* The AWS shared-credentials format: the [default] section (or keys before any section). */
static int creds_from_file(const char *path, s3_creds *c, char *err, size_t errlen)
{
        struct stat st;
        char *text = NULL;
        int fd, r = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
                r = -errno;
                snprintf(err, errlen, "cannot open the S3 credentials file '%s': %s", path,
                         strerror(errno));
                return r;
        }
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                snprintf(err, errlen, "the S3 credentials file '%s' is not a regular file", path);
                close(fd);
                return -EINVAL;
        }
        /* Like every secret file Vigil reads: only its owner (us or root) may read or write it. */
        if (st.st_mode & 077) {
                snprintf(err, errlen,
                         "the S3 credentials file '%s' is accessible by group or others (mode "
                         "%04o): chmod 600 '%s'",
                         path, (unsigned)(st.st_mode & 07777), path);
                close(fd);
                return -EPERM;
        }
        if (st.st_uid != geteuid() && st.st_uid != 0) {
                snprintf(err, errlen,
                         "the S3 credentials file '%s' belongs to uid %u, not to this user (%u) "
                         "or root",
                         path, (unsigned)st.st_uid, (unsigned)geteuid());
                close(fd);
                return -EPERM;
        }
        if (st.st_size > CREDS_MAX) {
                snprintf(err, errlen, "the S3 credentials file '%s' is larger than %d bytes", path,
                         CREDS_MAX);
                close(fd);
                return -EFBIG;
        }
        text = calloc(1, (size_t)st.st_size + 1);
        if (!text) {
                close(fd);
                return -ENOMEM;
        }
        size_t got = 0;
        while (got < (size_t)st.st_size) {
                ssize_t k = read(fd, text + got, (size_t)st.st_size - got);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                got += (size_t)k;
        }
        close(fd);
        text[got] = 0;

        bool in_default = true; /* keys before any [section] count as default */
        char *save = NULL;
        for (char *line = strtok_r(text, "\n", &save); line && r == 0;
             line = strtok_r(NULL, "\n", &save)) {
                trim(line);
                if (!*line || *line == '#' || *line == ';')
                        continue;
                if (*line == '[') {
                        in_default = !strcmp(line, "[default]");
                        continue;
                }
                char *eq = strchr(line, '=');
                if (!eq || !in_default)
                        continue;
                *eq = 0;
                char *k = line, *v = eq + 1;
                trim(k);
                trim(v);
                if (!strcmp(k, "aws_access_key_id"))
                        r = put_value(c->id, sizeof(c->id), v, k, path, err, errlen);
                else if (!strcmp(k, "aws_secret_access_key"))
                        r = put_value(c->secret, sizeof(c->secret), v, k, path, err, errlen);
                else if (!strcmp(k, "aws_session_token"))
                        r = put_value(c->token, sizeof(c->token), v, k, path, err, errlen);
        }
        explicit_bzero(text, got);
        free(text);
        if (r < 0)
                return r;
        if (!c->id[0] || !c->secret[0]) {
                snprintf(err, errlen,
                         "the S3 credentials file '%s' has no aws_access_key_id and "
                         "aws_secret_access_key in its [default] section",
                         path);
                return -ENOKEY;
        }
        return 0;
}

static int creds_load(const s3_target *t, s3_creds *c, char *err, size_t errlen)
{
        memset(c, 0, sizeof(*c));
        if (t->credentials_file && t->credentials_file[0])
                return creds_from_file(t->credentials_file, c, err, errlen);
        const char *id = getenv("AWS_ACCESS_KEY_ID"), *sec = getenv("AWS_SECRET_ACCESS_KEY"),
                   *tok = getenv("AWS_SESSION_TOKEN");
        if (!id || !*id || !sec || !*sec) {
                snprintf(err, errlen,
                         "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in "
                         "the environment, or backup.s3.credentials_file");
                return -ENOKEY;
        }
        int r = put_value(c->id, sizeof(c->id), id, "AWS_ACCESS_KEY_ID", "the environment", err,
                          errlen);
        if (r == 0)
                r = put_value(c->secret, sizeof(c->secret), sec, "AWS_SECRET_ACCESS_KEY",
                              "the environment", err, errlen);
        if (r == 0 && tok)
                r = put_value(c->token, sizeof(c->token), tok, "AWS_SESSION_TOKEN",
                              "the environment", err, errlen);
        return r;
}

int s3_check_credentials(const s3_target *t, char *err, size_t errlen)
{
        s3_creds c;
        int r = creds_load(t, &c, err, errlen);
        creds_wipe(&c);
        return r;
}

int s3_parse_url(const char *url, char *bucket, size_t blen, char *key, size_t klen, char *err,
                 size_t errlen)
{
        if (strncmp(url, "s3://", 5) != 0) {
                snprintf(err, errlen, "'%s' is not an s3://BUCKET/KEY URL", url);
                return -EINVAL;
        }
        const char *b = url + 5, *slash = strchr(b, '/');
        if (!slash || slash == b || !slash[1]) {
                snprintf(err, errlen, "'%s' is not an s3://BUCKET/KEY URL (bucket and key needed)",
                         url);
                return -EINVAL;
        }
        if ((size_t)(slash - b) >= blen || strlen(slash + 1) >= klen ||
            strlen(slash + 1) >= S3_MAX_KEY) {
                snprintf(err, errlen, "'%s': bucket or key too long", url);
                return -ENAMETOOLONG;
        }
        memcpy(bucket, b, (size_t)(slash - b));
        bucket[slash - b] = 0;
        snprintf(key, klen, "%s", slash + 1);
        return 0;
}

/* RFC 3986 unreserved characters stay, the rest is %XX (what SigV4's canonical form wants);
 * keep_slash for paths. */
static int uri_encode(buf *b, const char *s, bool keep_slash)
{
        for (; *s; s++) {
                unsigned char ch = (unsigned char)*s;
                if (isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~' ||
                    (keep_slash && ch == '/'))
                        buf_append(b, s, 1);
                else
                        buf_printf(b, "%%%02X", ch);
        }
        return b->err;
}

/* scheme://host[:port] of the target, with the bucket in front of the host when virtual. */
static int base_url(const s3_target *t, buf *u, char *err, size_t errlen)
{
        char def[256];
        const char *ep = t->endpoint;

        if (!ep || !*ep) {
                snprintf(def, sizeof(def), "https://s3.%s.amazonaws.com",
                         t->region && *t->region ? t->region : "us-east-1");
                ep = def;
        }
        const char *hp = NULL;
        if (!strncmp(ep, "https://", 8))
                hp = ep + 8;
        else if (!strncmp(ep, "http://", 7))
                hp = ep + 7;
        size_t hl = hp ? strcspn(hp, "/") : 0;
        if (!hp || !hl || (hp[hl] && strcmp(hp + hl, "/"))) {
                snprintf(err, errlen, "S3 endpoint '%s' is not http(s)://HOST[:PORT]", ep);
                return -EINVAL;
        }
        buf_append(u, ep, (size_t)(hp - ep));
        if (t->virtual_host)
                buf_printf(u, "%s.", t->bucket);
        buf_append(u, hp, hl);
        if (!t->virtual_host)
                buf_printf(u, "/%s", t->bucket);
        return u->err;
}

struct req {
        const curl_dl *cu; /* libcurl */
        CURL *h;           /* the transfer */
        FILE *upload;      /* PUT body, or NULL */
        int out_fd;        /* GET body goes here on 2xx; -1 = into body */
        uint64_t max;      /* bytes accepted into out_fd */
        uint64_t got;      /* bytes written to out_fd */
        int werr;          /* -errno of a failed write or the cap */
        buf body;          /* XML answer (list) or S3's error document */
};

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
        const s3_target *t = ud;
        (void)dt, (void)dn, (void)ut, (void)un;
        return t->cancelled(t->cancel_arg) ? 1 : 0;
}

static size_t on_data(char *p, size_t sz, size_t nm, void *ud)
{
        struct req *q = ud;
        size_t n = sz * nm;
        long code = 0;

        q->cu->easy_getinfo(q->h, CURLINFO_RESPONSE_CODE, &code);
        if (q->out_fd >= 0 && code >= 200 && code < 300) {
                if (q->got + n > q->max) {
                        q->werr = -EFBIG;
                        return 0;
                }
                size_t off = 0;
                while (off < n) {
                        ssize_t k = write(q->out_fd, p + off, n - off);
                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k < 0) {
                                q->werr = -errno;
                                return 0;
                        }
                        off += (size_t)k;
                }
                q->got += n;
                return n;
        }
        if (buf_append(&q->body, p, n) < 0) {
                q->werr = -EFBIG;
                return 0;
        }
        return n;
}

/* The content of the first <tag>…</tag> in [s, end), entities decoded, into out (cut at len). */
static const char *xml_tag(const char *s, const char *end, const char *tag, char *out, size_t len)
{
        char open[64], close[64];
        snprintf(open, sizeof(open), "<%s>", tag);
        snprintf(close, sizeof(close), "</%s>", tag);
        const char *a = memmem(s, (size_t)(end - s), open, strlen(open));
        if (!a)
                return NULL;
        a += strlen(open);
        const char *z = memmem(a, (size_t)(end - a), close, strlen(close));
        if (!z)
                return NULL;
        if (out) {
                static const struct {
                        const char *ent; /* entity */
                        char ch;         /* what it stands for */
                } ents[] = {{"&amp;", '&'},
                            {"&lt;", '<'},
                            {"&gt;", '>'},
                            {"&quot;", '"'},
                            {"&apos;", '\''}};
                size_t o = 0;
                for (const char *p = a; p < z && o + 1 < len;) {
                        bool done = false;
                        for (size_t i = 0; *p == '&' && i < ARRAY_SIZE(ents); i++) {
                                size_t el = strlen(ents[i].ent);
                                if ((size_t)(z - p) >= el && !memcmp(p, ents[i].ent, el)) {
                                        out[o++] = ents[i].ch;
                                        p += el;
                                        done = true;
                                        break;
                                }
                        }
                        if (!done)
                                out[o++] = *p++;
                }
                out[o] = 0;
        }
        return z + strlen(close);
}

static int curl_errno(CURLcode cc)
{
        switch (cc) {
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                return -EHOSTUNREACH;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        default:
                return -EIO;
        }
}

/* One signed request. what: "upload 'x' to" etc. for messages; key NULL = the bucket itself;
 * query: canonical (sorted, encoded) or NULL. On a 2xx answer the body is in q->body (or the
 * file). */
static int s3_request(const s3_target *t, const char *method, const char *key, const char *query,
                      struct req *q, uint64_t upload_size, const char *payload_sha,
                      const char *what, char *err, size_t errlen)
{
        const curl_dl *cu = NULL;
        s3_creds cr;
        buf url, hdr;
        struct curl_slist *hl = NULL;
        char sigv4[128], ebuf[CURL_ERROR_SIZE] = "", where[S3_MAX_KEY + 300];
        long code = 0;
        int r;

        snprintf(where, sizeof(where), "s3://%s/%s", t->bucket, key ? key : "");
        r = curl_dl_get(&cu, err, errlen);
        if (r < 0)
                return r;
        r = creds_load(t, &cr, err, errlen);
        if (r < 0)
                return r;
        buf_init(&url, 16384);
        buf_init(&hdr, 8192);
        r = base_url(t, &url, err, errlen);
        if (r == -EINVAL)
                goto out; /* the reason is in err */
        buf_puts(&url, "/");
        if (key)
                uri_encode(&url, key, true);
        if (query)
                buf_printf(&url, "?%s", query);
        if (url.err) {
                r = url.err;
                snprintf(err, errlen, "failed to %s '%s': URL too long", what, where);
                goto out;
        }
        snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:s3",
                 t->region && *t->region ? t->region : "us-east-1");
        q->cu = cu;
        q->h = cu->easy_init();
        if (!q->h) {
                r = -ENOMEM;
                snprintf(err, errlen, "failed to %s '%s': cannot create a transfer", what, where);
                goto out;
        }
        /* The payload hash is given, not left to libcurl: it cannot hash an upload it streams,
         * and with it the signature covers the archive's bytes. */
        buf_printf(&hdr, "x-amz-content-sha256: %s", payload_sha ? payload_sha : EMPTY_SHA256);
        hl = cu->slist_append(hl, hdr.data);
        if (cr.token[0]) {
                buf_reset(&hdr);
                buf_printf(&hdr, "x-amz-security-token: %s", cr.token);
                struct curl_slist *n = cu->slist_append(hl, hdr.data);
                hl = n ? n : hl;
        }
        int64_t to = t->timeout_us > 0 ? t->timeout_us : S3_TIMEOUT_DEF;
        cu->easy_setopt(q->h, CURLOPT_URL, url.data);
        cu->easy_setopt(q->h, CURLOPT_PROTOCOLS_STR, "http,https");
        cu->easy_setopt(q->h, CURLOPT_NOSIGNAL, 1L);
        cu->easy_setopt(q->h, CURLOPT_AWS_SIGV4, sigv4);
        cu->easy_setopt(q->h, CURLOPT_USERNAME, cr.id);
        cu->easy_setopt(q->h, CURLOPT_PASSWORD, cr.secret);
        cu->easy_setopt(q->h, CURLOPT_HTTPHEADER, hl);
        cu->easy_setopt(q->h, CURLOPT_TIMEOUT_MS, (long)(to / 1000));
        cu->easy_setopt(q->h, CURLOPT_CONNECTTIMEOUT_MS, (long)MIN(to / 1000, 10000));
        cu->easy_setopt(q->h, CURLOPT_ERRORBUFFER, ebuf);
        cu->easy_setopt(q->h, CURLOPT_WRITEFUNCTION, on_data);
        cu->easy_setopt(q->h, CURLOPT_WRITEDATA, q);
        if (t->cancelled) {
                cu->easy_setopt(q->h, CURLOPT_NOPROGRESS, 0L);
                cu->easy_setopt(q->h, CURLOPT_XFERINFOFUNCTION, on_progress);
                cu->easy_setopt(q->h, CURLOPT_XFERINFODATA, (void *)t);
        }
        if (!strcmp(method, "PUT")) {
                cu->easy_setopt(q->h, CURLOPT_UPLOAD, 1L);
                cu->easy_setopt(q->h, CURLOPT_READDATA, q->upload);
                cu->easy_setopt(q->h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)upload_size);
        } else if (strcmp(method, "GET")) {
                cu->easy_setopt(q->h, CURLOPT_CUSTOMREQUEST, method);
        }
        CURLcode cc = cu->easy_perform(q->h);
        creds_wipe(&cr);
        cu->easy_getinfo(q->h, CURLINFO_RESPONSE_CODE, &code);
        if (cc != CURLE_OK) {
                if (q->werr == -EFBIG)
                        snprintf(err, errlen, "failed to %s '%s': larger than %llu bytes", what,
                                 where, (unsigned long long)q->max);
                else if (q->werr)
                        snprintf(err, errlen, "failed to %s '%s': %s", what, where,
                                 strerror(-q->werr));
                else
                        snprintf(err, errlen, "failed to %s '%s': %s (%s)", what, where,
                                 ebuf[0] ? ebuf : cu->easy_strerror(cc), url.data);
                r = q->werr                           ? q->werr
                    : cc == CURLE_ABORTED_BY_CALLBACK ? -ECANCELED
                                                      : curl_errno(cc);
                goto out;
        }
        if (code < 200 || code >= 300) {
                char ecode[128] = "", emsg[512] = "";
                const char *e = q->body.data ? q->body.data + q->body.len : NULL;
                if (q->body.data) {
                        xml_tag(q->body.data, e, "Code", ecode, sizeof(ecode));
                        xml_tag(q->body.data, e, "Message", emsg, sizeof(emsg));
                }
                snprintf(err, errlen, "failed to %s '%s': HTTP %ld%s%s%s%s", what, where, code,
                         ecode[0] ? " " : "", ecode, emsg[0] ? ": " : "", emsg);
                r = code == 401 || code == 403 ? -EACCES
                    : code == 404              ? -ENOENT
                    : code >= 500              ? -EIO
                                               : -EPROTO;
                goto out;
        }
        r = 0;
out:
        creds_wipe(&cr);
        if (q->h)
                cu->easy_cleanup(q->h);
        q->h = NULL;
        /* the session token was in these */
        for (struct curl_slist *e = hl; e; e = e->next)
                explicit_bzero(e->data, strlen(e->data));
        if (hl)
                cu->slist_free_all(hl);
        if (hdr.data)
                explicit_bzero(hdr.data, hdr.len);
        buf_release(&url);
        buf_release(&hdr);
        return r;
}

int s3_put_file(const s3_target *t, const char *key, const char *path, const char *sha256_hex,
                char *err, size_t errlen)
{
        char hex[65];
        uint64_t size = 0;
        struct stat st;
        int r;

        if (!sha256_hex) {
                r = backup_sha256_file(path, hex, &size);
                if (r < 0) {
                        snprintf(err, errlen, "cannot read '%s': %s", path, strerror(-r));
                        return r;
                }
                sha256_hex = hex;
        }
        FILE *f = fopen(path, "rbe");
        if (!f) {
                r = -errno;
                snprintf(err, errlen, "cannot open '%s' for the upload: %s", path, strerror(errno));
                return r;
        }
        if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
                fclose(f);
                snprintf(err, errlen, "'%s' is not a regular file", path);
                return -EINVAL;
        }
        if ((uint64_t)st.st_size > S3_MAX_PUT) {
                fclose(f);
                snprintf(err, errlen,
                         "cannot upload '%s': %llu bytes is more than one S3 PUT takes (5 GiB)",
                         path, (unsigned long long)st.st_size);
                return -EFBIG;
        }
        struct req q = {.upload = f, .out_fd = -1};
        buf_init(&q.body, 65536);
        r = s3_request(t, "PUT", key, NULL, &q, (uint64_t)st.st_size, sha256_hex, "upload to", err,
                       errlen);
        buf_release(&q.body);
        fclose(f);
        return r;
}

int s3_get_file(const s3_target *t, const char *key, const char *dest, uint64_t max, char *err,
                size_t errlen)
{
        int fd = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        int r;

        if (fd < 0) {
                r = -errno;
                snprintf(err, errlen, "cannot create '%s': %s", dest, strerror(errno));
                return r;
        }
        struct statvfs vfs;
        /* Never more than the filesystem can hold: the cap follows the free space. */
        if (fstatvfs(fd, &vfs) == 0) {
                uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
                if (avail < max)
                        max = avail;
        }
        struct req q = {.out_fd = fd, .max = max};
        buf_init(&q.body, 65536);
        r = s3_request(t, "GET", key, NULL, &q, 0, NULL, "download", err, errlen);
        buf_release(&q.body);
        if (r == 0 && fsync(fd) < 0) {
                r = -errno;
                snprintf(err, errlen, "cannot write '%s': %s", dest, strerror(errno));
        }
        if (close(fd) < 0 && r == 0) {
                r = -errno;
                snprintf(err, errlen, "cannot write '%s': %s", dest, strerror(errno));
        }
        if (r < 0)
                unlink(dest);
        return r;
}

static int64_t parse_iso(const char *s)
{
        struct tm tm = {0};
        if (sscanf(s, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                   &tm.tm_min, &tm.tm_sec) != 6)
                return 0;
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        return (int64_t)timegm(&tm) * USEC_PER_SEC;
}

int s3_list(const s3_target *t, const char *prefix, s3_object **ret, size_t *n, char *err,
            size_t errlen)
{
        s3_object *v = NULL;
        size_t cnt = 0, cap = 0;
        char token[2048] = "";
        buf qs;
        int r = 0;

        buf_init(&qs, 16384);
        for (;;) {
                /* SigV4 wants the query sorted by name, each part encoded */
                buf_reset(&qs);
                if (token[0]) {
                        buf_puts(&qs, "continuation-token=");
                        uri_encode(&qs, token, false);
                        buf_puts(&qs, "&");
                }
                buf_puts(&qs, "list-type=2&prefix=");
                uri_encode(&qs, prefix ? prefix : "", false);
                if (qs.err) {
                        r = qs.err;
                        snprintf(err, errlen, "failed to list 's3://%s/%s': prefix too long",
                                 t->bucket, prefix);
                        break;
                }
                struct req q = {.out_fd = -1};
                buf_init(&q.body, S3_MAX_XML);
                r = s3_request(t, "GET", NULL, qs.data, &q, 0, NULL, "list", err, errlen);
                if (r < 0) {
                        buf_release(&q.body);
                        break;
                }
                const char *p = q.body.data ? q.body.data : "", *end = p + q.body.len;
                if (!memmem(p, (size_t)(end - p), "<ListBucketResult", 17)) {
                        snprintf(err, errlen,
                                 "failed to list 's3://%s/': the answer is not a "
                                 "ListBucketResult",
                                 t->bucket);
                        buf_release(&q.body);
                        r = -EPROTO;
                        break;
                }
                char trunc[16] = "";
                xml_tag(p, end, "IsTruncated", trunc, sizeof(trunc));
                token[0] = 0;
                xml_tag(p, end, "NextContinuationToken", token, sizeof(token));
                for (const char *c = p; (c = memmem(c, (size_t)(end - c), "<Contents>", 10));) {
                        const char *ce = memmem(c, (size_t)(end - c), "</Contents>", 11);
                        if (!ce)
                                break;
                        if (cnt == cap) {
                                size_t nc = cap ? cap * 2 : 64;
                                s3_object *nv =
                                    cnt >= S3_MAX_LIST ? NULL : realloc(v, nc * sizeof(*v));
                                if (!nv) {
                                        r = cnt >= S3_MAX_LIST ? -E2BIG : -ENOMEM;
                                        snprintf(err, errlen,
                                                 "failed to list 's3://%s/%s': more than %d "
                                                 "objects",
                                                 t->bucket, prefix, S3_MAX_LIST);
                                        break;
                                }
                                v = nv;
                                cap = nc;
                        }
                        s3_object *o = &v[cnt];
                        char size[32] = "", lm[64] = "";
                        memset(o, 0, sizeof(*o));
                        if (xml_tag(c, ce, "Key", o->key, sizeof(o->key)) && o->key[0]) {
                                xml_tag(c, ce, "Size", size, sizeof(size));
                                xml_tag(c, ce, "LastModified", lm, sizeof(lm));
                                o->size = strtoull(size, NULL, 10);
                                o->mtime_us = parse_iso(lm);
                                cnt++;
                        }
                        c = ce + 11;
                }
                buf_release(&q.body);
                if (r < 0 || strcmp(trunc, "true") || !token[0])
                        break;
        }
        buf_release(&qs);
        if (r < 0) {
                free(v);
                return r;
        }
        *ret = v;
        *n = cnt;
        return 0;
}

int s3_delete(const s3_target *t, const char *key, char *err, size_t errlen)
{
        struct req q = {.out_fd = -1};
        buf_init(&q.body, 65536);
        int r = s3_request(t, "DELETE", key, NULL, &q, 0, NULL, "delete", err, errlen);
        buf_release(&q.body);
        return r == -ENOENT ? 0 : r;
}

/* "vigil-backup-HOST-" then a UTC stamp YYYYmmddTHHMMSSZ: usec since epoch, or -1. */
static int64_t name_stamp(const char *rest)
{
        struct tm tm = {0};
        for (int i = 0; i < 16; i++) {
                char ch = rest[i];
                bool ok = i == 8 ? ch == 'T' : i == 15 ? ch == 'Z' : isdigit((unsigned char)ch);
                if (!ok)
                        return -1;
        }
        if (sscanf(rest, "%4d%2d%2dT%2d%2d%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                   &tm.tm_min, &tm.tm_sec) != 6)
                return -1;
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        return (int64_t)timegm(&tm) * USEC_PER_SEC;
}

int64_t s3_backup_time(const char *key)
{
        const char *base = strrchr(key, '/') ? strrchr(key, '/') + 1 : key;
        const char *tar = strstr(base, ".tar.");

        if (strncmp(base, BACKUP_PREFIX, strlen(BACKUP_PREFIX)) || !tar)
                return -1;
        /* the last "-" + 16 characters that read as a stamp before ".tar." or "-N.tar." */
        for (const char *p = tar - 1; p > base; p--) {
                if (*p != '-' || tar - (p + 1) < 16)
                        continue;
                int64_t st = name_stamp(p + 1);
                const char *end = p + 17;
                if (st < 0 || (end != tar && *end != '-'))
                        continue;
                unsigned long seq = *end == '-' ? strtoul(end + 1, NULL, 10) : 1;
                return st + (int64_t)MIN(seq, 999999UL);
        }
        return -1;
}

static int newest_first(const void *a, const void *b)
{
        const s3_object *x = a, *y = b;
        if (x->mtime_us != y->mtime_us)
                return x->mtime_us < y->mtime_us ? 1 : -1;
        return -strcmp(x->key, y->key);
}

int s3_prune(const s3_target *t, const char *host, unsigned keep_count, int64_t max_age_us,
             unsigned *removed, char *err, size_t errlen)
{
        char safe[128], pfx[S3_MAX_KEY]; /* safe: as long as backup_create's host */
        s3_object *v = NULL;
        size_t n = 0, mine = 0;
        int r;

        *removed = 0;
        backup_safe_name(host, safe, sizeof(safe));
        snprintf(pfx, sizeof(pfx), "%s%s%s-", t->prefix ? t->prefix : "", BACKUP_PREFIX, safe);
        r = s3_list(t, pfx, &v, &n, err, errlen);
        if (r < 0)
                return r;
        /* Only this host's archives: the rest of the name must start with the stamp (so host
         * "node1" never prunes "node1-b"'s), directly under the prefix. The stamp in the name
         * (creation time, whole seconds) orders them, then the "-N" of several archives made in
         * one second (added as microseconds: N was made after N-1, and after the plain name). */
        for (size_t i = 0; i < n; i++) {
                const char *rest = v[i].key + strlen(pfx);
                int64_t st = name_stamp(rest);
                if (st < 0 || strchr(rest, '/'))
                        continue;
                unsigned long seq = rest[16] == '-' ? strtoul(rest + 17, NULL, 10) : 1;
                v[mine] = v[i];
                v[mine].mtime_us = st + (int64_t)MIN(seq, 999999UL);
                mine++;
        }
        qsort(v, mine, sizeof(*v), newest_first);
        int64_t now = time_real_us();
        int first = 0;
        for (size_t i = 1; i < mine; i++) {
                bool too_many = keep_count && i >= keep_count;
                bool too_old = max_age_us > 0 && now - v[i].mtime_us > max_age_us;
                if (!too_many && !too_old)
                        continue;
                char e[1024] = "";
                int d = s3_delete(t, v[i].key, e, sizeof(e));
                if (d < 0 && !first) {
                        first = d;
                        snprintf(err, errlen, "%s", e);
                }
                if (d == 0)
                        (*removed)++;
        }
        free(v);
        return first;
}
