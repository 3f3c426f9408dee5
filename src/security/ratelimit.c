/* ratelimit.c — fixed-size token-bucket table. Tokens are kept in micro-tokens (1e6 per request)
 * as integers so refill has no rounding drift. Lookup is open addressing over an FNV-1a hash with
 * a short probe; a miss evicts the least recently seen slot of the probe window. */
#include "ratelimit.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sparse.h"

#define PROBE  16
#define MICRO  1000000LL /* micro-tokens per token */
#define USEC_S 1000000LL

struct slot {
        char key[RATELIMIT_KEY_MAX]; /* "" = free */
        int64_t tokens;              /* micro-tokens available at last_us */
        int64_t last_us;             /* usec, monotonic: last refill */
};

struct ratelimit {
        pthread_mutex_t lock;
        unsigned per_minute; /* refill, tokens per minute */
        unsigned burst;      /* bucket size, tokens */
        struct slot s[RATELIMIT_SLOTS];
};

int ratelimit_new(unsigned per_minute, unsigned burst, ratelimit **ret)
{
        ratelimit *rl;

        if (per_minute == 0 || burst == 0)
                return -EINVAL;
        rl = sparse_zalloc(sizeof(*rl)); /* slots: written per client */
        if (!rl)
                return -ENOMEM;
        pthread_mutex_init(&rl->lock, NULL);
        rl->per_minute = per_minute;
        rl->burst = burst;
        *ret = rl;
        return 0;
}

ratelimit *ratelimit_free(ratelimit *rl)
{
        if (rl) {
                pthread_mutex_destroy(&rl->lock);
                sparse_free(rl, sizeof(*rl));
        }
        return NULL;
}

void ratelimit_set(ratelimit *rl, unsigned per_minute, unsigned burst)
{
        if (!per_minute || !burst)
                return;
        pthread_mutex_lock(&rl->lock);
        rl->per_minute = per_minute;
        rl->burst = burst;
        for (size_t i = 0; i < RATELIMIT_SLOTS; i++)
                if (rl->s[i].tokens > (int64_t)burst * MICRO)
                        rl->s[i].tokens = (int64_t)burst * MICRO;
        pthread_mutex_unlock(&rl->lock);
}

static uint32_t fnv1a(const char *s)
{
        uint32_t h = 2166136261u;

        for (; *s; s++)
                h = (h ^ (uint8_t)*s) * 16777619u;
        return h;
}

bool ratelimit_take(ratelimit *rl, const char *key, int64_t now_us, unsigned *retry_after_s)
{
        char k[RATELIMIT_KEY_MAX];
        struct slot *hit = NULL, *victim = NULL;
        uint32_t h;
        bool ok;

        snprintf(k, sizeof(k), "%s", key && *key ? key : "-");
        h = fnv1a(k);
        pthread_mutex_lock(&rl->lock);
        for (unsigned i = 0; i < PROBE; i++) {
                struct slot *s = &rl->s[(h + i) % RATELIMIT_SLOTS];
                if (!strcmp(s->key, k)) {
                        hit = s;
                        break;
                }
                if (!victim || (victim->key[0] && (!s->key[0] || s->last_us < victim->last_us)))
                        victim = s;
        }
        if (!hit) {
                hit = victim;
                memcpy(hit->key, k, sizeof(k));
                hit->tokens = (int64_t)rl->burst * MICRO;
                hit->last_us = now_us;
        }
        if (now_us > hit->last_us) {
                /* refill: per_minute tokens per 60 s, in micro-tokens per usec */
                int64_t add = (now_us - hit->last_us) * (int64_t)rl->per_minute / 60;
                hit->tokens += add;
                if (hit->tokens > (int64_t)rl->burst * MICRO)
                        hit->tokens = (int64_t)rl->burst * MICRO;
                hit->last_us = now_us;
        }
        ok = hit->tokens >= MICRO;
        if (ok) {
                hit->tokens -= MICRO;
        } else if (retry_after_s) {
                int64_t need = MICRO - hit->tokens; /* micro-tokens */
                int64_t us = need * 60 / (int64_t)rl->per_minute;
                *retry_after_s = (unsigned)((us + USEC_S - 1) / USEC_S);
                if (*retry_after_s == 0)
                        *retry_after_s = 1;
        }
        pthread_mutex_unlock(&rl->lock);
        return ok;
}
