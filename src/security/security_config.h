/* security_config.h — the security module's own configuration: the security: section of
 * vigil.yaml (authentication, authorization, TLS, network, audit, web-config) as the daemon's
 * option table (src/daemon/config.c) writes it. Lists are stored comma-joined ("a,b"); entries
 * never contain a comma. Strings are owned by whoever owns the struct (the daemon's
 * configuration). Plain data: no thread rules. docs/security.md is the user reference. */
#ifndef VIGIL_SECURITY_CONFIG_H
#define VIGIL_SECURITY_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

typedef struct security_config {
        struct {
                bool enabled;            /* require a bearer JWT on TCP */
                int method;              /* 0 = jwt (the only method) */
                char *jwt_secret;        /* HS256 key, >= 32 bytes; secret */
                int64_t token_expiry_us; /* usec; default ttl of `vigil token create` */
                char *issuer;            /* required iss when non-empty */
                char *audience;          /* required aud when non-empty */
                char *public_key_file;   /* PEM RSA/EC key: RS256/ES256 instead of HS256 */
                int64_t leeway_us;       /* usec; clock skew allowed on exp/nbf/iat */
        } authentication;
        struct {
                bool enabled;           /* check roles; off = any authenticated user */
                char *admin;            /* permissions of role admin ("*" = all) */
                char *operator_;        /* permissions of role operator */
                char *viewer;           /* permissions of role viewer */
                char *unix_admin_group; /* unix-socket peers in this group are admin */
        } authorization;
        struct {
                bool enabled;    /* serve HTTPS on the TCP listener */
                char *cert_file; /* PEM certificate chain */
                char *key_file;  /* PEM private key */
                char *ca_file;   /* PEM CA for client certificates */
                int client_auth; /* 0 none, 1 request, 2 require */
        } tls;
        struct {
                char *allowed_ips;      /* CIDRs allowed to connect; "" = any */
                char *trusted_proxies;  /* CIDRs whose X-Forwarded-For is believed */
                bool rl_enabled;        /* token-bucket rate limits */
                unsigned rl_per_minute; /* requests per minute per principal and per IP */
                unsigned rl_burst;      /* bucket size, requests */
        } network;
        struct {
                bool enabled;                /* hash-chained audit records */
                unsigned retention_days;     /* days kept; 0 = forever */
                bool include_sensitive_data; /* request bodies in records (never tokens) */
                struct {
                        int64_t interval_us;        /* usec between head exports */
                        bool sidecar;               /* write DATA_DIR/audit.head */
                        bool syslog;                /* also to syslog (LOG_AUTHPRIV) */
                        char *webhook_url;          /* POST the head here; "" = none */
                        int64_t webhook_timeout_us; /* usec per webhook POST */
                } head_export;
        } audit;
        bool metrics_public; /* /metrics without authentication */

        /* web-config.yml (exporter-toolkit) and the role of its basic_auth_users */
        char *web_config_file; /* path; "" = none */
        int web_config_role;   /* 0 viewer, 1 operator, 2 admin */
} security_config;

#endif
