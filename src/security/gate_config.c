/* gate_config.c — see gate_config.h. */
#include "gate_config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/vtime.h"
#include "webconfig.h"

void gate_options_from_config(const security_config *c, bool simulate, const struct webconfig *web,
                              gate_options *o)
{
        memset(o, 0, sizeof(*o));
        o->authn = c->authentication.enabled;
        o->jwt_secret = c->authentication.jwt_secret;
        o->public_key_file = c->authentication.public_key_file;
        o->issuer = c->authentication.issuer;
        o->audience = c->authentication.audience;
        o->leeway_s = c->authentication.leeway_us / USEC_PER_SEC;
        o->authz = c->authorization.enabled;
        o->role_perms[ROLE_ADMIN] = c->authorization.admin;
        o->role_perms[ROLE_OPERATOR] = c->authorization.operator_;
        o->role_perms[ROLE_VIEWER] = c->authorization.viewer;
        o->unix_admin_group = c->authorization.unix_admin_group;
        o->allowed_ips = c->network.allowed_ips;
        o->trusted_proxies = c->network.trusted_proxies;
        o->rl_enabled = c->network.rl_enabled;
        o->rl_per_minute = c->network.rl_per_minute;
        o->rl_burst = c->network.rl_burst;
        o->audit = c->audit.enabled;
        o->retention_days = c->audit.retention_days;
        o->metrics_public = c->metrics_public;
        o->inject_open = simulate && !c->authentication.enabled;
        o->web = web;
        o->web_role = (enum auth_role)(ROLE_VIEWER + c->web_config_role);
        o->audit_bodies = c->audit.include_sensitive_data;
        o->head_export = (audit_export_options){
            .interval_s = c->audit.head_export.interval_us / USEC_PER_SEC,
            .no_sidecar = !c->audit.head_export.sidecar,
            .syslog = c->audit.head_export.syslog,
            .webhook_url = c->audit.head_export.webhook_url,
            .webhook_timeout_ms = c->audit.head_export.webhook_timeout_us / 1000,
        };
}

static enum tls_client_auth web_client_auth(enum webconfig_client_auth a)
{
        switch (a) {
        case WC_REQUEST_CLIENT_CERT:
                return TLS_CLIENT_ASK_ANY;
        case WC_REQUIRE_ANY_CLIENT_CERT:
                return TLS_CLIENT_REQUIRE_ANY;
        case WC_VERIFY_CLIENT_CERT_IF_GIVEN:
                return TLS_CLIENT_VERIFY_IF_GIVEN;
        case WC_REQUIRE_AND_VERIFY:
                return TLS_CLIENT_REQUIRE_VERIFY;
        default:
                return TLS_CLIENT_NONE;
        }
}

int tls_options_from_config(const security_config *c, const struct webconfig *web,
                            const char *web_path, tls_options *o, char *err, size_t errlen)
{
        memset(o, 0, sizeof(*o));
        if (web && web->tls && c->tls.enabled) {
                snprintf(err, errlen,
                         "both security.tls and the web config '%s' configure TLS; keep one",
                         web_path ? web_path : "");
                return -EINVAL;
        }
        if (web && web->tls) {
                *o = (tls_options){
                    .cert_file = web->cert_file,
                    .key_file = web->key_file,
                    .ca_file = web->client_ca_file,
                    .cert_pem = web->cert_pem,
                    .key_pem = web->key_pem,
                    .ca_pem = web->client_ca_pem,
                    .sans = (const char *const *)web->sans,
                    .n_sans = web->n_sans,
                    .system_ca = true,
                    .client_auth = web_client_auth(web->client_auth),
                    .min_tls13 = web->min_version == 13,
                    .max_tls12 = web->max_version == 12,
                };
                return 1;
        }
        if (c->tls.enabled) {
                *o = (tls_options){
                    .cert_file = c->tls.cert_file,
                    .key_file = c->tls.key_file,
                    .ca_file = c->tls.ca_file,
                    .client_auth = (enum tls_client_auth)c->tls.client_auth,
                };
                return 1;
        }
        return 0;
}
