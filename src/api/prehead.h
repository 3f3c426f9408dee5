/* prehead.h — the first request of a plain HTTP connection (TCP without TLS, or the unix socket),
 * looked at before libmicrohttpd parses it, so that what libmicrohttpd 0.9.75 would refuse with
 * its own HTML page or a silently closed connection (a request line that is not METHOD TARGET
 * VERSION, a version other than 1.0/1.1, a head over the budget, a NUL byte in the head, a bad
 * Content-Length) is answered with the documented JSON error instead (docs/api.md). Only the
 * first request of a connection: a later one on the same keep-alive connection is
 * libmicrohttpd's alone (its 0.9.75 API has no hook before its parser). */
#ifndef VIGIL_API_PREHEAD_H
#define VIGIL_API_PREHEAD_H

#include <stdbool.h>
#include <stddef.h>

#include <microhttpd.h>

/* The head budget: a request line or head longer than this is refused (414 / 431) before
 * libmicrohttpd sees it; it accepts less than its 32 KiB connection memory anyway. */
#define PREHEAD_MAX 16384

/* Judge the bytes a connection sent first (b[0..n), at most PREHEAD_MAX). Returns 0 when what
 * is there is acceptable (or too little to judge: libmicrohttpd decides), else the HTTP status
 * to refuse it with and *msg, a static lowercase reason. Pure: no I/O. */
unsigned prehead_check(const char *b, size_t n, const char **msg);

/* MHD_OPTION_NOTIFY_CONNECTION callback for the plain listeners; cls is the api. */
void prehead_on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                           enum MHD_ConnectionNotificationCode toe);

#endif
