/* h_diag.c — diagnostics over the API: POST /api/v1/diag starts a run (permission execute),
 * GET /api/v1/diag lists the kept runs, GET /api/v1/diag/{id} shows one with the results so far,
 * DELETE /api/v1/diag/{id} cancels it; and the vigil_diag_* families of /metrics. The runs
 * themselves are the diag module's (diag/service.h); this file maps them to HTTP. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api-internal.h"
#include "diag/diag.h"
#include "diag/service.h"
#include "reply.h"

static diag_service *service(request *r)
{
        return r->api->opt.diag;
}

enum MHD_Result h_diag_start(request *r)
{
        diag_service *s = service(r);
        json_t *body;
        json_error_t jerr;
        char id[64], err[512] = "";
        int rc;

        if (!s)
                return api_reply_errno(r, -EAGAIN, "diagnostics are not available");
        body = json_loadb(r->body.data ? r->body.data : "", r->body.len, JSON_REJECT_DUPLICATES,
                          &jerr);
        if (!body)
                return api_reply_errno(r, -EBADMSG, "invalid JSON body: %s", jerr.text);
        rc = diag_service_start(s, body, id, sizeof(id), err, sizeof(err));
        json_decref(body);
        if (rc < 0)
                return api_reply_errno(r, rc, "cannot start diagnostics: %s", err);
        return api_reply_json(r, 202, json_pack("{s:s, s:s}", "id", id, "status", "running"));
}

#define DIAG_LIST_DEFAULT 50
#define DIAG_LIST_MAX     1000

/* A non-negative integer query argument no larger than max; def when absent. 0 or -EINVAL. */
static int count_arg(request *r, const char *key, size_t def, size_t max, size_t *out)
{
        const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
        char *end = NULL;
        unsigned long long n;

        *out = def;
        if (!v)
                return 0;
        errno = 0;
        n = strtoull(v, &end, 10);
        if (!*v || *v == '-' || *end || errno || n > max)
                return -EINVAL;
        *out = (size_t)n;
        return 0;
}

/* GET /api/v1/diag?limit=N&offset=M: the stored runs, newest first, a page at a time. */
enum MHD_Result h_diag_list(request *r)
{
        diag_service *s = service(r);
        size_t limit, offset;
        json_t *list;

        if (!s)
                return api_reply_errno(r, -EAGAIN, "diagnostics are not available");
        if (count_arg(r, "limit", DIAG_LIST_DEFAULT, DIAG_LIST_MAX, &limit) < 0)
                return api_reply_errno(r, -EINVAL, "'limit' must be an integer 0..%d",
                                       DIAG_LIST_MAX);
        if (count_arg(r, "offset", 0, 100000000, &offset) < 0)
                return api_reply_errno(r, -EINVAL, "'offset' must be a non-negative integer");
        list = diag_service_list(s, offset, limit);
        if (!list)
                return api_reply_errno(r, -EIO, "failed to read the stored diagnostic runs");
        return api_reply_json(r, 200, list);
}

enum MHD_Result h_diag_get(request *r)
{
        diag_service *s = service(r);
        json_t *run = NULL;

        if (!s)
                return api_reply_errno(r, -EAGAIN, "diagnostics are not available");
        if (diag_service_get(s, r->seg[0], &run) < 0)
                return api_reply_errno(r, -ENOENT, "no diagnostic run '%s'", r->seg[0]);
        return api_reply_json(r, 200, run);
}

enum MHD_Result h_diag_cancel(request *r)
{
        diag_service *s = service(r);
        int rc;

        if (!s)
                return api_reply_errno(r, -EAGAIN, "diagnostics are not available");
        rc = diag_service_cancel(s, r->seg[0]);
        if (rc == -ENOENT)
                return api_reply_errno(r, rc, "no diagnostic run '%s'", r->seg[0]);
        return api_reply_json(r, 202,
                              json_pack("{s:s, s:s}", "id", r->seg[0], "status",
                                        rc == -EALREADY ? "finished" : "cancelling"));
}

struct diag_expo {
        buf *b;
        bool any;
};

static void expo_one(const char *test, int gpu, int verdict, void *ud)
{
        struct diag_expo *x = ud;

        x->any = true;
        buf_puts(x->b, "vigil_diag_result{");
        if (gpu >= 0)
                buf_printf(x->b, "gpu=\"%d\",", gpu);
        else
                buf_puts(x->b, "gpu=\"\",");
        buf_puts(x->b, "test=\"");
        expo_escape(x->b, test);
        buf_printf(x->b, "\"} %d\n", verdict);
}

int expo_render_diag(api *a, buf *b, bool om)
{
        struct diag_expo x = {.b = b};
        double t;

        (void)om;
        if (!a->opt.diag)
                return 0;
        buf_puts(b, "# HELP vigil_diag_result Verdict of each test of the last finished diagnostic "
                    "run: 0 pass, 1 skip, 2 warn, 3 fail\n# TYPE vigil_diag_result gauge\n");
        t = diag_service_last(a->opt.diag, expo_one, &x);
        buf_puts(b, "# HELP vigil_diag_last_run_timestamp_seconds Unix time at which the last "
                    "diagnostic run finished\n# TYPE vigil_diag_last_run_timestamp_seconds "
                    "gauge\n");
        if (t > 0)
                buf_printf(b, "vigil_diag_last_run_timestamp_seconds %.3f\n", t);
        return 0;
}
