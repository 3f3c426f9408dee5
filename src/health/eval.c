/* eval.c — rule evaluation: the node's facts, the rule table (rules.c) run per GPU and for the
 * node against the cache, and the events that open incidents without a rule (XIDs, anomalies),
 * all turned into incident changes in the incident store (incidents.c). It decides nothing about
 * threads, persistence, notifications or policies: the health thread (health.c) calls it with the
 * store's lock held and does those afterwards. */
#include "health-internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/macros.h"
#include "common/vtime.h"
#include "fields/fields.h"
#include "health/xid.h"

/* Resident bytes from /proc/self/statm, 0 when unreadable. Called every HOST_OS_FACTS_US: one
 * pread on a descriptor kept open rather than fopen + fscanf + fclose (an allocation, three
 * system calls and the scanf machinery each time). */
static uint64_t statm_rss_bytes(void)
{
        static int fd = -1; /* health thread only (eval_lock) */
        char text[128], *p, *end;
        unsigned long long rss;
        ssize_t n;

        if (fd < 0)
                fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        n = pread(fd, text, sizeof(text) - 1, 0);
        if (n <= 0)
                return 0;
        text[n] = '\0';
        strtoull(text, &p, 10); /* size */
        rss = strtoull(p, &end, 10);
        if (end == p)
                return 0;
        return rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

void health_host_facts(sampler *sa, const char *data_dir, host_os_facts *os, int64_t now_mono_us,
                       host_facts *f)
{
        struct statvfs sv;

        f->gpu_count = sampler_gpu_count(sa);
        for (int t = 0; t < TIER_COUNT; t++)
                f->stretched_since_us[t] = 0;
        sampler_tier_stretched(sa, TIER_FAST, &f->stretched_since_us[TIER_FAST]);
        sampler_tier_stretched(sa, TIER_SLOW, &f->stretched_since_us[TIER_SLOW]);
        if (!os->read_at_us || now_mono_us - os->read_at_us >= HOST_OS_FACTS_US ||
            now_mono_us < os->read_at_us) {
                os->disk_pct = -1;
                if (data_dir && data_dir[0] && statvfs(data_dir, &sv) == 0 && sv.f_blocks > 0) {
                        /* As df computes it: used / (used + available to unprivileged users). */
                        unsigned long long used = (unsigned long long)(sv.f_blocks - sv.f_bfree);
                        unsigned long long avail = (unsigned long long)sv.f_bavail;
                        if (used + avail > 0)
                                os->disk_pct =
                                    (int)((used * 100 + (used + avail) - 1) / (used + avail));
                }
                os->rss_bytes = statm_rss_bytes();
                os->read_at_us = now_mono_us ? now_mono_us : 1;
                os->read_wall_us = time_real_us();
        }
        f->disk_pct = os->disk_pct;
        f->rss_bytes = os->rss_bytes;
        f->os_read_us = os->read_wall_us;
}

/* One rule's verdict on one GPU (gpu -1: the node) into its incident. */
static void apply(incident_store *s, int gpu, const char *uuid, size_t rule, const rule_result *res,
                  int64_t now)
{
        const health_rule *ru = &health_rules[rule];
        incident *in = incidents_find_open(s, gpu, ru->name);

        if (res->state == RULE_NOTED && gpu >= 0 && gpu < SAMPLER_MAX_GPUS)
                s->noted[gpu] |= 1u << ru->system; /* cleared per GPU before its rules run */
        if (res->state == RULE_SKIP)
                return;
        if (res->state == RULE_FIRING) {
                if (!in)
                        incidents_open(s, gpu, uuid, ru->name, (int)rule, ru->system, res->sev,
                                       ru->summary, ru->action, res->detail, now);
                else
                        incident_holds(in, res->sev, res->detail, now);
        } else if (in) {
                incident_clears(in, now);
        }
}

void health_eval_rules(incident_store *s, const eval_input *e)
{
        const health_config *cfg = e->cfg;
        unsigned n = MIN(e->host->gpu_count, (unsigned)SAMPLER_MAX_GPUS);

        if (!cfg->enabled)
                return;
        for (unsigned gi = 0; gi < n; gi++) {
                sampler_gpu g;
                if (sampler_gpu_get(e->sampler, gi, &g) < 0)
                        continue;
                s->noted[gi] = 0;
                for (size_t ri = 0; ri < health_n_rules; ri++) {
                        const health_rule *ru = &health_rules[ri];
                        incident *in;
                        rule_result res;
                        rule_ctx c = {
                            .cache = e->cache,
                            .gpu = gi,
                            .g = &g,
                            .unresponsive = atomic_load(&e->unresponsive[gi]),
                            .cfg = cfg,
                            .host = e->host,
                            .now_us = e->now_us,
                            .memo = e->memo[gi],
                            .sampler = e->sampler,
                        };
                        if (ru->scope != RULE_SCOPE_GPU || !cfg->systems[ru->system])
                                continue;
                        in = incidents_find_open(s, (int)gi, ru->name);
                        c.active = in && in->active;
                        health_rule_eval(ri, &c, &res);
                        apply(s, (int)gi, g.id.uuid, ri, &res, e->now_us);
                }
        }
        for (size_t ri = 0; ri < health_n_rules; ri++) {
                const health_rule *ru = &health_rules[ri];
                incident *in;
                rule_result res;
                rule_ctx c = {.cache = e->cache, .cfg = cfg, .host = e->host, .now_us = e->now_us};
                if (ru->scope != RULE_SCOPE_HOST || !cfg->systems[ru->system])
                        continue;
                in = incidents_find_open(s, -1, ru->name);
                c.active = in && in->active;
                health_rule_eval(ri, &c, &res);
                apply(s, -1, "", ri, &res, e->now_us);
        }
}

void health_eval_xid(incident_store *s, const health_config *cfg, sampler *sa, unsigned gpu,
                     uint32_t code, int64_t ts)
{
        const xid_info *x = xid_lookup(code);
        enum health_severity sev;
        char cond[HEALTH_COND_MAX], summary[256], detail[192];
        sampler_gpu g = {0};
        incident *in;

        if (!cfg->enabled || x->severity == XID_SEV_INFO)
                return; /* application-caused: counted in /metrics, no incident */
        sev = x->severity == XID_SEV_CRITICAL ? HEALTH_FAIL : HEALTH_WARN;
        sampler_gpu_get(sa, gpu, &g);
        snprintf(cond, sizeof(cond), "xid_%u", code);
        snprintf(summary, sizeof(summary), "XID %u: %s", code, x->message);
        snprintf(detail, sizeof(detail), "XID %u (%s) reported by the driver", code, x->message);
        in = incidents_find_open(s, (int)gpu, cond);
        if (in) {
                in->count++;
                in->dirty = true;
                incident_holds(in, sev, detail, ts);
                return;
        }
        if (!cfg->systems[health_xid_system(code)])
                return;
        in = incidents_open(s, (int)gpu, g.id.uuid, cond, -1, health_xid_system(code), sev, summary,
                            xid_action_text(x->action), detail, ts);
        if (in)
                in->xid = code;
}

static enum health_system anomaly_system(uint16_t field_id)
{
        switch (field_id) {
        case FLD_GPU_TEMP:
        case FLD_MEMORY_TEMP:
                return HEALTH_SYS_THERMAL;
        case FLD_POWER_USAGE:
                return HEALTH_SYS_POWER;
        default:
                return HEALTH_SYS_GPU;
        }
}

void health_eval_anomaly(incident_store *s, const health_config *cfg, const anomaly_event *ev,
                         int64_t now)
{
        bool peer = ev->kind == ANOMALY_PEER;
        enum health_system sys = anomaly_system(ev->field_id);
        char cond[HEALTH_COND_MAX], summary[256], detail[192];
        incident *in;

        snprintf(cond, sizeof(cond), ANOMALY_PREFIX "%s_%s", peer ? "peer" : "baseline", ev->field);
        in = incidents_find_open(s, (int)ev->gpu, cond);
        if (ev->open && cfg->enabled && cfg->systems[sys]) {
                snprintf(detail, sizeof(detail), "%s %.1f, %s %.1f (%+.1f %ssigma)", ev->field,
                         ev->value, peer ? "peers' median" : "baseline", ev->expected, ev->score,
                         peer ? "robust " : "");
                if (in) {
                        incident_holds(in, HEALTH_WARN, detail, now);
                } else {
                        snprintf(summary, sizeof(summary),
                                 peer ? "%s is far from the other GPUs of the node at similar "
                                        "utilization"
                                      : "%s left this GPU's learned baseline",
                                 ev->field);
                        incidents_open(s, (int)ev->gpu, ev->uuid, cond, -1, sys, HEALTH_WARN,
                                       summary,
                                       peer ? "check cooling / power delivery of this GPU"
                                            : "investigate the workload or the GPU",
                                       detail, ev->since_us ? ev->since_us : now);
                }
        } else if (!ev->open && in) {
                incident_clears(in, now);
        }
}
