/* framer.h — every request head on every connection (plain TCP, the unix socket, TLS; the first
 * request and each later one on a keep-alive connection), judged before libmicrohttpd parses it.
 *
 * libmicrohttpd 0.9.75 answers what it cannot parse with its own HTML page (431, 414, 505, 400)
 * or a silent close, and its API has no hook before its parser. What it reads comes through
 * recv() (plain) or gnutls_record_recv() (TLS); this file defines both (and
 * gnutls_record_check_pending) in the executable, so the dynamic linker binds libmicrohttpd's calls
 * to them, and the bytes of a connection libmicrohttpd announced (MHD_OPTION_NOTIFY_CONNECTION)
 * pass through a framer first. Every other descriptor goes straight to the real call.
 *
 * The framer follows the request stream as libmicrohttpd frames it (head, then a Content-Length
 * or chunked body, then the next head), judges each head with prehead_check() and each line of a
 * chunked body (chunk sizes, the line ends after chunk data, trailers) as libmicrohttpd would.
 * What is good passes untouched (in place, no copy, when it arrives in one read); a head or a
 * line that arrives in pieces is held back until it is whole or judged. A bad head, and
 * everything after it, is replaced by one internal request; a bad chunked body is ended where it
 * stands and everything after it dropped. Either way libmicrohttpd answers the requests before it
 * in order, then the access handler answers the refused request (framer_refusal) with our JSON
 * error and Connection: close, and the connection closes. */
#ifndef VIGIL_API_FRAMER_H
#define VIGIL_API_FRAMER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <microhttpd.h>

/* Reads up to n bytes of the connection into buf: >0 the count, 0 the peer ended, <0 nothing now
 * (the io's own code: -errno for a socket, a GNUTLS_E_ code for TLS). */
typedef ssize_t (*framer_io_fn)(void *io, void *buf, size_t n);

typedef struct framer_conn framer_conn;

/* A framer over io; again: the io's "no bytes now" code (-EAGAIN, GNUTLS_E_AGAIN). NULL when out
 * of memory. */
framer_conn *framer_new(framer_io_fn read, void *io, ssize_t again);
void framer_free(framer_conn *c);

/* What libmicrohttpd's read gets: up to size bytes of the judged stream, 0 at its end, or the
 * io's code when nothing can be given now. Never 0 after a refusal (libmicrohttpd would drop the
 * connection before answering): the io's "again" instead, while the peer's bytes are discarded. */
ssize_t framer_read(framer_conn *c, void *buf, size_t size);

/* Bytes judged and waiting for framer_read (libmicrohttpd asks gnutls_record_check_pending). */
size_t framer_pending(const framer_conn *c);

/* The refusal, once a head or a body was judged bad: its status (400, 413, 414, 431, 505), its
 * lowercase reason, and (request, when not NULL) the ordinal of the request that carries it on
 * the connection (1 = the first). 0 while none. */
unsigned framer_status(const framer_conn *c, const char **msg, unsigned *request);

/* The target of the internal request that stands for a refused head: "/" and a random token
 * drawn once per process, so no client can send it. */
const char *framer_refusal_target(void);

/* MHD_OPTION_NOTIFY_CONNECTION callbacks: the plain listeners' (TCP, unix socket) and the TLS
 * listener's (which first answers plain HTTP sent to it as Go's server does). cls is unused. */
void framer_on_plain(void *cls, struct MHD_Connection *mc, void **socket_context,
                     enum MHD_ConnectionNotificationCode toe);
void framer_on_tls(void *cls, struct MHD_Connection *mc, void **socket_context,
                   enum MHD_ConnectionNotificationCode toe);

/* For the access handler, on the first call of each request of mc: its ordinal on the
 * connection (1 = the first), 0 when the connection is not framed. */
unsigned framer_request_started(struct MHD_Connection *mc);

/* For the access handler, before routing: whether request (its ordinal) of mc is the refused one
 * (for a head, the internal request: url is checked against its target), and then the refusal. */
bool framer_refusal(struct MHD_Connection *mc, unsigned request, const char *url, unsigned *status,
                    const char **msg);

#endif
