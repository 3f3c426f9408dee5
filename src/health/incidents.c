/* incidents.c — the incident store: one incident per (GPU, condition) while it is not resolved
 * (dedupe), its lifecycle (open → acknowledged → resolved; holds, clears, resolves after
 * resolve_after), its persistence in the store's health_incidents table, and its JSON. It is the
 * lowest part of the health engine above the rule table: rule evaluation (eval.c), the notifier,
 * the policies and the health thread (health.c) use it; it calls none of them. It knows no
 * threads: the caller holds incident_store.lock where a function says (L). */
#include "health-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/macros.h"
#include "common/vtime.h"
#include "fields/fields.h"
#ifdef VIGIL_HAVE_STORE
#include "store/store.h"
#endif

#define PERSIST_EVERY_US                                                                           \
        (30 * USEC_PER_SEC) /* last_seen of a firing incident is saved this often */

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

const char *health_system_dcgm(enum health_system s)
{
        return (unsigned)s < HEALTH_SYS_COUNT ? system_dcgm[s] : NULL;
}

const char *health_severity_name(enum health_severity s)
{
        return s == HEALTH_FAIL ? "fail" : s == HEALTH_WARN ? "warn" : "pass";
}

const char *health_alert_severity(enum health_severity s)
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
    "log", "alert", "exec", "set_power_limit", "reset_gpu", "diag",
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
        json_object_set_new(j, "severity", json_string(health_alert_severity(in->severity)));
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

/* ---- the store ------------------------------------------------------------------------------- */

void incidents_init(incident_store *s, struct store *st)
{
        pthread_mutex_init(&s->lock, NULL);
        s->next_id = 1;
        s->store = st;
}

void incidents_release(incident_store *s)
{
        pthread_mutex_destroy(&s->lock);
}

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
                               "(?,?,?,?,?,?,?,?,?,vigil_seal(?, 'health_incidents.detail'),?,"
                               "vigil_seal(?, 'health_incidents.acked_by'),?,?,?,?,?)",
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
        incident_store *h = arg;
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
                               "summary, vigil_open(detail, 'health_incidents.detail'), action, "
                               "vigil_open(acked_by, 'health_incidents.acked_by'), first_us, "
                               "last_us, acked_us, "
                               "resolved_us, count FROM health_incidents WHERE state != 2 "
                               "ORDER BY id",
                               -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW && h->n < HEALTH_MAX_INCIDENTS) {
                incident *in = &h->v[h->n++];
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

int incidents_load(incident_store *s)
{
#ifdef VIGIL_HAVE_STORE
        int r;

        if (!s->store)
                return 0;
        pthread_mutex_lock(&s->lock);
        r = store_read(s->store, load_fn, s);
        pthread_mutex_unlock(&s->lock);
        return r;
#else
        (void)s;
        return 0;
#endif
}

/* Write the dirty incidents (health thread). The dirty ones are copied and marked clean under the
 * lock, written outside it, and marked dirty again by id if the write fails (retried at the next
 * evaluation). Most evaluations change nothing and allocate nothing. */
void incidents_persist(incident_store *h)
{
        incident *v = NULL;
        size_t n = 0, k = 0;

        pthread_mutex_lock(&h->lock);
        for (size_t i = 0; i < h->n; i++)
                n += h->v[i].dirty;
        if (n && h->store)
                v = calloc(n, sizeof(*v));
        for (size_t i = 0; i < h->n; i++) {
                if (!h->v[i].dirty)
                        continue;
                if (v)
                        v[k++] = h->v[i];
                if (v || !h->store)
                        h->v[i].dirty = false;
        }
        pthread_mutex_unlock(&h->lock);
        if (!v)
                return;
#ifdef VIGIL_HAVE_STORE
        {
                save_ctx sc = {v, k};
                int r = store_write(h->store, save_fn, &sc);
                if (r < 0) {
                        log_error("health", "failed to save %zu incidents: %s", k, strerror(-r));
                        pthread_mutex_lock(&h->lock);
                        for (size_t i = 0; i < h->n; i++)
                                for (size_t j = 0; j < k; j++)
                                        if (h->v[i].id == v[j].id)
                                                h->v[i].dirty = true;
                        pthread_mutex_unlock(&h->lock);
                }
        }
#endif
        free(v);
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

incident *incidents_find_open(incident_store *s, int gpu, const char *cond)
{
        for (size_t i = 0; i < s->n; i++) {
                incident *in = &s->v[i];
                if (in->state != INCIDENT_RESOLVED && in->gpu == gpu &&
                    !strcmp(in->condition, cond))
                        return in;
        }
        return NULL;
}

/* A free slot: the end, or the oldest resolved incident (open ones are never dropped). */
static incident *new_slot(incident_store *s)
{
        size_t victim = SIZE_MAX;

        if (s->n < HEALTH_MAX_INCIDENTS)
                return &s->v[s->n++];
        for (size_t i = 0; i < s->n; i++)
                if (s->v[i].state == INCIDENT_RESOLVED &&
                    (victim == SIZE_MAX || s->v[i].resolved_us < s->v[victim].resolved_us))
                        victim = i;
        return victim == SIZE_MAX ? NULL : &s->v[victim];
}

incident *incidents_open(incident_store *s, int gpu, const char *uuid, const char *cond, int rule,
                         enum health_system sys, enum health_severity sev, const char *summary,
                         const char *action, const char *detail, int64_t now)
{
        incident *in = new_slot(s);
        char id[24], g[16];

        if (!in) {
                log_error("health", "cannot open incident '%s': %d incidents are open", cond,
                          HEALTH_MAX_INCIDENTS);
                return NULL;
        }
        memset(in, 0, sizeof(*in));
        in->id = s->next_id++;
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
        snprintf(id, sizeof(id), "%" PRIu64, in->id); /* journald fields INCIDENT, GPU, UUID */
        snprintf(g, sizeof(g), "%d", gpu);
        if (gpu >= 0)
                log_fields(LOG_LVL_WARN, "health",
                           ((log_field[]){{"incident", id}, {"gpu", g}, {"uuid", in->uuid}}),
                           "opened incident %" PRIu64 " on GPU %d ('%s'): %s (%s): %s", in->id, gpu,
                           in->uuid, cond, health_severity_name(sev), detail);
        else
                log_fields(LOG_LVL_WARN, "health", ((log_field[]){{"incident", id}}),
                           "opened incident %" PRIu64 " on the node: %s (%s): %s", in->id, cond,
                           health_severity_name(sev), detail);
        return in;
}

void incident_holds(incident *in, enum health_severity sev, const char *detail, int64_t now)
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

void incident_clears(incident *in, int64_t now)
{
        if (!in->active)
                return;
        in->active = false;
        in->clear_since_us = now;
}

void incidents_resolve(incident_store *s, const health_config *cfg, int64_t now)
{
        for (size_t i = 0; i < s->n; i++) {
                incident *in = &s->v[i];
                if (in->state == INCIDENT_RESOLVED)
                        continue;
                if (in->xid && in->active && now - in->last_us >= cfg->xid_hold_us) {
                        in->active = false;
                        in->clear_since_us = in->last_us + cfg->xid_hold_us;
                }
                /* A rule switched off (or removed) no longer holds. */
                if (in->rule >= 0 && in->active &&
                    (!cfg->enabled || !cfg->systems[health_rules[in->rule].system]))
                        incident_clears(in, now);
                if (in->active || !in->clear_since_us ||
                    now - in->clear_since_us < cfg->resolve_after_us)
                        continue;
                in->state = INCIDENT_RESOLVED;
                in->resolved_us = now;
                in->dirty = in->notify = true;
                log_info("health", "resolved incident %" PRIu64 " (%s on %s%d): clear for %llds",
                         in->id, in->condition, in->gpu >= 0 ? "GPU " : "node ", in->gpu,
                         (long long)((now - in->clear_since_us) / USEC_PER_SEC));
        }
}

int incidents_ack(incident_store *s, uint64_t id, const char *by, json_t **out)
{
        int r = -ENOENT;

        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; i < s->n; i++) {
                incident *in = &s->v[i];
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
        pthread_mutex_unlock(&s->lock);
        return r;
}

enum health_severity incidents_worst(const incident_store *s, int gpu, int sys)
{
        enum health_severity w = HEALTH_PASS;

        for (size_t i = 0; i < s->n; i++) {
                const incident *in = &s->v[i];
                if (in->state == INCIDENT_RESOLVED || (gpu != INCIDENTS_ANY_GPU && in->gpu != gpu))
                        continue;
                if (sys >= 0 && (int)in->system != sys)
                        continue;
                if (in->severity > w)
                        w = in->severity;
        }
        return w;
}

void incidents_take_work(incident_store *s, int64_t now, int64_t resend_us, incident_work *w)
{
        size_t n_fresh = 0, n_send = 0;

        memset(w, 0, sizeof(*w));
        for (size_t i = 0; i < s->n; i++) {
                incident *in = &s->v[i];
                bool resend = in->state != INCIDENT_RESOLVED && now - in->sent_us >= resend_us;
                n_fresh += in->fresh;
                n_send += in->notify || resend;
        }
        if (n_fresh)
                w->fresh = calloc(n_fresh, sizeof(*w->fresh));
        if (n_send)
                w->send = calloc(n_send, sizeof(*w->send));
        for (size_t i = 0; i < s->n; i++) {
                incident *in = &s->v[i];
                bool resend = in->state != INCIDENT_RESOLVED && now - in->sent_us >= resend_us;
                if (in->fresh && w->fresh) {
                        w->fresh[w->n_fresh++] = *in;
                        in->fresh = false;
                }
                if ((in->notify || resend) && w->send) {
                        w->send[w->n_send++] = *in;
                        in->notify = false;
                        in->sent_us = now;
                }
                if (in->dirty)
                        in->persisted_us = now;
        }
}

void incident_work_release(incident_work *w)
{
        free(w->fresh);
        free(w->send);
        memset(w, 0, sizeof(*w));
}
