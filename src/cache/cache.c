/* cache.c — groups of series in rings of compressed chunks, the latest-value table and history
 * queries. The chunk layout is row-interleaved: each sample is one timestamp code, one status
 * block and one value code per field, so a group evicts, locks and sizes as one unit. The value
 * codes live in codec.c; this file frames samples and chunks and does the locking. */
#include "cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "cache/codec.h"
#include "common/macros.h"
#include "common/sparse.h"

/* Chunks a ring of max_samples is cut into (plus one being filled): eviction granularity. */
#define RING_CHUNKS 8
/* Reserved budget: average bits per timestamp and per value the ring is sized for. The H200
 * trace needs ~8-10 bits per value and ~10 per timestamp at 1 Hz (bench/bench_cache.c). */
#define BUDGET_TS_BITS    16
#define BUDGET_VALUE_BITS 24
/* Worst case of one sample: ts int code (2+6+64), status flag, per field a status change
 * (1+32) and an f64 XOR code with a new window (3+13+64). */
#define WORST_TS_BITS    72
#define WORST_FIELD_BITS 113
#define CHUNK_ALIGN      64 /* bytes */
#define GROUP_MAX_BYTES  (UINT64_C(1) << 30)
/* Field ids below this find their catalog index in one load (c->index); the few above it (GPM,
 * ids in the 60000s) fall back to the catalog's scan. Every lookup of a sweep, a health rule and
 * a render goes through lookup(), so a scan of the catalog there cost more than the decode. */
#define INDEX_IDS 1024

enum {
        FF_F64 = 1 << 0, /* Gorilla/decimal float code */
        FF_DOD = 1 << 1, /* delta-of-delta (counters) rather than delta */
};

typedef struct chunk_hdr {
        int64_t first_ts; /* usec since epoch */
        int64_t last_ts;  /* usec since epoch */
        uint32_t n;       /* samples */
        uint32_t bits;    /* encoded length (bits) */
} chunk_hdr;

typedef struct group {
        pthread_mutex_t lock;     /* guards everything below marked (L) */
        unsigned gpu;             /* GPU slot */
        size_t n;                 /* fields */
        uint16_t *field_ids;      /* [n] DCGM ids */
        uint8_t *flags;           /* [n] FF_* */
        uint32_t max_samples;     /* samples */
        int64_t max_age_us;       /* usec, 0 = none */
        size_t chunk_bytes;       /* bytes per chunk */
        uint32_t chunk_max;       /* samples per chunk at most */
        uint32_t n_chunks;        /* ring size (chunks) */
        uint8_t *data;            /* [n_chunks * chunk_bytes] encoded chunks (L) */
        chunk_hdr *chunks;        /* [n_chunks] (L) */
        uint32_t oldest;          /* ring index of the oldest live chunk (L) */
        uint32_t used;            /* live chunks, the newest is open (L) */
        uint64_t samples;         /* samples in live chunks (L) */
        codec_state ts_state;     /* encoder state of the open chunk's timestamps (L) */
        codec_state *state;       /* [n] encoder state of the open chunk (L) */
        field_value *latest;      /* [n] newest values (L) */
        int64_t latest_ts;        /* usec since epoch of the newest sample, 0 = none (L) */
        bool any;                 /* a sample was pushed (L) */
        uint64_t early_evictions; /* chunks dropped before max_samples were held (L) */
        uint64_t clamped;         /* pushes older than latest_ts stored at latest_ts (L) */
        uint64_t bytes;           /* reserved bytes */
} group;

struct cache {
        pthread_mutex_t lock; /* serialises cache_group_add */
        unsigned max_gpus;    /* GPU slots */
        size_t n_cat;         /* field_count() */
        int32_t *map;         /* [max_gpus * n_cat] (group << 16 | slot) + 1, 0: none (atomic) */
        group **groups;       /* [cap_groups] published with release stores */
        size_t cap_groups;    /* max_gpus * n_cat: one field per group at most */
        int n_groups;         /* groups added (atomic) */
        int16_t index[INDEX_IDS]; /* field id -> catalog index, -1 = none (ids < INDEX_IDS) */
};

static group *group_free(group *g)
{
        if (!g)
                return NULL;
        pthread_mutex_destroy(&g->lock);
        free(g->field_ids);
        free(g->flags);
        free(g->data);
        free(g->chunks);
        free(g->state);
        free(g->latest);
        free(g);
        return NULL;
}

int cache_new(unsigned max_gpus, cache **ret)
{
        _cleanup_free_ cache *c = NULL;
        size_t nmap;

        if (!ret || max_gpus == 0 || max_gpus > CACHE_MAX_GPUS)
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->max_gpus = max_gpus;
        c->n_cat = field_count();
        nmap = (size_t)max_gpus * c->n_cat;
        /* Sized for max_gpus (the sampler's 64) but written only for the GPUs and fields that
         * get a group: zero pages until then (common/sparse.h), hence "0: none" in the map. */
        c->map = sparse_zalloc(nmap * sizeof(*c->map));
        c->groups = sparse_zalloc(nmap * sizeof(*c->groups));
        if (!c->map || !c->groups) {
                sparse_free(c->map, nmap * sizeof(*c->map));
                sparse_free(c->groups, nmap * sizeof(*c->groups));
                return -ENOMEM;
        }
        memset(c->index, -1, sizeof(c->index));
        for (size_t i = 0; i < c->n_cat; i++)
                if (field_at(i)->id < INDEX_IDS)
                        c->index[field_at(i)->id] = (int16_t)i;
        c->cap_groups = nmap;
        pthread_mutex_init(&c->lock, NULL);
        *ret = TAKE_PTR(c);
        return 0;
}

cache *cache_free(cache *c)
{
        if (!c)
                return NULL;
        for (int i = 0; i < c->n_groups; i++)
                group_free(c->groups[i]);
        sparse_free(c->groups, c->cap_groups * sizeof(*c->groups));
        sparse_free(c->map, c->cap_groups * sizeof(*c->map));
        pthread_mutex_destroy(&c->lock);
        free(c);
        return NULL;
}

/* Size the ring: RING_CHUNKS chunks of chunk_max samples hold max_samples, one more is being
 * filled, so dropping the oldest still leaves max_samples. A chunk holds its raw first sample
 * plus chunk_max-1 samples at the budget, and always at least one worst-case sample. */
static int group_size(group *g)
{
        uint32_t k = MIN((uint32_t)RING_CHUNKS, g->max_samples);
        uint64_t first_bits = 64 + 1 + (uint64_t)g->n * (64 + 33);
        uint64_t worst_bits = WORST_TS_BITS + 1 + (uint64_t)g->n * WORST_FIELD_BITS;
        uint64_t bits, bytes, total;

        g->chunk_max = (g->max_samples + k - 1) / k;
        g->n_chunks = k + 1;
        bits = first_bits +
               (uint64_t)(g->chunk_max - 1) * (BUDGET_TS_BITS + BUDGET_VALUE_BITS * (uint64_t)g->n);
        bits = MAX(bits, worst_bits);
        bytes = (bits + 7) / 8;
        bytes = (bytes + CHUNK_ALIGN - 1) / CHUNK_ALIGN * CHUNK_ALIGN;
        total = bytes * g->n_chunks;
        if (bytes > UINT32_MAX / 8 || total > GROUP_MAX_BYTES)
                return -ENOMEM;
        g->chunk_bytes = bytes;
        return 0;
}

static int32_t map_load(const cache *c, unsigned gpu, int idx)
{
        uint32_t v = (uint32_t)__atomic_load_n(&c->map[(size_t)gpu * c->n_cat + (size_t)idx],
                                               __ATOMIC_ACQUIRE);

        return (int32_t)(v - 1); /* 0 (none) → -1 */
}

int cache_group_add(cache *c, unsigned gpu, const uint16_t *field_ids, size_t n,
                    uint32_t max_samples, int64_t max_age_us)
{
        group *g = NULL;
        int r, id;

        if (!c || !field_ids || gpu >= c->max_gpus || n == 0 || n > CACHE_GROUP_MAX_FIELDS ||
            max_samples == 0 || max_samples > CACHE_MAX_SAMPLES || max_age_us < 0)
                return -EINVAL;

        pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < n; i++) {
                const field_meta *f = field_by_id(field_ids[i]);

                if (!f || (f->type != FT_I64 && f->type != FT_F64)) {
                        r = -EINVAL;
                        goto out;
                }
                for (size_t j = 0; j < i; j++)
                        if (field_ids[j] == field_ids[i]) {
                                r = -EINVAL;
                                goto out;
                        }
                if (map_load(c, gpu, field_index(field_ids[i])) >= 0) {
                        r = -EEXIST;
                        goto out;
                }
        }
        if ((size_t)c->n_groups >= c->cap_groups) { /* unreachable: each group owns a field */
                r = -ENOMEM;
                goto out;
        }

        r = -ENOMEM;
        g = calloc(1, sizeof(*g));
        if (!g)
                goto out;
        pthread_mutex_init(&g->lock, NULL);
        g->gpu = gpu;
        g->n = n;
        g->max_samples = max_samples;
        g->max_age_us = max_age_us;
        r = group_size(g);
        if (r < 0)
                goto out;
        r = -ENOMEM;
        g->field_ids = malloc(n * sizeof(*g->field_ids));
        g->flags = calloc(n, sizeof(*g->flags));
        g->data = malloc((size_t)g->n_chunks * g->chunk_bytes);
        g->chunks = calloc(g->n_chunks, sizeof(*g->chunks));
        g->state = calloc(n, sizeof(*g->state));
        g->latest = calloc(n, sizeof(*g->latest));
        if (!g->field_ids || !g->flags || !g->data || !g->chunks || !g->state || !g->latest)
                goto out;
        /* Touch the ring now so that pushes do not take first-touch page faults. */
        memset(g->data, 0, (size_t)g->n_chunks * g->chunk_bytes);
        for (size_t i = 0; i < n; i++) {
                const field_meta *f = field_by_id(field_ids[i]);

                g->field_ids[i] = field_ids[i];
                g->flags[i] = (uint8_t)((f->type == FT_F64 ? FF_F64 : 0) |
                                        (f->kind == FK_COUNTER ? FF_DOD : 0));
                g->latest[i].status = -ENODATA;
        }
        g->bytes = (uint64_t)g->n_chunks * (g->chunk_bytes + sizeof(chunk_hdr)) +
                   n * (sizeof(codec_state) + sizeof(field_value) + 3) + sizeof(*g);

        id = c->n_groups;
        __atomic_store_n(&c->groups[id], g, __ATOMIC_RELEASE);
        for (size_t i = 0; i < n; i++)
                __atomic_store_n(
                    &c->map[(size_t)gpu * c->n_cat + (size_t)field_index(field_ids[i])],
                    (int32_t)((((uint32_t)id << 16) | (uint32_t)i) + 1), __ATOMIC_RELEASE);
        __atomic_store_n(&c->n_groups, id + 1, __ATOMIC_RELEASE);
        g = NULL;
        r = id;
out:
        pthread_mutex_unlock(&c->lock);
        group_free(g);
        return r;
}

static group *group_get(cache *c, int id)
{
        if (!c || id < 0 || id >= __atomic_load_n(&c->n_groups, __ATOMIC_ACQUIRE))
                return NULL;
        return __atomic_load_n(&c->groups[id], __ATOMIC_ACQUIRE);
}

/* (gpu, field) → group and slot, or NULL. Lock-free: the map only ever gains entries. */
static group *lookup(cache *c, unsigned gpu, uint16_t field_id, size_t *slot)
{
        int idx;
        int32_t e;

        if (!c)
                return NULL;
        idx = field_id < INDEX_IDS ? c->index[field_id] : field_index(field_id);
        if (gpu >= c->max_gpus || idx < 0)
                return NULL;
        e = map_load(c, gpu, idx);
        if (e < 0)
                return NULL;
        *slot = (size_t)e & 0xffff;
        return group_get(c, e >> 16);
}

static inline uint8_t *chunk_data(const group *g, uint32_t idx)
{
        return g->data + (size_t)idx * g->chunk_bytes;
}

static inline uint32_t ring_idx(const group *g, uint32_t k)
{
        return (g->oldest + k) % g->n_chunks;
}

static void chunk_drop_oldest(group *g)
{
        g->samples -= g->chunks[g->oldest].n;
        g->oldest = ring_idx(g, 1);
        g->used--;
}

/* Open a fresh chunk (the ring's newest); its encoder state starts empty, so its first sample is
 * written raw and it decodes on its own. */
static void chunk_open(group *g)
{
        if (g->used == g->n_chunks) {
                if (g->samples - g->chunks[g->oldest].n < g->max_samples)
                        g->early_evictions++;
                chunk_drop_oldest(g);
        }
        g->chunks[ring_idx(g, g->used)] = (chunk_hdr){0};
        g->used++;
        memset(&g->ts_state, 0, sizeof(g->ts_state));
        memset(g->state, 0, g->n * sizeof(*g->state));
}

/* Row layout: ts code; a flag, set when some status differs from the previous sample's, then
 * per field 0 (same) or 1 + 32-bit status; then a value code per field whose status is 0. */
static void sample_encode(group *g, bitw *w, int64_t ts, const field_value *vals)
{
        bool changed = false;

        codec_put_i64(w, &g->ts_state, ts, true);
        for (size_t i = 0; i < g->n; i++)
                if (vals[i].status != g->state[i].prev_status) {
                        changed = true;
                        break;
                }
        bitw_put(w, changed, 1);
        if (changed)
                for (size_t i = 0; i < g->n; i++) {
                        if (vals[i].status == g->state[i].prev_status) {
                                bitw_put(w, 0, 1);
                                continue;
                        }
                        bitw_put(w, (UINT64_C(1) << 32) | (uint32_t)vals[i].status, 33);
                        g->state[i].prev_status = vals[i].status;
                }
        for (size_t i = 0; i < g->n; i++) {
                if (vals[i].status != 0)
                        continue;
                if (g->flags[i] & FF_F64)
                        codec_put_f64(w, &g->state[i], vals[i].d);
                else
                        codec_put_i64(w, &g->state[i], vals[i].i, g->flags[i] & FF_DOD);
        }
}

static int64_t sub_sat(int64_t a, int64_t b)
{
        int64_t r;

        return __builtin_sub_overflow(a, b, &r) ? INT64_MIN : r;
}

static void group_evict(group *g, int64_t now)
{
        int64_t cutoff = g->max_age_us > 0 ? sub_sat(now, g->max_age_us) : INT64_MIN;

        while (g->used > 1) {
                const chunk_hdr *o = &g->chunks[g->oldest];

                if (g->samples - o->n >= g->max_samples || o->last_ts < cutoff)
                        chunk_drop_oldest(g);
                else
                        break;
        }
}

int cache_group_push(cache *c, int id, int64_t ts_us, const field_value *vals)
{
        group *g = group_get(c, id);
        chunk_hdr *h;
        uint32_t cur;
        bitw w;
        int r = 0;

        if (!g || !vals)
                return -EINVAL;
        pthread_mutex_lock(&g->lock);
        if (g->any && ts_us < g->latest_ts) {
                /* The wall clock stepped back (NTP, an operator): the series stays ordered and
                 * the value is still stored, at the newest timestamp held. Counted; the caller
                 * decides whether to log. The clamp ends once the clock passes latest_ts. */
                ts_us = g->latest_ts;
                g->clamped++;
                r = CACHE_PUSH_CLAMPED;
        }
        if (g->used == 0 || g->chunks[ring_idx(g, g->used - 1)].n >= g->chunk_max)
                chunk_open(g);
        cur = ring_idx(g, g->used - 1);
        h = &g->chunks[cur];
        bitw_init(&w, chunk_data(g, cur), g->chunk_bytes * 8, h->bits);
        sample_encode(g, &w, ts_us, vals);
        if (w.overflow) {
                /* The chunk is full by bytes before its sample cap: seal it at its old length
                 * and write the sample into a fresh one. */
                chunk_open(g);
                cur = ring_idx(g, g->used - 1);
                h = &g->chunks[cur];
                bitw_init(&w, chunk_data(g, cur), g->chunk_bytes * 8, 0);
                sample_encode(g, &w, ts_us, vals);
                if (w.overflow) { /* sizes at group_add make this impossible */
                        g->used--;
                        memset(&g->ts_state, 0, sizeof(g->ts_state));
                        r = -EIO;
                        goto out;
                }
        }
        if (h->n == 0)
                h->first_ts = ts_us;
        h->last_ts = ts_us;
        h->n++;
        h->bits = (uint32_t)w.pos;
        g->samples++;

        for (size_t i = 0; i < g->n; i++) {
                g->latest[i].status = vals[i].status;
                g->latest[i].i = vals[i].status == 0 ? vals[i].i : 0;
        }
        g->latest_ts = ts_us;
        g->any = true;
        group_evict(g, ts_us);
out:
        pthread_mutex_unlock(&g->lock);
        return r;
}

int cache_latest(cache *c, unsigned gpu, uint16_t field_id, field_value *out, int64_t *ts_us)
{
        size_t slot;
        group *g = lookup(c, gpu, field_id, &slot);

        if (!g)
                return -ENOENT;
        if (!out)
                return -EINVAL;
        pthread_mutex_lock(&g->lock);
        *out = g->latest[slot];
        if (ts_us)
                *ts_us = g->any ? g->latest_ts : 0;
        pthread_mutex_unlock(&g->lock);
        return 0;
}

/* Decode one row; fills *ts and the value of field `slot`. */
static void sample_decode(const group *g, bitr *r, codec_state *ts_state, codec_state *st,
                          size_t slot, int64_t *ts, field_value *v)
{
        *ts = codec_get_i64(r, ts_state, true);
        if (bitr_get(r, 1))
                for (size_t i = 0; i < g->n; i++)
                        if (bitr_get(r, 1))
                                st[i].prev_status = (int32_t)(uint32_t)bitr_get(r, 32);
        v->status = st[slot].prev_status;
        v->i = 0;
        for (size_t i = 0; i < g->n; i++) {
                if (st[i].prev_status != 0)
                        continue;
                if (g->flags[i] & FF_F64) {
                        double d = codec_get_f64(r, &st[i]);

                        if (i == slot)
                                v->d = d;
                } else {
                        int64_t x = codec_get_i64(r, &st[i], g->flags[i] & FF_DOD);

                        if (i == slot)
                                v->i = x;
                }
        }
}

static void points_reverse(cache_point *p, size_t a, size_t b)
{
        while (a + 1 < b) {
                cache_point t = p[a];

                p[a] = p[b - 1];
                p[b - 1] = t;
                a++;
                b--;
        }
}

int cache_history(cache *c, unsigned gpu, uint16_t field_id, int64_t since_us, cache_point *out,
                  size_t max, size_t *n_out)
{
        size_t slot, off = 0, k = 0;
        group *g = lookup(c, gpu, field_id, &slot);
        _cleanup_free_ uint8_t *scratch = NULL;
        _cleanup_free_ chunk_hdr *sel = NULL;
        _cleanup_free_ size_t *sel_off = NULL;
        _cleanup_free_ codec_state *st = NULL;
        uint32_t nsel = 0;
        int r = 0;

        if (!g)
                return -ENOENT;
        if (!n_out || (!out && max > 0))
                return -EINVAL;
        if (max == 0) {
                *n_out = 0;
                return 0;
        }
        /* Scratch outside the lock: the ring's size is fixed at group_add. */
        scratch = malloc((size_t)g->n_chunks * g->chunk_bytes);
        sel = malloc(g->n_chunks * sizeof(*sel));
        sel_off = malloc(g->n_chunks * sizeof(*sel_off));
        st = malloc(g->n * sizeof(*st));
        if (!scratch || !sel || !sel_off || !st)
                return -ENOMEM;

        pthread_mutex_lock(&g->lock);
        if (g->any) {
                size_t acc = 0;

                if (g->max_age_us > 0)
                        since_us = MAX(since_us, sub_sat(g->latest_ts, g->max_age_us));
                max = MIN(max, (size_t)g->max_samples);
                /* Newest to oldest: every chunk newer than the last one taken lies wholly at or
                 * after since_us, so stop once the taken ones hold max samples. */
                for (uint32_t j = g->used; j-- > 0;) {
                        const chunk_hdr *h = &g->chunks[ring_idx(g, j)];
                        size_t nb = (h->bits + 7) / 8;

                        if (h->n == 0 || h->last_ts < since_us)
                                break;
                        sel[nsel] = *h;
                        sel_off[nsel] = off;
                        memcpy(scratch + off, chunk_data(g, ring_idx(g, j)), nb);
                        off += nb;
                        nsel++;
                        acc += h->n;
                        if (acc >= max)
                                break;
                }
        }
        pthread_mutex_unlock(&g->lock);

        /* Decode oldest first into out[] used as a ring of max points, then rotate. */
        for (uint32_t s = nsel; s-- > 0 && r == 0;) {
                codec_state ts_state = {0};
                bitr rd;

                memset(st, 0, g->n * sizeof(*st));
                bitr_init(&rd, scratch + sel_off[s], sel[s].bits);
                for (uint32_t j = 0; j < sel[s].n; j++) {
                        cache_point p;

                        sample_decode(g, &rd, &ts_state, st, slot, &p.ts_us, &p.v);
                        if (rd.err) {
                                r = -EIO;
                                break;
                        }
                        if (p.ts_us < since_us)
                                continue;
                        out[k % max] = p;
                        k++;
                }
        }
        if (r < 0)
                return r;
        if (k > max) {
                size_t start = k % max;

                points_reverse(out, 0, start);
                points_reverse(out, start, max);
                points_reverse(out, 0, max);
                k = max;
        }
        *n_out = k;
        return 0;
}

static void group_info_locked(const group *g, cache_group_info *o)
{
        *o = (cache_group_info){
            .gpu = g->gpu,
            .n_fields = g->n,
            .max_samples = g->max_samples,
            .max_age_us = g->max_age_us,
            .chunk_bytes = (uint32_t)g->chunk_bytes,
            .chunk_samples = g->chunk_max,
            .n_chunks = g->n_chunks,
            .chunks_used = g->used,
            .samples = g->samples,
            .bytes = g->bytes,
            .early_evictions = g->early_evictions,
            .clamped_pushes = g->clamped,
        };
        for (uint32_t j = 0; j < g->used; j++)
                o->bytes_used += (g->chunks[ring_idx(g, j)].bits + 7) / 8;
}

int cache_group_info_get(cache *c, int id, cache_group_info *out)
{
        group *g = group_get(c, id);

        if (!g || !out)
                return -EINVAL;
        pthread_mutex_lock(&g->lock);
        group_info_locked(g, out);
        pthread_mutex_unlock(&g->lock);
        return 0;
}

int cache_group_count(cache *c)
{
        return c ? __atomic_load_n(&c->n_groups, __ATOMIC_ACQUIRE) : 0;
}

void cache_get_stats(cache *c, cache_stats *out)
{
        int n = cache_group_count(c);

        *out = (cache_stats){0};
        for (int i = 0; i < n; i++) {
                cache_group_info gi;

                if (cache_group_info_get(c, i, &gi) < 0)
                        continue;
                out->bytes += gi.bytes;
                out->bytes_used += gi.bytes_used;
                out->samples += gi.samples * gi.n_fields;
                out->clamped_pushes += gi.clamped_pushes;
        }
        if (c)
                out->bytes += (uint64_t)c->cap_groups * (sizeof(int32_t) + sizeof(group *));
}
