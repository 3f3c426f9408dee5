/* routes.h — the route table: every endpoint, one line each (routes.c), with the permission its
 * caller's role must hold (security/auth.h). The server dispatches through it; the table is the
 * only file that names the handlers. */
#ifndef VIGIL_API_ROUTES_H
#define VIGIL_API_ROUTES_H

#include <stdbool.h>
#include <stddef.h>

#include "api-internal.h"

typedef enum MHD_Result (*handler_fn)(request *r);

typedef struct route {
        const char *method;  /* "GET" (also answers HEAD) or "POST" */
        const char *pattern; /* "/api/v1/gpus/{id}": "{x}" captures one segment */
        handler_fn fn;       /* the handler */
        enum auth_perm perm; /* what the caller's role must hold */
        bool is_inject;      /* POST /api/v1/inject: simulated GPUs only (auth_decide) */
} route;

/* Find the route for method and path (a writable copy: captured segments are cut at their '/'
 * and stored in r->seg). NULL when none: *path_known says whether another method would match,
 * and allow (allowlen bytes) lists those methods for a 405's Allow header. */
const route *routes_find(const char *method, char *path, request *r, bool *path_known, char *allow,
                         size_t allowlen);

/* The permission of the route for method+path: >= 0 (enum auth_perm), -ENOENT unknown path,
 * -EPERM known path with another method. For the RBAC matrix test. */
int api_route_perm(const char *method, const char *path);

#endif
