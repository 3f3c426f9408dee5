/* test_rbac.c — the route × role matrix, cell by cell, against server.c's ONE route table and
 * auth_decide: every route, every principal (none, viewer, operator, admin, on TCP with
 * authentication; anonymous TCP without it; unix-socket viewer and admin). Unknown routes are
 * 404 for everyone. Add a row here with every route added to server.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api/routes.h"
#include "security/auth.h"

enum col { NONE, VIEWER, OPERATOR, ADMIN, ANON_NOAUTH, UNIX_VIEWER, UNIX_ADMIN, N_COLS };

static const struct {
        const char *method, *path;
        int want[N_COLS]; /* status per column: 0 = allowed */
} matrix[] = {
    /*                                         none viewer oper admin anon  uxV  uxA */
    {"GET", "/metrics", {0, 0, 0, 0, 0, 0, 0}},
    {"GET", "/healthz", {0, 0, 0, 0, 0, 0, 0}},
    {"GET", "/readyz", {0, 0, 0, 0, 0, 0, 0}},
    {"GET", "/api/v1/status", {401, 0, 0, 0, 0, 0, 0}},
    {"GET", "/api/v1/gpus", {401, 0, 0, 0, 0, 0, 0}},
    {"GET", "/api/v1/gpus/0", {401, 0, 0, 0, 0, 0, 0}},
    {"GET", "/api/v1/gpus/0/history", {401, 0, 0, 0, 0, 0, 0}},
    {"GET", "/api/v1/fields", {401, 0, 0, 0, 0, 0, 0}},
    {"POST", "/api/v1/inject", {401, 403, 403, 0, 403, 403, 0}},
    {"GET", "/api/v1/anomalies", {401, 0, 0, 0, 0, 0, 0}},
    {"GET", "/api/v1/health", {401, 0, 0, 0, 0, 0, 0}},
    {"GET", "/api/v1/incidents", {401, 0, 0, 0, 0, 0, 0}},
    {"POST", "/api/v1/incidents/7/ack", {401, 403, 0, 0, 403, 403, 0}},
    {"POST", "/api/v1/backup", {401, 403, 403, 0, 403, 403, 0}},
    {"GET", "/api/v1/backups", {401, 403, 403, 0, 403, 403, 0}},
    {"GET", "/api/v1/keys", {401, 403, 403, 0, 403, 403, 0}},
    {"POST", "/api/v1/keys/rotate", {401, 403, 403, 0, 403, 403, 0}},
    {"GET", "/api/v1/audit", {401, 403, 403, 0, 403, 403, 0}},
    {"GET", "/api/v1/audit/verify", {401, 403, 403, 0, 403, 403, 0}},
    {"GET", "/api/v1/config", {401, 403, 403, 0, 403, 403, 0}},
    {"POST", "/api/v1/config/reload", {401, 403, 403, 0, 403, 403, 0}},
    {"POST", "/api/v1/tokens/revoke", {401, 403, 403, 0, 403, 403, 0}},
};

static auth_policy policy(bool authn)
{
        auth_policy p = {.authn = authn, .authz = true, .metrics_public = true};

        assert_int_equal(auth_perm_mask("read", &p.roles.mask[ROLE_VIEWER]), 0);
        assert_int_equal(auth_perm_mask("read,write,execute", &p.roles.mask[ROLE_OPERATOR]), 0);
        assert_int_equal(auth_perm_mask("*", &p.roles.mask[ROLE_ADMIN]), 0);
        return p;
}

static int cell(const char *method, const char *path, enum col c)
{
        int perm = api_route_perm(method, path);
        auth_policy on = policy(true), off = policy(false);
        bool inject = !strcmp(path, "/api/v1/inject");

        assert_true(perm >= 0);
        switch (c) {
        case NONE:
                return auth_decide(&on, AUTH_TCP, ROLE_NONE, false, perm, inject);
        case VIEWER:
                return auth_decide(&on, AUTH_TCP, ROLE_VIEWER, true, perm, inject);
        case OPERATOR:
                return auth_decide(&on, AUTH_TCP, ROLE_OPERATOR, true, perm, inject);
        case ADMIN:
                return auth_decide(&on, AUTH_TCP, ROLE_ADMIN, true, perm, inject);
        case ANON_NOAUTH:
                return auth_decide(&off, AUTH_TCP, ROLE_NONE, false, perm, inject);
        case UNIX_VIEWER:
                return auth_decide(&off, AUTH_UNIX, ROLE_VIEWER, true, perm, inject);
        case UNIX_ADMIN:
                return auth_decide(&off, AUTH_UNIX, ROLE_ADMIN, true, perm, inject);
        default:
                return -1;
        }
}

static void t_matrix(void **state)
{
        static const char *const cols[] = {"none",        "viewer",      "operator",  "admin",
                                           "anon-noauth", "unix-viewer", "unix-admin"};
        (void)state;
        for (size_t i = 0; i < sizeof(matrix) / sizeof(matrix[0]); i++)
                for (int c = 0; c < N_COLS; c++) {
                        int got = cell(matrix[i].method, matrix[i].path, (enum col)c);
                        if (got != matrix[i].want[c])
                                fail_msg("%s %s as %s: got %d, want %d", matrix[i].method,
                                         matrix[i].path, cols[c], got, matrix[i].want[c]);
                }
}

static void t_special_cases(void **state)
{
        auth_policy off = policy(false), on = policy(true);
        int perm = api_route_perm("POST", "/api/v1/inject");

        (void)state;
        /* --simulate without security: inject stays open on TCP, other mutations do not */
        off.inject_open = true;
        assert_int_equal(auth_decide(&off, AUTH_TCP, ROLE_NONE, false, perm, true), 0);
        assert_int_equal(auth_decide(&off, AUTH_TCP, ROLE_NONE, false,
                                     api_route_perm("POST", "/api/v1/config/reload"), false),
                         403);
        /* metrics_public: false → /metrics needs read */
        on.metrics_public = false;
        assert_int_equal(auth_decide(&on, AUTH_TCP, ROLE_NONE, false, PERM_METRICS, false), 401);
        assert_int_equal(auth_decide(&on, AUTH_TCP, ROLE_VIEWER, true, PERM_METRICS, false), 0);
        /* default deny: an unset permission is admin-only */
        assert_int_equal(auth_decide(&on, AUTH_TCP, ROLE_OPERATOR, true, PERM_UNSET, false), 403);
        assert_int_equal(auth_decide(&on, AUTH_TCP, ROLE_ADMIN, true, PERM_UNSET, false), 0);
        /* a role with an empty permission list gets nothing */
        on.roles.mask[ROLE_VIEWER] = 0;
        assert_int_equal(auth_decide(&on, AUTH_TCP, ROLE_VIEWER, true, PERM_READ, false), 403);
}

static void t_unknown_routes(void **state)
{
        (void)state;
        assert_int_equal(api_route_perm("GET", "/api/v1/nope"), -ENOENT);
        assert_int_equal(api_route_perm("GET", "/"), -ENOENT);
        assert_int_equal(api_route_perm("DELETE", "/api/v1/gpus"), -EPERM);
        assert_int_equal(api_route_perm("HEAD", "/metrics"), PERM_METRICS);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(t_matrix),
            cmocka_unit_test(t_special_cases),
            cmocka_unit_test(t_unknown_routes),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
