/* cache.h — recent history of every watched (GPU, field): compressed chunks in a fixed ring per
 * group of fields sampled together, plus the latest value of each in a fixed slot. It is not the
 * sampler (engine/) and not durable storage (store/); it forgets on restart.
 *
 * Threads: cache_new/cache_free by the owner while no one else uses the cache. cache_group_add
 * is serialised by a cache-wide mutex (startup, GPU attach) and may run while other groups are
 * pushed and read. Pushes to different groups run concurrently (one lock per group); a group
 * should have one writer. Reads (latest, history, stats) may come from any thread at any time;
 * they copy out under the group lock, no pointer into a ring is ever returned.
 *
 * Memory: everything a group needs is reserved (and touched) by cache_group_add; cache_group_push
 * never allocates. cache_history allocates a scratch copy of the chunks it decodes.
 *
 * Retention: eviction drops whole chunks (about max_samples/8 samples each). At least max_samples
 * samples are kept while the data compresses to the reserved budget (24 bits per value, 16 per
 * timestamp on average, ~3x what the H200 trace needs); less compressible data keeps fewer and is
 * counted in cache_group_info.early_evictions. Queries are exact anyway: history never returns
 * more than max_samples points, nor points older than (newest timestamp - max_age). See
 * docs/internals/cache.md. */
#ifndef VIGIL_CACHE_CACHE_H
#define VIGIL_CACHE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "fields/fields.h"

#define CACHE_MAX_GPUS         4096       /* max_gpus accepted by cache_new */
#define CACHE_GROUP_MAX_FIELDS 1024       /* fields per group */
#define CACHE_MAX_SAMPLES      (1u << 24) /* max_samples per group */

typedef struct cache cache;

/* max_gpus: GPU slots (indices 0..max_gpus-1), 1..CACHE_MAX_GPUS.
 * Returns 0 and sets *ret (caller owns it: cache_free), or -EINVAL / -ENOMEM. */
int cache_new(unsigned max_gpus, cache **ret);
/* NULL ok; returns NULL. No other thread may use the cache any more. */
cache *cache_free(cache *c);

/* A group = fields of one GPU sampled together at one cadence; they share one timestamp stream.
 * Types come from the field catalog (FT_I64 or FT_F64; FT_STR is -EINVAL). Memory for
 * max_samples (1..CACHE_MAX_SAMPLES) is reserved here: pushes never allocate. max_age_us: 0 = no
 * age limit. Returns the group id (>= 0), or -EINVAL (bad gpu, empty/duplicate/unknown field,
 * bad limits), -ENOMEM, -EEXIST (a field is already in a group of that gpu). */
int cache_group_add(cache *c, unsigned gpu, const uint16_t *field_ids, size_t n,
                    uint32_t max_samples, int64_t max_age_us);

/* Append one sample per field (vals[n], group order) at ts_us (usec since epoch). Timestamps are
 * non-decreasing per group: a ts older than the group's newest (the wall clock stepped back) is
 * stored at the newest one instead, counted in clamped_pushes, and CACHE_PUSH_CLAMPED is returned
 * so that the caller can report the step; the value is never dropped. A value whose status != 0
 * is not stored (it reads back as 0 with that status). Updates the latest table. Never
 * allocates, holds only the group lock. Returns 0, CACHE_PUSH_CLAMPED (1), -EINVAL (bad group)
 * or -EIO (internal: a sample larger than a chunk; cannot happen with the sizes chosen at
 * group_add). */
#define CACHE_PUSH_CLAMPED 1
int cache_group_push(cache *c, int group, int64_t ts_us, const field_value *vals);

/* Latest value. Returns 0 and fills *out (status -ENODATA before the first sample), or -ENOENT
 * when (gpu, field) is not watched. ts_us (usec since epoch, 0 before the first sample) may be
 * NULL. */
int cache_latest(cache *c, unsigned gpu, uint16_t field_id, field_value *out, int64_t *ts_us);

typedef struct cache_point {
        int64_t ts_us; /* usec since epoch */
        field_value v; /* status 0: value valid; else -errno and value 0 */
} cache_point;

/* Points with ts >= since_us, oldest first, at most max (if more exist, the NEWEST max).
 * *n_out = count. Points whose status != 0 are included with their status. Returns 0, -ENOENT
 * if not watched, -EINVAL (out NULL with max > 0), -ENOMEM (scratch), -EIO (corrupt chunk). */
int cache_history(cache *c, unsigned gpu, uint16_t field_id, int64_t since_us, cache_point *out,
                  size_t max, size_t *n_out);

typedef struct cache_stats {
        uint64_t bytes;          /* memory reserved for series (bytes) */
        uint64_t bytes_used;     /* compressed bytes in use (bytes) */
        uint64_t samples;        /* values held (count) */
        uint64_t clamped_pushes; /* pushes whose ts went back and was clamped (count) */
} cache_stats;

void cache_get_stats(cache *c, cache_stats *out);

typedef struct cache_group_info {
        unsigned gpu;             /* GPU slot */
        size_t n_fields;          /* fields in the group */
        uint32_t max_samples;     /* samples */
        int64_t max_age_us;       /* usec, 0 = none */
        uint32_t chunk_bytes;     /* bytes per chunk */
        uint32_t chunk_samples;   /* samples per chunk at most */
        uint32_t n_chunks;        /* chunks in the ring */
        uint32_t chunks_used;     /* live chunks */
        uint64_t samples;         /* samples (rows) held */
        uint64_t bytes;           /* reserved bytes: chunks, headers, state, latest table */
        uint64_t bytes_used;      /* encoded bytes in live chunks */
        uint64_t early_evictions; /* chunks dropped for lack of room before max_samples was held */
        uint64_t clamped_pushes;  /* pushes older than the newest sample, stored at its ts */
} cache_group_info;

/* Returns 0 or -EINVAL (no such group). */
int cache_group_info_get(cache *c, int group, cache_group_info *out);
/* Number of groups added so far; ids are 0..n-1. */
int cache_group_count(cache *c);

#endif
