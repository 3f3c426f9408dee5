/* s3.h — copies of backup archives in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, s3rver):
 * upload, download, list (ListObjectsV2), delete, and retention pruning on the bucket. Requests
 * are signed with AWS Signature V4 by libcurl itself (CURLOPT_AWS_SIGV4), libcurl being loaded at
 * the first request (common/curl_dl.h), so a daemon without an S3 target does not map it.
 *
 * Credentials come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
 * optionally AWS_SESSION_TOKEN) or, when s3_target.credentials_file is set, from that file in the
 * AWS shared-credentials format ([default] aws_access_key_id = …), which must be a regular file
 * that neither group nor others can read. They are read again for every request (rotated session
 * tokens are picked up) and never written anywhere, logs included.
 *
 * Not an S3 SDK: one PUT per object (at most S3_MAX_PUT bytes, no multipart upload), object keys
 * made of [A-Za-z0-9._/-] for what Vigil writes. Every function may block for up to the target's
 * timeout: call it from a worker thread (the backup service's, or the CLI), never from the sampler
 * or HTTP threads. Thread-safe (no shared state beyond curl_dl's). Each returns 0 or -errno with
 * the reason in err: -ENOKEY (no credentials), -EACCES (refused by the server: signature, key,
 * policy), -ENOENT (no such object or bucket), -EHOSTUNREACH / -ECONNREFUSED / -ETIMEDOUT (the
 * server could not be reached), -EPROTO (an answer that is not S3's), -EFBIG (too big). */
#ifndef VIGIL_STORE_S3_H
#define VIGIL_STORE_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define S3_MAX_KEY     1024                     /* bytes of an object key (S3's own limit) */
#define S3_MAX_PUT     (UINT64_C(5) << 30)      /* bytes: S3's limit for a single PUT */
#define S3_MAX_GET     (UINT64_C(64) << 30)     /* bytes: the largest archive a reader accepts */
#define S3_MAX_LIST    100000                   /* objects listed at most */
#define S3_MAX_XML     (8 * 1024 * 1024)        /* bytes of one XML answer */
#define S3_TIMEOUT_DEF (INT64_C(300) * 1000000) /* usec per request when timeout_us is 0 */

typedef struct s3_target {
        const char *endpoint;         /* "https://s3.eu-west-1.amazonaws.com",
                                       * "http://127.0.0.1:4568"; "" = https://s3.REGION.amazonaws.com */
        const char *bucket;           /* bucket name */
        const char *prefix;           /* key prefix ("vigil/"), may be "" */
        const char *region;           /* signing region ("us-east-1") */
        bool virtual_host;            /* BUCKET.HOST/KEY instead of HOST/BUCKET/KEY (path style) */
        const char *credentials_file; /* AWS credentials file; NULL/"" = the environment */
        int64_t timeout_us;           /* usec per request; 0 = S3_TIMEOUT_DEF */
        bool (*cancelled)(void *arg); /* polled about once a second: true aborts the transfer
                                       * (-ECANCELED); NULL = never */
        void *cancel_arg;             /* for cancelled */
} s3_target;

typedef struct s3_object {
        char key[S3_MAX_KEY]; /* full object key */
        uint64_t size;        /* bytes */
        int64_t mtime_us;     /* LastModified, usec since epoch */
} s3_object;

/* "s3://BUCKET/KEY" → bucket and key. -EINVAL with the reason when it is not such a URL. */
int s3_parse_url(const char *url, char *bucket, size_t blen, char *key, size_t klen, char *err,
                 size_t errlen);

/* Check that credentials can be found (and the file, if any, is safe) without asking the server:
 * what vigild runs at start, so that a missing secret refuses the start rather than every upload. */
int s3_check_credentials(const s3_target *t, char *err, size_t errlen);

/* PUT the file at PATH as KEY (the bucket's prefix is NOT added: KEY is complete). sha256_hex
 * (may be NULL: computed) is sent as x-amz-content-sha256, so the signature covers the bytes. */
int s3_put_file(const s3_target *t, const char *key, const char *path, const char *sha256_hex,
                char *err, size_t errlen);

/* GET KEY into DEST, a new file (O_EXCL, 0600); at most max bytes (-EFBIG beyond, and more than
 * the free space of DEST's filesystem is refused before anything is written). DEST is removed on
 * any failure. */
int s3_get_file(const s3_target *t, const char *key, const char *dest, uint64_t max, char *err,
                size_t errlen);

/* Every object whose key starts with PREFIX (ListObjectsV2, following continuation tokens), in
 * the bucket's order. *ret is malloc'd (caller frees, also when *n is 0). */
int s3_list(const s3_target *t, const char *prefix, s3_object **ret, size_t *n, char *err,
            size_t errlen);

/* When the archive named by KEY was made: the UTC stamp of its base name
 * (vigil-backup-HOST-YYYYmmddTHHMMSSZ[-N].tar…), usec since epoch plus N usec for the N-th of
 * one second, so that sorting on it puts archives in the order they were made; -1 when KEY is
 * not so named. */
int64_t s3_backup_time(const char *key);

/* DELETE KEY (an absent key is success, as S3 answers it). */
int s3_delete(const s3_target *t, const char *key, char *err, size_t errlen);

/* Retention on the bucket for the archives of one host: the objects under the target's prefix
 * named vigil-backup-HOST-…, newest first (LastModified); keep at most keep_count and none older
 * than max_age_us (0 = no age limit), never the newest. *removed gets the count. Other objects,
 * other hosts' archives included, are never touched. */
int s3_prune(const s3_target *t, const char *host, unsigned keep_count, int64_t max_age_us,
             unsigned *removed, char *err, size_t errlen);

#endif
