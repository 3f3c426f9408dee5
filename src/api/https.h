/* https.h — libmicrohttpd's side of TLS: the MHD_OptionItem list of the TLS listener built from
 * the TLS settings (security/tls.h: priority string, certificate callback, client CA), and the
 * per-request look at a connection's GnuTLS session for the client-certificate policy. */
#ifndef VIGIL_API_HTTPS_H
#define VIGIL_API_HTTPS_H

#include <stdbool.h>

#include <microhttpd.h>

#include "api-internal.h"

/* MHD options (MHD_OPTION_ARRAY) for a listener: TLS ones when tls is set, else an empty list.
 * The list lives in a (a->tls_opts). */
struct MHD_OptionItem *https_options(api *a, bool tls);
/* Whether the connection satisfies the configured client_auth (true without TLS). */
bool https_client_ok(api *a, struct MHD_Connection *c);

#endif
