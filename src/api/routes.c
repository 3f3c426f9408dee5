/* routes.c — the route table (see routes.h). Adding an endpoint is one line here. */
#include "routes.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/macros.h"

/* Every route, one line each. "{x}" matches one path segment and is captured in request.seg.
 * perm is what the caller's role must hold (auth.h); a route without one is admin-only. */
static const route routes[] = {
    {"GET", "/metrics", h_metrics, PERM_METRICS, false},
    {"GET", "/healthz", h_healthz, PERM_OPEN, false},
    {"GET", "/readyz", h_readyz, PERM_OPEN, false},
    {"GET", "/health", h_dcgm_health, PERM_OPEN, false},
    {"GET", "/api/v1/status", h_status, PERM_READ, false},
    {"GET", "/api/v1/gpus", h_gpus, PERM_READ, false},
    {"GET", "/api/v1/gpus/{id}", h_gpu, PERM_READ, false},
    {"GET", "/api/v1/gpus/{id}/history", h_history, PERM_READ, false},
    {"GET", "/api/v1/gpus/{id}/nvlink", h_nvlink, PERM_READ, false},
    {"GET", "/api/v1/gpus/{id}/mig", h_mig, PERM_READ, false},
    {"GET", "/api/v1/gpus/{id}/processes", h_gpu_processes, PERM_READ, false},
    {"GET", "/api/v1/processes", h_processes, PERM_READ, false},
    {"GET", "/api/v1/gpus/{id}/config", h_gpuconfig_get, PERM_READ, false},
    {"POST", "/api/v1/gpus/{id}/config", h_gpuconfig_set, PERM_WRITE, false},
    {"POST", "/api/v1/gpus/{id}/config/restore", h_gpuconfig_restore, PERM_WRITE, false},
    {"GET", "/api/v1/topology", h_topology, PERM_READ, false},
    {"GET", "/api/v1/fields", h_fields, PERM_READ, false},
    {"GET", "/api/v1/anomalies", h_anomalies, PERM_READ, false},
    {"POST", "/api/v1/backup", h_backup_create, PERM_ADMIN, false},
    {"GET", "/api/v1/backups", h_backups, PERM_ADMIN, false},
    {"GET", "/api/v1/keys", h_keys, PERM_ADMIN, false},
    {"POST", "/api/v1/keys/rotate", h_keys_rotate, PERM_ADMIN, false},
    {"POST", "/api/v1/inject", h_inject, PERM_ADMIN, true},
    {"GET", "/api/v1/health", h_health, PERM_READ, false},
    {"GET", "/api/v1/incidents", h_incidents, PERM_READ, false},
    {"POST", "/api/v1/incidents/{id}/ack", h_incident_ack, PERM_WRITE, false},
    {"GET", "/api/v1/incidents/{id}/actions", h_incident_actions, PERM_READ, false},
    {"GET", "/api/v1/audit", h_audit, PERM_ADMIN, false},
    {"GET", "/api/v1/audit/verify", h_audit_verify, PERM_ADMIN, false},
    {"GET", "/api/v1/config", h_config, PERM_ADMIN, false},
    {"POST", "/api/v1/config/reload", h_config_reload, PERM_ADMIN, false},
    {"POST", "/api/v1/tokens/revoke", h_token_revoke, PERM_ADMIN, false},
    {"POST", "/api/v1/diag", h_diag_start, PERM_EXECUTE, false},
    {"GET", "/api/v1/diag", h_diag_list, PERM_READ, false},
    {"GET", "/api/v1/diag/{id}", h_diag_get, PERM_READ, false},
    {"DELETE", "/api/v1/diag/{id}", h_diag_cancel, PERM_EXECUTE, false},
    {"POST", "/api/v1/jobs", h_job_start, PERM_WRITE, false},
    {"GET", "/api/v1/jobs", h_jobs_list, PERM_READ, false},
    {"GET", "/api/v1/jobs/{id}", h_job_get, PERM_READ, false},
    {"POST", "/api/v1/jobs/{id}/stop", h_job_stop, PERM_WRITE, false},
};

/* Match path against pattern; captures go to r->seg. Segments are compared without copying. */
static bool route_match(const char *pattern, const char *path, request *r)
{
        const char *p = pattern, *s = path;

        r->n_seg = 0;
        while (*p && *s) {
                if (*p != '/' || *s != '/')
                        return false;
                p++;
                s++;
                const char *pe = strchrnul(p, '/'), *se = strchrnul(s, '/');
                if (*p == '{') {
                        if (se == s || r->n_seg >= API_MAX_SEGMENTS)
                                return false;
                        r->seg[r->n_seg++] = s; /* terminated at '/' by routes_find */
                } else if ((size_t)(pe - p) != (size_t)(se - s) || strncmp(p, s, pe - p) != 0) {
                        return false;
                }
                p = pe;
                s = se;
        }
        return *p == '\0' && (*s == '\0' || (s[0] == '/' && s[1] == '\0'));
}

static bool method_is(const char *method, const char *route_method)
{
        return !strcmp(method, route_method) ||
               (!strcmp(method, "HEAD") && !strcmp(route_method, "GET"));
}

const route *routes_find(const char *method, char *path, request *r, bool *path_known, char *allow,
                         size_t allowlen)
{
        *path_known = false;
        if (allowlen)
                allow[0] = '\0';
        for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
                if (!route_match(routes[i].pattern, path, r))
                        continue;
                *path_known = true;
                if (!method_is(method, routes[i].method)) {
                        size_t n = strlen(allow);
                        snprintf(allow + n, allowlen - n, "%s%s", n ? ", " : "", routes[i].method);
                        continue;
                }
                /* cut captured segments at their '/' */
                for (size_t k = 0; k < r->n_seg; k++) {
                        char *sl = strchr((char *)r->seg[k], '/');
                        if (sl)
                                *sl = '\0';
                }
                return &routes[i];
        }
        return NULL;
}

int api_route_perm(const char *method, const char *path)
{
        request r = {0};
        bool known = false;

        if (strlen(path) >= 1024)
                return -ENAMETOOLONG;
        for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
                if (!route_match(routes[i].pattern, path, &r))
                        continue;
                known = true;
                if (method_is(method, routes[i].method))
                        return routes[i].perm;
        }
        return known ? -EPERM : -ENOENT;
}
