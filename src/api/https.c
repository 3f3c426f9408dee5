/* https.c — see https.h. The settings and the certificate pairs are security's (tls.c); this
 * file only hands them to libmicrohttpd and reads its connection info. */
#include "https.h"

#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

#include "security/tls.h"

/* How long a new TLS connection may take to send its first bytes before we stop looking for a
 * plain HTTP request: a TLS client sends its ClientHello at once, and a silent client must not
 * hold the accepting thread (it then goes on to the handshake, and the connection timeout). */
#define PEEK_WAIT_MS 10

/* Whether the first bytes are a plain HTTP request line, as Go's server tells them from a TLS
 * record header. */
static bool looks_like_http(const char *b, size_t n)
{
        static const char *const starts[] = {"GET /", "HEAD ", "POST ", "PUT /", "OPTIO"};

        for (size_t i = 0; n >= 5 && i < sizeof(starts) / sizeof(starts[0]); i++)
                if (!memcmp(b, starts[i], 5))
                        return true;
        return false;
}

bool https_answer_plain(int fd)
{
        static const char answer[] = "HTTP/1.0 400 Bad Request\r\n\r\n"
                                     "Client sent an HTTP request to an HTTPS server.\n";
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        char head[8], sink[4096];
        ssize_t n;

        n = recv(fd, head, 5, MSG_PEEK | MSG_DONTWAIT);
        if (n < 5 && poll(&pfd, 1, PEEK_WAIT_MS) == 1)
                n = recv(fd, head, 5, MSG_PEEK | MSG_DONTWAIT);
        if (n < 5 || !looks_like_http(head, (size_t)n))
                return false;
        /* read what came (so closing sends no RST over our answer), answer, end our side */
        while (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
                ;
        if (send(fd, answer, sizeof(answer) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
                /* nothing more to do: the handshake fails and the connection closes */
        }
        shutdown(fd, SHUT_RDWR);
        return true;
}

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
