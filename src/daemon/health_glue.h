/* health_glue.h — build the health engine's configuration from the daemon's. The glue owns the
 * arrays health_config points at; release it after health_new/health_reconfigure copied them. */
#ifndef VIGIL_DAEMON_HEALTH_GLUE_H
#define VIGIL_DAEMON_HEALTH_GLUE_H

#include "common/vtime.h"
#include "config.h"
#include "health/health.h"

typedef struct health_glue {
        health_config cfg;       /* points into the arrays below */
        health_policy *policies; /* owned */
        char **am;               /* owned Alertmanager URLs */
        size_t n_am;
        health_webhook *webhooks; /* owned */
} health_glue;

/* 0 or -ENOMEM (g is then released). */
int health_glue_build(const vigil_config *c, health_glue *g);
void health_glue_release(health_glue *g);

#endif
