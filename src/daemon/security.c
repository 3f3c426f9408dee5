/* security.c — see security.h. */
#include "security.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "security/webconfig.h"
#include "common/log.h"
#include "common/vtime.h"

static void gate_opts(const vigil_config *c, bool simulate, struct store *st, const webconfig *web,
                      gate_options *o)
{
        memset(o, 0, sizeof(*o));
        o->authn = c->security.authentication.enabled;
        o->jwt_secret = c->security.authentication.jwt_secret;
        o->public_key_file = c->security.authentication.public_key_file;
        o->issuer = c->security.authentication.issuer;
        o->audience = c->security.authentication.audience;
        o->leeway_s = c->security.authentication.leeway_us / USEC_PER_SEC;
        o->authz = c->security.authorization.enabled;
        o->role_perms[ROLE_ADMIN] = c->security.authorization.admin;
        o->role_perms[ROLE_OPERATOR] = c->security.authorization.operator_;
        o->role_perms[ROLE_VIEWER] = c->security.authorization.viewer;
        o->unix_admin_group = c->security.authorization.unix_admin_group;
        o->allowed_ips = c->security.network.allowed_ips;
        o->trusted_proxies = c->security.network.trusted_proxies;
        o->rl_enabled = c->security.network.rl_enabled;
        o->rl_per_minute = c->security.network.rl_per_minute;
        o->rl_burst = c->security.network.rl_burst;
        o->audit = c->security.audit.enabled;
        o->retention_days = c->security.audit.retention_days;
        o->metrics_public = c->security.metrics_public;
        /* POST /api/v1/inject exists only on the fake NVML: keep it reachable over TCP for tests
         * when nothing asked for authentication. */
        o->inject_open = simulate && !c->security.authentication.enabled;
        o->store = st;
        o->web = web;
        o->web_role = (enum auth_role)(ROLE_VIEWER + c->security.web_config_role);
        o->audit_bodies = c->security.audit.include_sensitive_data;
}

/* security.web_config_file (or --web-config-file): NULL *ret when none is configured. */
static int web_load(const vigil_config *c, webconfig **ret, char *err, size_t errlen)
{
        *ret = NULL;
        if (!c->security.web_config_file || !*c->security.web_config_file)
                return 0;
        return webconfig_load(c->security.web_config_file, ret, err, errlen);
}

static enum tls_client_auth web_client_auth(enum webconfig_client_auth a)
{
        switch (a) {
        case WC_REQUEST_CLIENT_CERT:
                return TLS_CLIENT_ASK_ANY;
        case WC_REQUIRE_ANY_CLIENT_CERT:
                return TLS_CLIENT_REQUIRE_ANY;
        case WC_VERIFY_CLIENT_CERT_IF_GIVEN:
                return TLS_CLIENT_REQUEST;
        case WC_REQUIRE_AND_VERIFY:
                return TLS_CLIENT_REQUIRE_VERIFY;
        default:
                return TLS_CLIENT_NONE;
        }
}

int security_start(const vigil_config *c, bool simulate, struct store *st, auth_gate **gate,
                   tls_ctx **tls, char *err, size_t errlen)
{
        gate_options go;
        webconfig *web = NULL;
        int r;

        *tls = NULL;
        r = web_load(c, &web, err, errlen);
        if (r < 0)
                return r;
        if (web && web->tls && c->security.tls.enabled) {
                snprintf(err, errlen,
                         "both security.tls and the web config '%s' configure TLS; keep one",
                         c->security.web_config_file);
                webconfig_free(web);
                return -EINVAL;
        }
        if (web && web->http2)
                log_debug("security", "web config: http2 is ignored (vigild serves HTTP/1.1)");
        gate_opts(c, simulate, st, web, &go);
        r = gate_new(&go, gate, err, errlen);
        if (r < 0) {
                webconfig_free(web);
                return r;
        }
        if (web && web->tls) {
                tls_options to = {
                    .cert_file = web->cert_file,
                    .key_file = web->key_file,
                    .ca_file = web->client_ca_file,
                    .client_auth = web_client_auth(web->client_auth),
                    .min_tls13 = web->min_version == 13,
                    .max_tls12 = web->max_version == 12,
                };
                r = tls_new(&to, tls, err, errlen);
                if (r < 0) {
                        *gate = gate_free(*gate);
                        webconfig_free(web);
                        return r;
                }
                log_info("security",
                         "web config '%s': TLS %s-%s, client certificates %s, %zu "
                         "basic-auth users",
                         c->security.web_config_file, web->min_version == 13 ? "1.3" : "1.2",
                         web->max_version == 13 ? "1.3" : "1.2",
                         webconfig_client_auth_name(web->client_auth), web->n_users);
        }
        webconfig_free(web);
        if (c->security.tls.enabled) {
                tls_options to = {
                    .cert_file = c->security.tls.cert_file,
                    .key_file = c->security.tls.key_file,
                    .ca_file = c->security.tls.ca_file,
                    .client_auth = (enum tls_client_auth)c->security.tls.client_auth,
                };
                r = tls_new(&to, tls, err, errlen);
                if (r < 0) {
                        *gate = gate_free(*gate);
                        return r;
                }
        }
        if (!st && c->security.audit.enabled)
                log_warn("security", "no store: the audit trail is off");
        if (st) {
                int64_t n = gate_prune(*gate);
                if (n > 0)
                        log_info("security", "pruned %lld audit records older than %u days",
                                 (long long)n, c->security.audit.retention_days);
        }
        return 0;
}

void security_reload(const vigil_config *c, bool simulate, struct store *st, auth_gate *gate,
                     tls_ctx *tls)
{
        gate_options go;
        webconfig *web = NULL;
        char err[512] = "";
        int r;

        r = web_load(c, &web, err, sizeof(err));
        if (r == 0) {
                gate_opts(c, simulate, st, web, &go);
                r = gate_reload(gate, &go, err, sizeof(err));
                webconfig_free(web);
        }
        if (r < 0)
                log_error("security",
                          "failed to apply the new security settings, keeping the "
                          "running ones: %s",
                          err);
        if (tls) {
                int t = tls_reload(tls, err, sizeof(err));
                if (t < 0)
                        log_error("security",
                                  "failed to reload the TLS certificate, keeping the "
                                  "old one: %s",
                                  err);
                else
                        log_info("security", "reloaded the TLS certificate");
        }
        gate_audit(gate, "vigild", "admin", "local", "-", "config", r < 0 ? 500 : 200,
                   "config_reload", r < 0 ? "security settings rejected" : "", "");
        gate_prune(gate);
}
