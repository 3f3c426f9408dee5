/* security.h — the daemon's glue between the security: configuration section and the API's
 * security gate and TLS context (src/security/gate.h, tls.h): build them at start, rebuild them
 * on reload (a bad new configuration or certificate keeps the running one), describe them in
 * one startup line. Main thread only. */
#ifndef VIGIL_DAEMON_SECURITY_H
#define VIGIL_DAEMON_SECURITY_H

#include <stdbool.h>
#include <stddef.h>

#include "security/gate.h"
#include "security/tls.h"
#include "config.h"

struct store;

/* Returns 0 or -errno with the reason in err. *gate and *tls (NULL when TLS is off) are owned
 * by the caller. */
int security_start(const vigil_config *c, bool simulate, struct store *st, auth_gate **gate,
                   tls_ctx **tls, char *err, size_t errlen);
/* Apply c to the running gate and reload the certificate; logs and audits the outcome. */
void security_reload(const vigil_config *c, bool simulate, struct store *st, auth_gate *gate,
                     tls_ctx *tls);

#endif
