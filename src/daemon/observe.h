/* observe.h — vigild's glue for logging sinks and anomaly detection: turns the logging: and
 * anomaly: sections of the configuration into log_configure() and anomaly_new() calls, so main.c
 * only hooks them in. */
#ifndef VIGIL_DAEMON_OBSERVE_H
#define VIGIL_DAEMON_OBSERVE_H

#include <stddef.h>

#include "common/log.h"
#include "config.h"
#include "health/anomaly.h"

/* logging.* as log_options (pointing into c), with what log_configure needs checked without
 * creating anything: the file's directory exists and the file is writable. 0 or -errno with
 * the reason in err. */
int observe_log_prepare(const vigil_config *c, log_options *o, char *err, size_t errlen);
/* Apply logging.* (level, format, file, syslog, rate limit). 0 or -errno with the reason in err;
 * on failure the running sinks stay. */
int observe_log_apply(const vigil_config *c, char *err, size_t errlen);

/* The anomaly detector for anomaly.* with baselines in DATA_DIR/baselines.json (loaded now).
 * NULL when anomaly.enabled is false or on failure (logged). Caller owns the result. */
anomaly *observe_anomaly_new(const vigil_config *c);

#endif
