/* auth_handlers.c — the security endpoints: GET /api/v1/audit, GET /api/v1/audit/verify,
 * GET /api/v1/config (secrets redacted), POST /api/v1/config/reload, POST /api/v1/tokens/revoke.
 * The permissions are in the route table (server.c), not here. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api-internal.h"
#include "reply.h"
#include "security/audit.h"
#include "security/gate.h"
#include "common/vtime.h"
#include "store/store.h"

static bool arg_i64(request *r, const char *name, int64_t *v)
{
        const char *s = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
        char *end;
        long long n;

        if (!s)
                return true;
        n = strtoll(s, &end, 10);
        if (!*s || *end || n < 0)
                return false;
        *v = n;
        return true;
}

enum MHD_Result h_audit(request *r)
{
        struct store *st = gate_store(r->api->opt.gate);
        audit_list_req req = {.since = 0, .limit = 1000};
        int64_t since_s = 0;
        int rc;

        if (!st)
                return api_reply_errno(r, -EAGAIN, "the audit trail needs the store");
        if (!arg_i64(r, "since", &since_s) || !arg_i64(r, "limit", &req.limit) ||
            req.limit > 100000)
                return api_reply_errno(r, -EINVAL,
                                       "since (seconds) and limit (1..100000) must be "
                                       "non-negative integers");
        if (since_s)
                req.since = time_real_us() - since_s * 1000000;
        rc = store_read(st, audit_list_fn, &req);
        if (rc < 0)
                return api_reply_errno(r, rc, "failed to read the audit trail: %s", strerror(-rc));
        return api_reply_json(r, 200, json_pack("{s:o}", "records", req.rows));
}

enum MHD_Result h_audit_verify(request *r)
{
        struct store *st = gate_store(r->api->opt.gate);
        audit_verify_result res;
        int rc;

        if (!st)
                return api_reply_errno(r, -EAGAIN, "the audit trail needs the store");
        /* The keyed verify: chain, signed checkpoint and the exported head (docs/security.md). */
        rc = gate_audit_verify(r->api->opt.gate, &res);
        if (rc == -EIO)
                return api_reply_errno(r, rc, "failed to read the audit trail");
        return api_reply_json(
            r, 200,
            json_pack("{s:b,s:I,s:I,s:I,s:s,s:s}", "ok", rc == 0, "checked",
                      (json_int_t)res.checked, "first_seq", (json_int_t)res.first_seq, "last_seq",
                      (json_int_t)res.last_seq, "head", res.head, "reason", res.reason));
}

enum MHD_Result h_config(request *r)
{
        json_t *j = r->api->opt.config_json ? r->api->opt.config_json(r->api->opt.userdata) : NULL;

        if (!j)
                return api_reply_errno(r, -EAGAIN, "configuration not available");
        return api_reply_json(r, 200, j);
}

enum MHD_Result h_config_reload(request *r)
{
        if (r->api->opt.config_reload) {
                unsigned status = 500;
                json_t *j = r->api->opt.config_reload(r->api->opt.userdata, &status);
                if (!j)
                        return api_reply_errno(r, -EAGAIN, "the reload did not finish");
                return api_reply_json(r, status, j);
        }
        /* The same path as SIGHUP: the main loop reads it from its signalfd. A process-directed
         * signal, so the main thread (not this HTTP thread) takes it. */
        if (kill(getpid(), SIGHUP) < 0) {
                int e = -errno;
                return api_reply_errno(r, e, "failed to request a reload: %s", strerror(-e));
        }
        return api_reply_json(r, 202, json_pack("{s:s}", "status", "reload requested"));
}

enum MHD_Result h_token_revoke(request *r)
{
        json_error_t jerr;
        json_t *body = json_loadb(r->body.data ? r->body.data : "", r->body.len,
                                  JSON_REJECT_DUPLICATES, &jerr);
        const char *jti = NULL;
        json_int_t exp = 0;
        int rc;

        if (!r->api->opt.gate) {
                json_decref(body);
                return api_reply_errno(r, -EAGAIN, "security is not set up");
        }
        if (!body || json_unpack(body, "{s:s,s?I}", "jti", &jti, "exp", &exp) < 0 || !*jti) {
                json_decref(body);
                return api_reply_errno(r, -EINVAL,
                                       "body must be {\"jti\": \"...\", \"exp\": SECONDS}");
        }
        if (!exp) /* unknown expiry: keep the denial for the longest token lifetime we accept */
                exp = time_real_us() / 1000000 + 366LL * 86400;
        rc = gate_revoke(r->api->opt.gate, jti, exp, r->sec.principal);
        if (rc < 0) {
                json_decref(body);
                return api_reply_errno(r, rc, "failed to revoke: %s", strerror(-rc));
        }
        {
                json_t *out = json_pack("{s:s,s:b}", "jti", jti, "revoked", 1);
                json_decref(body);
                return api_reply_json(r, 200, out);
        }
}
