/* audit.h — the tamper-evident audit trail: one row per mutating request, per denial and per
 * configuration change, in the store's audit_log table (migration 20), hash-chained:
 *
 *   hash = hex(SHA-256(prev_hash || canonical))      canonical = compact JSON array of
 *   [seq, ts, request_id, principal, role, source_ip, method, route, status, event, detail]
 *
 * The first row's prev_hash is 64 zeros, or the checkpoint's last_hash after pruning. seq is
 * part of the hashed record, so an edited, deleted or reordered row breaks the chain.
 *
 * Trimming. The chain alone cannot show that rows were cut off at either end. Two things that
 * are not in the database do: the audit key (audit_key: 32 bytes, a file outside the database,
 * see audit_export.h) authenticates the checkpoint that pruning leaves
 *   mac = hex(HMAC-SHA256(key, "vigil-audit-checkpoint:" SEQ ":" HASH))
 * so deleting the oldest rows and forging a checkpoint is detected; and the head (newest seq and
 * hash, with mac = HMAC(key, "vigil-audit-head:" SEQ ":" HASH)) is exported outside the database
 * at an interval, so deleting the newest rows is detected by verifying against that head.
 * Text fields that are not valid UTF-8 (a probing client's path) are stored with each invalid
 * byte written as the four characters \xNN, so such requests are recorded too.
 *
 * The functions taking sqlite3 * are store_fn bodies: run them through store_write (appends,
 * pruning) or store_read (listing, verification), or directly on a database opened read-only
 * (`vigil audit verify --db`). They never log; tokens and secrets never reach a record because
 * callers only pass principals (subjects), never credentials. */
#ifndef VIGIL_API_AUDIT_H
#define VIGIL_API_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <sqlite3.h>

#define AUDIT_HASH_HEX 65 /* 64 hex digits and a NUL */
#define AUDIT_KEY_LEN  32 /* bytes of the audit key */

/* The key that authenticates checkpoints and exported heads. Never stored in the database. */
typedef struct audit_key {
        bool set;                       /* false: nothing is authenticated or checked */
        unsigned char k[AUDIT_KEY_LEN]; /* HMAC-SHA256 key */
} audit_key;

/* A chain head: the newest record's seq and hash (or the checkpoint's, or genesis 0). */
typedef struct audit_head {
        int64_t seq;               /* 0 = empty chain */
        char hash[AUDIT_HASH_HEX]; /* hex */
} audit_head;

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
        int64_t before;       /* usec since epoch: rows with ts < before go */
        const audit_key *key; /* authenticates the checkpoint; NULL or unset = mac '' */
        int64_t removed;      /* out: rows deleted */
} audit_prune_req;
/* Delete old rows, leaving a checkpoint with the last deleted row's seq and hash, authenticated
 * with req->key (store_fn; ctx is an audit_prune_req *). */
int audit_prune_fn(sqlite3 *db, void *ctx);

typedef struct audit_verify_result {
        int64_t checked;               /* rows whose hash was recomputed */
        int64_t first_seq, last_seq;   /* range seen (0 when empty) */
        int64_t bad_seq;               /* first row that failed, 0 if none */
        char head[AUDIT_HASH_HEX];     /* hash of the newest row (or the checkpoint) */
        char reason[256];              /* why verification failed */
        int64_t checkpoint_seq;        /* the checkpoint's last_seq, 0 when none */
        bool checkpoint_authenticated; /* a key was given and the checkpoint's mac matched */
        bool head_checked;             /* an expected head was given and could be checked */
        char note[160];                /* what could not be checked (no key, head pruned), or "" */
} audit_verify_result;
/* What to check beyond the chain itself. */
typedef struct audit_verify_opts {
        const audit_key *key;   /* authenticate the checkpoint; NULL = not checked (note says) */
        const audit_head *head; /* an exported head: the chain must reach it with the same hash;
                                  * NULL = none */
} audit_verify_opts;
/* Walk the chain. Returns 0 when intact, -EBADMSG when tampered or trimmed (reason and bad_seq
 * say where: "truncated at the end: …", "checkpoint … not authenticated: …"), -EIO on SQLite
 * errors. o may be NULL (chain only). */
int audit_verify_ex(sqlite3 *db, const audit_verify_opts *o, audit_verify_result *res);
int audit_verify(sqlite3 *db, audit_verify_result *res);

/* The head of the chain (store_fn; ctx is an audit_head *). */
int audit_head_fn(sqlite3 *db, void *ctx);
/* hex(HMAC-SHA256(key, what ":" seq ":" hash)) into out; what is "vigil-audit-head" or
 * "vigil-audit-checkpoint". 0, or -EINVAL when key is not set. */
int audit_mac(const audit_key *key, const char *what, int64_t seq, const char *hash,
              char out[AUDIT_HASH_HEX]);
/* Sign an unauthenticated checkpoint (mac '') with key: the first start with a key, on a database
 * written before checkpoints were authenticated (store_fn; ctx is a const audit_key *). Sets
 * nothing when there is no checkpoint or it already has a mac. */
int audit_checkpoint_adopt_fn(sqlite3 *db, void *ctx);
/* Parse "SEQ:HASH" (64 hex digits; anything after a further ':' is ignored). 0 or -EINVAL. */
int audit_head_parse(const char *s, audit_head *out);

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
