/* gate_config.h — the security module's configuration (security/security_config.h) as the
 * options of the API's security gate (gate.h) and TLS context (tls.h): which settings go
 * where, and which of the two sources of TLS (security.tls or a web-config file's
 * tls_server_config) serves the listener. Pure mapping: reads no file and keeps no state; the
 * options point into the configuration and the web-config, which must outlive their use. Any
 * thread. */
#ifndef VIGIL_SECURITY_GATE_CONFIG_H
#define VIGIL_SECURITY_GATE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "gate.h"
#include "security_config.h"
#include "tls.h"

struct webconfig;

/* Fill *o from c (store left NULL). simulate: the fake NVML is loaded (POST /api/v1/inject stays
 * reachable over TCP while authentication is off). web: the parsed web-config or NULL. */
void gate_options_from_config(const security_config *c, bool simulate, const struct webconfig *web,
                              gate_options *o);

/* The TLS options of the TCP listener: 1 with *o filled, 0 when TLS is off, -EINVAL with the
 * reason in err when both security.tls and the web-config (from web_path) configure it. */
int tls_options_from_config(const security_config *c, const struct webconfig *web,
                            const char *web_path, tls_options *o, char *err, size_t errlen);

#endif
