/* health.c — the incident layer and the health thread. Rules (rules.c) say whether a condition
 * holds; this file turns that into incidents: one per (GPU, condition), opened at once, updated
 * while it holds, resolved after it has been clear for resolve_after, persisted in the store,
 * handed to the notifier and, when freshly opened, to the policies. XIDs open their incident here
 * directly from the engine's event thread (in memory, under the lock: visible at once), and the
 * health thread persists it a moment later. */
#include "health.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macros.h"
#include "common/vtime.h"
#include "fields/fields.h"
#include "health-internal.h"
#include "health/xid.h"
#ifdef VIGIL_HAVE_STORE
#include "store/store.h"
#endif

#define PERSIST_EVERY_US                                                                           \
        (30 * USEC_PER_SEC) /* last_seen of a firing incident is saved this often */

struct health {
        health_options opt;                                   /* copy; cfg points at cfg below */
        health_config cfg;                                    /* copy; arrays owned */
        char *data_dir, *hostname;                            /* owned */
        pthread_mutex_t lock;                                 /* guards everything below */
        counter_memo memo[SAMPLER_MAX_GPUS][RULE_MEMO_SLOTS]; /* windowed counter results */
        pthread_cond_t wake; /* the health thread waits here (CLOCK_MONOTONIC) */
        incident inc[HEALTH_MAX_INCIDENTS];
        size_t n_inc;
        uint64_t next_id; /* id of the next incident */
        bool pending;     /* a sweep or event asked for an evaluation */
        bool stopping;
        bool started;
        pthread_t thread;
        pthread_mutex_t eval_lock; /* one evaluation at a time */
        notifier *notifier;
        policy_runner *policies;
        uint64_t evaluations;                       /* count */
        atomic_bool unresponsive[SAMPLER_MAX_GPUS]; /* set by the engine's watchdog hook */
        anomaly *anomaly;                           /* subscribed to; NULL when none */
};

#define ANOMALY_PREFIX "anomaly_" /* conditions of anomaly incidents: anomaly_<kind>_<FIELD> */

/* ---- names ----------------------------------------------------------------------------------- */

static const char *const system_names[HEALTH_SYS_COUNT] = {
    "pcie", "nvlink", "memory", "inforom", "thermal", "power", "driver", "gpu", "clocks", "host",
};
/* DCGM's watch names (dcgm-exporter's health_watch label); NULL: not a DCGM system. Whole-GPU
 * faults (lost GPU, "devastating" XIDs such as 79) are what DCGM reports under
 * DCGM_HEALTH_WATCH_ALL, which dcgm-exporter labels "ALL". */
static const char *const system_dcgm[HEALTH_SYS_COUNT] = {
    "PCIE", "NVLINK", "MEM", "INFOROM", "THERMAL", "POWER", "DRIVER", "ALL", NULL, NULL,
};

const char *health_system_name(enum health_system s)
{
        return (unsigned)s < HEALTH_SYS_COUNT ? system_names[s] : "unknown";
}

const char *health_severity_name(enum health_severity s)
{
        return s == HEALTH_FAIL ? "fail" : s == HEALTH_WARN ? "warn" : "pass";
}

static const char *alert_severity(enum health_severity s)
{
        return s == HEALTH_FAIL ? "critical" : "warning";
}

const char *incident_state_name(enum incident_state s)
{
        return s == INCIDENT_RESOLVED       ? "resolved"
               : s == INCIDENT_ACKNOWLEDGED ? "acknowledged"
                                            : "open";
}

static const char *const action_names[HEALTH_ACT_COUNT] = {
    "log", "alert", "exec", "set_power_limit", "reset_gpu",
};

const char *health_action_name(enum health_action a)
{
        return (unsigned)a < HEALTH_ACT_COUNT ? action_names[a] : "unknown";
}

int health_action_from_name(const char *s)
{
        for (int i = 0; i < HEALTH_ACT_COUNT; i++)
                if (!strcmp(s, action_names[i]))
                        return i;
        return -EINVAL;
}

bool health_condition_valid(const char *name)
{
        if (!strcmp(name, "*") || !strcmp(name, "xid") || !strcmp(name, "critical") ||
            !strcmp(name, "warning"))
                return true;
        if (!strncmp(name, "xid_", 4)) {
                char *end;
                unsigned long v = strtoul(name + 4, &end, 10);
                return name[4] && !*end && v > 0 && v < 100000;
        }
        if (!strncmp(name, ANOMALY_PREFIX "baseline_", strlen(ANOMALY_PREFIX "baseline_")) ||
            !strncmp(name, ANOMALY_PREFIX "peer_", strlen(ANOMALY_PREFIX "peer_")))
                return strlen(name) < HEALTH_COND_MAX && field_by_name(strchr(name + 8, '_') + 1);
        return health_rule_find(name) >= 0;
}

/* ---- store ----------------------------------------------------------------------------------- */

#ifdef VIGIL_HAVE_STORE
typedef struct save_ctx {
        const incident *v; /* incidents to save */
        size_t n;
} save_ctx;

static int save_fn(sqlite3 *db, void *arg)
{
        save_ctx *s = arg;
        sqlite3_stmt *st = NULL;
        int r = 0;

        if (sqlite3_prepare_v2(db,
                               "INSERT OR REPLACE INTO health_incidents (id, gpu, uuid, condition, "
                               "xid, system, severity, state, summary, detail, action, acked_by, "
                               "first_us, last_us, acked_us, resolved_us, count) VALUES "
                               "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                               -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        for (size_t i = 0; i < s->n && r == 0; i++) {
                const incident *in = &s->v[i];
                sqlite3_reset(st);
                sqlite3_bind_int64(st, 1, (sqlite3_int64)in->id);
                sqlite3_bind_int(st, 2, in->gpu);
                sqlite3_bind_text(st, 3, in->uuid, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 4, in->condition, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 5, in->xid);
                sqlite3_bind_text(st, 6, health_system_name(in->system), -1, SQLITE_STATIC);
                sqlite3_bind_int(st, 7, in->severity);
                sqlite3_bind_int(st, 8, in->state);
                sqlite3_bind_text(st, 9, in->summary, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 10, in->detail, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 11, in->action, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 12, in->acked_by, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 13, in->first_us);
                sqlite3_bind_int64(st, 14, in->last_us);
                sqlite3_bind_int64(st, 15, in->acked_us);
                sqlite3_bind_int64(st, 16, in->resolved_us);
                sqlite3_bind_int64(st, 17, (sqlite3_int64)in->count);
                if (sqlite3_step(st) != SQLITE_DONE)
                        r = store_errno(sqlite3_errcode(db));
        }
        sqlite3_finalize(st);
        return r;
}

typedef struct load_ctx {
        health *h;
} load_ctx;

static enum health_system system_from_name(const char *s)
{
        for (int i = 0; i < HEALTH_SYS_COUNT; i++)
                if (s && !strcmp(s, system_names[i]))
                        return (enum health_system)i;
        return HEALTH_SYS_GPU;
}

static void copy_col(char *dst, size_t len, sqlite3_stmt *st, int col)
{
        const unsigned char *t = sqlite3_column_text(st, col);

        snprintf(dst, len, "%s", t ? (const char *)t : "");
}

static int load_fn(sqlite3 *db, void *arg)
{
        health *h = ((load_ctx *)arg)->h;
        sqlite3_stmt *st = NULL;
        int rc;

        if (sqlite3_prepare_v2(db, "SELECT COALESCE(MAX(id), 0) FROM health_incidents", -1, &st,
                               NULL) != SQLITE_OK)
                return -EIO;
        if (sqlite3_step(st) == SQLITE_ROW)
                h->next_id = (uint64_t)sqlite3_column_int64(st, 0) + 1;
        sqlite3_finalize(st);
        if (sqlite3_prepare_v2(db,
                               "SELECT id, gpu, uuid, condition, xid, system, severity, state, "
                               "summary, detail, action, acked_by, first_us, last_us, acked_us, "
                               "resolved_us, count FROM health_incidents WHERE state != 2 "
                               "ORDER BY id",
                               -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW && h->n_inc < HEALTH_MAX_INCIDENTS) {
                incident *in = &h->inc[h->n_inc++];
                memset(in, 0, sizeof(*in));
                in->id = (uint64_t)sqlite3_column_int64(st, 0);
                in->gpu = sqlite3_column_int(st, 1);
                copy_col(in->uuid, sizeof(in->uuid), st, 2);
                copy_col(in->condition, sizeof(in->condition), st, 3);
                in->xid = (uint32_t)sqlite3_column_int64(st, 4);
                in->system = system_from_name((const char *)sqlite3_column_text(st, 5));
                in->severity = (enum health_severity)sqlite3_column_int(st, 6);
                in->state = (enum incident_state)sqlite3_column_int(st, 7);
                copy_col(in->summary, sizeof(in->summary), st, 8);
                copy_col(in->detail, sizeof(in->detail), st, 9);
                copy_col(in->action, sizeof(in->action), st, 10);
                copy_col(in->acked_by, sizeof(in->acked_by), st, 11);
                in->first_us = sqlite3_column_int64(st, 12);
                in->last_us = sqlite3_column_int64(st, 13);
                in->acked_us = sqlite3_column_int64(st, 14);
                in->resolved_us = sqlite3_column_int64(st, 15);
                in->count = (uint64_t)sqlite3_column_int64(st, 16);
                in->rule = in->xid ? -1 : health_rule_find(in->condition);
                /* Whether it still holds is for the next evaluation to say; until then it is
                 * treated as holding (XIDs: until xid_hold after their last report). */
                in->active = true;
                in->persisted_us = in->last_us;
                if (!strncmp(in->condition, ANOMALY_PREFIX, strlen(ANOMALY_PREFIX))) {
                        /* the detector starts afresh: clear until it opens the anomaly again */
                        in->active = false;
                        in->clear_since_us = time_real_us();
                }
        }
        sqlite3_finalize(st);
        return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -EIO;
}
#endif

/* Write the dirty incidents (health thread). The dirty ones are copied and marked clean under the
 * lock, written outside it, and marked dirty again by id if the write fails (retried at the next
 * evaluation). Most evaluations change nothing and allocate nothing. */
static void persist(health *h)
{
        incident *v = NULL;
        size_t n = 0, k = 0;

        pthread_mutex_lock(&h->lock);
        for (size_t i = 0; i < h->n_inc; i++)
                n += h->inc[i].dirty;
        if (n && h->opt.store)
                v = calloc(n, sizeof(*v));
        for (size_t i = 0; i < h->n_inc; i++) {
                if (!h->inc[i].dirty)
                        continue;
                if (v)
                        v[k++] = h->inc[i];
                if (v || !h->opt.store)
                        h->inc[i].dirty = false;
        }
        pthread_mutex_unlock(&h->lock);
        if (!v)
                return;
#ifdef VIGIL_HAVE_STORE
        {
                save_ctx sc = {v, k};
                int r = store_write(h->opt.store, save_fn, &sc);
                if (r < 0) {
                        log_error("health", "failed to save %zu incidents: %s", k, strerror(-r));
                        pthread_mutex_lock(&h->lock);
                        for (size_t i = 0; i < h->n_inc; i++)
                                for (size_t j = 0; j < k; j++)
                                        if (h->inc[i].id == v[j].id)
                                                h->inc[i].dirty = true;
                        pthread_mutex_unlock(&h->lock);
                }
        }
#endif
        free(v);
}

/* ---- incidents ------------------------------------------------------------------------------- */

static incident *find_open(health *h, int gpu, const char *cond)
{
        for (size_t i = 0; i < h->n_inc; i++) {
                incident *in = &h->inc[i];
                if (in->state != INCIDENT_RESOLVED && in->gpu == gpu &&
                    !strcmp(in->condition, cond))
                        return in;
        }
        return NULL;
}

/* A free slot: the end, or the oldest resolved incident (open ones are never dropped). */
static incident *new_slot(health *h)
{
        size_t victim = SIZE_MAX;

        if (h->n_inc < HEALTH_MAX_INCIDENTS)
                return &h->inc[h->n_inc++];
        for (size_t i = 0; i < h->n_inc; i++)
                if (h->inc[i].state == INCIDENT_RESOLVED &&
                    (victim == SIZE_MAX || h->inc[i].resolved_us < h->inc[victim].resolved_us))
                        victim = i;
        return victim == SIZE_MAX ? NULL : &h->inc[victim];
}

static incident *open_incident(health *h, int gpu, const char *uuid, const char *cond, int rule,
                               enum health_system sys, enum health_severity sev,
                               const char *summary, const char *action, const char *detail,
                               int64_t now)
{
        incident *in = new_slot(h);

        if (!in) {
                log_error("health", "cannot open incident '%s': %d incidents are open", cond,
                          HEALTH_MAX_INCIDENTS);
                return NULL;
        }
        memset(in, 0, sizeof(*in));
        in->id = h->next_id++;
        in->gpu = gpu;
        snprintf(in->uuid, sizeof(in->uuid), "%s", uuid ? uuid : "");
        snprintf(in->condition, sizeof(in->condition), "%s", cond);
        in->rule = rule;
        in->system = sys;
        in->severity = sev;
        in->state = INCIDENT_OPEN;
        snprintf(in->summary, sizeof(in->summary), "%s", summary);
        snprintf(in->action, sizeof(in->action), "%s", action);
        snprintf(in->detail, sizeof(in->detail), "%s", detail);
        in->first_us = in->last_us = now;
        in->count = 1;
        in->active = in->dirty = in->notify = in->fresh = true;
        if (gpu >= 0)
                log_warn("health", "opened incident %" PRIu64 " on GPU %d ('%s'): %s (%s): %s",
                         in->id, gpu, in->uuid, cond, health_severity_name(sev), detail);
        else
                log_warn("health", "opened incident %" PRIu64 " on the node: %s (%s): %s", in->id,
                         cond, health_severity_name(sev), detail);
        return in;
}

/* The condition holds now. */
static void holds(incident *in, enum health_severity sev, const char *detail, int64_t now)
{
        if (!in->active) {
                in->active = true;
                in->clear_since_us = 0;
                in->count++;
                in->dirty = true;
        }
        if (sev > in->severity) {
                in->severity = sev;
                in->dirty = in->notify = true;
        }
        if (detail)
                snprintf(in->detail, sizeof(in->detail), "%s", detail);
        in->last_us = now;
        if (now - in->persisted_us >= PERSIST_EVERY_US)
                in->dirty = true;
}

static void apply(health *h, int gpu, const char *uuid, size_t rule, const rule_result *res,
                  int64_t now)
{
        const health_rule *ru = &health_rules[rule];
        incident *in = find_open(h, gpu, ru->name);

        if (res->state == RULE_SKIP)
                return;
        if (res->state == RULE_FIRING) {
                if (!in)
                        open_incident(h, gpu, uuid, ru->name, (int)rule, ru->system, res->sev,
                                      ru->summary, ru->action, res->detail, now);
                else
                        holds(in, res->sev, res->detail, now);
        } else if (in && in->active) {
                in->active = false;
                in->clear_since_us = now;
        }
}

/* Resolve what has been clear for long enough. XIDs hold for xid_hold after their last report. */
static void resolve_pass(health *h, int64_t now)
{
        for (size_t i = 0; i < h->n_inc; i++) {
                incident *in = &h->inc[i];
                if (in->state == INCIDENT_RESOLVED)
                        continue;
                if (in->xid && in->active && now - in->last_us >= h->cfg.xid_hold_us) {
                        in->active = false;
                        in->clear_since_us = in->last_us + h->cfg.xid_hold_us;
                }
                /* A rule switched off (or removed) no longer holds. */
                if (in->rule >= 0 && in->active &&
                    (!h->cfg.enabled || !h->cfg.systems[health_rules[in->rule].system])) {
                        in->active = false;
                        in->clear_since_us = now;
                }
                if (in->active || !in->clear_since_us ||
                    now - in->clear_since_us < h->cfg.resolve_after_us)
                        continue;
                in->state = INCIDENT_RESOLVED;
                in->resolved_us = now;
                in->dirty = in->notify = true;
                log_info("health", "resolved incident %" PRIu64 " (%s on %s%d): clear for %llds",
                         in->id, in->condition, in->gpu >= 0 ? "GPU " : "node ", in->gpu,
                         (long long)((now - in->clear_since_us) / USEC_PER_SEC));
        }
}

static void host_facts_read(health *h, host_facts *f)
{
        struct statvfs sv;
        FILE *fp;

        f->gpu_count = sampler_gpu_count(h->opt.sampler);
        f->disk_pct = -1;
        for (int t = 0; t < TIER_COUNT; t++)
                f->stretched_since_us[t] = 0;
        sampler_tier_stretched(h->opt.sampler, TIER_FAST, &f->stretched_since_us[TIER_FAST]);
        sampler_tier_stretched(h->opt.sampler, TIER_SLOW, &f->stretched_since_us[TIER_SLOW]);
        if (h->data_dir[0] && statvfs(h->data_dir, &sv) == 0 && sv.f_blocks > 0) {
                /* As df computes it: used / (used + available to unprivileged users). */
                unsigned long long used = (unsigned long long)(sv.f_blocks - sv.f_bfree);
                unsigned long long avail = (unsigned long long)sv.f_bavail;
                if (used + avail > 0)
                        f->disk_pct = (int)((used * 100 + (used + avail) - 1) / (used + avail));
        }
        f->rss_bytes = 0;
        fp = fopen("/proc/self/statm", "re");
        if (fp) {
                unsigned long long size, rss;
                if (fscanf(fp, "%llu %llu", &size, &rss) == 2)
                        f->rss_bytes = rss * (unsigned long long)sysconf(_SC_PAGESIZE);
                fclose(fp);
        }
}

void health_eval(health *h)
{
        host_facts hf;
        int64_t now;
        unsigned n;
        incident *fresh = NULL, *send = NULL;
        size_t n_fresh = 0, n_send = 0;

        pthread_mutex_lock(&h->eval_lock);
        host_facts_read(h, &hf);
        now = time_real_us();
        n = MIN(hf.gpu_count, (unsigned)SAMPLER_MAX_GPUS);
        pthread_mutex_lock(&h->lock);
        h->evaluations++;
        if (h->cfg.enabled) {
                for (unsigned gi = 0; gi < n; gi++) {
                        sampler_gpu g;
                        if (sampler_gpu_get(h->opt.sampler, gi, &g) < 0)
                                continue;
                        for (size_t ri = 0; ri < health_n_rules; ri++) {
                                const health_rule *ru = &health_rules[ri];
                                incident *in;
                                rule_result res;
                                rule_ctx c = {
                                    .cache = h->opt.cache,
                                    .gpu = gi,
                                    .g = &g,
                                    .unresponsive = atomic_load(&h->unresponsive[gi]),
                                    .cfg = &h->cfg,
                                    .host = &hf,
                                    .now_us = now,
                                    .memo = h->memo[gi],
                                };
                                if (ru->scope != RULE_SCOPE_GPU || !h->cfg.systems[ru->system])
                                        continue;
                                in = find_open(h, (int)gi, ru->name);
                                c.active = in && in->active;
                                health_rule_eval(ri, &c, &res);
                                apply(h, (int)gi, g.id.uuid, ri, &res, now);
                        }
                }
                for (size_t ri = 0; ri < health_n_rules; ri++) {
                        const health_rule *ru = &health_rules[ri];
                        incident *in;
                        rule_result res;
                        rule_ctx c = {
                            .cache = h->opt.cache, .cfg = &h->cfg, .host = &hf, .now_us = now};
                        if (ru->scope != RULE_SCOPE_HOST || !h->cfg.systems[ru->system])
                                continue;
                        in = find_open(h, -1, ru->name);
                        c.active = in && in->active;
                        health_rule_eval(ri, &c, &res);
                        apply(h, -1, "", ri, &res, now);
                }
        }
        resolve_pass(h, now);
        /* Collect the work to do outside the lock: policies for fresh incidents and alerts. */
        for (size_t i = 0; i < h->n_inc; i++) {
                incident *in = &h->inc[i];
                bool resend = in->state != INCIDENT_RESOLVED &&
                              now - in->sent_us >= h->cfg.resend_interval_us;
                if (in->fresh)
                        n_fresh++;
                if (in->notify || resend)
                        n_send++;
        }
        if (n_fresh)
                fresh = calloc(n_fresh, sizeof(*fresh));
        if (n_send)
                send = calloc(n_send, sizeof(*send));
        n_fresh = n_send = 0;
        for (size_t i = 0; i < h->n_inc; i++) {
                incident *in = &h->inc[i];
                bool resend = in->state != INCIDENT_RESOLVED &&
                              now - in->sent_us >= h->cfg.resend_interval_us;
                if (in->fresh && fresh) {
                        fresh[n_fresh++] = *in;
                        in->fresh = false;
                }
                if ((in->notify || resend) && send) {
                        send[n_send++] = *in;
                        in->notify = false;
                        in->sent_us = now;
                }
                if (in->dirty)
                        in->persisted_us = now;
        }
        pthread_mutex_unlock(&h->lock);

        persist(h);
        for (size_t i = 0; i < n_send; i++)
                if (h->notifier)
                        notifier_enqueue(h->notifier, &send[i], h->cfg.resend_interval_us);
        for (size_t i = 0; i < n_fresh; i++)
                if (h->policies)
                        policy_run(h->policies, &fresh[i], now);
        free(fresh);
        free(send);
        pthread_mutex_unlock(&h->eval_lock);
}

/* ---- engine hooks ---------------------------------------------------------------------------- */

static void kick(health *h)
{
        h->pending = true;
        pthread_cond_signal(&h->wake);
}

void health_on_sweep(health *h, enum field_tier tier)
{
        (void)tier;
        if (!h)
                return;
        pthread_mutex_lock(&h->lock);
        kick(h);
        pthread_mutex_unlock(&h->lock);
}

static void on_xid(health *h, unsigned gpu, uint32_t code, int64_t ts)
{
        const xid_info *x = xid_lookup(code);
        enum health_severity sev;
        char cond[HEALTH_COND_MAX], summary[256], detail[192];
        sampler_gpu g = {0};
        incident *in;

        if (x->severity == XID_SEV_INFO)
                return; /* application-caused: counted in /metrics, no incident */
        sev = x->severity == XID_SEV_CRITICAL ? HEALTH_FAIL : HEALTH_WARN;
        sampler_gpu_get(h->opt.sampler, gpu, &g);
        snprintf(cond, sizeof(cond), "xid_%u", code);
        snprintf(summary, sizeof(summary), "XID %u: %s", code, x->message);
        snprintf(detail, sizeof(detail), "XID %u (%s) reported by the driver", code, x->message);
        in = find_open(h, (int)gpu, cond);
        if (in) {
                in->count++;
                in->dirty = true;
                holds(in, sev, detail, ts);
                return;
        }
        if (!h->cfg.systems[health_xid_system(code)])
                return;
        in = open_incident(h, (int)gpu, g.id.uuid, cond, -1, health_xid_system(code), sev, summary,
                           xid_action_text(x->action), detail, ts);
        if (in)
                in->xid = code;
}

void health_on_event(health *h, unsigned gpu, unsigned kind, uint64_t data, int64_t ts_us)
{
        if (!h || gpu >= SAMPLER_MAX_GPUS)
                return;
        pthread_mutex_lock(&h->lock);
        if (h->cfg.enabled && kind == BEV_XID)
                on_xid(h, gpu, (uint32_t)data, ts_us ? ts_us : time_real_us());
        /* ECC events: the counters the memory rules read are in the next fast sweep; evaluate
         * as soon as the thread runs. */
        kick(h);
        pthread_mutex_unlock(&h->lock);
}

/* ---- anomalies ------------------------------------------------------------------------------- */

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

/* The anomaly detector's listener (sampling thread, must not block): like an XID, the incident is
 * opened in memory under the lock and the health thread persists and notifies it. */
void health_on_anomaly(void *userdata, const anomaly_event *ev)
{
        health *h = userdata;
        bool peer = ev->kind == ANOMALY_PEER;
        enum health_system sys = anomaly_system(ev->field_id);
        char cond[HEALTH_COND_MAX], summary[256], detail[192];
        int64_t now = time_real_us();
        incident *in;

        if (!h || ev->gpu >= SAMPLER_MAX_GPUS)
                return;
        snprintf(cond, sizeof(cond), ANOMALY_PREFIX "%s_%s", peer ? "peer" : "baseline", ev->field);
        pthread_mutex_lock(&h->lock);
        in = find_open(h, (int)ev->gpu, cond);
        if (ev->open && h->cfg.enabled && h->cfg.systems[sys]) {
                snprintf(detail, sizeof(detail), "%s %.1f, %s %.1f (%+.1f %ssigma)", ev->field,
                         ev->value, peer ? "peers' median" : "baseline", ev->expected, ev->score,
                         peer ? "robust " : "");
                if (in) {
                        holds(in, HEALTH_WARN, detail, now);
                } else {
                        snprintf(summary, sizeof(summary),
                                 peer ? "%s is far from the other GPUs of the node at similar "
                                        "utilization"
                                      : "%s left this GPU's learned baseline",
                                 ev->field);
                        open_incident(h, (int)ev->gpu, ev->uuid, cond, -1, sys, HEALTH_WARN,
                                      summary,
                                      peer ? "check cooling / power delivery of this GPU"
                                           : "investigate the workload or the GPU",
                                      detail, ev->since_us ? ev->since_us : now);
                }
        } else if (!ev->open && in && in->active) {
                in->active = false;
                in->clear_since_us = now;
        }
        kick(h);
        pthread_mutex_unlock(&h->lock);
}

void health_watch_anomalies(health *h, anomaly *a)
{
        if (h->anomaly && h->anomaly != a)
                anomaly_set_listener(h->anomaly, NULL, NULL);
        h->anomaly = a;
        if (a)
                anomaly_set_listener(a, health_on_anomaly, h);
}

/* ---- thread ---------------------------------------------------------------------------------- */

static void *health_main(void *arg)
{
        health *h = arg;

        pthread_mutex_lock(&h->lock);
        while (!h->stopping) {
                struct timespec ts;
                if (!h->pending) {
                        clock_gettime(CLOCK_MONOTONIC, &ts);
                        ts.tv_sec +=
                            1; /* resolve timers and host checks tick even without sweeps */
                        pthread_cond_timedwait(&h->wake, &h->lock, &ts);
                }
                if (h->stopping)
                        break;
                h->pending = false;
                pthread_mutex_unlock(&h->lock);
                health_eval(h);
                pthread_mutex_lock(&h->lock);
        }
        pthread_mutex_unlock(&h->lock);
        return NULL;
}

static void on_stuck(void *userdata, unsigned gpu, bool stuck)
{
        health_set_unresponsive(userdata, gpu, stuck);
}

int health_new(const health_options *opt, health **ret)
{
        health *h;
        pthread_condattr_t ca;
        int r;

        if (!opt || !opt->sampler || !opt->cache || !opt->cfg)
                return -EINVAL;
        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->opt = *opt;
        h->next_id = 1;
        h->data_dir = strdup(opt->data_dir ? opt->data_dir : "");
        h->hostname = strdup(opt->hostname ? opt->hostname : "");
        pthread_mutex_init(&h->lock, NULL);
        pthread_mutex_init(&h->eval_lock, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&h->wake, &ca);
        pthread_condattr_destroy(&ca);
        if (!h->data_dir || !h->hostname || health_config_copy(&h->cfg, opt->cfg) < 0) {
                health_free(h);
                return -ENOMEM;
        }
        h->opt.cfg = &h->cfg;
        r = notifier_new(opt->store, &h->cfg, h->hostname, &h->notifier);
        if (r < 0) {
                health_free(h);
                return r;
        }
        r = policy_new(&h->cfg, opt->backend, opt->cache, opt->store, &h->policies);
        if (r < 0) {
                health_free(h);
                return r;
        }
        sampler_set_watchdog(h->opt.sampler, h->cfg.nvml_call_timeout_us, on_stuck, h);
        *ret = h;
        return 0;
}

int health_start(health *h)
{
        int r;

#ifdef VIGIL_HAVE_STORE
        if (h->opt.store) {
                load_ctx lc = {h};
                pthread_mutex_lock(&h->lock);
                r = store_read(h->opt.store, load_fn, &lc);
                pthread_mutex_unlock(&h->lock);
                if (r < 0)
                        log_error("health", "failed to load incidents from the store: %s",
                                  strerror(-r));
                else if (h->n_inc)
                        log_info("health", "reloaded %zu open incidents from the store", h->n_inc);
        }
#endif
        r = notifier_start(h->notifier);
        if (r < 0)
                return r;
        r = pthread_create(&h->thread, NULL, health_main, h);
        if (r)
                return -r;
        h->started = true;
        return 0;
}

void health_stop(health *h)
{
        if (!h)
                return;
        if (h->started) {
                pthread_mutex_lock(&h->lock);
                h->stopping = true;
                pthread_cond_signal(&h->wake);
                pthread_mutex_unlock(&h->lock);
                pthread_join(h->thread, NULL);
                h->started = false;
                persist(h);
        }
        notifier_stop(h->notifier);
}

health *health_free(health *h)
{
        if (!h)
                return NULL;
        if (h->opt.sampler)
                sampler_set_watchdog(h->opt.sampler, 0, NULL, NULL);
        health_watch_anomalies(h, NULL);
        health_stop(h);
        h->notifier = notifier_free(h->notifier);
        h->policies = policy_free(h->policies);
        health_config_free(&h->cfg);
        pthread_cond_destroy(&h->wake);
        pthread_mutex_destroy(&h->lock);
        pthread_mutex_destroy(&h->eval_lock);
        free(h->data_dir);
        free(h->hostname);
        free(h);
        return NULL;
}

int health_reconfigure(health *h, const health_config *cfg)
{
        health_config next;
        int r = health_config_copy(&next, cfg);

        if (r < 0)
                return r;
        /* Thresholds only: targets and policies keep the ones the threads started with. */
        pthread_mutex_lock(&h->eval_lock);
        pthread_mutex_lock(&h->lock);
        h->cfg.enabled = next.enabled;
        h->cfg.expected_gpus = next.expected_gpus;
        h->cfg.temp_warning = next.temp_warning;
        h->cfg.temp_critical = next.temp_critical;
        h->cfg.temp_hysteresis = next.temp_hysteresis;
        h->cfg.resolve_after_us = next.resolve_after_us;
        h->cfg.xid_hold_us = next.xid_hold_us;
        h->cfg.nvml_call_timeout_us = next.nvml_call_timeout_us;
        h->cfg.collection_stretched_after_us = next.collection_stretched_after_us;
        h->cfg.throttle_sustain_us = next.throttle_sustain_us;
        h->cfg.max_rss_bytes = next.max_rss_bytes;
        h->cfg.disk_warning = next.disk_warning;
        h->cfg.disk_critical = next.disk_critical;
        memcpy(h->cfg.systems, next.systems, sizeof(h->cfg.systems));
        pthread_mutex_unlock(&h->lock);
        pthread_mutex_unlock(&h->eval_lock);
        sampler_set_watchdog(h->opt.sampler, next.nvml_call_timeout_us, on_stuck, h);
        health_config_free(&next);
        return 0;
}

void health_set_unresponsive(health *h, unsigned gpu, bool on)
{
        if (!h || gpu >= SAMPLER_MAX_GPUS)
                return;
        atomic_store(&h->unresponsive[gpu], on);
        health_on_sweep(h, TIER_EVENT);
}

/* ---- JSON ------------------------------------------------------------------------------------ */

static json_t *time_json(int64_t us)
{
        char b[64];
        time_t s = (time_t)(us / USEC_PER_SEC);
        struct tm tm;

        if (!us)
                return json_null();
        gmtime_r(&s, &tm);
        snprintf(b, sizeof(b), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(us % USEC_PER_SEC / 1000));
        return json_string(b);
}

json_t *incident_json(const incident *in)
{
        json_t *j = json_object();

        if (!j)
                return NULL;
        json_object_set_new(j, "id", json_integer((json_int_t)in->id));
        json_object_set_new(j, "gpu", in->gpu >= 0 ? json_integer(in->gpu) : json_null());
        json_object_set_new(j, "uuid", json_string(in->uuid));
        json_object_set_new(j, "condition", json_string(in->condition));
        if (in->xid)
                json_object_set_new(j, "xid", json_integer(in->xid));
        json_object_set_new(j, "system", json_string(health_system_name(in->system)));
        json_object_set_new(j, "severity", json_string(alert_severity(in->severity)));
        json_object_set_new(j, "state", json_string(incident_state_name(in->state)));
        json_object_set_new(j, "active", json_boolean(in->active));
        json_object_set_new(j, "summary", json_string(in->summary));
        json_object_set_new(j, "detail", json_string(in->detail));
        json_object_set_new(j, "action", json_string(in->action));
        json_object_set_new(j, "first_seen", time_json(in->first_us));
        json_object_set_new(j, "last_seen", time_json(in->last_us));
        json_object_set_new(j, "acknowledged_at", time_json(in->acked_us));
        if (in->acked_by[0])
                json_object_set_new(j, "acknowledged_by", json_string(in->acked_by));
        json_object_set_new(j, "resolved_at", time_json(in->resolved_us));
        json_object_set_new(j, "count", json_integer((json_int_t)in->count));
        return j;
}

json_t *health_incidents_json(health *h, bool all)
{
        json_t *arr = json_array();

        if (!arr)
                return NULL;
        pthread_mutex_lock(&h->lock);
        for (size_t i = 0; i < h->n_inc; i++)
                if (all || h->inc[i].state != INCIDENT_RESOLVED)
                        json_array_append_new(arr, incident_json(&h->inc[i]));
        pthread_mutex_unlock(&h->lock);
        return json_pack("{s:o}", "incidents", arr);
}

int health_ack(health *h, uint64_t id, const char *by, json_t **out)
{
        int r = -ENOENT;

        pthread_mutex_lock(&h->lock);
        for (size_t i = 0; i < h->n_inc; i++) {
                incident *in = &h->inc[i];
                if (in->id != id)
                        continue;
                if (in->state == INCIDENT_RESOLVED) {
                        r = -EALREADY;
                } else {
                        if (in->state == INCIDENT_OPEN) {
                                in->state = INCIDENT_ACKNOWLEDGED;
                                in->acked_us = time_real_us();
                                snprintf(in->acked_by, sizeof(in->acked_by), "%s", by ? by : "");
                                in->dirty = true;
                                log_info("health", "incident %" PRIu64 " acknowledged%s%s", id,
                                         by && *by ? " by " : "", by ? by : "");
                        }
                        r = 0;
                }
                if (out)
                        *out = incident_json(in);
                break;
        }
        if (r == 0)
                kick(h);
        pthread_mutex_unlock(&h->lock);
        if (r == 0 && !h->started)
                persist(h);
        return r;
}

/* Worst severity per (GPU, system) over the incidents whose condition holds or that are not
 * resolved yet. gpu -1 = node. */
static enum health_severity worst(health *h, int gpu, int sys)
{
        enum health_severity w = HEALTH_PASS;

        for (size_t i = 0; i < h->n_inc; i++) {
                const incident *in = &h->inc[i];
                if (in->state == INCIDENT_RESOLVED || in->gpu != gpu)
                        continue;
                if (sys >= 0 && (int)in->system != sys)
                        continue;
                if (in->severity > w)
                        w = in->severity;
        }
        return w;
}

enum health_severity health_overall(health *h)
{
        enum health_severity w = HEALTH_PASS;

        pthread_mutex_lock(&h->lock);
        for (size_t i = 0; i < h->n_inc; i++)
                if (h->inc[i].state != INCIDENT_RESOLVED && h->inc[i].severity > w)
                        w = h->inc[i].severity;
        pthread_mutex_unlock(&h->lock);
        return w;
}

static const char *dcgm_result(enum health_severity s)
{
        return s == HEALTH_FAIL ? "FAIL" : s == HEALTH_WARN ? "WARN" : "PASS";
}

/* Systems with no rule (no NVML field for them here): reported PASS, "not monitored". */
static bool system_monitored(enum health_system s)
{
        if (s == HEALTH_SYS_GPU)
                return true;
        for (size_t i = 0; i < health_n_rules; i++)
                if (health_rules[i].system == s)
                        return true;
        return false;
}

static json_t *systems_json(health *h, int gpu)
{
        json_t *o = json_object();

        for (int s = 0; o && s < HEALTH_SYS_COUNT; s++) {
                enum health_severity w;
                json_t *e;
                if ((gpu >= 0) == (s == HEALTH_SYS_HOST))
                        continue;
                w = worst(h, gpu, s);
                e = json_pack("{s:s}", "status", dcgm_result(w));
                if (!h->cfg.systems[s])
                        json_object_set_new(e, "note", json_string("disabled"));
                else if (!system_monitored((enum health_system)s))
                        json_object_set_new(e, "note",
                                            json_string("not monitored (no NVML field)"));
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
        pthread_mutex_lock(&h->lock);
        for (unsigned i = 0; i < n; i++) {
                sampler_gpu g;
                enum health_severity w;
                json_t *inc = json_array();
                if (sampler_gpu_get(h->opt.sampler, i, &g) < 0)
                        continue;
                w = worst(h, (int)i, -1);
                all = MAX(all, w);
                for (size_t k = 0; k < h->n_inc; k++)
                        if (h->inc[k].gpu == (int)i && h->inc[k].state != INCIDENT_RESOLVED)
                                json_array_append_new(inc, json_integer((json_int_t)h->inc[k].id));
                json_array_append_new(gpus,
                                      json_pack("{s:i,s:s,s:s,s:o,s:o}", "index", (int)i, "uuid",
                                                g.id.uuid, "status", dcgm_result(w), "systems",
                                                systems_json(h, (int)i), "incidents", inc));
        }
        {
                enum health_severity w = worst(h, -1, -1);
                all = MAX(all, w);
                root = json_pack("{s:s,s:b,s:i,s:o,s:{s:s,s:o}}", "status", dcgm_result(all),
                                 "enabled", h->cfg.enabled, "open_incidents", 0, "gpus", gpus,
                                 "node", "status", dcgm_result(w), "systems", systems_json(h, -1));
        }
        if (root) {
                json_int_t open = 0;
                for (size_t k = 0; k < h->n_inc; k++)
                        open += h->inc[k].state != INCIDENT_RESOLVED;
                json_object_set_new(root, "open_incidents", json_integer(open));
                json_object_set_new(root, "evaluations", json_integer((json_int_t)h->evaluations));
        }
        pthread_mutex_unlock(&h->lock);
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
        pthread_mutex_lock(&h->lock);
        if (dcgm) {
                buf_puts(b, "# HELP DCGM_EXP_GPU_HEALTH_STATUS Health watch status of the GPU "
                            "(0 PASS, 10 WARN, 20 FAIL).\n"
                            "# TYPE DCGM_EXP_GPU_HEALTH_STATUS gauge\n");
        } else {
                buf_puts(b, "# HELP vigil_gpu_health Health of one system of the GPU (0 pass, 1 "
                            "warn, 2 fail).\n# TYPE vigil_gpu_health gauge\n");
        }
        for (unsigned i = 0; i < n; i++) {
                buf_reset(&lb);
                if (labels)
                        labels(userdata, i, &lb);
                for (int s = 0; s < HEALTH_SYS_COUNT; s++) {
                        enum health_severity w;
                        const char *code = "DCGM_FR_OK";
                        if (s == HEALTH_SYS_HOST || !h->cfg.systems[s])
                                continue;
                        w = worst(h, (int)i, s);
                        if (dcgm) {
                                if (!system_dcgm[s])
                                        continue;
                                for (size_t k = 0; k < h->n_inc; k++) {
                                        const incident *in = &h->inc[k];
                                        if (in->gpu == (int)i && (int)in->system == s &&
                                            in->state != INCIDENT_RESOLVED && in->severity == w &&
                                            w != HEALTH_PASS)
                                                code = in->rule >= 0
                                                           ? health_rules[in->rule].dcgm_code
                                                       : in->xid ? "DCGM_FR_XID_ERROR"
                                                                 : "DCGM_FR_OK";
                                }
                                buf_printf(b,
                                           "DCGM_EXP_GPU_HEALTH_STATUS{%s%shealth_watch=\"%s\","
                                           "health_error_code=\"%s\"} %d\n",
                                           lb.data ? lb.data : "", lb.len ? "," : "",
                                           system_dcgm[s], code, (int)w * 10);
                        } else {
                                buf_printf(b, "vigil_gpu_health{%s%ssystem=\"%s\"} %d\n",
                                           lb.data ? lb.data : "", lb.len ? "," : "",
                                           system_names[s], (int)w);
                        }
                }
        }
        if (!dcgm) {
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
                           (int)worst(h, -1, HEALTH_SYS_HOST));
                for (size_t k = 0; k < h->n_inc; k++)
                        counts[h->inc[k].severity][h->inc[k].state]++;
                buf_puts(b, "# HELP vigil_incidents Incidents held by vigild, by severity and "
                            "state.\n# TYPE vigil_incidents gauge\n");
                for (int sev = HEALTH_WARN; sev <= HEALTH_FAIL; sev++)
                        for (int st = 0; st < 3; st++)
                                buf_printf(b,
                                           "vigil_incidents{severity=\"%s\",state=\"%s\"} %llu\n",
                                           alert_severity((enum health_severity)sev),
                                           incident_state_name((enum incident_state)st),
                                           (unsigned long long)counts[sev][st]);
        }
        pthread_mutex_unlock(&h->lock);
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
