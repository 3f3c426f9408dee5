/* audit.c — append, prune, list and verify the hash-chained audit_log table (see audit.h). */
#include "audit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/macros.h"

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
        unsigned char md[32];
        unsigned int mdlen = 0;
        EVP_MD_CTX *c;
        char *canon;
        int ok;

        if (!a)
                return -ENOMEM;
        canon = json_dumps(a, JSON_COMPACT | JSON_ENSURE_ASCII);
        json_decref(a);
        if (!canon)
                return -ENOMEM;
        c = EVP_MD_CTX_new();
        ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(c, prev, strlen(prev)) && EVP_DigestUpdate(c, canon, strlen(canon)) &&
             EVP_DigestFinal_ex(c, md, &mdlen);
        EVP_MD_CTX_free(c);
        free(canon);
        if (!ok || mdlen != sizeof(md))
                return -ENOMEM;
        for (size_t i = 0; i < sizeof(md); i++)
                snprintf(out + 2 * i, 3, "%02x", md[i]);
        return 0;
}

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

int audit_append_fn(sqlite3 *db, void *ctx)
{
        const audit_record *rec = ctx;
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
                               "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
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
        if (sqlite3_prepare_v2(db,
                               "INSERT OR REPLACE INTO audit_checkpoint (id, last_seq, last_hash, "
                               "pruned, ts) VALUES (1, ?, ?, ?, strftime('%s','now') * 1000000)",
                               -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        sqlite3_bind_int64(st, 1, last_seq);
        sqlite3_bind_text(st, 2, last_hash, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, prev_pruned + req->removed);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? 0 : -EIO;
}

static const char *col(sqlite3_stmt *st, int i)
{
        const unsigned char *t = sqlite3_column_text(st, i);
        return t ? (const char *)t : "";
}

int audit_verify(sqlite3 *db, audit_verify_result *res)
{
        sqlite3_stmt *st = NULL;
        char prev[AUDIT_HASH_HEX] = "", h[AUDIT_HASH_HEX];
        int64_t expect;
        int rc;

        memset(res, 0, sizeof(*res));
        snprintf(prev, sizeof(prev), "%s", zero_hash);
        expect = 1;
        rc = sqlite3_prepare_v2(db, "SELECT last_seq, last_hash FROM audit_checkpoint WHERE id = 1",
                                -1, &st, NULL);
        if (rc != SQLITE_OK) {
                snprintf(res->reason, sizeof(res->reason), "no audit tables: %s",
                         sqlite3_errmsg(db));
                return -EIO;
        }
        if (sqlite3_step(st) == SQLITE_ROW) {
                expect = sqlite3_column_int64(st, 0) + 1;
                snprintf(prev, sizeof(prev), "%s", col(st, 1));
        }
        sqlite3_finalize(st);
        snprintf(res->head, sizeof(res->head), "%s", prev);
        /* Physical order (rowid = seq) and the hashed seq must agree, with no gaps. */
        rc = sqlite3_prepare_v2(db,
                                "SELECT seq, ts, request_id, principal, role, source_ip, method, "
                                "route, status, event, detail, prev_hash, hash FROM audit_log "
                                "ORDER BY seq",
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
                        res->bad_seq = seq;
                        snprintf(res->reason, sizeof(res->reason), "record %lld: %s",
                                 (long long)seq, why);
                        sqlite3_finalize(st);
                        return -EBADMSG;
                }
                snprintf(prev, sizeof(prev), "%s", h);
                res->checked++;
                expect = seq + 1;
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return -EIO;
        snprintf(res->head, sizeof(res->head), "%s", prev);
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
                               "source_ip, method, route, status, event, detail, hash FROM "
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
