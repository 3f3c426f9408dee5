/* security.c — see security.h. */
#include "security.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "security/gate_config.h"
#include "common/log.h"
#include "common/macros.h"
#include "security/webconfig.h"

void security_plan_release(security_plan *p)
{
        webconfig_free(p->web);
        tls_settings_free(p->tls_next);
        memset(p, 0, sizeof(*p));
}

int security_prepare(const vigil_config *c, bool simulate, bool tls_running, security_plan *p,
                     char *err, size_t errlen)
{
        const char *wf = c->security.web_config_file;
        auth_gate *probe = NULL;
        int r;

        memset(p, 0, sizeof(*p));
        if (wf && *wf) {
                r = webconfig_load(wf, &p->web, err, errlen);
                if (r < 0)
                        goto fail;
        }
        r = tls_options_from_config(&c->security, p->web, wf, &p->tls_opt, err, errlen);
        if (r < 0)
                goto fail;
        p->tls = r == 1;
        if (p->tls)
                snprintf(p->tls_key, sizeof(p->tls_key), "%s|%s|%s|%d|%d|%d",
                         p->tls_opt.cert_file ? p->tls_opt.cert_file : "",
                         p->tls_opt.key_file ? p->tls_opt.key_file : "",
                         p->tls_opt.ca_file ? p->tls_opt.ca_file : "", (int)p->tls_opt.client_auth,
                         p->tls_opt.min_tls13, p->tls_opt.max_tls12);
        if (p->tls) {
                if (tls_running) {
                        /* One TLS context per process: build its next settings instead. */
                        char why[512] = "";
                        r = tls_settings_new(&p->tls_opt, &p->tls_next, why, sizeof(why));
                        if (r < 0)
                                snprintf(err, errlen,
                                         "failed to load the new TLS settings, keeping the old "
                                         "one: %s",
                                         why);
                } else {
                        tls_ctx *t = NULL;
                        r = tls_new(&p->tls_opt, &t, err, errlen);
                        tls_free(t);
                }
                if (r < 0)
                        goto fail;
        }
        /* The gate offers no validate function: build one and drop it (no store, so nothing is
         * read or written). */
        gate_options_from_config(&c->security, simulate, p->web, &p->gate);
        /* bcrypt never holds every HTTP thread: one stays free for probes and cached users */
        p->gate.basic_auth_slots = c->http.threads > 1 ? c->http.threads - 1 : 1;
        /* The unix-socket admin group matters only with a socket; looking it up otherwise maps
         * the NSS modules (libnss_systemd, ~0.3 MiB resident) for nothing. */
        if (!c->socket || !*c->socket)
                p->gate.unix_admin_group = "";
        r = gate_new(&p->gate, &probe, err, errlen);
        if (r < 0)
                goto fail;
        gate_free(probe);
        return 0;
fail:
        security_plan_release(p);
        return r;
}

int security_start(security_plan *p, const vigil_config *c, struct store *st, auth_gate **gate,
                   tls_ctx **tls, char *err, size_t errlen)
{
        int r;

        *tls = NULL;
        if (p->web && p->web->http2)
                log_debug("security", "web config: http2 is ignored (vigild serves HTTP/1.1)");
        p->gate.store = st;
        r = gate_new(&p->gate, gate, err, errlen);
        if (r < 0)
                return r;
        if (p->tls) {
                r = tls_new(&p->tls_opt, tls, err, errlen);
                if (r < 0) {
                        *gate = gate_free(*gate);
                        return r;
                }
                if (p->web && p->web->tls)
                        log_info("security",
                                 "web config '%s': TLS %s-%s, client certificates %s, %zu "
                                 "basic-auth users",
                                 c->security.web_config_file,
                                 p->web->min_version == 13 ? "1.3" : "1.2",
                                 p->web->max_version == 13 ? "1.3" : "1.2",
                                 webconfig_client_auth_name(p->web->client_auth), p->web->n_users);
        }
        if (p->web && p->web->n_users && c->http.threads < 2)
                log_warn("security",
                         "web config: with http.threads 1 a bcrypt check holds the only HTTP "
                         "thread; set http.threads to 2 or more");
        if (p->web && p->web->rl_interval_us)
                log_info("security", "web config: rate_limit %u per %lld ms for the listener%s",
                         p->web->rl_burst, (long long)(p->web->rl_interval_us / 1000),
                         p->web->rl_burst ? "" : " (burst 0: every request but probes is refused)");
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

int security_commit(security_plan *p, struct store *st, auth_gate *gate, tls_ctx *tls, char *err,
                    size_t errlen)
{
        char why[512] = "";
        int r;

        p->gate.store = st;
        r = gate_reload(gate, &p->gate, why, sizeof(why));
        if (r < 0) {
                snprintf(err, errlen, "failed to apply the new security settings: %s", why);
                return r;
        }
        gate_prune(gate);
        /* Cannot fail: everything was read and checked by security_prepare. New handshakes and
         * requests see the new certificate, CA, client auth, versions and headers. */
        if (tls && p->tls_next) {
                tls_apply(tls, TAKE_PTR(p->tls_next));
                log_info("security", "applied the TLS settings (certificate %s, client auth %d)",
                         p->tls_opt.cert_file ? p->tls_opt.cert_file : "inline",
                         (int)p->tls_opt.client_auth);
        }
        return 0;
}
