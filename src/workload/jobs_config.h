/* jobs_config.h — the workload.jobs options (docs/configuration.md), filled by the daemon's
 * option table and handed to jobs_new / jobs_set_limits. Both keys apply on reload. */
#ifndef VIGIL_WORKLOAD_JOBS_CONFIG_H
#define VIGIL_WORKLOAD_JOBS_CONFIG_H

#include <stdint.h>

typedef struct jobs_config {
        int64_t grace_us;     /* usec an automatic job may go unseen before it ends */
        int64_t retention_us; /* usec a finished job is kept in the store */
} jobs_config;

#endif
