/* plan.h — one configuration turned into every module's new state, before anything runs with
 * it: the validation that a start, --check-config and a reload share. plan_prepare does all that
 * can fail (reads the web-config, key, certificate and counters CSV files, checks the log
 * directory, points the health engine's configuration at its policies and alert targets) and touches nothing that
 * runs, binds no socket and writes nothing. A start then builds the modules from the plan; a
 * reload commits it to the running modules (main.c). Main thread only. */
#ifndef VIGIL_DAEMON_PLAN_H
#define VIGIL_DAEMON_PLAN_H

#include <stdbool.h>
#include <stddef.h>

#include "api/counters.h"
#include "common/log.h"
#include "config.h"
#include "health/health_config.h"
#include "security.h"

typedef struct config_plan {
        log_options log;            /* logging: sinks (points into the config) */
        security_plan sec;          /* security: gate options, TLS, web-config */
        health_config health;       /* health: the table's health_config, with policies, webhooks
                                  (borrowed from the config) and Alertmanagers (owned: am) */
        char **am;                  /* alerting.alertmanagers split; owned */
        health_label *alert_labels; /* alerting.labels as the health module's struct; owned
                                       array, strings borrowed from the config */
        counter_set *counters;      /* metrics.counters_csv parsed; NULL = none; owned */
} config_plan;

/* Prepare c (which must outlive the plan). simulate: the process runs on the fake NVML;
 * tls_running: a TLS context exists (a reload). 0, or -errno with the reason in err, the same
 * text a start would refuse with; *p is then released. */
int plan_prepare(const vigil_config *c, bool simulate, bool tls_running, config_plan *p, char *err,
                 size_t errlen);
void plan_release(config_plan *p);

#endif
