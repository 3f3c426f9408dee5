/* anomaly.c — learned baselines (EWMA mean/variance per GPU and field) and peer comparison
 * (median/MAD over GPUs at similar utilization), evaluated after each fast sweep. Fixed-size
 * state, no allocation on the sampling path; persistence (jansson) runs off it, on the caller's
 * thread. See anomaly.h for the contract and docs/self-monitoring.md for the user view. */
#include "anomaly.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macros.h"
#include "common/sparse.h"
#include "common/vtime.h"
#include "fields/fields.h"

#define MAX_EVENTS 32 /* open/close events dispatched per update */

typedef struct base_state {
        double mean, var;     /* EWMA, field's stored unit */
        uint64_t n;           /* readings learned */
        int64_t last_us;      /* usec since epoch of the last reading learned */
        int64_t beyond_since; /* usec; 0 = within k */
        int64_t within_since; /* usec; while open, back within k since */
        bool open;
        int64_t opened_since; /* usec; when the deviation began */
        double value, score;  /* last reading and its z */
} base_state;

typedef struct peer_state {
        int64_t beyond_since, within_since; /* usec */
        bool open, compared;
        int64_t opened_since;
        double value, median, scale, score;
} peer_state;

struct anomaly {
        anomaly_options opt;
        uint16_t fields[ANOMALY_MAX_FIELDS];
        double floor[ANOMALY_MAX_FIELDS];      /* smallest sigma believed, per field */
        double peer_floor[ANOMALY_MAX_FIELDS]; /* smallest peer spread believed; 0 = no peers */
        char *state_path;                      /* owned */
        int64_t last_save_mono;                /* usec */

        pthread_mutex_t lock; /* everything below */
        unsigned n_gpus;      /* highest index seen + 1 */
        char uuid[ANOMALY_MAX_GPUS][96];
        bool seen[ANOMALY_MAX_GPUS];
        base_state base[ANOMALY_MAX_GPUS][ANOMALY_MAX_FIELDS];
        peer_state peer[ANOMALY_MAX_GPUS][ANOMALY_MAX_FIELDS];
        json_t *loaded; /* baselines read at start, applied per UUID when first seen */
        anomaly_listener listener;
        void *listener_ud;
};

/* Noise floors: a GPU whose reading never moved has sigma 0, and one degree must not be
 * "infinite sigmas". Peer spread floors say how far apart healthy GPUs may sit. */
static void floors_for(uint16_t id, double *sigma, double *peer)
{
        switch (id) {
        case FLD_GPU_TEMP:
        case FLD_MEMORY_TEMP:
                *sigma = 1.0; /* C */
                *peer = 2.0;
                break;
        case FLD_POWER_USAGE:
                *sigma = 5.0; /* W */
                *peer = 20.0;
                break;
        case FLD_GPU_UTIL:
                *sigma = 5.0; /* % */
                *peer = 0;    /* utilization is what peers are grouped by */
                break;
        case FLD_SM_CLOCK:
                *sigma = 30.0; /* MHz */
                *peer = 0;
                break;
        default:
                *sigma = 1.0;
                *peer = 0;
                break;
        }
}

int anomaly_new(const anomaly_options *o, anomaly **ret)
{
        _cleanup_free_ anomaly *a = NULL;

        if (!o || o->k <= 0 || o->n_fields > ANOMALY_MAX_FIELDS || o->window_us <= 0)
                return -EINVAL;
        for (size_t i = 0; i < o->n_fields; i++)
                if (!field_by_id(o->fields[i]))
                        return -EINVAL;
        a = sparse_zalloc(sizeof(*a)); /* per-GPU state: written for the GPUs seen */
        if (!a)
                return -ENOMEM;
        a->opt = *o;
        memcpy(a->fields, o->fields, o->n_fields * sizeof(uint16_t));
        a->opt.fields = a->fields;
        for (size_t i = 0; i < o->n_fields; i++)
                floors_for(o->fields[i], &a->floor[i], &a->peer_floor[i]);
        if (o->state_path) {
                a->state_path = strdup(o->state_path);
                if (!a->state_path)
                        return -ENOMEM;
        }
        a->opt.state_path = a->state_path;
        if (a->opt.peer_min_gpus < 3)
                a->opt.peer_min_gpus = 3;
        if (a->opt.peer_k <= 0)
                a->opt.peer_k = 5;
        a->last_save_mono = time_mono_us();
        pthread_mutex_init(&a->lock, NULL);
        *ret = TAKE_PTR(a);
        return 0;
}

anomaly *anomaly_free(anomaly *a)
{
        if (!a)
                return NULL;
        pthread_mutex_destroy(&a->lock);
        json_decref(a->loaded);
        free(a->state_path);
        sparse_free(a, sizeof(*a));
        return NULL;
}

void anomaly_set_listener(anomaly *a, anomaly_listener fn, void *userdata)
{
        pthread_mutex_lock(&a->lock);
        a->listener = fn;
        a->listener_ud = userdata;
        pthread_mutex_unlock(&a->lock);
}

static const char *field_sym(uint16_t id)
{
        const field_meta *m = field_by_id(id);

        return m ? m->sym : "unknown";
}

/* A GPU seen for the first time (or with another UUID in its slot): fresh state, then what was
 * persisted for its UUID. Lock held. */
static void adopt_gpu(anomaly *a, unsigned g, const char *uuid)
{
        json_t *saved;

        memset(a->base[g], 0, sizeof(a->base[g]));
        memset(a->peer[g], 0, sizeof(a->peer[g]));
        snprintf(a->uuid[g], sizeof(a->uuid[g]), "%s", uuid ? uuid : "");
        a->seen[g] = true;
        if (g + 1 > a->n_gpus)
                a->n_gpus = g + 1;
        saved =
            a->loaded && uuid ? json_object_get(json_object_get(a->loaded, "gpus"), uuid) : NULL;
        for (size_t f = 0; saved && f < a->opt.n_fields; f++) {
                json_t *o = json_object_get(saved, field_sym(a->fields[f]));
                json_t *m = json_object_get(o, "mean"), *v = json_object_get(o, "var"),
                       *n = json_object_get(o, "n");
                if (!json_is_number(m) || !json_is_number(v) || !json_is_integer(n) ||
                    json_number_value(v) < 0 || json_integer_value(n) < 0)
                        continue;
                a->base[g][f].mean = json_number_value(m);
                a->base[g][f].var = json_number_value(v);
                a->base[g][f].n = (uint64_t)json_integer_value(n);
        }
}

typedef struct pending {
        anomaly_event ev;
        char uuid[96];
} pending;

static void queue_event(anomaly *a, pending *q, size_t *nq, bool open, enum anomaly_kind kind,
                        unsigned g, size_t f, double value, double expected, double score,
                        int64_t since)
{
        pending *p;

        if (*nq >= MAX_EVENTS)
                return;
        p = &q[(*nq)++];
        snprintf(p->uuid, sizeof(p->uuid), "%s", a->uuid[g]);
        p->ev = (anomaly_event){.open = open,
                                .kind = kind,
                                .gpu = g,
                                .uuid = p->uuid,
                                .field_id = a->fields[f],
                                .field = field_sym(a->fields[f]),
                                .value = value,
                                .expected = expected,
                                .score = score,
                                .since_us = since};
}

/* Baseline detector for one reading. Lock held. */
static void eval_base(anomaly *a, unsigned g, size_t f, double x, int64_t now, pending *q,
                      size_t *nq)
{
        base_state *b = &a->base[g][f];
        double alpha, sd, z = 0, diff, incr;
        bool judged = b->n >= a->opt.min_samples, beyond;

        b->value = x;
        if (b->n == 0) {
                b->mean = x;
                b->var = 0;
                b->n = 1;
                b->last_us = now;
                return;
        }
        sd = fmax(sqrt(b->var), a->floor[f]);
        z = (x - b->mean) / sd;
        b->score = z;
        beyond = judged && fabs(z) > a->opt.k;

        /* learn: time-weighted EWMA; a cumulative mean while young so it settles fast; ten
         * times slower while beyond k so an anomaly does not teach itself to be normal */
        /* a gap (restart, lost GPU) counts as one minute at most: what was learned stays */
        if (!b->last_us)
                b->last_us = now;
        alpha = 1.0 - exp(-(double)MIN(MAX(now - b->last_us, 1), 60 * USEC_PER_SEC) /
                          (double)a->opt.window_us);
        alpha = fmax(alpha, 1.0 / (double)(b->n + 1));
        if (beyond)
                alpha /= 10;
        diff = x - b->mean;
        incr = alpha * diff;
        b->mean += incr;
        b->var = (1 - alpha) * (b->var + diff * incr);
        b->n++;
        b->last_us = now;

        if (beyond) {
                b->within_since = 0;
                if (!b->beyond_since)
                        b->beyond_since = now;
                if (!b->open && now - b->beyond_since >= a->opt.sustain_us) {
                        b->open = true;
                        b->opened_since = b->beyond_since;
                        queue_event(a, q, nq, true, ANOMALY_BASELINE, g, f, x, b->mean, z,
                                    b->beyond_since);
                }
        } else {
                b->beyond_since = 0;
                if (b->open) {
                        if (!b->within_since)
                                b->within_since = now;
                        if (now - b->within_since >= a->opt.sustain_us / 2) {
                                b->open = false;
                                queue_event(a, q, nq, false, ANOMALY_BASELINE, g, f, x, b->mean, z,
                                            b->opened_since);
                        }
                }
        }
}

static double median_of(double *v, size_t n)
{
        for (size_t i = 1; i < n; i++) /* insertion sort: n <= ANOMALY_MAX_GPUS */
                for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
                        double t = v[j];
                        v[j] = v[j - 1];
                        v[j - 1] = t;
                }
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Peer detector for one field over all GPUs. Lock held. */
static void eval_peers(anomaly *a, size_t f, const anomaly_sample *s, unsigned n, int64_t now,
                       pending *q, size_t *nq)
{
        double half = (double)a->opt.peer_band / 2;

        for (unsigned g = 0; g < n; g++) {
                peer_state *p = &a->peer[g][f];
                double vals[ANOMALY_MAX_GPUS], dev[ANOMALY_MAX_GPUS], med, mad, scale, score;
                size_t k = 0;
                bool beyond;

                p->compared = false;
                if (!s[g].up || isnan(s[g].v[f]) || isnan(s[g].util))
                        continue;
                for (unsigned j = 0; j < n; j++)
                        if (s[j].up && !isnan(s[j].v[f]) && !isnan(s[j].util) &&
                            fabs(s[j].util - s[g].util) <= half)
                                vals[k++] = s[j].v[f];
                if (k < a->opt.peer_min_gpus)
                        continue;
                med = median_of(vals, k);
                for (size_t j = 0; j < k; j++)
                        dev[j] = fabs(vals[j] - med);
                mad = median_of(dev, k);
                scale = fmax(1.4826 * mad, a->peer_floor[f]);
                score = (s[g].v[f] - med) / scale;
                p->compared = true;
                p->value = s[g].v[f];
                p->median = med;
                p->scale = scale;
                p->score = score;
                beyond = fabs(score) > a->opt.peer_k;
                if (beyond) {
                        p->within_since = 0;
                        if (!p->beyond_since)
                                p->beyond_since = now;
                        if (!p->open && now - p->beyond_since >= a->opt.sustain_us) {
                                p->open = true;
                                p->opened_since = p->beyond_since;
                                queue_event(a, q, nq, true, ANOMALY_PEER, g, f, p->value, med,
                                            score, p->beyond_since);
                        }
                } else {
                        p->beyond_since = 0;
                        if (p->open) {
                                if (!p->within_since)
                                        p->within_since = now;
                                if (now - p->within_since >= a->opt.sustain_us / 2) {
                                        p->open = false;
                                        queue_event(a, q, nq, false, ANOMALY_PEER, g, f, p->value,
                                                    med, score, p->opened_since);
                                }
                        }
                }
        }
}

static void announce(const anomaly_event *ev)
{
        char gpu[16], score[32], val[32], exp_[32];
        const log_field fl[] = {
            {"gpu", gpu},         {"uuid", ev->uuid},
            {"field", ev->field}, {"kind", ev->kind == ANOMALY_PEER ? "peer" : "baseline"},
            {"value", val},       {"expected", exp_},
            {"score", score},
        };

        snprintf(gpu, sizeof(gpu), "%u", ev->gpu);
        snprintf(score, sizeof(score), "%.1f", ev->score);
        snprintf(val, sizeof(val), "%.1f", ev->value);
        snprintf(exp_, sizeof(exp_), "%.1f", ev->expected);
        if (ev->open)
                log_msgf(LOG_LVL_WARN, "anomaly", fl, ARRAY_SIZE(fl),
                         "GPU %u ('%s') %s anomaly opened: %s %s is %s sigma from %s %s", ev->gpu,
                         ev->uuid, ev->kind == ANOMALY_PEER ? "peer" : "baseline", ev->field, val,
                         score, ev->kind == ANOMALY_PEER ? "its peers' median" : "its baseline",
                         exp_);
        else
                log_msgf(LOG_LVL_INFO, "anomaly", fl, ARRAY_SIZE(fl),
                         "GPU %u ('%s') %s anomaly closed: %s %s is back near %s", ev->gpu,
                         ev->uuid, ev->kind == ANOMALY_PEER ? "peer" : "baseline", ev->field, val,
                         exp_);
}

void anomaly_update(anomaly *a, const anomaly_sample *s, unsigned n, int64_t now_us)
{
        pending q[MAX_EVENTS];
        size_t nq = 0;
        anomaly_listener fn;
        void *ud;

        if (!a || !a->opt.enabled)
                return;
        n = MIN(n, (unsigned)ANOMALY_MAX_GPUS);
        pthread_mutex_lock(&a->lock);
        for (unsigned g = 0; g < n; g++) {
                if (!s[g].up)
                        continue;
                if (!a->seen[g] || (s[g].uuid && strcmp(a->uuid[g], s[g].uuid) != 0))
                        adopt_gpu(a, g, s[g].uuid);
                for (size_t f = 0; f < a->opt.n_fields; f++)
                        if (!isnan(s[g].v[f]))
                                eval_base(a, g, f, s[g].v[f], now_us, q, &nq);
        }
        if (a->opt.peer_enabled)
                for (size_t f = 0; f < a->opt.n_fields; f++)
                        if (a->peer_floor[f] > 0)
                                eval_peers(a, f, s, n, now_us, q, &nq);
        fn = a->listener;
        ud = a->listener_ud;
        pthread_mutex_unlock(&a->lock);
        for (size_t i = 0; i < nq; i++) {
                announce(&q[i].ev);
                if (fn)
                        fn(ud, &q[i].ev);
        }
}

void anomaly_eval(anomaly *a, sampler *e, cache *c)
{
        anomaly_sample s[ANOMALY_MAX_GPUS];
        char uuids[ANOMALY_MAX_GPUS][96];
        bool is_f64[ANOMALY_MAX_FIELDS]; /* per watched field: read .d rather than .i */
        sampler_gpu g;
        unsigned n;

        (void)c; /* the sampler's cache: read through sampler_latest, which knows staleness */
        if (!a || !a->opt.enabled)
                return;
        n = MIN(sampler_gpu_count(e), (unsigned)ANOMALY_MAX_GPUS);
        for (size_t f = 0; f < a->opt.n_fields; f++) {
                const field_meta *m = field_by_id(a->fields[f]);
                is_f64[f] = m && m->type == FT_F64;
        }
        for (unsigned i = 0; i < n; i++) {
                sampler_reading rd;
                memset(&s[i], 0, sizeof(s[i]));
                /* a lost or hung GPU has no current readings: it is not judged */
                if (sampler_gpu_get(e, i, &g) < 0 || !g.up || g.stuck)
                        continue;
                s[i].up = true;
                snprintf(uuids[i], sizeof(uuids[i]), "%s", g.id.uuid);
                s[i].uuid = uuids[i];
                for (size_t f = 0; f < a->opt.n_fields; f++) {
                        s[i].v[f] = NAN;
                        /* only current readings (sampler_latest): a stale one is no data */
                        if (sampler_latest(e, i, a->fields[f], 0, &rd) == 0 && rd.v.status == 0 &&
                            rd.fresh == SAMPLER_FRESH)
                                s[i].v[f] = is_f64[f] ? rd.v.d : (double)rd.v.i;
                }
                s[i].util = NAN;
                if (sampler_latest(e, i, FLD_GPU_UTIL, 0, &rd) == 0 && rd.v.status == 0 &&
                    rd.fresh == SAMPLER_FRESH)
                        s[i].util = (double)rd.v.i;
        }
        anomaly_update(a, s, n, time_real_us());
}

/* ---- persistence ------------------------------------------------------------------------ */

int anomaly_load(anomaly *a)
{
        json_error_t jerr;
        json_t *j;

        if (!a->state_path)
                return 0;
        if (access(a->state_path, F_OK) < 0)
                return -errno;
        j = json_load_file(a->state_path, JSON_REJECT_DUPLICATES, &jerr);
        if (!j || !json_is_object(json_object_get(j, "gpus"))) {
                log_warn("anomaly", "ignoring baselines file '%s': %s", a->state_path,
                         j ? "no 'gpus' object" : jerr.text);
                json_decref(j);
                return -EINVAL;
        }
        pthread_mutex_lock(&a->lock);
        json_decref(a->loaded);
        a->loaded = j;
        pthread_mutex_unlock(&a->lock);
        log_info("anomaly", "loaded baselines of %zu GPUs from '%s'",
                 json_object_size(json_object_get(j, "gpus")), a->state_path);
        return 0;
}

static json_t *snapshot_json(anomaly *a)
{
        json_t *root = json_object(), *gpus = json_object();

        json_object_set_new(root, "version", json_integer(1));
        json_object_set_new(root, "saved_at", json_real((double)time_real_us() / 1e6));
        json_object_set_new(root, "gpus", gpus);
        pthread_mutex_lock(&a->lock);
        /* keep what was loaded for GPUs not seen in this run */
        if (a->loaded)
                json_object_update(gpus, json_object_get(a->loaded, "gpus"));
        for (unsigned g = 0; g < a->n_gpus; g++) {
                json_t *o;
                if (!a->seen[g] || !a->uuid[g][0])
                        continue;
                o = json_object();
                for (size_t f = 0; f < a->opt.n_fields; f++) {
                        const base_state *b = &a->base[g][f];
                        if (!b->n)
                                continue;
                        json_object_set_new(o, field_sym(a->fields[f]),
                                            json_pack("{s:f,s:f,s:I}", "mean", b->mean, "var",
                                                      b->var, "n", (json_int_t)b->n));
                }
                json_object_set_new(gpus, a->uuid[g], o);
        }
        pthread_mutex_unlock(&a->lock);
        return root;
}

int anomaly_save(anomaly *a)
{
        char tmp[4200];
        json_t *j;
        char *text;
        size_t len;
        int fd, r = 0;

        if (!a->state_path)
                return 0;
        if (snprintf(tmp, sizeof(tmp), "%s.tmp", a->state_path) >= (int)sizeof(tmp))
                return -ENAMETOOLONG;
        j = snapshot_json(a);
        text = j ? json_dumps(j, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
        json_decref(j);
        if (!text)
                return -ENOMEM;
        len = strlen(text);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
        if (fd < 0)
                r = -errno;
        for (size_t off = 0; r == 0 && off < len;) {
                ssize_t w = write(fd, text + off, len - off);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        r = w < 0 ? -errno : -EIO;
                else
                        off += (size_t)w;
        }
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (fd >= 0)
                close(fd);
        if (r == 0 && rename(tmp, a->state_path) < 0)
                r = -errno;
        if (r < 0) {
                unlink(tmp);
                log_warn("anomaly", "failed to save baselines to '%s': %s", a->state_path,
                         strerror(-r));
        }
        free(text);
        a->last_save_mono = time_mono_us();
        return r;
}

void anomaly_maybe_save(anomaly *a)
{
        if (a && a->opt.enabled && a->state_path && a->opt.persist_us > 0 &&
            time_mono_us() - a->last_save_mono >= a->opt.persist_us)
                anomaly_save(a);
}

/* ---- views ------------------------------------------------------------------------------ */

size_t anomaly_states(anomaly *a, anomaly_state *out, size_t max)
{
        size_t n = 0;

        pthread_mutex_lock(&a->lock);
        for (unsigned g = 0; g < a->n_gpus; g++) {
                if (!a->seen[g])
                        continue;
                for (size_t f = 0; f < a->opt.n_fields; f++) {
                        const base_state *b = &a->base[g][f];
                        const peer_state *p = &a->peer[g][f];
                        if (n < max) {
                                out[n] = (anomaly_state){
                                    .gpu = g,
                                    .field_id = a->fields[f],
                                    .field = field_sym(a->fields[f]),
                                    .kind = ANOMALY_BASELINE,
                                    .active = b->open,
                                    .learned = b->n >= a->opt.min_samples,
                                    .value = b->value,
                                    .expected = b->mean,
                                    .spread = fmax(sqrt(b->var), a->floor[f]),
                                    .score = b->score,
                                    .samples = b->n,
                                    .since_us = b->open ? b->opened_since : 0,
                                };
                                snprintf(out[n].uuid, sizeof(out[n].uuid), "%s", a->uuid[g]);
                                n++;
                        }
                        if (!a->opt.peer_enabled || a->peer_floor[f] <= 0 || n >= max)
                                continue;
                        out[n++] = (anomaly_state){
                            .gpu = g,
                            .field_id = a->fields[f],
                            .field = field_sym(a->fields[f]),
                            .kind = ANOMALY_PEER,
                            .active = p->open,
                            .learned = p->compared,
                            .value = p->value,
                            .expected = p->median,
                            .spread = p->scale,
                            .score = p->score,
                            .since_us = p->open ? p->opened_since : 0,
                        };
                        snprintf(out[n - 1].uuid, sizeof(out[n - 1].uuid), "%s", a->uuid[g]);
                }
        }
        pthread_mutex_unlock(&a->lock);
        return n;
}

unsigned anomaly_active_count(anomaly *a)
{
        unsigned n = 0;

        pthread_mutex_lock(&a->lock);
        for (unsigned g = 0; g < a->n_gpus; g++)
                for (size_t f = 0; f < a->opt.n_fields; f++)
                        n += a->base[g][f].open + a->peer[g][f].open;
        pthread_mutex_unlock(&a->lock);
        return n;
}
