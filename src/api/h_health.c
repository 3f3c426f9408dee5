/* h_health.c — GET /api/v1/health, GET /api/v1/incidents[?all=true] and
 * POST /api/v1/incidents/{id}/ack. Thin: the health engine renders the JSON under its lock. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api-internal.h"
#include "reply.h"
#include "health/health.h"

static bool query_true(request *r, const char *key)
{
        const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);

        return v && (!strcmp(v, "true") || !strcmp(v, "1") || !*v);
}

enum MHD_Result h_health(request *r)
{
        json_t *j;

        if (!r->api->opt.health)
                return api_reply_errno(r, -EAGAIN, "the health engine is not running");
        j = health_json(r->api->opt.health);
        if (!j)
                return api_reply_errno(r, -ENOMEM, "out of memory");
        return api_reply_json(r, 200, j);
}

enum MHD_Result h_incidents(request *r)
{
        json_t *j;

        if (!r->api->opt.health)
                return api_reply_errno(r, -EAGAIN, "the health engine is not running");
        j = health_incidents_json(r->api->opt.health, query_true(r, "all"));
        if (!j)
                return api_reply_errno(r, -ENOMEM, "out of memory");
        return api_reply_json(r, 200, j);
}

enum MHD_Result h_incident_ack(request *r)
{
        const char *s = r->seg[0];
        json_t *out = NULL;
        char *end;
        unsigned long long id;
        int rc;

        if (!r->api->opt.health)
                return api_reply_errno(r, -EAGAIN, "the health engine is not running");
        errno = 0;
        id = strtoull(s, &end, 10);
        if (!*s || *end || errno || s[0] == '-')
                return api_reply_errno(r, -EINVAL, "'%.64s' is not an incident id", s);
        rc = health_ack(r->api->opt.health, id, r->sec.principal, &out);
        if (rc == -ENOENT)
                return api_reply_errno(r, rc, "no incident %llu", id);
        if (rc == -EALREADY) {
                json_decref(out);
                return api_reply_errno(r, -EBUSY, "incident %llu is already resolved", id);
        }
        if (rc < 0 || !out) {
                json_decref(out);
                return api_reply_errno(r, rc < 0 ? rc : -ENOMEM,
                                       "failed to acknowledge incident %llu", id);
        }
        return api_reply_json(r, 200, json_pack("{s:o}", "incident", out));
}

/* GET /api/v1/incidents/{id}/actions: the incident's action log (what its policies did; the
 * diag action names the run it started). */
enum MHD_Result h_incident_actions(request *r)
{
        const char *s = r->seg[0];
        json_t *out = NULL;
        char *end;
        unsigned long long id;
        int rc;

        if (!r->api->opt.health)
                return api_reply_errno(r, -EAGAIN, "the health engine is not running");
        errno = 0;
        id = strtoull(s, &end, 10);
        if (!*s || *end || errno || s[0] == '-')
                return api_reply_errno(r, -EINVAL, "'%.64s' is not an incident id", s);
        rc = health_incident_actions(r->api->opt.health, id, &out);
        if (rc == -ENOENT)
                return api_reply_errno(r, -EAGAIN, "the action log needs the store");
        if (rc < 0)
                return api_reply_errno(r, rc, "failed to read the actions of incident %llu", id);
        return api_reply_json(r, 200,
                              json_pack("{s:I, s:o}", "incident", (json_int_t)id, "actions", out));
}
