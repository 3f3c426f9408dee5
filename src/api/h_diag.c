/* h_diag.c — diagnostics over the API: POST /api/v1/diag starts a run (permission execute),
 * GET /api/v1/diag lists the kept runs, GET /api/v1/diag/{id} shows one with the results so far,
 * DELETE /api/v1/diag/{id} cancels it; and the vigil_diag_* families of /metrics. The runs
 * themselves are the diag module's (diag/service.h); this file maps them to HTTP. */
#include <errno.h>
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

enum MHD_Result h_diag_list(request *r)
{
        diag_service *s = service(r);

        if (!s)
                return api_reply_errno(r, -EAGAIN, "diagnostics are not available");
        return api_reply_json(r, 200, diag_service_list(s));
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
