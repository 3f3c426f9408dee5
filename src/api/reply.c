/* reply.c — building, decorating and queueing responses (see reply.h). The lowest file of the
 * HTTP layer: it calls nothing above it, only security (for the headers it adds) and the errno
 * table. */
#include "reply.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/errmap.h"

static void add_header(void *ctx, const char *name, const char *value, bool if_absent)
{
        struct MHD_Response *resp = ctx;

        if (!if_absent || !MHD_get_response_header(resp, name))
                MHD_add_response_header(resp, name, value);
}

/* Headers every response carries, then queue it. Consumes resp. */
static enum MHD_Result queue(request *r, unsigned status, struct MHD_Response *resp,
                             const char *ctype)
{
        enum MHD_Result ret;

        MHD_add_response_header(resp, "Content-Type", ctype);
        MHD_add_response_header(resp, "Cache-Control", "no-store");
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
        if (r->sec.request_id[0])
                MHD_add_response_header(resp, "X-Request-Id", r->sec.request_id);
        if (status == 429 && r->retry_after) {
                char b[16];
                snprintf(b, sizeof(b), "%u", r->retry_after);
                MHD_add_response_header(resp, "Retry-After", b);
        }
        gate_each_header(r->api->opt.gate, add_header, resp);
        /* exporter-toolkit answers exactly "WWW-Authenticate: Basic" */
        if (status == 401 && r->challenge)
                MHD_add_response_header(resp, "WWW-Authenticate", "Basic");
        tls_each_header(r->api->opt.tls, add_header, resp);
        if (r->api->draining || r->close) /* draining: the client reconnects, to our successor */
                MHD_add_response_header(resp, "Connection", "close");
        r->status = status;
        ret = MHD_queue_response(r->conn, status, resp);
        MHD_destroy_response(resp);
        return ret;
}

static enum MHD_Result reply_text(request *r, unsigned status, char *data, size_t len,
                                  const char *ctype, const char *allow)
{
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);

        if (!resp) {
                free(data);
                return MHD_NO;
        }
        if (allow)
                MHD_add_response_header(resp, "Allow", allow);
        return queue(r, status, resp, ctype);
}

static enum MHD_Result reply_json(request *r, unsigned status, json_t *body, const char *allow)
{
        char *s, *t;
        size_t len;

        if (!body)
                return MHD_NO;
        s = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        if (!s)
                return MHD_NO;
        len = strlen(s);
        /* newline-terminated for curl users */
        t = realloc(s, len + 2);
        if (!t) {
                free(s);
                return MHD_NO;
        }
        t[len++] = '\n';
        t[len] = '\0';
        return reply_text(r, status, t, len, "application/json", allow);
}

enum MHD_Result api_reply_json(request *r, unsigned status, json_t *body)
{
        return reply_json(r, status, body, NULL);
}

/* The one error body: {"error":{"code":status,"message":msg}}. */
static enum MHD_Result reply_error(request *r, unsigned status, const char *allow, const char *msg)
{
        return reply_json(r, status,
                          json_pack("{s:{s:i,s:s}}", "error", "code", (int)status, "message", msg),
                          allow);
}

enum MHD_Result api_reply_errno(request *r, int err, const char *fmt, ...)
{
        char msg[512];
        va_list ap;

        if (err >= 0) /* a success is not an error: a bug in the caller */
                err = -EIO;
        if (!fmt) {
                snprintf(msg, sizeof(msg), "%s", errmap_reason(err));
        } else {
                va_start(ap, fmt);
                vsnprintf(msg, sizeof(msg), fmt, ap);
                va_end(ap);
        }
        if (errmap_http_status(err) == 401 && atomic_load(&r->api->dcgm)) {
                /* dcgm-exporter's web-config (exporter-toolkit) answers a failed basic auth
                 * with Go's http.Error: the status text as plain text. */
                char *t = strdup("Unauthorized\n");
                if (!t)
                        return MHD_NO;
                return reply_text(r, 401, t, strlen(t), "text/plain; charset=utf-8", NULL);
        }
        return reply_error(r, (unsigned)errmap_http_status(err), NULL, msg);
}

enum MHD_Result api_reply_plain(request *r, const char *text)
{
        char *t = strdup(text);

        if (!t)
                return MHD_NO;
        return reply_text(r, 200, t, strlen(t), "text/plain; charset=utf-8", NULL);
}

enum MHD_Result api_reply_http_error(request *r, unsigned status, const char *allow,
                                     const char *fmt, ...)
{
        char msg[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (status != 400 && status != 405 && status != 413 && status != 414 && status != 429 &&
            status != 431 && status != 505)
                return api_reply_errno(r, -EIO, "%s", msg);
        return reply_error(r, status, status == 405 ? allow : NULL, msg);
}

enum MHD_Result api_reply_static(request *r, unsigned status, const void *data, size_t len,
                                 const char *ctype, const char *vary, const char *encoding,
                                 void (*release)(void *), void *cls)
{
        struct MHD_Response *resp =
            MHD_create_response_from_buffer_with_free_callback_cls(len, (void *)data, release, cls);

        if (!resp) {
                release(cls);
                return MHD_NO;
        }
        if (vary)
                MHD_add_response_header(resp, "Vary", vary);
        if (encoding)
                MHD_add_response_header(resp, "Content-Encoding", encoding);
        return queue(r, status, resp, ctype);
}
