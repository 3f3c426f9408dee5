/* gate.h — the security gate: the accept-time IP allowlist, and per request the request id, the
 * client address (X-Forwarded-For from trusted proxies only), the principal (bearer JWT or
 * web-config basic auth on TCP, peer credentials on the unix socket), the route's permission,
 * rate limits and the audit record. It knows no HTTP library: the server describes a request in
 * a gate_input and gets a gate_verdict back (allow, or deny with the status, audit event, reason,
 * Retry-After and Basic challenge); the server builds every response itself.
 * Configuration is swapped atomically on reload (SIGHUP or POST /api/v1/config/reload); a bad new
 * configuration leaves the running one in place.
 * gate_new/gate_reload/gate_free: main thread. Everything else: any thread. */
#ifndef VIGIL_SECURITY_GATE_H
#define VIGIL_SECURITY_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "audit_export.h"
#include "auth.h"

struct store;
struct crypto_keyring;
struct webconfig;
struct cidr_list;
typedef struct auth_gate auth_gate;

typedef struct gate_options {
        bool authn;                         /* security.authentication.enabled */
        const char *jwt_secret;             /* HS256 secret (>= 32 bytes) or "" */
        const char *public_key_file;        /* RS256/ES256 public key PEM, or "" */
        const char *issuer;                 /* "" = not checked */
        const char *audience;               /* "" = not checked */
        int64_t leeway_s;                   /* seconds */
        bool authz;                         /* security.authorization.enabled */
        const char *role_perms[ROLE_COUNT]; /* "read,write" lists by role; [ROLE_NONE] unused */
        const char *unix_admin_group;       /* group whose members are admin on the socket */
        const char *allowed_ips;            /* comma-separated CIDRs, "" = any */
        const char *trusted_proxies;        /* comma-separated CIDRs */
        bool rl_enabled;                    /* rate limits on */
        unsigned rl_per_minute;             /* tokens per minute per key */
        unsigned rl_burst;                  /* bucket size */
        bool audit;                         /* write audit records */
        unsigned retention_days;            /* 0 = keep forever */
        bool metrics_public;                /* /metrics without credentials */
        bool inject_open;                   /* --simulate without security: inject over TCP */
        struct store *store;                /* borrowed; NULL = no audit/revocation persistence */
        const struct webconfig *web;        /* web-config.yml (webconfig.h), borrowed during the
                                             * call; NULL = none */
        enum auth_role web_role;            /* role of web-config basic_auth_users */
        unsigned basic_auth_slots;          /* bcrypt verifications at once (fewer than the HTTP
                                             * threads); 0 = unbounded */
        bool audit_bodies;                  /* audit.include_sensitive_data: scrubbed bodies */
        const char *audit_dir;              /* where the audit key and the audit.head sidecar
                                             * live: the data dir; NULL = the store's directory */
        struct crypto_keyring *keyring;     /* borrowed; non-NULL (encryption configured): the
                                             * audit key is sealed by its master key */
        audit_export_options head_export;   /* security.audit.head_export (audit_export.h);
                                             * strings borrowed during the call */
} gate_options;

/* Per-request security state, kept by the server for the request's lifetime. */
typedef struct gate_req {
        char request_id[33]; /* hex, returned as X-Request-Id */
        char source_ip[64];  /* client address as text ("unix" on the socket) */
        uint8_t addr[16];    /* client address (IPv4 mapped) */
        char principal[160]; /* "jwt:SUB", "basic:USER", "uid:N", "anonymous" */
        enum auth_role role; /* effective role */
        bool authenticated;  /* credentials presented and valid */
        bool is_unix;        /* arrived on the unix socket */
        bool peer_checked;   /* peer address resolved */
        bool audited;        /* a record was written for this request */
        bool audit_body;     /* record the scrubbed body of a mutating request */
} gate_req;

/* What the server knows about one request, in plain terms. Strings are borrowed for the call. */
typedef struct gate_input {
        bool is_unix;              /* arrived on the unix socket */
        bool peer_cred_ok;         /* unix: uid/gid below are the peer's (SO_PEERCRED) */
        uid_t uid;                 /* unix peer user */
        gid_t gid;                 /* unix peer group */
        uint8_t peer[16];          /* TCP peer address (IPv4 mapped, cidr.h) */
        const char *authorization; /* Authorization header, or NULL */
        const char *forwarded_for; /* X-Forwarded-For header, or NULL */
        bool tls_client_ok;        /* the connection satisfies TLS client_auth (tls.h) */
        const char *method;        /* "GET", "POST", … */
        const char *path;          /* URL path, for the audit record */
        enum auth_perm perm;       /* what the route needs */
        bool is_inject;            /* POST /api/v1/inject (simulated GPUs) */
        const char *body;          /* request body for include_sensitive_data, or NULL */
        size_t body_len;           /* bytes in body */
} gate_input;

/* The gate's answer. On deny the server replies with status and the reason; the JSON message,
 * the Retry-After header and the Basic challenge come from here. */
typedef struct gate_verdict {
        bool allow;           /* go on to the handler */
        unsigned status;      /* deny: 401, 403, 429 or 503 (bcrypt slots busy) */
        int err;              /* deny: -EPERM (401), -EACCES (403) or -EAGAIN (503), through
                                * errmap; 0 for 429, which has no errno */
        char event[64];       /* audit event: "forbidden", "rate_limited", "auth_failure:…" */
        char reason[128];     /* why, for the audit record */
        char message[192];    /* for the client: "authentication required", … */
        unsigned retry_after; /* 429: seconds; 0 = no Retry-After */
        bool challenge;       /* a 401 carries WWW-Authenticate: Basic (web-config users) */
} gate_verdict;

/* A response header the gate or TLS adds to every response. if_absent: only when the response
 * does not already carry that header. */
typedef void (*gate_header_fn)(void *ctx, const char *name, const char *value, bool if_absent);

/* Fails (and the daemon must not start) when the revocation list or the audit key cannot be
 * loaded; err says which and why. */
int gate_new(const gate_options *o, auth_gate **ret, char *err, size_t errlen);
/* Replace the configuration; on failure the old one stays and err says why. */
int gate_reload(auth_gate *g, const gate_options *o, char *err, size_t errlen);
auth_gate *gate_free(auth_gate *g);
/* One line describing what is exposed and how, for the startup log. */
void gate_describe(auth_gate *g, const char *tcp_url, const char *socket_path, bool tls, char *out,
                   size_t len);

/* Accept policy: true when addr is allowlisted (g NULL: always). */
bool gate_accept_addr(auth_gate *g, const struct sockaddr *addr);
/* A new request: a random request id, principal "anonymous". */
void gate_begin(gate_req *s);
/* Decide a request that matched a route. Fills s (principal, role, source address) and v; a
 * denial is logged. g NULL allows everything. */
void gate_check(auth_gate *g, const gate_input *in, gate_req *s, gate_verdict *v);
/* After the reply was queued with status: audits a denial (v denied) or a mutating request. */
void gate_done(auth_gate *g, const gate_input *in, gate_req *s, unsigned status,
               const gate_verdict *v);
/* Call fn for each web-config response header (added when absent). */
void gate_each_header(auth_gate *g, gate_header_fn fn, void *ctx);
/* Write one audit record (config changes, internal events). Any thread except the store writer. */
int gate_audit(auth_gate *g, const char *principal, const char *role, const char *ip,
               const char *method, const char *route, int status, const char *event,
               const char *detail, const char *request_id);
/* A configuration reload, audited: ok = applied, else refused with reason (the file's error, e.g.
 * "vigil.yaml:12: unknown key 'foo'"). source: "SIGHUP", "api", … Returns gate_audit's result.
 * Any thread except the store writer. */
int gate_audit_reload(auth_gate *g, bool ok, const char *source, const char *reason);
/* Export the audit chain's head now (sidecar, syslog, webhook as configured). The gate also does
 * it every head_export.interval_s on a thread of its own and in gate_free. 0 or -errno with err.
 * Any thread except the store writer. */
int gate_audit_head_export(auth_gate *g, char *err, size_t errlen);
/* Verify the audit trail as `vigil audit verify --db` does offline: the chain, the checkpoint
 * against the audit key, and the last exported head (the sidecar, when its mac matches; a head
 * that does not match is reported as tampering). For GET /api/v1/audit/verify. 0, -EBADMSG or
 * -EIO (audit.h). */
int gate_audit_verify(auth_gate *g, audit_verify_result *res);
/* The audit key the gate uses (unset when the audit trail is off). */
const audit_key *gate_audit_key(auth_gate *g);
/* Revoke a token id until exp (seconds since epoch); persisted and cached. An exp in the past is
 * taken as unknown (kept REVOKE_KEEP_UNKNOWN_S, 366 days); a revoked token presented later with
 * a later exp extends the revocation to it. The set has no size limit. */
int gate_revoke(auth_gate *g, const char *jti, int64_t exp, const char *by);
bool gate_is_revoked(auth_gate *g, const char *jti);
/* Drop audit rows older than retention_days (checkpointed). Returns rows removed or -errno. */
int64_t gate_prune(auth_gate *g);
struct store *gate_store(auth_gate *g);

/* X-Forwarded-For: starting from the peer, walk hops right to left while they are trusted
 * proxies; the first untrusted hop is the client. Malformed entries stop the walk at the last
 * good address. Pure; exposed for tests and fuzzing. */
void gate_xff_client(const uint8_t peer[16], const char *xff, const struct cidr_list *proxies,
                     uint8_t out[16]);

#endif
