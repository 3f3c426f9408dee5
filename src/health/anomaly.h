/* anomaly.h — GPU anomaly detection. Two detectors over the fast tier's readings:
 *   baseline: per GPU and field, a learned EWMA mean and variance (time constant `window`); a
 *             reading beyond k sigma for `sustain` opens an anomaly, back within k for half of
 *             `sustain` closes it. Nothing is judged before `min_samples` readings. Baselines are
 *             persisted (DATA_DIR/baselines.json, keyed by GPU UUID) so a restart keeps them.
 *   peer:     per field (temperature, power, memory temperature), each GPU against the GPUs of
 *             the same node at similar utilization (within ±band/2 points): a reading further
 *             than peer_k robust sigmas (1.4826 × MAD) from their median, for `sustain`, is a
 *             cooling or power-delivery suspect.
 * It is not the health engine: it opens no incident. The health engine subscribes with
 * anomaly_set_listener() and decides what an anomaly means.
 *
 * Threads: anomaly_update()/anomaly_eval() run on the fast sampling thread (no allocation);
 * the getters copy out under a lock and may run on any thread; the listener is called on the
 * sampling thread, outside the lock, and must not block. */
#ifndef VIGIL_HEALTH_ANOMALY_H
#define VIGIL_HEALTH_ANOMALY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"
#include "sampler/sampler.h"

#define ANOMALY_MAX_GPUS   64
#define ANOMALY_MAX_FIELDS 8

typedef struct anomaly anomaly;

enum anomaly_kind {
        ANOMALY_BASELINE = 0, /* against the GPU's own learned baseline */
        ANOMALY_PEER = 1,     /* against the other GPUs of the node */
};

typedef struct anomaly_options {
        bool enabled;           /* false: anomaly_eval does nothing */
        double k;               /* sigmas from the baseline */
        int64_t sustain_us;     /* usec a deviation must last to open */
        int64_t window_us;      /* usec; EWMA time constant */
        unsigned min_samples;   /* readings learned before judging */
        bool peer_enabled;      /* run the peer detector */
        double peer_k;          /* robust sigmas from the peers' median */
        unsigned peer_min_gpus; /* GPUs (itself included) needed to compare */
        unsigned peer_band;     /* utilization band, percent points */
        const uint16_t *fields; /* DCGM ids watched (copied; at most ANOMALY_MAX_FIELDS) */
        size_t n_fields;
        const char *state_path; /* baselines file; NULL = not persisted (copied) */
        int64_t persist_us;     /* usec between saves from anomaly_maybe_save */
} anomaly_options;

/* Given to the listener when an anomaly opens or closes. Pointers live for the call only. */
typedef struct anomaly_event {
        bool open;              /* true: opened; false: closed */
        enum anomaly_kind kind; /* detector */
        unsigned gpu;           /* index */
        const char *uuid;       /* GPU UUID */
        uint16_t field_id;      /* DCGM id */
        const char *field;      /* DCGM name ("GPU_TEMP") */
        double value;           /* the reading, field's stored unit */
        double expected;        /* baseline mean, or the peers' median */
        double score;           /* sigmas (baseline) or robust sigmas (peer), signed */
        int64_t since_us;       /* usec since epoch the deviation began */
} anomaly_event;

typedef void (*anomaly_listener)(void *userdata, const anomaly_event *ev);

/* One (GPU, field, kind) for /metrics and GET /api/v1/anomalies. */
typedef struct anomaly_state {
        unsigned gpu;
        char uuid[96];
        uint16_t field_id;
        const char *field; /* static */
        enum anomaly_kind kind;
        bool active;      /* open now */
        bool learned;     /* baseline: min_samples reached; peer: compared last sweep */
        double value;     /* last reading */
        double expected;  /* mean or median */
        double spread;    /* baseline sigma, or the peers' robust sigma */
        double score;     /* signed */
        uint64_t samples; /* baseline: readings learned */
        int64_t since_us; /* open since (usec since epoch), 0 when not active */
} anomaly_state;

/* Input of one sweep for one GPU. */
typedef struct anomaly_sample {
        bool up;                      /* false: skipped */
        const char *uuid;             /* identity, for persistence */
        double v[ANOMALY_MAX_FIELDS]; /* per options.fields; NAN = no reading */
        double util;                  /* GPU utilization percent; NAN = unknown */
} anomaly_sample;

/* Caller owns *ret. -EINVAL on bad options (k <= 0, too many fields, unknown field id). */
int anomaly_new(const anomaly_options *o, anomaly **ret);
anomaly *anomaly_free(anomaly *a);
/* At most one listener; fn NULL removes it. Any thread. */
void anomaly_set_listener(anomaly *a, anomaly_listener fn, void *userdata);

/* Feed one sweep (n GPUs, index = position) taken at now_us (usec since epoch). */
void anomaly_update(anomaly *a, const anomaly_sample *s, unsigned n, int64_t now_us);
/* Read the latest fast-tier values of every GPU from the cache and anomaly_update(). */
void anomaly_eval(anomaly *a, sampler *e, cache *c);

/* Baselines to/from state_path. load: 0, -ENOENT (no file: start fresh) or -errno/-EINVAL
 * (bad file: ignored, start fresh). Loaded baselines apply when a GPU of that UUID is first
 * seen. save writes a temp file, fsyncs and renames it over the old one. */
int anomaly_load(anomaly *a);
int anomaly_save(anomaly *a);
/* Save when persist_us passed since the last save. Call from a thread that may block briefly. */
void anomaly_maybe_save(anomaly *a);

/* Copy out every state (GPUs seen × fields × kinds). Returns how many were written. */
size_t anomaly_states(anomaly *a, anomaly_state *out, size_t max);
/* Anomalies open now. */
unsigned anomaly_active_count(anomaly *a);

#endif
