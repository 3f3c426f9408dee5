/* snapshot.h — an immutable, reference-counted byte buffer (the rendered /metrics body) and a
 * slot that publishes the newest one. The sampler renders once per sweep and publishes; HTTP
 * threads take a reference and serve the bytes (copy or zero-copy) without holding any lock.
 * It is not the renderer (api/) and it does not know what the bytes mean.
 *
 * Threads: any. A snapshot's bytes never change after snapshot_new; references may be taken
 * and dropped from any thread (atomic count). The slot's lock is held only to swap or to take a
 * reference, never while copying or freeing. */
#ifndef VIGIL_CACHE_SNAPSHOT_H
#define VIGIL_CACHE_SNAPSHOT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef struct snapshot snapshot;

/* Wrap data[0..len) (malloc'd; ownership passes to the snapshot in every case, also on failure,
 * where it is freed). data may be NULL only when len is 0. ts_us: usec since epoch of the data.
 * Returns 0 and *ret holding one reference, or -EINVAL / -ENOMEM. */
int snapshot_new(char *data, size_t len, int64_t ts_us, snapshot **ret);
/* Take another reference; returns s. NULL ok. */
snapshot *snapshot_ref(snapshot *s);
/* Drop one reference; frees the snapshot and its data at zero. NULL ok. */
void snapshot_unref(snapshot *s);

/* Valid while the caller holds a reference. */
const char *snapshot_data(const snapshot *s);
size_t snapshot_len(const snapshot *s);
int64_t snapshot_ts(const snapshot *s);

typedef struct snapshot_slot {
        pthread_mutex_t lock; /* guards cur; held only to swap or ref */
        snapshot *cur;        /* newest published snapshot (one reference), or NULL */
} snapshot_slot;

void snapshot_slot_init(snapshot_slot *slot);
/* Drop the published snapshot; no other thread may use the slot any more. */
void snapshot_slot_release(snapshot_slot *slot);
/* Publish s, taking over the caller's reference (s may be NULL to clear); drops the old one. */
void snapshot_slot_publish(snapshot_slot *slot, snapshot *s);
/* A new reference to the newest snapshot (caller unrefs), or NULL when none was published. */
snapshot *snapshot_slot_get(snapshot_slot *slot);

#endif
