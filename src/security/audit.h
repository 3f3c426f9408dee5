/* audit.h — the tamper-evident audit trail: one row per mutating request, per denial and per
 * configuration change, in the store's audit_log table (migration 20), hash-chained:
 *
 *   hash = hex(SHA-256(prev_hash || canonical))      canonical = compact JSON array of
 *   [seq, ts, request_id, principal, role, source_ip, method, route, status, event, detail]
 *
 * The first row's prev_hash is 64 zeros, or the checkpoint's last_hash after pruning. seq is
 * part of the hashed record, so an edited, deleted or reordered row breaks the chain.
 * Limitation: dropping the newest rows (tail truncation) leaves a valid shorter chain; an
 * external copy of the head hash (`vigil audit verify` prints it) detects that.
 *
 * The functions taking sqlite3 * are store_fn bodies: run them through store_write (appends,
 * pruning) or store_read (listing, verification), or directly on a database opened read-only
 * (`vigil audit verify --db`). They never log; tokens and secrets never reach a record because
 * callers only pass principals (subjects), never credentials. */
#ifndef VIGIL_API_AUDIT_H
#define VIGIL_API_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <sqlite3.h>

#define AUDIT_HASH_HEX 65 /* 64 hex digits and a NUL */

typedef struct audit_record {
        int64_t ts;             /* usec since epoch */
        const char *request_id; /* X-Request-Id we returned */
        const char *principal;  /* "jwt:alice", "uid:1000", "anonymous" */
        const char *role;       /* "admin", "viewer", "none" */
        const char *source_ip;  /* client address (after trusted X-Forwarded-For) */
        const char *method;     /* HTTP method, or "-" for internal events */
        const char *route;      /* URL path */
        int status;             /* HTTP status answered */
        const char *event;      /* "request", "auth_failure:expired", "config_reload", ... */
        const char *detail;     /* free text, never a credential; may be "" */
} audit_record;

/* Append one record (store_fn: ctx is a const audit_record *). 0 or -errno. */
int audit_append_fn(sqlite3 *db, void *ctx);

typedef struct audit_prune_req {
        int64_t before;  /* usec since epoch: rows with ts < before go */
        int64_t removed; /* out: rows deleted */
} audit_prune_req;
/* Delete old rows, leaving a checkpoint with the last deleted row's seq and hash (store_fn; ctx is
 * an audit_prune_req *). */
int audit_prune_fn(sqlite3 *db, void *ctx);

typedef struct audit_verify_result {
        int64_t checked;             /* rows whose hash was recomputed */
        int64_t first_seq, last_seq; /* range seen (0 when empty) */
        int64_t bad_seq;             /* first row that failed, 0 if none */
        char head[AUDIT_HASH_HEX];   /* hash of the newest row (or the checkpoint) */
        char reason[160];            /* why verification failed */
} audit_verify_result;
/* Walk the chain. Returns 0 when intact, -EBADMSG when tampered (reason and bad_seq say where),
 * -EIO on SQLite errors. */
int audit_verify(sqlite3 *db, audit_verify_result *res);

typedef struct audit_list_req {
        int64_t since; /* usec since epoch */
        int64_t limit; /* rows at most (newest last) */
        json_t *rows;  /* out: array of objects; caller owns */
} audit_list_req;
/* store_fn for store_read. */
int audit_list_fn(sqlite3 *db, void *ctx);

/* hex(SHA-256(prev || canonical(seq, rec))) into out. 0 or -ENOMEM. Exposed for tests. */
int audit_hash(const char *prev, int64_t seq, const audit_record *rec, char out[AUDIT_HASH_HEX]);

#endif
