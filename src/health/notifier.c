/* notifier.c — the durable outbox and the thread that empties it. Every incident change (and every
 * resend_interval while an incident is active) becomes one entry per target: each configured
 * Alertmanager (API v2, POST /api/v2/alerts, like Prometheus: all of them) and each webhook (JSON
 * signed with HMAC-SHA256). An entry is written to the store before notifier_enqueue returns and
 * deleted only after the target answered 2xx, so neither a restart of vigild nor an outage of
 * the target loses it. A pending entry for the same (target, incident) is replaced, not added:
 * the outbox never holds more than incidents × targets entries. Failed sends back off
 * exponentially (1 s doubling to 5 min). A reload replaces the targets (notifier_set_targets):
 * entries follow their target by kind and URL, a send in progress uses the copy it took.
 * alerting.labels (e.g. cluster) are added to every alert: to an Alertmanager alert's labels, as
 * "labels" to a webhook's payload; a reload changes them for the alerts built after it. */
#include "health-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/macros.h"
#include "common/ossl_dl.h"
#include "common/redact.h"
#include "common/sparse.h"
#include "common/vtime.h"
#ifdef VIGIL_HAVE_STORE
#include "common/curl_dl.h"
#include "store/store.h"
#endif

#define OUTBOX_MAX     4096                 /* entries kept at most */
#define BACKOFF_MAX_US (300 * USEC_PER_SEC) /* longest wait between attempts */
#define RESPONSE_MAX   4096                 /* bytes of an answer kept for the log */

enum target_kind {
        TARGET_ALERTMANAGER = 0,
        TARGET_WEBHOOK = 1,
};

typedef struct target {
        enum target_kind kind;    /* how to send */
        char url[HEALTH_URL_MAX]; /* base URL (Alertmanager) or full URL (webhook) */
        char secret[256];         /* webhook HMAC key, "" = unsigned */
} target;

typedef struct entry {
        int64_t rowid;     /* store row, 0 without a store */
        int target;        /* index in targets; -1: its target was removed (dropped) */
        uint64_t incident; /* incident id */
        char *body;        /* payload; owned */
        unsigned attempts; /* failed attempts so far */
        int64_t next_us;   /* realtime usec of the next attempt */
        bool busy;         /* being sent or saved (outside the lock) */
        uint64_t seq;      /* unique in this process, to find the entry again */
} entry;

struct notifier {
        struct store *store;                /* borrowed; NULL = memory only */
        target targets[HEALTH_MAX_TARGETS]; /* (lock) */
        size_t n_targets;                   /* (lock) */
        char hostname[256];
        int64_t timeout_us;   /* per attempt (lock) */
        pthread_mutex_t lock; /* guards entries, targets, stats, stopping */
        pthread_cond_t wake;
        entry entries[OUTBOX_MAX];
        size_t n;
        notifier_stats stats;
        bool stopping, started;
        bool armed; /* notifier_start ran: a target added later starts the thread */
        pthread_t thread;
        uint64_t seq;     /* last entry sequence number */
        int64_t valid_us; /* usec a firing Alertmanager alert stays valid after a send */
        json_t *labels;   /* alerting.labels as a JSON object (lock); never changed once set,
                             replaced whole on a reload, so a reference can be read unlocked */
};

/* ---- payloads -------------------------------------------------------------------------------- */

static void iso_time(int64_t us, char *b, size_t len)
{
        time_t s = (time_t)(us / USEC_PER_SEC);
        struct tm tm;

        gmtime_r(&s, &tm);
        snprintf(b, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(us % USEC_PER_SEC / 1000));
}

/* "xid_79" → "VigilXid79", "gpu_lost" → "VigilGpuLost". */
static void alertname(const char *cond, char *out, size_t len)
{
        size_t o = (size_t)snprintf(out, len, "Vigil");
        bool up = true;

        for (const char *c = cond; *c && o + 1 < len; c++) {
                if (*c == '_') {
                        up = true;
                        continue;
                }
                out[o++] = up && *c >= 'a' && *c <= 'z' ? (char)(*c - 'a' + 'A') : *c;
                up = false;
        }
        out[o] = '\0';
}

json_t *notifier_am_payload(const incident *in, const char *hostname, int64_t now_us,
                            int64_t resend_us)
{
        char name[96], start[64], end[64], gpu[32], desc[512];
        json_t *labels, *ann, *alert;

        (void)now_us;
        (void)resend_us;
        alertname(in->condition, name, sizeof(name));
        iso_time(in->first_us, start, sizeof(start));
        labels = json_pack("{s:s,s:s,s:s,s:s}", "alertname", name, "severity",
                           in->severity == HEALTH_FAIL ? "critical" : "warning", "hostname",
                           hostname, "condition", in->condition);
        if (!labels)
                return NULL;
        if (in->gpu >= 0) {
                char g[16];
                snprintf(g, sizeof(g), "%d", in->gpu);
                json_object_set_new(labels, "gpu", json_string(g));
                json_object_set_new(labels, "uuid", json_string(in->uuid));
        }
        snprintf(desc, sizeof(desc), "%s (incident %" PRIu64 ", seen %" PRIu64 " times)",
                 in->detail, in->id, in->count);
        snprintf(gpu, sizeof(gpu), "%" PRIu64, in->id); /* Alertmanager wants strings */
        ann = json_pack("{s:s,s:s,s:s,s:s}", "summary", in->summary, "description", desc, "action",
                        in->action, "incident_id", gpu);

        alert = json_pack("{s:o,s:o,s:s}", "labels", labels, "annotations", ann, "startsAt", start);
        if (alert && in->state == INCIDENT_RESOLVED) {
                iso_time(in->resolved_us, end, sizeof(end));
                json_object_set_new(alert, "endsAt", json_string(end));
        }
        return alert ? json_pack("[o]", alert) : NULL;
}

json_t *notifier_webhook_payload(const incident *in, const char *hostname)
{
        return json_pack("{s:i,s:s,s:s,s:o}", "version", 1, "status",
                         in->state == INCIDENT_RESOLVED ? "resolved" : "firing", "hostname",
                         hostname, "incident", incident_json(in));
}

int notifier_sign(const char *secret, const char *body, size_t len, char *out, size_t outlen)
{
        const ossl_dl *lib;
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int ml = 0;
        size_t o;

        if (outlen < 7 + 64 + 1)
                return -ENOSPC;
        if (!(lib = ossl_dl_lib()))
                return -ELIBACC;
        if (!lib->HMAC(lib->EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body,
                       len, mac, &ml))
                return -EIO;
        o = (size_t)snprintf(out, outlen, "sha256=");
        for (unsigned i = 0; i < ml; i++)
                o += (size_t)snprintf(out + o, outlen - o, "%02x", mac[i]);
        return 0;
}

/* alerting.labels as a JSON object of strings; NULL on allocation failure. */
static json_t *labels_json(const health_config *cfg)
{
        json_t *o = json_object();

        for (size_t i = 0; o && i < cfg->n_alert_labels; i++)
                if (json_object_set_new(o, cfg->alert_labels[i].name,
                                        json_string(cfg->alert_labels[i].value)) < 0) {
                        json_decref(o);
                        return NULL;
                }
        return o;
}

/* Add the configured labels to payload j of a target of kind k. Vigil's own labels win (the
 * config refuses their names anyway). */
static int add_labels(json_t *j, enum target_kind k, json_t *labels)
{
        if (!json_object_size(labels))
                return 0;
        if (k == TARGET_ALERTMANAGER)
                return json_object_update_missing(json_object_get(json_array_get(j, 0), "labels"),
                                                  labels) < 0
                           ? -ENOMEM
                           : 0;
        return json_object_set(j, "labels", labels) < 0 ? -ENOMEM : 0;
}

/* ---- store ----------------------------------------------------------------------------------- */

#ifdef VIGIL_HAVE_STORE
typedef struct ob_op {
        int op;          /* 0 insert, 1 update body+attempts, 2 delete */
        entry *e;        /* the entry (rowid set by insert) */
        const target *t; /* its target */
} ob_op;

static int ob_fn(sqlite3 *db, void *arg)
{
        ob_op *o = arg;
        sqlite3_stmt *st = NULL;
        const char *sql = o->op == 0   ? "INSERT INTO health_outbox (kind, url, incident_id, body, "
                                         "attempts, next_us, created_us) VALUES (?, vigil_seal(?, "
                                         "'health_outbox.url'), ?, vigil_seal(?, "
                                         "'health_outbox.body'), ?, ?, ?)"
                          : o->op == 1 ? "UPDATE health_outbox SET body = vigil_seal(?4, "
                                         "'health_outbox.body'), attempts = ?5, "
                                         "next_us = ?6 WHERE id = ?8"
                                       : "DELETE FROM health_outbox WHERE id = ?8";
        int r = 0;

        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        if (o->op == 0) {
                sqlite3_bind_int(st, 1, o->t->kind);
                sqlite3_bind_text(st, 2, o->t->url, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 3, (sqlite3_int64)o->e->incident);
                sqlite3_bind_int64(st, 7, time_real_us());
        }
        if (o->op <= 1) {
                sqlite3_bind_text(st, 4, o->e->body, -1, SQLITE_STATIC);
                sqlite3_bind_int(st, 5, (int)o->e->attempts);
                sqlite3_bind_int64(st, 6, o->e->next_us);
        }
        if (o->op >= 1)
                sqlite3_bind_int64(st, 8, o->e->rowid);
        if (sqlite3_step(st) != SQLITE_DONE)
                r = store_errno(sqlite3_errcode(db));
        else if (o->op == 0)
                o->e->rowid = sqlite3_last_insert_rowid(db);
        sqlite3_finalize(st);
        return r;
}

/* t: the entry's target, copied under the lock (used by an insert only) */
static int ob_write(notifier *n, int op, entry *e, const target *t)
{
        ob_op o = {op, e, t};

        if (!n->store)
                return 0;
        return store_write(n->store, ob_fn, &o);
}

static int load_fn(sqlite3 *db, void *arg)
{
        notifier *n = arg;
        sqlite3_stmt *st = NULL;

        if (sqlite3_prepare_v2(
                db,
                "SELECT id, kind, vigil_open(url, 'health_outbox.url'), incident_id, "
                "vigil_open(body, 'health_outbox.body'), attempts FROM "
                "health_outbox ORDER BY id",
                -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        while (sqlite3_step(st) == SQLITE_ROW && n->n < OUTBOX_MAX) {
                const char *url = (const char *)sqlite3_column_text(st, 2);
                const char *body = (const char *)sqlite3_column_text(st, 4);
                int kind = sqlite3_column_int(st, 1), t = -1;
                for (size_t i = 0; i < n->n_targets; i++)
                        if ((int)n->targets[i].kind == kind && url &&
                            !strcmp(n->targets[i].url, url))
                                t = (int)i;
                if (t < 0 || !body)
                        continue; /* a target no longer configured: left for the cleanup below */
                entry *e = &n->entries[n->n];
                e->rowid = sqlite3_column_int64(st, 0);
                e->target = t;
                e->incident = (uint64_t)sqlite3_column_int64(st, 3);
                e->body = strdup(body);
                e->attempts = (unsigned)sqlite3_column_int(st, 5);
                e->next_us = 0; /* try at once after a restart */
                e->seq = ++n->seq;
                if (e->body)
                        n->n++;
        }
        sqlite3_finalize(st);
        return 0;
}
#else
static int ob_write(notifier *n, int op, entry *e, const target *t)
{
        (void)n;
        (void)op;
        (void)e;
        (void)t;
        return 0;
}
#endif

/* ---- queue ----------------------------------------------------------------------------------- */

int notifier_enqueue(notifier *n, const incident *in, int64_t resend_us)
{
        int64_t now = time_real_us();

        target tg[HEALTH_MAX_TARGETS];
        size_t nt;
        json_t *labels;

        if (!n)
                return 0;
        pthread_mutex_lock(&n->lock);
        nt = n->n_targets;
        memcpy(tg, n->targets, nt * sizeof(*tg));
        n->valid_us = notifier_valid_for(resend_us, 0);
        /* a copy, not a reference: jansson's reference count is not thread-safe to share with
         * a reload that replaces n->labels (its decref reads the count without atomics) */
        labels = json_deep_copy(n->labels);
        pthread_mutex_unlock(&n->lock);
        for (size_t t = 0; t < nt; t++) {
                json_t *j = tg[t].kind == TARGET_ALERTMANAGER
                                ? notifier_am_payload(in, n->hostname, now, resend_us)
                                : notifier_webhook_payload(in, n->hostname);
                char *body = j && add_labels(j, tg[t].kind, labels) == 0
                                 ? json_dumps(j, JSON_COMPACT)
                                 : NULL;
                entry *e = NULL, tmp;
                int op = 0, r;

                json_decref(j);
                if (!body) {
                        json_decref(labels);
                        return -ENOMEM;
                }
                pthread_mutex_lock(&n->lock);
                if (t >= n->n_targets || n->targets[t].kind != tg[t].kind ||
                    strcmp(n->targets[t].url, tg[t].url) != 0) {
                        pthread_mutex_unlock(&n->lock); /* the targets changed meanwhile */
                        free(body);
                        continue;
                }
                for (size_t i = 0; i < n->n; i++)
                        if (n->entries[i].target == (int)t && n->entries[i].incident == in->id &&
                            !n->entries[i].busy)
                                e = &n->entries[i];
                if (e) {
                        free(e->body);
                        e->body = body;
                        e->next_us = now;
                        op = 1;
                } else if (n->n < OUTBOX_MAX) {
                        e = &n->entries[n->n++];
                        *e = (entry){.target = (int)t,
                                     .incident = in->id,
                                     .body = body,
                                     .next_us = now,
                                     .seq = ++n->seq};
                } else {
                        pthread_mutex_unlock(&n->lock);
                        log_error("alerting",
                                  "outbox full (%d entries): dropping the alert for "
                                  "incident %" PRIu64,
                                  OUTBOX_MAX, in->id);
                        free(body);
                        continue;
                }
                /* Persist before the thread may send it: busy keeps the sender away. */
                e->busy = true;
                tmp = *e;
                pthread_mutex_unlock(&n->lock);
                r = ob_write(n, op, &tmp, &tg[t]);
                pthread_mutex_lock(&n->lock);
                for (size_t i = 0; i < n->n; i++)
                        if (n->entries[i].seq == tmp.seq) {
                                n->entries[i].busy = false;
                                n->entries[i].rowid = tmp.rowid;
                        }
                n->stats.depth = n->n;
                pthread_cond_signal(&n->wake);
                pthread_mutex_unlock(&n->lock);
                if (r < 0)
                        log_error("alerting",
                                  "failed to save the alert for incident %" PRIu64
                                  " in the outbox: %s (kept in memory)",
                                  in->id, strerror(-r));
        }
        json_decref(labels);
        return 0;
}

void notifier_get_stats(notifier *n, notifier_stats *out)
{
        pthread_mutex_lock(&n->lock);
        *out = n->stats;
        out->depth = n->n;
        pthread_mutex_unlock(&n->lock);
}

/* ---- sending --------------------------------------------------------------------------------- */

static size_t discard(char *p, size_t s, size_t nm, void *u)
{
        (void)p;
        (void)u;
        return s * nm;
}

int64_t notifier_valid_for(int64_t resend_us, int64_t eval_us)
{
        return 4 * MAX(resend_us, eval_us);
}

/* A firing Alertmanager alert gets endsAt at send time (now + notifier_valid_for, as Prometheus
 * sets ValidUntil), so an alert delayed in the outbox is never delivered already expired and an
 * alert resent every resend_interval never expires between two sends. */
static char *finalize_body(notifier *n, const target *t, const char *body)
{
        json_t *j;
        char *out;
        int64_t valid;

        if (t->kind != TARGET_ALERTMANAGER)
                return strdup(body);
        j = json_loads(body, 0, NULL);
        if (!j)
                return strdup(body);
        pthread_mutex_lock(&n->lock);
        valid = n->valid_us;
        pthread_mutex_unlock(&n->lock);
        for (size_t i = 0; i < json_array_size(j); i++) {
                json_t *a = json_array_get(j, i);
                if (!json_object_get(a, "endsAt")) {
                        char end[64];
                        iso_time(time_real_us() + valid, end, sizeof(end));
                        json_object_set_new(a, "endsAt", json_string(end));
                }
        }
        out = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        return out;
}

static int send_one(notifier *n, const target *t, int64_t timeout_us, const char *body, char *why,
                    size_t whylen)
{
        const curl_dl *cu = NULL;
        CURL *c;
        struct curl_slist *h = NULL;
        char url[HEALTH_URL_MAX + 32], sig[128];
        long status = 0;
        CURLcode cc;
        int r = curl_dl_get(&cu, why, whylen); /* loaded by notifier_start; cached here */

        if (r < 0)
                return r;
        c = cu->easy_init();
        _cleanup_free_ char *b = finalize_body(n, t, body);
        if (!c || !b) {
                if (c)
                        cu->easy_cleanup(c);
                snprintf(why, whylen, "out of memory");
                return -ENOMEM;
        }
        if (t->kind == TARGET_ALERTMANAGER) {
                size_t l = strlen(t->url);
                snprintf(url, sizeof(url), "%.*s/api/v2/alerts",
                         (int)(l && t->url[l - 1] == '/' ? l - 1 : l), t->url);
        } else {
                snprintf(url, sizeof(url), "%s", t->url);
        }
        h = cu->slist_append(h, "Content-Type: application/json");
        if (t->kind == TARGET_WEBHOOK && t->secret[0] &&
            notifier_sign(t->secret, b, strlen(b), sig, sizeof(sig)) == 0) {
                char hdr[160];
                snprintf(hdr, sizeof(hdr), "X-Vigil-Signature: %s", sig);
                h = cu->slist_append(h, hdr);
        }
        cu->easy_setopt(c, CURLOPT_URL, url);
        cu->easy_setopt(c, CURLOPT_HTTPHEADER, h);
        cu->easy_setopt(c, CURLOPT_POSTFIELDS, b);
        cu->easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        cu->easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(timeout_us / 1000));
        cu->easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)MIN(timeout_us / 1000, 3000));
        cu->easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
        cu->easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        cc = cu->easy_perform(c);
        if (cc == CURLE_OK)
                cu->easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        cu->slist_free_all(h);
        cu->easy_cleanup(c);
        if (cc != CURLE_OK) {
                snprintf(why, whylen, "%s", cu->easy_strerror(cc));
                return -EHOSTUNREACH;
        }
        if (status < 200 || status > 299) {
                snprintf(why, whylen, "HTTP %ld", status);
                return -EIO;
        }
        return 0;
}

static void *notifier_main(void *arg)
{
        notifier *n = arg;

        pthread_setname_np(pthread_self(), "vg-notify");
        pthread_mutex_lock(&n->lock);
        while (!n->stopping) {
                /* next retry due; none (INT64_MAX): sleep until an enqueue or stop signals */
                int64_t now = time_real_us(), next = INT64_MAX;
                entry *due = NULL;
                entry copy;
                target tcopy;
                int64_t timeout;
                char why[256] = "";
                int r;

                for (size_t i = 0; i < n->n; i++) {
                        entry *e = &n->entries[i];
                        if (e->busy)
                                continue;
                        if (e->target < 0) { /* its target was removed by a reload */
                                entry gone = *e;
                                n->entries[i] = n->entries[--n->n];
                                pthread_mutex_unlock(&n->lock);
                                ob_write(n, 2, &gone, NULL);
                                free(gone.body);
                                pthread_mutex_lock(&n->lock);
                                due = NULL;
                                i = (size_t)-1; /* the array changed: look again */
                                next = INT64_MAX;
                                continue;
                        }
                        if (e->next_us <= now && (!due || e->next_us < due->next_us))
                                due = e;
                        else if (e->next_us > now)
                                next = MIN(next, e->next_us);
                }
                if (!due && next == INT64_MAX) {
                        pthread_cond_wait(&n->wake, &n->lock);
                        continue;
                }
                if (!due) {
                        struct timespec ts;
                        int64_t wait = MAX(next - now, 10 * USEC_PER_MSEC);
                        clock_gettime(CLOCK_MONOTONIC, &ts);
                        ts.tv_sec += (time_t)(wait / USEC_PER_SEC);
                        ts.tv_nsec += (long)(wait % USEC_PER_SEC) * 1000;
                        if (ts.tv_nsec >= 1000000000L) {
                                ts.tv_sec++;
                                ts.tv_nsec -= 1000000000L;
                        }
                        pthread_cond_timedwait(&n->wake, &n->lock, &ts);
                        continue;
                }
                due->busy = true;
                copy = *due;
                copy.body = strdup(due->body);
                tcopy = n->targets[due->target]; /* a reload meanwhile: this send finishes here */
                timeout = n->timeout_us;
                pthread_mutex_unlock(&n->lock);
                r = copy.body ? send_one(n, &tcopy, timeout, copy.body, why, sizeof(why)) : -ENOMEM;
                pthread_mutex_lock(&n->lock);
                /* Find it again: the array may have been compacted meanwhile. */
                for (size_t i = 0; i < n->n; i++) {
                        entry *e = &n->entries[i];
                        if (e->seq != copy.seq)
                                continue;
                        bool replaced = strcmp(e->body, copy.body ? copy.body : "") != 0;
                        e->busy = false;
                        if (e->target < 0)
                                break; /* removed meanwhile: the next pass drops it */
                        if (r == 0 && !replaced) {
                                entry gone = *e;
                                n->stats.sent++;
                                n->entries[i] = n->entries[--n->n];
                                pthread_mutex_unlock(&n->lock);
                                ob_write(n, 2, &gone, NULL);
                                free(gone.body);
                                pthread_mutex_lock(&n->lock);
                        } else if (r < 0) {
                                entry upd;
                                int64_t back = USEC_PER_SEC << MIN(e->attempts, 20u);
                                n->stats.failures++;
                                e->attempts++;
                                e->next_us = time_real_us() + MIN(back, BACKOFF_MAX_US);
                                if (e->attempts == 1 || e->attempts % 10 == 0) {
                                        char shown[HEALTH_URL_MAX + 64];
                                        redact_text(tcopy.url, shown, sizeof(shown));
                                        log_warn("alerting",
                                                 "failed to send incident %" PRIu64 " to '%s': %s "
                                                 "(attempt %u, retrying)",
                                                 e->incident, shown, why, e->attempts);
                                }
                                upd = *e;
                                upd.body = strdup(e->body);
                                pthread_mutex_unlock(&n->lock);
                                if (upd.body)
                                        ob_write(n, 1, &upd, NULL);
                                free(upd.body);
                                pthread_mutex_lock(&n->lock);
                        }
                        break;
                }
                free(copy.body);
        }
        pthread_mutex_unlock(&n->lock);
        return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

/* The targets of cfg: Alertmanagers first, then webhooks. Returns how many (<= max). */
static size_t build_targets(const health_config *cfg, target *v, size_t max)
{
        size_t k = 0;

        memset(v, 0, max * sizeof(*v));
        for (size_t i = 0; i < cfg->n_alertmanagers && k < max; i++) {
                target *t = &v[k++];
                t->kind = TARGET_ALERTMANAGER;
                snprintf(t->url, sizeof(t->url), "%s", cfg->alertmanagers[i]);
        }
        for (size_t i = 0; i < cfg->n_webhooks && k < max; i++) {
                target *t = &v[k++];
                t->kind = TARGET_WEBHOOK;
                snprintf(t->url, sizeof(t->url), "%s", cfg->webhooks[i].url);
                snprintf(t->secret, sizeof(t->secret), "%s", cfg->webhooks[i].secret);
        }
        return k;
}

int notifier_new(struct store *st, const health_config *cfg, const char *hostname, notifier **ret)
{
        notifier *n = sparse_zalloc(sizeof(*n)); /* the outbox: written as entries queue */
        pthread_condattr_t ca;

        if (!n)
                return -ENOMEM;
        n->store = st;
        n->timeout_us = cfg->alert_timeout_us > 0 ? cfg->alert_timeout_us : 5 * USEC_PER_SEC;
        snprintf(n->hostname, sizeof(n->hostname), "%s", hostname ? hostname : "");
        n->n_targets = build_targets(cfg, n->targets, HEALTH_MAX_TARGETS);
        n->valid_us = notifier_valid_for(cfg->resend_interval_us, 0);
        n->labels = labels_json(cfg);
        if (!n->labels) {
                sparse_free(n, sizeof(*n));
                return -ENOMEM;
        }
        pthread_mutex_init(&n->lock, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&n->wake, &ca);
        pthread_condattr_destroy(&ca);
        *ret = n;
        return 0;
}

int notifier_start(notifier *n)
{
        int r;

        if (!n || n->started)
                return 0;
        n->armed = true;
#ifdef VIGIL_HAVE_STORE
        if (n->store) {
                r = store_read(n->store, load_fn, n);
                if (r < 0)
                        log_error("alerting", "failed to load the outbox: %s", strerror(-r));
                else if (n->n)
                        log_info("alerting",
                                 "%zu alerts waiting in the outbox from before the "
                                 "restart",
                                 n->n);
        }
#endif
        if (!n->n_targets && !n->n)
                return 0; /* nothing to send to: no thread, and libcurl is never loaded */
        /* libcurl is mapped from here on, not at startup (curl_dl.h). When it is missing the
         * daemon still runs: incidents stay in the outbox and each send fails with this reason. */
        {
                const curl_dl *cu;
                char err[512];
                if (curl_dl_get(&cu, err, sizeof(err)) < 0)
                        log_error("alerting", "failed to start alert delivery: %s", err);
        }
        r = pthread_create(&n->thread, NULL, notifier_main, n);
        if (r)
                return -r;
        n->started = true;
        return 0;
}

int notifier_set_targets(notifier *n, const health_config *cfg)
{
        target next[HEALTH_MAX_TARGETS];
        size_t nn = build_targets(cfg, next, HEALTH_MAX_TARGETS), dropped = 0;
        bool start;
        json_t *labels, *old_labels;

        if (!n)
                return 0;
        labels = labels_json(cfg);
        if (!labels)
                return -ENOMEM;
        pthread_mutex_lock(&n->lock);
        old_labels = n->labels;
        n->labels = labels;
        for (size_t i = 0; i < n->n; i++) {
                entry *e = &n->entries[i];
                int to = -1;
                if (e->target < 0)
                        continue;
                for (size_t k = 0; k < nn && to < 0; k++)
                        if (next[k].kind == n->targets[e->target].kind &&
                            !strcmp(next[k].url, n->targets[e->target].url))
                                to = (int)k;
                if (to < 0)
                        dropped++;
                e->target = to;
        }
        memcpy(n->targets, next, sizeof(next));
        n->n_targets = nn;
        n->timeout_us = cfg->alert_timeout_us > 0 ? cfg->alert_timeout_us : 5 * USEC_PER_SEC;
        start = n->armed && !n->started && nn > 0 && !n->stopping;
        pthread_cond_signal(&n->wake);
        pthread_mutex_unlock(&n->lock);
        json_decref(old_labels);
        if (dropped)
                log_warn("alerting", "dropping %zu queued alerts of targets no longer configured",
                         dropped);
        if (start) {
                const curl_dl *cu;
                char err[512];
                int r;
                if (curl_dl_get(&cu, err, sizeof(err)) < 0)
                        log_error("alerting", "failed to start alert delivery: %s", err);
                r = pthread_create(&n->thread, NULL, notifier_main, n);
                if (r)
                        return -r;
                n->started = true;
        }
        return 0;
}

void notifier_stop(notifier *n)
{
        if (!n || !n->started)
                return;
        pthread_mutex_lock(&n->lock);
        n->stopping = true;
        pthread_cond_signal(&n->wake);
        pthread_mutex_unlock(&n->lock);
        pthread_join(n->thread, NULL);
        n->started = false;
}

notifier *notifier_free(notifier *n)
{
        if (!n)
                return NULL;
        notifier_stop(n);
        for (size_t i = 0; i < n->n; i++)
                free(n->entries[i].body);
        pthread_cond_destroy(&n->wake);
        pthread_mutex_destroy(&n->lock);
        json_decref(n->labels);
        sparse_free(n, sizeof(*n));
        return NULL;
}
