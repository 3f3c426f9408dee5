/* h_gpuconfig.c — GPU configuration over the API: GET /api/v1/gpus/{id}/config (read), POST
 * /api/v1/gpus/{id}/config (set; permission write) and POST /api/v1/gpus/{id}/config/restore
 * (put the saved values back; write). The work and every NVML call are the gpuconfig worker's
 * (health/gpuconfig.h); this file parses the body, maps the answer to HTTP and writes one audit
 * record per setting changed (old -> new) with the caller's principal. */
#include <errno.h>
#include <string.h>

#include "api-internal.h"
#include "health/gpuconfig.h"
#include "reply.h"

static int find_gpu(request *r, unsigned *idx)
{
        sampler_gpu g;

        if (sampler_gpu_find(r->api->opt.sampler, r->seg[0], idx) < 0 ||
            sampler_gpu_get(r->api->opt.sampler, *idx, &g) < 0)
                return -ENODEV;
        return 0;
}

enum MHD_Result h_gpuconfig_get(request *r)
{
        gpuconfig *g = r->api->opt.gpuconfig;
        json_t *out = NULL;
        unsigned idx;
        int rc;

        if (!g)
                return api_reply_errno(r, -EAGAIN, "GPU configuration is not available");
        if (find_gpu(r, &idx) < 0)
                return api_reply_errno(r, -ENODEV, "no GPU '%s'", r->seg[0]);
        rc = gpuconfig_get(g, idx, &out);
        if (rc < 0)
                return api_reply_errno(r, rc, "cannot read the configuration of GPU %u", idx);
        return api_reply_json(r, 200, out);
}

static json_t *parse_body(request *r, char *err, size_t errlen)
{
        json_error_t jerr;
        json_t *body;

        if (!r->body.len)
                return json_object();
        body = json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &jerr);
        if (!body)
                snprintf(err, errlen, "invalid JSON body: %s", jerr.text);
        else if (!json_is_object(body)) {
                snprintf(err, errlen, "the body must be a JSON object");
                json_decref(body);
                body = NULL;
        }
        return body;
}

static int get_dry_run(const json_t *body, bool *dry_run, char *err, size_t errlen)
{
        const json_t *v = json_object_get(body, "dry_run");

        *dry_run = false;
        if (!v)
                return 0;
        if (!json_is_boolean(v)) {
                snprintf(err, errlen, "dry_run must be true or false");
                return -EINVAL;
        }
        *dry_run = json_is_true(v);
        return 0;
}

/* One audit record per setting that changed. */
static void audit_changes(request *r, unsigned idx, const json_t *changes, const char *event)
{
        sampler_gpu g;

        if (sampler_gpu_get(r->api->opt.sampler, idx, &g) < 0)
                return;
        for (size_t i = 0; i < json_array_size(changes); i++) {
                const json_t *c = json_array_get(changes, i);
                char detail[256];
                if (!json_is_true(json_object_get(c, "applied")))
                        continue;
                snprintf(detail, sizeof(detail), "GPU %u (%s) %s %s -> %s%s", idx, g.id.uuid,
                         json_string_value(json_object_get(c, "setting")) ?: "?",
                         json_string_value(json_object_get(c, "old")) ?: "?",
                         json_string_value(json_object_get(c, "new")) ?: "?",
                         !strcmp(json_string_value(json_object_get(c, "setting")) ?: "", "ecc")
                             ? " (pending until reset)"
                             : "");
                gate_audit(r->api->opt.gate, r->sec.principal, auth_role_name(r->sec.role),
                           r->sec.source_ip, r->method, r->path, 200, event, detail,
                           r->sec.request_id);
        }
}

static enum MHD_Result answer(request *r, unsigned idx, bool dry_run, json_t *changes,
                              const char *event)
{
        sampler_gpu g;

        if (!dry_run)
                audit_changes(r, idx, changes, event);
        if (sampler_gpu_get(r->api->opt.sampler, idx, &g) < 0)
                g.id.uuid[0] = '\0';
        return api_reply_json(r, 200,
                              json_pack("{s:i, s:s, s:b, s:o}", "gpu", (int)idx, "uuid", g.id.uuid,
                                        "dry_run", dry_run, "changes", changes));
}

enum MHD_Result h_gpuconfig_set(request *r)
{
        gpuconfig *g = r->api->opt.gpuconfig;
        gpucfg_value values[BCFG_COUNT] = {0};
        json_t *body, *settings, *v, *out = NULL;
        const char *key;
        char err[512] = "";
        bool dry_run = false;
        unsigned idx;
        int rc;

        if (!g)
                return api_reply_errno(r, -EAGAIN, "GPU configuration is not available");
        if (find_gpu(r, &idx) < 0)
                return api_reply_errno(r, -ENODEV, "no GPU '%s'", r->seg[0]);
        body = parse_body(r, err, sizeof(err));
        if (!body)
                return api_reply_errno(r, -EINVAL, "%s", err);
        rc = get_dry_run(body, &dry_run, err, sizeof(err));
        settings = json_object_get(body, "settings");
        if (rc == 0 && (!json_is_object(settings) || !json_object_size(settings))) {
                snprintf(err, sizeof(err),
                         "settings must be an object of at least one setting, e.g. "
                         "{\"power_limit\": \"500\"}");
                rc = -EINVAL;
        }
        json_object_foreach(settings, key, v)
        {
                char text[GPUCFG_VALUE_MAX];
                int s;

                if (rc < 0)
                        break;
                s = gpucfg_setting_from_name(key);
                if (s < 0) {
                        snprintf(err, sizeof(err),
                                 "unknown setting '%.64s' (power_limit, app_clocks, "
                                 "locked_gpu_clocks, locked_mem_clocks, compute_mode, persistence, "
                                 "ecc)",
                                 key);
                        rc = -EINVAL;
                        break;
                }
                if (json_is_string(v))
                        snprintf(text, sizeof(text), "%s", json_string_value(v));
                else if (json_is_integer(v))
                        snprintf(text, sizeof(text), "%lld", (long long)json_integer_value(v));
                else if (json_is_real(v))
                        snprintf(text, sizeof(text), "%.3f", json_real_value(v));
                else if (json_is_boolean(v))
                        snprintf(text, sizeof(text), "%s", json_is_true(v) ? "on" : "off");
                else
                        text[0] = '\0';
                rc = gpucfg_value_parse(s, text, &values[s], err, sizeof(err));
        }
        json_decref(body);
        if (rc < 0)
                return api_reply_errno(r, rc, "%s", err);
        rc = gpuconfig_set(g, idx, values, dry_run, &out, err, sizeof(err));
        if (rc < 0)
                return api_reply_errno(r, rc, "%s", err);
        return answer(r, idx, dry_run, out, "gpu_config_set");
}

enum MHD_Result h_gpuconfig_restore(request *r)
{
        gpuconfig *g = r->api->opt.gpuconfig;
        json_t *body, *list, *out = NULL;
        char err[512] = "";
        bool dry_run = false;
        unsigned idx, mask = 0;
        int rc;

        if (!g)
                return api_reply_errno(r, -EAGAIN, "GPU configuration is not available");
        if (find_gpu(r, &idx) < 0)
                return api_reply_errno(r, -ENODEV, "no GPU '%s'", r->seg[0]);
        body = parse_body(r, err, sizeof(err));
        if (!body)
                return api_reply_errno(r, -EINVAL, "%s", err);
        rc = get_dry_run(body, &dry_run, err, sizeof(err));
        list = json_object_get(body, "settings");
        if (rc == 0 && list && !json_is_array(list)) {
                snprintf(err, sizeof(err), "settings must be a list of setting names");
                rc = -EINVAL;
        }
        for (size_t i = 0; rc == 0 && i < json_array_size(list); i++) {
                int s = gpucfg_setting_from_name(json_string_value(json_array_get(list, i)));
                if (s < 0) {
                        snprintf(err, sizeof(err), "unknown setting '%.64s'",
                                 json_string_value(json_array_get(list, i)) ?: "(not a string)");
                        rc = -EINVAL;
                } else {
                        mask |= 1U << s;
                }
        }
        json_decref(body);
        if (rc < 0)
                return api_reply_errno(r, rc, "%s", err);
        rc = gpuconfig_restore(g, idx, mask, dry_run, &out, err, sizeof(err));
        if (rc < 0)
                return api_reply_errno(r, rc, "%s", err);
        return answer(r, idx, dry_run, out, "gpu_config_restore");
}
