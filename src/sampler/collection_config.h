/* collection_config.h — the sampler's own configuration: the collection: section of vigil.yaml
 * (tiers, per-field intervals, retention, adaptive stretching) as the daemon's option table
 * (src/daemon/config.c) writes it; vigild turns it into sampler_options at start (the keys are
 * restart-only). The fields array is owned by whoever owns the struct. Plain data. */
#ifndef VIGIL_SAMPLER_COLLECTION_CONFIG_H
#define VIGIL_SAMPLER_COLLECTION_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One collection.fields entry. */
typedef struct collection_field {
        uint16_t field_id;   /* DCGM field id (fields.def) */
        int64_t interval_us; /* usec between samples; 0 = field disabled ("off") */
} collection_field;

typedef struct collection_config {
        int64_t fast_us;             /* usec; fast tier period (100ms..60s) */
        int64_t slow_us;             /* usec; slow tier period (5s..1h) */
        collection_field *fields;    /* per-field overrides, in file order */
        size_t n_fields;             /* entries in fields */
        int64_t max_age_us;          /* usec; cache keeps samples this long (1s..30d) */
        unsigned max_samples;        /* samples; cache cap per series (1..1000000) */
        bool adaptive_enabled;       /* stretch a tier's interval when sweeps cost too much */
        double adaptive_max_share;   /* of the interval a sweep may take (0.05..1) */
        double adaptive_max_stretch; /* times the configured interval, at most (1..100) */
        unsigned profiling;          /* 0 "auto": profiling fields read while wanted; 1 "all" */
} collection_config;

#endif
