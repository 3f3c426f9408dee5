/* auth_gate.h — the security gate of the HTTP server: the accept-time IP allowlist, and per
 * request the request id, client address (X-Forwarded-For from trusted proxies only), the
 * principal (bearer JWT on TCP, peer credentials on the unix socket), the route's permission,
 * rate limits and the audit record. Configuration is swapped atomically on reload (SIGHUP or
 * POST /api/v1/config/reload); a bad new configuration leaves the running one in place.
 * Callable from any HTTP thread; gate_new/gate_reload/gate_free from the main thread. */
#ifndef VIGIL_API_AUTH_GATE_H
#define VIGIL_API_AUTH_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "security/auth.h"

struct store;
struct request;
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
        bool audit_bodies;                  /* audit.include_sensitive_data: scrubbed bodies */
} gate_options;

/* Per-request security state, embedded in struct request. */
typedef struct gate_req {
        char request_id[33]; /* hex, returned as X-Request-Id */
        char source_ip[64];  /* client address as text ("unix" on the socket) */
        uint8_t addr[16];    /* client address (IPv4 mapped) */
        char principal[160]; /* "jwt:SUB", "uid:N", "anonymous" */
        enum auth_role role; /* effective role */
        bool authenticated;  /* credentials presented and valid */
        bool is_unix;        /* arrived on the unix socket */
        bool peer_checked;   /* peer address resolved */
        bool audited;        /* a record was written for this request */
        unsigned status;     /* HTTP status queued */
        bool challenge;      /* a 401 carries WWW-Authenticate: Basic (web-config users) */
        bool audit_body;     /* record the scrubbed body of a mutating request */
} gate_req;

int gate_new(const gate_options *o, auth_gate **ret, char *err, size_t errlen);
/* Replace the configuration; on failure the old one stays and err says why. */
int gate_reload(auth_gate *g, const gate_options *o, char *err, size_t errlen);
auth_gate *gate_free(auth_gate *g);
/* One line describing what is exposed and how, for the startup log. */
void gate_describe(auth_gate *g, const char *tcp_url, const char *socket_path, bool tls, char *out,
                   size_t len);

/* MHD accept policy callback (cls = auth_gate *): MHD_YES when addr is allowlisted. */
enum MHD_Result gate_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen);

/* Called on the first access-handler call: request id. */
void gate_begin(struct request *r);
/* Called when a route matched: true = go on; false = a reply (401/403/429) was queued, its
 * result in *ret, and the denial audited. */
bool gate_check(struct request *r, enum auth_perm perm, bool is_inject, int *ret);
/* Called after the handler answered: audits mutating requests. */
void gate_done(struct request *r);
/* Add X-Request-Id (and Retry-After on 429) to a response about to be queued with status. */
void api_decorate_response(struct request *r, struct MHD_Response *resp, unsigned status);
/* Write one audit record (config changes, internal events). Any thread except the store writer. */
int gate_audit(auth_gate *g, const char *principal, const char *role, const char *ip,
               const char *method, const char *route, int status, const char *event,
               const char *detail, const char *request_id);
/* Revoke a token id until exp (seconds since epoch); persisted and cached. */
int gate_revoke(auth_gate *g, const char *jti, int64_t exp, const char *by);
bool gate_is_revoked(auth_gate *g, const char *jti);
/* Drop audit rows older than retention_days (checkpointed). Returns rows removed or -errno. */
int64_t gate_prune(auth_gate *g);
struct store *gate_store(auth_gate *g);

/* X-Forwarded-For: starting from the peer, walk hops right to left while they are trusted
 * proxies; the first untrusted hop is the client. Malformed entries stop the walk at the last
 * good address. Pure; exposed for tests and fuzzing. */
struct cidr_list;
void gate_xff_client(const uint8_t peer[16], const char *xff, const struct cidr_list *proxies,
                     uint8_t out[16]);

#endif
