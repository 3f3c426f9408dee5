/* reply.h — the one place a response is built: every MHD_Response of the server is created,
 * decorated (X-Request-Id, Retry-After, WWW-Authenticate, web-config and TLS headers,
 * Connection: close while draining) and queued in reply.c. Errors take one path: a negative
 * errno goes through the errno table (common/errmap.h) to its HTTP status, and the body is
 * {"error": {"code": STATUS, "message": "..."}} (docs/api.md). Any HTTP thread. */
#ifndef VIGIL_API_REPLY_H
#define VIGIL_API_REPLY_H

#include <stddef.h>

#include <jansson.h>
#include <microhttpd.h>

#include "api-internal.h"

/* Queue a JSON response; takes ownership of body (NULL: MHD_NO). For answers, not errors:
 * statuses below 400, and the probes' own states (/readyz "starting"). */
enum MHD_Result api_reply_json(request *r, unsigned status, json_t *body);

/* The error path. err: negative errno; the status is errmap_http_status(err). fmt: the message
 * ("no GPU '7'"); NULL = the table's reason phrase. */
enum MHD_Result api_reply_errno(request *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The same body for the HTTP-level statuses that no errno stands for: 405 (allow: the Allow
 * header), 414 and 429 (Retry-After from r->retry_after), and the framing refusals 400, 413,
 * 431 and 505 (framer.h). Anything else is refused (500). */
enum MHD_Result api_reply_http_error(request *r, unsigned status, const char *allow,
                                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Queue a borrowed buffer without copying (the /metrics snapshot): release(cls) runs when
 * libmicrohttpd is done with it, also when this fails. vary: a Vary header value, or NULL;
 * encoding: a Content-Encoding value ("gzip"), or NULL. */
enum MHD_Result api_reply_static(request *r, unsigned status, const void *data, size_t len,
                                 const char *ctype, const char *vary, const char *encoding,
                                 void (*release)(void *), void *cls);

/* 200 with a copy of text as text/plain (dcgm-exporter's GET /health "OK"). */
enum MHD_Result api_reply_plain(request *r, const char *text);

#endif
