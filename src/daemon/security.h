/* security.h — the security: section of the configuration turned into the API's security gate and
 * TLS context (security/gate.h, security/tls.h) in two steps, so a start and a reload share one
 * validation: security_prepare reads and checks everything that can fail (web-config file, keys,
 * certificates, CIDRs, roles) without touching what runs; security_start builds the gate and TLS
 * context from a prepared plan; security_commit applies a plan to the running ones. Main thread
 * only. */
#ifndef VIGIL_DAEMON_SECURITY_H
#define VIGIL_DAEMON_SECURITY_H

#include <stdbool.h>
#include <stddef.h>

#include "security/gate.h"
#include "security/tls.h"
#include "config.h"

struct store;
struct webconfig;

/* What a configuration asks of the security module, checked. Points into the vigil_config it
 * was prepared from (keep that alive while the plan is used) and owns web. */
typedef struct security_plan {
        struct webconfig *web;  /* parsed web-config.yml; NULL = none; owned */
        gate_options gate;      /* store left NULL; the caller's store is set at start/commit */
        bool tls;               /* serve HTTPS on the TCP listener */
        tls_options tls_opt;    /* when tls: from security.tls or the web-config */
        char tls_key[1024];     /* the TLS settings as one line, to tell which changed (logged) */
        tls_settings *tls_next; /* a reload with TLS running: the new settings, checked; owned
                                   until security_commit applies them */
} security_plan;

/* Check c's security settings. tls_running: a TLS context exists already (reload): the new TLS
 * settings (pair, CA, client auth, versions, headers) are built into tls_next for the commit.
 * simulate: the process runs on the fake NVML. 0, or -errno with the reason in err; *p is then
 * released. */
int security_prepare(const vigil_config *c, bool simulate, bool tls_running, security_plan *p,
                     char *err, size_t errlen);
void security_plan_release(security_plan *p);

/* Build the gate and TLS context (NULL when TLS is off) from a plan; caller owns them. */
int security_start(security_plan *p, const vigil_config *c, struct store *st, auth_gate **gate,
                   tls_ctx **tls, char *err, size_t errlen);
/* Swap the gate's settings, then the TLS settings prepared in tls_next (tls may be NULL; TLS
 * switched on or off waits for a restart). A failure changes nothing; 0 or -errno with the
 * reason in err. */
int security_commit(security_plan *p, struct store *st, auth_gate *gate, tls_ctx *tls, char *err,
                    size_t errlen);

#endif
