/* test_rbac.c — the route × role matrix, cell by cell, against routes.c's ONE route table and
 * auth_decide: every route, every principal (none, viewer, operator, admin, on TCP with
 * authentication; anonymous TCP without it; unix-socket viewer and admin). Unknown routes are
 * 404 for everyone. Add a row here with every route added to routes.c.
 * Then the gate's verdicts (security/gate.h) for requests described as the server describes
 * them: status, errno, audit event, message, Retry-After, principal. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/routes.h"
#include "security/auth.h"
#include "security/cidr.h"
#include "security/gate.h"
#include "security/tls.h"
#include "store/store.h"

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

#define SECRET "0123456789abcdef0123456789abcdef-test"

static auth_gate *gate_for(const char *allowed_ips)
{
        gate_options o = {
            .authn = true,
            .jwt_secret = SECRET,
            .authz = true,
            .role_perms = {[ROLE_VIEWER] = "read",
                           [ROLE_OPERATOR] = "read,write,execute",
                           [ROLE_ADMIN] = "*"},
            .allowed_ips = allowed_ips,
            .trusted_proxies = "",
            .rl_enabled = true,
            .rl_per_minute = 60,
            .rl_burst = 2,
            .metrics_public = true,
        };
        auth_gate *g = NULL;
        char err[256] = "";

        assert_int_equal(gate_new(&o, &g, err, sizeof(err)), 0);
        return g;
}

static gate_input tcp_in(const char *ip, const char *method, const char *path, enum auth_perm p)
{
        gate_input in = {.method = method, .path = path, .perm = p, .tls_client_ok = true};

        assert_int_equal(cidr_addr_parse(ip, strlen(ip), in.peer), 0);
        return in;
}

static void verdict(auth_gate *g, const gate_input *in, gate_req *s, gate_verdict *v)
{
        gate_begin(s);
        assert_int_equal(strlen(s->request_id), 32);
        gate_check(g, in, s, v);
}

static void t_gate_verdicts(void **state)
{
        auth_gate *g = gate_for("");
        gate_input in;
        gate_req s;
        gate_verdict v;
        char *tok = NULL, jti[64], hdr[1024];

        (void)state;
        /* no credentials on TCP: 401 through EPERM */
        in = tcp_in("192.0.2.1", "GET", "/api/v1/gpus", PERM_READ);
        verdict(g, &in, &s, &v);
        assert_false(v.allow);
        assert_int_equal(v.status, 401);
        assert_int_equal(v.err, -EPERM);
        assert_string_equal(v.event, "auth_failure:missing");
        assert_string_equal(v.message, "authentication required");
        assert_string_equal(s.source_ip, "192.0.2.1");
        /* a token that does not verify: 401, the reason in the event */
        in = tcp_in("192.0.2.2", "GET", "/api/v1/gpus", PERM_READ);
        in.authorization = "Bearer not.a.token";
        verdict(g, &in, &s, &v);
        assert_int_equal(v.status, 401);
        assert_memory_equal(v.event, "auth_failure:", 13);
        /* a valid viewer token: read allowed, admin refused with 403 through EACCES */
        assert_int_equal(auth_jwt_mint((const unsigned char *)SECRET, strlen(SECRET), "alice",
                                       ROLE_VIEWER, time(NULL), 600, "", "", &tok, jti,
                                       sizeof(jti)),
                         0);
        snprintf(hdr, sizeof(hdr), "Bearer %s", tok);
        in = tcp_in("192.0.2.3", "GET", "/api/v1/gpus", PERM_READ);
        in.authorization = hdr;
        verdict(g, &in, &s, &v);
        assert_true(v.allow);
        assert_string_equal(s.principal, "jwt:alice");
        in = tcp_in("192.0.2.4", "POST", "/api/v1/config/reload", PERM_ADMIN);
        in.authorization = hdr;
        verdict(g, &in, &s, &v);
        assert_int_equal(v.status, 403);
        assert_int_equal(v.err, -EACCES);
        assert_string_equal(v.event, "forbidden");
        assert_string_equal(v.message, "forbidden: role viewer lacks permission admin");
        /* revoked: 401 */
        assert_int_equal(gate_revoke(g, jti, time(NULL) + 600, "test"), 0);
        in = tcp_in("192.0.2.5", "GET", "/api/v1/gpus", PERM_READ);
        in.authorization = hdr;
        verdict(g, &in, &s, &v);
        assert_int_equal(v.status, 401);
        assert_string_equal(v.event, "auth_failure:revoked");
        free(tok);
        /* the TLS layer said the client certificate is missing: 403 */
        in = tcp_in("192.0.2.6", "GET", "/healthz", PERM_OPEN);
        in.tls_client_ok = false;
        verdict(g, &in, &s, &v);
        assert_int_equal(v.status, 403);
        assert_string_equal(v.event, "client_cert_refused");
        /* rate limit per address (burst 2): 429 with Retry-After, no errno; probes are exempt */
        in = tcp_in("192.0.2.7", "GET", "/api/v1/gpus", PERM_READ);
        for (int i = 0; i < 2; i++) {
                verdict(g, &in, &s, &v);
                assert_int_equal(v.status, 401);
        }
        verdict(g, &in, &s, &v);
        assert_int_equal(v.status, 429);
        assert_int_equal(v.err, 0);
        assert_true(v.retry_after >= 1);
        assert_string_equal(v.event, "rate_limited");
        in.perm = PERM_OPEN;
        verdict(g, &in, &s, &v);
        assert_true(v.allow);
        /* the unix socket: root is admin, an unknown peer a viewer */
        in = (gate_input){.is_unix = true,
                          .peer_cred_ok = true,
                          .uid = 0,
                          .method = "POST",
                          .path = "/api/v1/inject",
                          .perm = PERM_ADMIN,
                          .is_inject = true};
        verdict(g, &in, &s, &v);
        assert_true(v.allow);
        assert_string_equal(s.principal, "uid:0");
        assert_string_equal(s.source_ip, "unix");
        in.peer_cred_ok = false;
        verdict(g, &in, &s, &v);
        assert_int_equal(v.status, 403);
        assert_string_equal(s.principal, "uid:?");
        gate_done(g, &in, &s, v.status, &v); /* no store: nothing to write, no crash */
        g = gate_free(g);
        assert_null(g);
        /* no gate: everything is allowed */
        verdict(NULL, &in, &s, &v);
        assert_true(v.allow);
}

static void t_gate_allowlist(void **state)
{
        auth_gate *g = gate_for("10.0.0.0/8");
        struct sockaddr_in in4 = {.sin_family = AF_INET};
        gate_input in;
        gate_req s;
        gate_verdict v;

        (void)state;
        inet_pton(AF_INET, "10.1.2.3", &in4.sin_addr);
        assert_true(gate_accept_addr(g, (struct sockaddr *)&in4));
        inet_pton(AF_INET, "192.168.1.1", &in4.sin_addr);
        assert_false(gate_accept_addr(g, (struct sockaddr *)&in4));
        in = tcp_in("192.168.1.1", "GET", "/healthz", PERM_OPEN);
        verdict(g, &in, &s, &v);
        assert_int_equal(v.status, 403);
        assert_string_equal(v.event, "ip_denied");
        assert_string_equal(v.message, "forbidden: address not allowed");
        gate_free(g);
}

static void hdr_count(void *ctx, const char *name, const char *value, bool if_absent)
{
        (void)value;
        if (!strcmp(name, "Strict-Transport-Security"))
                assert_true(if_absent);
        (*(int *)ctx)++;
}

static void t_gate_headers(void **state)
{
        auth_gate *g = gate_for("");
        int n = 0;

        (void)state;
        gate_each_header(g, hdr_count, &n); /* no web-config: none */
        gate_each_header(NULL, hdr_count, &n);
        tls_each_header(NULL, hdr_count, &n);
        assert_int_equal(n, 0);
        assert_true(tls_session_client_ok(NULL, NULL));
        gate_free(g);
}

/* ---- revocations that stay revoked ---- */

static store *rev_store(char *dir, size_t len)
{
        store_options so = {0};
        char path[512], err[512];
        store *st = NULL;

        snprintf(dir, len, "/tmp/vigil-rbac-XXXXXX");
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/vigil.db", dir);
        so.path = path;
        assert_int_equal(store_open(&so, &st, NULL, err, sizeof(err)), 0);
        return st;
}

static void rev_store_remove(store *st, const char *dir)
{
        char cmd[600];

        store_close(st);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
}

static gate_options rev_opts(store *st)
{
        gate_options o = {.authn = true, .jwt_secret = SECRET, .leeway_s = 60, .store = st};
        return o;
}

static int drop_revoked_fn(sqlite3 *db, void *ctx)
{
        (void)ctx;
        return store_exec(db, "DROP TABLE auth_revoked");
}

/* A revocation list that cannot be loaded refuses start, with the reason. */
static void t_revocations_load_failure(void **state)
{
        char dir[64], err[512] = "";
        store *st = rev_store(dir, sizeof(dir));
        gate_options o = rev_opts(st);
        auth_gate *g = NULL;

        (void)state;
        assert_int_equal(store_write(st, drop_revoked_fn, NULL), 0);
        assert_true(gate_new(&o, &g, err, sizeof(err)) < 0);
        assert_null(g);
        assert_non_null(strstr(err, "revocation"));
        rev_store_remove(st, dir);
}

/* No count beyond which a revocation is stored but not enforced. */
static void t_revocations_unbounded(void **state)
{
        gate_options o = rev_opts(NULL);
        auth_gate *g = NULL;
        char err[256], jti[64];

        (void)state;
        assert_int_equal(gate_new(&o, &g, err, sizeof(err)), 0);
        for (int i = 0; i < 70000; i++) {
                snprintf(jti, sizeof(jti), "jti-%d", i);
                assert_int_equal(gate_revoke(g, jti, time(NULL) + 3600, "test"), 0);
        }
        for (int i = 0; i < 70000; i += 997) {
                snprintf(jti, sizeof(jti), "jti-%d", i);
                assert_true(gate_is_revoked(g, jti));
        }
        assert_true(gate_is_revoked(g, "jti-69999"));
        assert_false(gate_is_revoked(g, "jti-70000"));
        gate_free(g);
}

/* A revocation whose exp is already past (or wrong) is kept across a restart while the token
 * itself can still be valid; so is one inside the leeway. */
static int expires_of_fn(sqlite3 *db, void *ctx)
{
        int64_t *out = ctx;
        sqlite3_stmt *st = NULL;

        assert_int_equal(
            sqlite3_prepare_v2(db, "SELECT expires FROM auth_revoked WHERE jti = ?", -1, &st, NULL),
            SQLITE_OK);
        sqlite3_bind_text(st, 1, (const char *)(uintptr_t)*out, -1, SQLITE_STATIC);
        *out = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
        sqlite3_finalize(st);
        return 0;
}

static void t_revocations_past_exp_restart(void **state)
{
        char dir[64], err[512] = "", jti[64];
        store *st = rev_store(dir, sizeof(dir));
        gate_options o = rev_opts(st);
        auth_gate *g = NULL;
        int64_t now = time(NULL);
        char *tok = NULL, hdr[1024];
        gate_input in;
        gate_req s;
        gate_verdict v;

        (void)state;
        /* a token valid for an hour, revoked with an exp that is already past */
        assert_int_equal(auth_jwt_mint((const unsigned char *)SECRET, strlen(SECRET), "alice",
                                       ROLE_ADMIN, now, 3600, "", "", &tok, jti, sizeof(jti)),
                         0);
        assert_int_equal(gate_new(&o, &g, err, sizeof(err)), 0);
        assert_int_equal(gate_revoke(g, jti, now - 10, "test"), 0);
        assert_int_equal(gate_revoke(g, "in-leeway", now - 30, "test"), 0);
        assert_int_equal(gate_revoke(g, "future", now + 3600, "test"), 0);
        g = gate_free(g);
        assert_int_equal(gate_new(&o, &g, err, sizeof(err)), 0);
        assert_true(gate_is_revoked(g, jti));
        assert_true(gate_is_revoked(g, "in-leeway"));
        assert_true(gate_is_revoked(g, "future"));
        /* kept in the store at least until the token's own exp, so later restarts keep it */
        int64_t kept = (int64_t)(uintptr_t)jti;
        assert_int_equal(store_read(st, expires_of_fn, &kept), 0);
        assert_true(kept >= now + 3600);
        snprintf(hdr, sizeof(hdr), "Bearer %s", tok);
        in = tcp_in("192.0.2.9", "GET", "/api/v1/gpus", PERM_READ);
        in.authorization = hdr;
        verdict(g, &in, &s, &v);
        assert_false(v.allow);
        assert_string_equal(v.event, "auth_failure:revoked");
        free(tok);
        gate_free(g);
        rev_store_remove(st, dir);
}

static int last_event_fn(sqlite3 *db, void *ctx)
{
        char *out = ctx;
        sqlite3_stmt *st = NULL;

        assert_int_equal(sqlite3_prepare_v2(db,
                                            "SELECT event || ' ' || status || ' ' || detail FROM "
                                            "audit_log ORDER BY seq DESC LIMIT 1",
                                            -1, &st, NULL),
                         SQLITE_OK);
        out[0] = '\0';
        if (sqlite3_step(st) == SQLITE_ROW)
                snprintf(out, 256, "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        return 0;
}

/* A refused reload is audited; the head is exported to the sidecar on demand and at stop, with
 * the key created beside the database. */
static void t_audit_reload_and_head(void **state)
{
        char dir[64], err[512] = "", ev[256], path[128], mac[AUDIT_HASH_HEX];
        store *st = rev_store(dir, sizeof(dir));
        gate_options o = rev_opts(st);
        auth_gate *g = NULL;
        audit_head h;

        (void)state;
        o.audit = true;
        o.head_export.interval_s = -1; /* only on demand and at stop */
        assert_int_equal(gate_new(&o, &g, err, sizeof(err)), 0);
        assert_true(gate_audit_key(g)->set);
        assert_int_equal(gate_audit_reload(g, false, "SIGHUP", "vigil.yaml:3: unknown key 'x'"), 0);
        assert_int_equal(store_read(st, last_event_fn, ev), 0);
        assert_string_equal(ev, "config_reload_refused 400 SIGHUP: vigil.yaml:3: unknown key 'x'");
        assert_int_equal(gate_audit_reload(g, true, "api", NULL), 0);
        assert_int_equal(store_read(st, last_event_fn, ev), 0);
        assert_string_equal(ev, "config_reload 200 api");
        assert_int_equal(gate_audit_head_export(g, err, sizeof(err)), 0);
        snprintf(path, sizeof(path), "%s/audit.head", dir);
        assert_int_equal(audit_head_read(path, &h, mac), 0);
        assert_int_equal(h.seq, 2);
        assert_int_equal(
            gate_audit(g, "uid:0", "admin", "unix", "POST", "/x", 200, "request", "", ""), 0);
        {
                audit_verify_result res;
                assert_int_equal(gate_audit_verify(g, &res), 0);
                assert_int_equal(res.checked, 3);
        }
        gate_free(g); /* exports the last head */
        assert_int_equal(audit_head_read(path, &h, mac), 0);
        assert_int_equal(h.seq, 3);
        snprintf(path, sizeof(path), "%s/audit.key", dir);
        assert_int_equal(access(path, R_OK), 0);
        rev_store_remove(st, dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(t_matrix),
            cmocka_unit_test(t_special_cases),
            cmocka_unit_test(t_unknown_routes),
            cmocka_unit_test(t_gate_verdicts),
            cmocka_unit_test(t_gate_allowlist),
            cmocka_unit_test(t_gate_headers),
            cmocka_unit_test(t_revocations_load_failure),
            cmocka_unit_test(t_revocations_unbounded),
            cmocka_unit_test(t_revocations_past_exp_restart),
            cmocka_unit_test(t_audit_reload_and_head),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
