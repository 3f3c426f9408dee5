/* report.c — what the health engine shows: GET /api/v1/health and /api/v1/incidents as JSON, the
 * overall verdict, and the health families of /metrics. Readers only: they copy out under the
 * incident store's lock from any thread and change nothing, so nothing below calls up here. */
#include "health-internal.h"

#include <stdio.h>
#include <string.h>

#include "common/macros.h"

json_t *health_incidents_json(health *h, bool all)
{
        json_t *arr = json_array();

        if (!arr)
                return NULL;
        pthread_mutex_lock(&h->inc.lock);
        for (size_t i = 0; i < h->inc.n; i++)
                if (all || h->inc.v[i].state != INCIDENT_RESOLVED)
                        json_array_append_new(arr, incident_json(&h->inc.v[i]));
        pthread_mutex_unlock(&h->inc.lock);
        return json_pack("{s:o}", "incidents", arr);
}

enum health_severity health_overall(health *h)
{
        enum health_severity w = HEALTH_PASS;

        pthread_mutex_lock(&h->inc.lock);
        for (size_t i = 0; i < h->inc.n; i++)
                if (h->inc.v[i].state != INCIDENT_RESOLVED && h->inc.v[i].severity > w)
                        w = h->inc.v[i].severity;
        pthread_mutex_unlock(&h->inc.lock);
        return w;
}

static const char *dcgm_result(enum health_severity s)
{
        return s == HEALTH_FAIL ? "FAIL" : s == HEALTH_WARN ? "WARN" : "PASS";
}

/* What can be said of one system of one GPU (or of the node, gpu -1) now. Only SYS_CHECKED
 * has a verdict of its own; the others are never reported as PASS (docs/health.md, "Not
 * monitored"). */
enum sys_view {
        SYS_CHECKED = 0,       /* a rule checks it on readings this GPU provides */
        SYS_NOT_MONITORED = 1, /* no rule, or only rules on fields the GPU lacks */
        SYS_DISABLED = 2,      /* switched off in health.systems (or health.enabled false) */
        SYS_STALE = 3,         /* the GPU is lost or unresponsive: nothing is checked now */
};

/* (L) */
static enum sys_view system_view(health *h, int gpu, enum health_system s)
{
        sampler_gpu g;

        if (!h->cfg.enabled || !h->cfg.systems[s])
                return SYS_DISABLED; /* health.enabled false: no rule runs at all */
        if (gpu < 0 || s == HEALTH_SYS_GPU)
                return SYS_CHECKED; /* the node's checks; the GPU system watches the GPU itself */
        if (sampler_gpu_get(h->opt.sampler, (unsigned)gpu, &g) < 0 || !g.up || g.stuck ||
            (gpu < SAMPLER_MAX_GPUS && atomic_load(&h->unresponsive[gpu])))
                return SYS_STALE;
        for (size_t i = 0; i < health_n_rules; i++)
                if (health_rules[i].scope == RULE_SCOPE_GPU && health_rules[i].system == s &&
                    health_rule_monitors(i, h->opt.cache, (unsigned)gpu))
                        return SYS_CHECKED;
        return SYS_NOT_MONITORED;
}

/* The system's result: its worst open incident, or WARN while a rule of it holds as expected
 * state only (RULE_NOTED: DCGM's result, without an incident). Under h->inc.lock. */
static enum health_severity system_worst(health *h, int gpu, int s)
{
        enum health_severity w = incidents_worst(&h->inc, gpu, s);

        if (gpu >= 0 && gpu < SAMPLER_MAX_GPUS && (h->inc.noted[gpu] >> s & 1u))
                w = MAX(w, HEALTH_WARN);
        return w;
}

/* (L) Whether the system has a verdict to show (*w, the worst open incident): when it is
 * checked, or when an XID opened an incident on a system no rule checks. *view says why not. */
static bool system_verdict(health *h, int gpu, enum health_system s, enum sys_view *view,
                           enum health_severity *w)
{
        *view = system_view(h, gpu, s);
        *w = system_worst(h, gpu, (int)s);
        if (*view == SYS_CHECKED)
                return true;
        return *view == SYS_NOT_MONITORED && *w != HEALTH_PASS;
}

static json_t *systems_json(health *h, int gpu)
{
        json_t *o = json_object();

        for (int s = 0; o && s < HEALTH_SYS_COUNT; s++) {
                enum health_severity w;
                enum sys_view view;
                bool verdict;
                json_t *e;
                if ((gpu >= 0) == (s == HEALTH_SYS_HOST))
                        continue;
                verdict = system_verdict(h, gpu, (enum health_system)s, &view, &w);
                e = json_pack("{s:s}", "status",
                              verdict             ? dcgm_result(w)
                              : view == SYS_STALE ? "stale"
                                                  : "not_monitored");
                if (view == SYS_DISABLED)
                        json_object_set_new(e, "note", json_string("disabled"));
                else if (view == SYS_STALE)
                        json_object_set_new(e, "note",
                                            json_string("GPU lost or unresponsive: not checked"));
                else if (view == SYS_NOT_MONITORED)
                        json_object_set_new(e, "note",
                                            json_string(verdict ? "not monitored: only XIDs "
                                                                  "mapped to it are seen"
                                                                : "not monitored (no supported "
                                                                  "NVML field is checked)"));
                if (view == SYS_CHECKED && w != incidents_worst(&h->inc, gpu, s))
                        json_object_set_new(e, "note", json_string("expected (no incident)"));
                json_object_set_new(e, "monitored", json_boolean(view == SYS_CHECKED));
                json_object_set_new(o, health_system_name((enum health_system)s), e);
        }
        return o;
}

json_t *health_json(health *h)
{
        json_t *root, *gpus;
        unsigned n = sampler_gpu_count(h->opt.sampler);
        enum health_severity all = HEALTH_PASS;

        gpus = json_array();
        if (!gpus)
                return NULL;
        pthread_mutex_lock(&h->inc.lock);
        for (unsigned i = 0; i < n; i++) {
                sampler_gpu g;
                enum health_severity w;
                json_t *inc = json_array();
                if (sampler_gpu_get(h->opt.sampler, i, &g) < 0)
                        continue;
                w = incidents_worst(&h->inc, (int)i, -1);
                all = MAX(all, w);
                for (size_t k = 0; k < h->inc.n; k++)
                        if (h->inc.v[k].gpu == (int)i && h->inc.v[k].state != INCIDENT_RESOLVED)
                                json_array_append_new(inc,
                                                      json_integer((json_int_t)h->inc.v[k].id));
                json_array_append_new(gpus,
                                      json_pack("{s:i,s:s,s:s,s:o,s:o}", "index", (int)i, "uuid",
                                                g.id.uuid, "status", dcgm_result(w), "systems",
                                                systems_json(h, (int)i), "incidents", inc));
        }
        {
                enum health_severity w = incidents_worst(&h->inc, -1, -1);
                all = MAX(all, w);
                root = json_pack("{s:s,s:b,s:i,s:o,s:{s:s,s:o}}", "status", dcgm_result(all),
                                 "enabled", h->cfg.enabled, "open_incidents", 0, "gpus", gpus,
                                 "node", "status", dcgm_result(w), "systems", systems_json(h, -1));
        }
        if (root) {
                json_int_t open = 0;
                for (size_t k = 0; k < h->inc.n; k++)
                        open += h->inc.v[k].state != INCIDENT_RESOLVED;
                json_object_set_new(root, "open_incidents", json_integer(open));
                json_object_set_new(root, "evaluations", json_integer((json_int_t)h->evaluations));
        }
        pthread_mutex_unlock(&h->inc.lock);
        return root;
}

/* ---- metrics --------------------------------------------------------------------------------- */

/* A counter's HELP/TYPE lines: OpenMetrics names the family without "_total". */
static void counter_header(buf *b, const char *name, const char *help, bool om)
{
        size_t l = strlen(name);
        int n = om && l > 6 && !strcmp(name + l - 6, "_total") ? (int)(l - 6) : (int)l;

        buf_printf(b, "# HELP %.*s %s\n# TYPE %.*s counter\n", n, name, help, n, name);
}

int health_render_metrics(health *h, buf *b, bool dcgm, bool om, health_label_fn labels,
                          void *userdata)
{
        unsigned n = sampler_gpu_count(h->opt.sampler);
        buf lb;
        notifier_stats ns = {0};
        uint64_t counts[3][3] = {{0}}; /* [severity][state] */

        buf_init(&lb, 4096);
        pthread_mutex_lock(&h->inc.lock);
        if (dcgm) {
                buf_puts(b, "# HELP DCGM_EXP_GPU_HEALTH_STATUS Health watch status of the GPU "
                            "(0 PASS, 10 WARN, 20 FAIL).\n"
                            "# TYPE DCGM_EXP_GPU_HEALTH_STATUS gauge\n");
        } else {
                buf_puts(b, "# HELP vigil_gpu_health Health of one system of the GPU (0 pass, 1 "
                            "warn, 2 fail); no series for a system that is not checked "
                            "(vigil_gpu_health_monitored 0).\n# TYPE vigil_gpu_health gauge\n");
        }
        for (unsigned i = 0; i < n; i++) {
                buf_reset(&lb);
                if (labels)
                        labels(userdata, i, &lb);
                for (int s = 0; s < HEALTH_SYS_COUNT; s++) {
                        enum health_severity w;
                        enum sys_view view;
                        const char *code = "DCGM_FR_OK";
                        /* a system without a verdict has no series: never a PASS for what
                         * is not checked, nor an old verdict of a lost or hung GPU */
                        if (s == HEALTH_SYS_HOST ||
                            !system_verdict(h, (int)i, (enum health_system)s, &view, &w))
                                continue;
                        if (dcgm) {
                                if (!health_system_dcgm((enum health_system)s))
                                        continue;
                                for (size_t k = 0; k < h->inc.n; k++) {
                                        const incident *in = &h->inc.v[k];
                                        if (in->gpu == (int)i && (int)in->system == s &&
                                            in->state != INCIDENT_RESOLVED && in->severity == w &&
                                            w != HEALTH_PASS)
                                                code = in->rule >= 0
                                                           ? health_rules[in->rule].dcgm_code
                                                       : in->xid ? "DCGM_FR_XID_ERROR"
                                                                 : "DCGM_FR_OK";
                                }
                                for (size_t k = 0; !strcmp(code, "DCGM_FR_OK") &&
                                                   w != HEALTH_PASS && k < health_n_rules;
                                     k++)
                                        if ((int)health_rules[k].system == s)
                                                code = health_rules[k].dcgm_code; /* noted */
                                buf_printf(b,
                                           "DCGM_EXP_GPU_HEALTH_STATUS{%s%shealth_watch=\"%s\","
                                           "health_error_code=\"%s\"} %d\n",
                                           lb.data ? lb.data : "", lb.len ? "," : "",
                                           health_system_dcgm((enum health_system)s), code,
                                           (int)w * 10);
                        } else {
                                buf_printf(b, "vigil_gpu_health{%s%ssystem=\"%s\"} %d\n",
                                           lb.data ? lb.data : "", lb.len ? "," : "",
                                           health_system_name((enum health_system)s), (int)w);
                        }
                }
        }
        if (!dcgm) {
                /* Which systems are checked: 0 for one with no rule on a field this GPU
                 * provides, switched off, or of a lost or unresponsive GPU. */
                buf_puts(b, "# HELP vigil_gpu_health_monitored 1 when the system is checked on "
                            "the GPU's current readings, 0 when it is not (no check on a field "
                            "the GPU supports, switched off, GPU lost or unresponsive).\n"
                            "# TYPE vigil_gpu_health_monitored gauge\n");
                for (unsigned i = 0; i < n; i++) {
                        buf_reset(&lb);
                        if (labels)
                                labels(userdata, i, &lb);
                        for (int s = 0; s < HEALTH_SYS_COUNT; s++)
                                if (s != HEALTH_SYS_HOST)
                                        buf_printf(
                                            b, "vigil_gpu_health_monitored{%s%ssystem=\"%s\"} %d\n",
                                            lb.data ? lb.data : "", lb.len ? "," : "",
                                            health_system_name((enum health_system)s),
                                            system_view(h, (int)i, (enum health_system)s) ==
                                                SYS_CHECKED);
                }
                /* The watchdog's verdict: 0 while a sample call on the GPU hangs. */
                buf_puts(b, "# HELP vigil_gpu_responsive 1 when the GPU's NVML calls return "
                            "within health.nvml_call_timeout, 0 while one hangs.\n"
                            "# TYPE vigil_gpu_responsive gauge\n");
                for (unsigned i = 0; i < n && i < SAMPLER_MAX_GPUS; i++) {
                        buf_reset(&lb);
                        if (labels)
                                labels(userdata, i, &lb);
                        buf_printf(b, "vigil_gpu_responsive{%s} %d\n", lb.data ? lb.data : "",
                                   !atomic_load(&h->unresponsive[i]));
                }
                buf_printf(b,
                           "# HELP vigil_node_health Health of the node's own checks (0 pass, "
                           "1 warn, 2 fail).\n# TYPE vigil_node_health gauge\n"
                           "vigil_node_health{system=\"host\"} %d\n",
                           (int)incidents_worst(&h->inc, -1, HEALTH_SYS_HOST));
                for (size_t k = 0; k < h->inc.n; k++)
                        counts[h->inc.v[k].severity][h->inc.v[k].state]++;
                buf_puts(b, "# HELP vigil_incidents Incidents held by vigild, by severity and "
                            "state.\n# TYPE vigil_incidents gauge\n");
                for (int sev = HEALTH_WARN; sev <= HEALTH_FAIL; sev++)
                        for (int st = 0; st < 3; st++)
                                buf_printf(b,
                                           "vigil_incidents{severity=\"%s\",state=\"%s\"} %llu\n",
                                           health_alert_severity((enum health_severity)sev),
                                           incident_state_name((enum incident_state)st),
                                           (unsigned long long)counts[sev][st]);
        }
        pthread_mutex_unlock(&h->inc.lock);
        buf_release(&lb);
        if (!dcgm) {
                if (h->notifier)
                        notifier_get_stats(h->notifier, &ns);
                buf_printf(b,
                           "# HELP vigil_alert_outbox_depth Notifications waiting in the outbox.\n"
                           "# TYPE vigil_alert_outbox_depth gauge\nvigil_alert_outbox_depth %llu\n",
                           (unsigned long long)ns.depth);
                counter_header(b, "vigil_alert_send_failures_total",
                               "Failed notification attempts.", om);
                buf_printf(b, "vigil_alert_send_failures_total %llu\n",
                           (unsigned long long)ns.failures);
                counter_header(b, "vigil_alerts_sent_total", "Notifications delivered.", om);
                buf_printf(b, "vigil_alerts_sent_total %llu\n", (unsigned long long)ns.sent);
                counter_header(b, "vigil_policy_actions_total",
                               "Policy actions run (dry runs included).", om);
                buf_printf(
                    b, "vigil_policy_actions_total %llu\n",
                    (unsigned long long)(h->policies ? policy_actions_total(h->policies) : 0));
        }
        return b->err;
}
