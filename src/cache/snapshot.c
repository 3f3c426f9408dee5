/* snapshot.c — reference-counted immutable buffers and their publishing slot (snapshot.h). */
#include "snapshot.h"

#include <errno.h>
#include <stdlib.h>

#include "common/macros.h"

struct snapshot {
        unsigned refs; /* references (atomic) */
        char *data;    /* owned bytes */
        size_t len;    /* bytes */
        int64_t ts;    /* usec since epoch */
};

int snapshot_new(char *data, size_t len, int64_t ts_us, snapshot **ret)
{
        snapshot *s;

        if (!ret || (!data && len > 0)) {
                free(data);
                return -EINVAL;
        }
        s = malloc(sizeof(*s));
        if (!s) {
                free(data);
                return -ENOMEM;
        }
        *s = (snapshot){.refs = 1, .data = data, .len = len, .ts = ts_us};
        *ret = s;
        return 0;
}

snapshot *snapshot_ref(snapshot *s)
{
        if (s)
                __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
        return s;
}

void snapshot_unref(snapshot *s)
{
        if (!s)
                return;
        /* acq_rel: the last owner sees every other owner's reads finished before it frees. */
        if (__atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
                return;
        free(s->data);
        free(s);
}

const char *snapshot_data(const snapshot *s)
{
        return s->data;
}

size_t snapshot_len(const snapshot *s)
{
        return s->len;
}

int64_t snapshot_ts(const snapshot *s)
{
        return s->ts;
}

void snapshot_slot_init(snapshot_slot *slot)
{
        pthread_mutex_init(&slot->lock, NULL);
        slot->cur = NULL;
}

void snapshot_slot_release(snapshot_slot *slot)
{
        snapshot_unref(slot->cur);
        slot->cur = NULL;
        pthread_mutex_destroy(&slot->lock);
}

void snapshot_slot_publish(snapshot_slot *slot, snapshot *s)
{
        snapshot *old;

        pthread_mutex_lock(&slot->lock);
        old = slot->cur;
        slot->cur = s;
        pthread_mutex_unlock(&slot->lock);
        snapshot_unref(old); /* outside the lock: freeing a large body must not stall readers */
}

snapshot *snapshot_slot_get(snapshot_slot *slot)
{
        snapshot *s;

        pthread_mutex_lock(&slot->lock);
        s = snapshot_ref(slot->cur);
        pthread_mutex_unlock(&slot->lock);
        return s;
}
