/* selfmetrics.h — Vigil watching itself: the logger's counters, NVML calls and their time per
 * function, the process (CPU seconds, RSS, open fds from /proc), HTTP requests by route and code
 * with a latency histogram, adaptive collection and the anomaly gauges. Rendered into /metrics
 * once per sweep and shown in GET /api/v1/status ("self"). docs/self-monitoring.md lists them. */
#ifndef VIGIL_API_SELFMETRICS_H
#define VIGIL_API_SELFMETRICS_H

#include <stdbool.h>

#include <jansson.h>

#include "api-internal.h"
#include "common/buf.h"

/* Count one answered request. route: the matched pattern ("/api/v1/gpus/{id}"), a static
 * string, or NULL for an unknown path; code: the HTTP status; seconds: time in the handler.
 * Any HTTP thread; no allocation (a fixed table; routes past it are counted as "other"). */
void selfmetrics_http_observe(const char *route, unsigned code, double seconds);

/* Append the self-monitoring families to b (text 0.0.4, or OpenMetrics when om). */
void selfmetrics_render(api *a, buf *b, bool om);

/* The same figures as a JSON object for /api/v1/status. Caller owns the result. */
json_t *selfmetrics_json(api *a);

#endif
