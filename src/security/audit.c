/* audit.c — append, prune, list and verify the hash-chained audit_log table (see audit.h). */
#include "audit.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"
#include "common/ossl_dl.h"

static const char zero_hash[] = "0000000000000000000000000000000000000000000000000000000000000000";

static const char *nz(const char *s)
{
        return s ? s : "";
}

int audit_hash(const char *prev, int64_t seq, const audit_record *rec, char out[AUDIT_HASH_HEX])
{
        json_t *a = json_pack("[I,I,s,s,s,s,s,s,i,s,s]", (json_int_t)seq, (json_int_t)rec->ts,
                              nz(rec->request_id), nz(rec->principal), nz(rec->role),
                              nz(rec->source_ip), nz(rec->method), nz(rec->route), rec->status,
                              nz(rec->event), nz(rec->detail));
        const ossl_dl *o = ossl_dl_lib();
        unsigned char md[32];
        unsigned int mdlen = 0;
        EVP_MD_CTX *c;
        char *canon;
        int ok;

        if (!o) {
                json_decref(a);
                return -ELIBACC;
        }
        if (!a)
                return -ENOMEM;
        canon = json_dumps(a, JSON_COMPACT | JSON_ENSURE_ASCII);
        json_decref(a);
        if (!canon)
                return -ENOMEM;
        c = o->EVP_MD_CTX_new();
        ok = c && o->EVP_DigestInit_ex(c, o->EVP_sha256(), NULL) &&
             o->EVP_DigestUpdate(c, prev, strlen(prev)) &&
             o->EVP_DigestUpdate(c, canon, strlen(canon)) && o->EVP_DigestFinal_ex(c, md, &mdlen);
        o->EVP_MD_CTX_free(c);
        free(canon);
        if (!ok || mdlen != sizeof(md))
                return -ENOMEM;
        for (size_t i = 0; i < sizeof(md); i++)
                snprintf(out + 2 * i, 3, "%02x", md[i]);
        return 0;
}

int audit_mac(const audit_key *key, const char *what, int64_t seq, const char *hash,
              char out[AUDIT_HASH_HEX])
{
        const ossl_dl *o;
        char msg[160];
        unsigned char md[32];
        unsigned int mdlen = 0;
        int n;

        if (!key || !key->set)
                return -EINVAL;
        if (!(o = ossl_dl_lib()))
                return -ELIBACC;
        n = snprintf(msg, sizeof(msg), "%s:%lld:%s", what, (long long)seq, hash);
        if (n < 0 || n >= (int)sizeof(msg))
                return -EINVAL;
        if (!o->HMAC(o->EVP_sha256(), key->k, AUDIT_KEY_LEN, (const unsigned char *)msg, (size_t)n,
                     md, &mdlen) ||
            mdlen != sizeof(md))
                return -ENOMEM;
        for (size_t i = 0; i < sizeof(md); i++)
                snprintf(out + 2 * i, 3, "%02x", md[i]);
        return 0;
}

int audit_head_parse(const char *s, audit_head *out)
{
        char *end;
        long long seq;
        size_t i;

        if (!s)
                return -EINVAL;
        errno = 0;
        seq = strtoll(s, &end, 10);
        if (errno || end == s || *end != ':' || seq < 0)
                return -EINVAL;
        end++;
        for (i = 0; i < AUDIT_HASH_HEX - 1; i++)
                if (!((end[i] >= '0' && end[i] <= '9') || (end[i] >= 'a' && end[i] <= 'f')))
                        return -EINVAL;
        if (end[i] != '\0' && end[i] != ':' && end[i] != '\n')
                return -EINVAL;
        out->seq = seq;
        memcpy(out->hash, end, AUDIT_HASH_HEX - 1);
        out->hash[AUDIT_HASH_HEX - 1] = '\0';
        return 0;
}

/* A copy of s with each byte that is not part of valid UTF-8 (or is a NUL-free overlong/surrogate
 * form) written as the text \xNN: jansson refuses invalid UTF-8, and a record must still be
 * written for a client that sends it. NULL when s is valid as it is (use s), or on ENOMEM. */
static char *utf8_escape(const char *s, bool *nomem)
{
        const unsigned char *p = (const unsigned char *)s;
        size_t len = strlen(s), o = 0;
        char *out = NULL;
        bool valid = true;

        for (int pass = 0; pass < 2; pass++) {
                for (size_t i = 0; i < len;) {
                        unsigned char c = p[i];
                        size_t n = c < 0x80             ? 1
                                   : (c & 0xe0) == 0xc0 ? 2
                                   : (c & 0xf0) == 0xe0 ? 3
                                   : (c & 0xf8) == 0xf0 ? 4
                                                        : 0;
                        bool ok = n > 0 && i + n <= len;
                        for (size_t k = 1; ok && k < n; k++)
                                ok = (p[i + k] & 0xc0) == 0x80;
                        if (ok && n == 2)
                                ok = c >= 0xc2; /* no overlong forms */
                        if (ok && n == 3) {
                                unsigned cp = ((c & 0x0fu) << 12) | ((p[i + 1] & 0x3fu) << 6) |
                                              (p[i + 2] & 0x3fu);
                                ok = cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff);
                        }
                        if (ok && n == 4) {
                                unsigned cp = ((c & 0x07u) << 18) | ((p[i + 1] & 0x3fu) << 12) |
                                              ((p[i + 2] & 0x3fu) << 6) | (p[i + 3] & 0x3fu);
                                ok = cp >= 0x10000 && cp <= 0x10ffff;
                        }
                        if (ok) {
                                if (out)
                                        memcpy(out + o, p + i, n);
                                o += n;
                                i += n;
                        } else {
                                valid = false;
                                if (out)
                                        snprintf(out + o, 5, "\\x%02x", c);
                                o += 4;
                                i++;
                        }
                }
                if (valid)
                        return NULL;
                if (out) {
                        out[o] = '\0';
                        return out;
                }
                out = malloc(o + 1);
                if (!out) {
                        *nomem = true;
                        return NULL;
                }
                o = 0;
        }
        return out;
}

static int append_clean(sqlite3 *db, const audit_record *rec);

/* The chain's head: the newest row, else the checkpoint, else genesis. */
static int head_of(sqlite3 *db, int64_t *seq, char hash[AUDIT_HASH_HEX])
{
        sqlite3_stmt *st = NULL;
        int rc;

        *seq = 0;
        snprintf(hash, AUDIT_HASH_HEX, "%s", zero_hash);
        rc = sqlite3_prepare_v2(db, "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", -1,
                                &st, NULL);
        if (rc != SQLITE_OK)
                return -EIO;
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                *seq = sqlite3_column_int64(st, 0);
                snprintf(hash, AUDIT_HASH_HEX, "%s", (const char *)sqlite3_column_text(st, 1));
                sqlite3_finalize(st);
                return 0;
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return -EIO;
        rc = sqlite3_prepare_v2(db, "SELECT last_seq, last_hash FROM audit_checkpoint WHERE id = 1",
                                -1, &st, NULL);
        if (rc != SQLITE_OK)
                return -EIO;
        if (sqlite3_step(st) == SQLITE_ROW) {
                *seq = sqlite3_column_int64(st, 0);
                snprintf(hash, AUDIT_HASH_HEX, "%s", (const char *)sqlite3_column_text(st, 1));
        }
        sqlite3_finalize(st);
        return 0;
}

int audit_head_fn(sqlite3 *db, void *ctx)
{
        audit_head *h = ctx;

        return head_of(db, &h->seq, h->hash);
}

int audit_append_fn(sqlite3 *db, void *ctx)
{
        const audit_record *in = ctx;
        audit_record clean = *in, *rec = &clean;
        const char **fields[] = {&clean.request_id, &clean.principal, &clean.role,
                                 &clean.source_ip,  &clean.method,    &clean.route,
                                 &clean.event,      &clean.detail};
        char *owned[ARRAY_SIZE(fields)] = {0};
        bool nomem = false;
        int r;

        for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
                owned[i] = utf8_escape(nz(*fields[i]), &nomem);
                if (owned[i])
                        *fields[i] = owned[i];
        }
        r = nomem ? -ENOMEM : 0;
        if (r == 0)
                r = append_clean(db, rec);
        for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
                free(owned[i]);
        return r;
}

/* audit_append_fn once every text field is valid UTF-8. */
static int append_clean(sqlite3 *db, const audit_record *rec)
{
        char prev[AUDIT_HASH_HEX], hash[AUDIT_HASH_HEX];
        sqlite3_stmt *st = NULL;
        int64_t seq;
        int r;

        r = head_of(db, &seq, prev);
        if (r < 0)
                return r;
        seq++;
        r = audit_hash(prev, seq, rec, hash);
        if (r < 0)
                return r;
        if (sqlite3_prepare_v2(db,
                               "INSERT INTO audit_log (seq, ts, request_id, principal, role, "
                               "source_ip, method, route, status, event, detail, prev_hash, hash) "
                               "VALUES (?,?,?,?,?,?,?,?,?,?,vigil_seal(?, 'audit_log.detail'),?,?)",
                               -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        sqlite3_bind_int64(st, 1, seq);
        sqlite3_bind_int64(st, 2, rec->ts);
        sqlite3_bind_text(st, 3, nz(rec->request_id), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, nz(rec->principal), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, nz(rec->role), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, nz(rec->source_ip), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 7, nz(rec->method), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 8, nz(rec->route), -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 9, rec->status);
        sqlite3_bind_text(st, 10, nz(rec->event), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 11, nz(rec->detail), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 12, prev, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 13, hash, -1, SQLITE_STATIC);
        r = sqlite3_step(st);
        sqlite3_finalize(st);
        if (r == SQLITE_FULL)
                return -ENOSPC;
        return r == SQLITE_DONE ? 0 : -EIO;
}

int audit_prune_fn(sqlite3 *db, void *ctx)
{
        audit_prune_req *req = ctx;
        sqlite3_stmt *st = NULL;
        int64_t last_seq = 0, prev_pruned = 0;
        char last_hash[AUDIT_HASH_HEX] = "";
        int rc;

        req->removed = 0;
        /* The newest row to go; never the head itself, so the chain keeps an anchor row. */
        rc = sqlite3_prepare_v2(db,
                                "SELECT seq, hash FROM audit_log WHERE ts < ? AND seq < (SELECT "
                                "MAX(seq) FROM audit_log) ORDER BY seq DESC LIMIT 1",
                                -1, &st, NULL);
        if (rc != SQLITE_OK)
                return -EIO;
        sqlite3_bind_int64(st, 1, req->before);
        if (sqlite3_step(st) == SQLITE_ROW) {
                last_seq = sqlite3_column_int64(st, 0);
                snprintf(last_hash, sizeof(last_hash), "%s",
                         (const char *)sqlite3_column_text(st, 1));
        }
        sqlite3_finalize(st);
        if (!last_seq)
                return 0;
        if (sqlite3_prepare_v2(db, "SELECT pruned FROM audit_checkpoint WHERE id = 1", -1, &st,
                               NULL) != SQLITE_OK)
                return -EIO;
        if (sqlite3_step(st) == SQLITE_ROW)
                prev_pruned = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        if (sqlite3_prepare_v2(db, "DELETE FROM audit_log WHERE seq <= ?", -1, &st, NULL) !=
            SQLITE_OK)
                return -EIO;
        sqlite3_bind_int64(st, 1, last_seq);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return rc == SQLITE_FULL ? -ENOSPC : -EIO;
        req->removed = sqlite3_changes(db);
        char mac[AUDIT_HASH_HEX] = "";
        if (req->key && req->key->set &&
            audit_mac(req->key, "vigil-audit-checkpoint", last_seq, last_hash, mac) < 0)
                return -ENOMEM;
        if (sqlite3_prepare_v2(db,
                               "INSERT OR REPLACE INTO audit_checkpoint (id, last_seq, last_hash, "
                               "pruned, ts, mac) VALUES (1, ?, ?, ?, strftime('%s','now') * "
                               "1000000, ?)",
                               -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        sqlite3_bind_int64(st, 1, last_seq);
        sqlite3_bind_text(st, 2, last_hash, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, prev_pruned + req->removed);
        sqlite3_bind_text(st, 4, mac, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? 0 : -EIO;
}

static const char *col(sqlite3_stmt *st, int i)
{
        const unsigned char *t = sqlite3_column_text(st, i);
        return t ? (const char *)t : "";
}

int audit_checkpoint_adopt_fn(sqlite3 *db, void *ctx)
{
        const audit_key *key = ctx;
        sqlite3_stmt *st = NULL;
        char hash[AUDIT_HASH_HEX] = "", mac[AUDIT_HASH_HEX];
        int64_t seq = 0;
        bool unsigned_cp = false;
        int rc;

        if (!key || !key->set)
                return 0;
        if (sqlite3_prepare_v2(db,
                               "SELECT last_seq, last_hash, mac FROM audit_checkpoint WHERE id = 1",
                               -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        if (sqlite3_step(st) == SQLITE_ROW) {
                seq = sqlite3_column_int64(st, 0);
                snprintf(hash, sizeof(hash), "%s", col(st, 1));
                unsigned_cp = !*col(st, 2);
        }
        sqlite3_finalize(st);
        if (!unsigned_cp)
                return 0;
        if (audit_mac(key, "vigil-audit-checkpoint", seq, hash, mac) < 0)
                return -ENOMEM;
        if (sqlite3_prepare_v2(db, "UPDATE audit_checkpoint SET mac = ? WHERE id = 1", -1, &st,
                               NULL) != SQLITE_OK)
                return -EIO;
        sqlite3_bind_text(st, 1, mac, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? 1 : -EIO;
}

int audit_verify(sqlite3 *db, audit_verify_result *res)
{
        return audit_verify_ex(db, NULL, res);
}

/* Fail with reason (printf) at seq. */
static int broken(audit_verify_result *res, int64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int broken(audit_verify_result *res, int64_t seq, const char *fmt, ...)
{
        va_list ap;

        res->bad_seq = seq;
        va_start(ap, fmt);
        vsnprintf(res->reason, sizeof(res->reason), fmt, ap);
        va_end(ap);
        return -EBADMSG;
}

int audit_verify_ex(sqlite3 *db, const audit_verify_opts *o, audit_verify_result *res)
{
        static const audit_verify_opts none = {0};
        sqlite3_stmt *st = NULL;
        char prev[AUDIT_HASH_HEX] = "", h[AUDIT_HASH_HEX], cp_mac[AUDIT_HASH_HEX] = "";
        char head_seen[AUDIT_HASH_HEX] = "";
        bool have_cp = false;
        int64_t expect;
        int rc;

        if (!o)
                o = &none;
        memset(res, 0, sizeof(*res));
        snprintf(prev, sizeof(prev), "%s", zero_hash);
        expect = 1;
        rc = sqlite3_prepare_v2(
            db, "SELECT last_seq, last_hash, mac FROM audit_checkpoint WHERE id = 1", -1, &st,
            NULL);
        if (rc != SQLITE_OK) /* a database from before migration 21 */
                rc = sqlite3_prepare_v2(db,
                                        "SELECT last_seq, last_hash, '' FROM audit_checkpoint "
                                        "WHERE id = 1",
                                        -1, &st, NULL);
        if (rc != SQLITE_OK) {
                snprintf(res->reason, sizeof(res->reason), "no audit tables: %s",
                         sqlite3_errmsg(db));
                return -EIO;
        }
        if (sqlite3_step(st) == SQLITE_ROW) {
                have_cp = true;
                expect = sqlite3_column_int64(st, 0) + 1;
                res->checkpoint_seq = expect - 1;
                snprintf(prev, sizeof(prev), "%s", col(st, 1));
                snprintf(cp_mac, sizeof(cp_mac), "%s", col(st, 2));
        }
        sqlite3_finalize(st);
        snprintf(res->head, sizeof(res->head), "%s", prev);
        /* The front: a checkpoint stands for deleted records only if the key vouches for it. */
        if (have_cp && o->key && o->key->set) {
                if (audit_mac(o->key, "vigil-audit-checkpoint", res->checkpoint_seq, prev, h) < 0)
                        return broken(res, 0, "out of memory");
                if (!cp_mac[0] || strcmp(cp_mac, h) != 0)
                        return broken(res, res->checkpoint_seq,
                                      "checkpoint at record %lld is not authenticated by the "
                                      "audit key (%s): records before it may have been deleted "
                                      "(truncated at the start)",
                                      (long long)res->checkpoint_seq,
                                      cp_mac[0] ? "wrong mac" : "no mac");
                res->checkpoint_authenticated = true;
        } else if (have_cp) {
                snprintf(res->note, sizeof(res->note),
                         "checkpoint at record %lld not authenticated (no audit key given)",
                         (long long)res->checkpoint_seq);
        }
        if (o->head && o->head->seq == res->checkpoint_seq && have_cp)
                snprintf(head_seen, sizeof(head_seen), "%s", prev);
        /* Physical order (rowid = seq) and the hashed seq must agree, with no gaps. */
        rc = sqlite3_prepare_v2(db,
                                "SELECT seq, ts, request_id, principal, role, source_ip, method, "
                                "route, status, event, vigil_open(detail, 'audit_log.detail'), "
                                "prev_hash, hash FROM audit_log ORDER BY seq",
                                -1, &st, NULL);
        if (rc != SQLITE_OK)
                return -EIO;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                int64_t seq = sqlite3_column_int64(st, 0);
                audit_record r = {
                    .ts = sqlite3_column_int64(st, 1),
                    .request_id = col(st, 2),
                    .principal = col(st, 3),
                    .role = col(st, 4),
                    .source_ip = col(st, 5),
                    .method = col(st, 6),
                    .route = col(st, 7),
                    .status = sqlite3_column_int(st, 8),
                    .event = col(st, 9),
                    .detail = col(st, 10),
                };
                const char *why = NULL;
                if (!res->first_seq)
                        res->first_seq = seq;
                res->last_seq = seq;
                if (seq != expect)
                        why = seq > expect ? "missing record(s) before this one"
                                           : "records out of order";
                else if (strcmp(col(st, 11), prev) != 0)
                        why = "prev_hash does not match the previous record";
                else if (audit_hash(prev, seq, &r, h) < 0)
                        why = "out of memory";
                else if (strcmp(h, col(st, 12)) != 0)
                        why = "record content does not match its hash (edited)";
                if (why) {
                        sqlite3_finalize(st);
                        return broken(res, seq, "record %lld: %s%s", (long long)seq, why,
                                      seq > expect && seq != 1 && expect == 1
                                          ? " (truncated at the start)"
                                          : "");
                }
                snprintf(prev, sizeof(prev), "%s", h);
                if (o->head && seq == o->head->seq)
                        snprintf(head_seen, sizeof(head_seen), "%s", h);
                res->checked++;
                expect = seq + 1;
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return -EIO;
        snprintf(res->head, sizeof(res->head), "%s", prev);
        /* The end: the chain must reach the exported head, through the same record. */
        if (o->head && o->head->seq > 0) {
                int64_t newest = expect - 1;
                if (o->head->seq > newest)
                        return broken(res, newest + 1,
                                      "truncated at the end: the exported head is record %lld "
                                      "but the newest record is %lld (%lld missing)",
                                      (long long)o->head->seq, (long long)newest,
                                      (long long)(o->head->seq - newest));
                if (o->head->seq < res->checkpoint_seq) {
                        snprintf(res->note, sizeof(res->note),
                                 "the exported head (record %lld) was pruned since; export a "
                                 "newer one",
                                 (long long)o->head->seq);
                } else if (strcmp(head_seen, o->head->hash) != 0) {
                        return broken(res, o->head->seq,
                                      "record %lld does not match the exported head (hash %.16s…, "
                                      "expected %.16s…): the chain was rewritten",
                                      (long long)o->head->seq, head_seen, o->head->hash);
                } else {
                        res->head_checked = true;
                }
        }
        return 0;
}

int audit_list_fn(sqlite3 *db, void *ctx)
{
        audit_list_req *req = ctx;
        sqlite3_stmt *st = NULL;
        json_t *rows = json_array();

        if (!rows)
                return -ENOMEM;
        if (sqlite3_prepare_v2(db,
                               "SELECT * FROM (SELECT seq, ts, request_id, principal, role, "
                               "source_ip, method, route, status, event, "
                               "vigil_open(detail, 'audit_log.detail'), hash FROM "
                               "audit_log WHERE ts >= ? ORDER BY seq DESC LIMIT ?) ORDER BY seq",
                               -1, &st, NULL) != SQLITE_OK) {
                json_decref(rows);
                return -EIO;
        }
        sqlite3_bind_int64(st, 1, req->since);
        sqlite3_bind_int64(st, 2, req->limit > 0 ? req->limit : 1000);
        while (sqlite3_step(st) == SQLITE_ROW) {
                json_t *o = json_pack("{s:I,s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:s,s:s,s:s}", "seq",
                                      (json_int_t)sqlite3_column_int64(st, 0), "ts_us",
                                      (json_int_t)sqlite3_column_int64(st, 1), "request_id",
                                      col(st, 2), "principal", col(st, 3), "role", col(st, 4),
                                      "source_ip", col(st, 5), "method", col(st, 6), "route",
                                      col(st, 7), "status", sqlite3_column_int(st, 8), "event",
                                      col(st, 9), "detail", col(st, 10), "hash", col(st, 11));
                if (o)
                        json_array_append_new(rows, o);
        }
        sqlite3_finalize(st);
        req->rows = rows;
        return 0;
}
