/* https.c — see https.h. The settings and the certificate pairs are security's (tls.c); this
 * file only hands them to libmicrohttpd and reads its connection info. */
#include "https.h"

#include <stddef.h>
#include <string.h>

#include "security/tls.h"

struct MHD_OptionItem *https_options(api *a, bool tls)
{
        static struct MHD_OptionItem none[] = {{MHD_OPTION_END, 0, NULL}};
        tls_server_params p;
        size_t k = 0;

        if (!tls || !a->opt.tls)
                return none;
        tls_params(a->opt.tls, &p);
        a->tls_opts[k++] =
            (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)p.priority};
        a->tls_opts[k++] =
            (struct MHD_OptionItem){MHD_OPTION_HTTPS_CERT_CALLBACK, 0, p.cert_callback};
        if (p.ca_pem) /* asks for a client certificate; https_client_ok enforces it */
                a->tls_opts[k++] =
                    (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, (void *)p.ca_pem};
        a->tls_opts[k++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
        return a->tls_opts;
}

bool https_client_ok(api *a, struct MHD_Connection *c)
{
        const union MHD_ConnectionInfo *ci;

        if (!a->opt.tls)
                return true;
        ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        return tls_session_client_ok(a->opt.tls, ci ? ci->tls_session : NULL);
}
