/* test_cli.c — the CLI's client, tables and dmon formatting, and failover against a tiny
 * in-test HTTP responder (a thread answering canned JSON on 127.0.0.1:0 or a unix socket). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <cmocka.h>

#include <curl/curl.h>

#include "cli/client.h"
#include "cli/commands.h"
#include "cli/table.h"
#include "common/errmap.h"

/* ---- the responder ---- */

typedef struct route {
        const char *path; /* request target prefix, e.g. "/api/v1/gpus" */
        int status;       /* HTTP status */
        const char *body; /* JSON */
} route;

typedef struct responder {
        int fd;                /* listening socket */
        int port;              /* TCP port, 0 for unix */
        char sock_path[108];   /* unix socket path or "" */
        pthread_t thread;      /* serving thread */
        atomic_bool stop;      /* ask the thread to end */
        const route *routes;   /* canned answers */
        size_t n_routes;       /* entries */
        atomic_int hits;       /* requests answered */
        char last_auth[256];   /* Authorization header of the last request */
        char last_target[512]; /* request target of the last request */
} responder;

static void serve_one(responder *rs, int c)
{
        char req[8192], method[16], target[512];
        size_t n = 0;
        const route *hit = NULL;
        char *hdr;
        char head[256];
        const char *body;
        int status, len;

        while (n < sizeof(req) - 1) {
                ssize_t k = read(c, req + n, sizeof(req) - 1 - n);
                if (k <= 0)
                        break;
                n += (size_t)k;
                req[n] = '\0';
                if (strstr(req, "\r\n\r\n"))
                        break;
        }
        req[n] = '\0';
        if (sscanf(req, "%15s %511s", method, target) != 2)
                return;
        snprintf(rs->last_target, sizeof(rs->last_target), "%s", target);
        rs->last_auth[0] = '\0';
        hdr = strcasestr(req, "\r\nAuthorization: ");
        if (hdr) {
                hdr += strlen("\r\nAuthorization: ");
                snprintf(rs->last_auth, sizeof(rs->last_auth), "%.*s", (int)strcspn(hdr, "\r\n"),
                         hdr);
        }
        for (size_t i = 0; i < rs->n_routes; i++)
                if (strncmp(target, rs->routes[i].path, strlen(rs->routes[i].path)) == 0) {
                        hit = &rs->routes[i];
                        break;
                }
        status = hit ? hit->status : 404;
        body = hit ? hit->body : "{\"error\":{\"code\":404,\"message\":\"no route\"}}";
        len = snprintf(head, sizeof(head),
                       "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                       "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                       status, strlen(body));
        if (write(c, head, (size_t)len) < 0 || write(c, body, strlen(body)) < 0)
                return;
        atomic_fetch_add(&rs->hits, 1);
}

static void *serve(void *arg)
{
        responder *rs = arg;

        while (!atomic_load(&rs->stop)) {
                struct pollfd p = {.fd = rs->fd, .events = POLLIN};
                int c;

                if (poll(&p, 1, 20) <= 0)
                        continue;
                c = accept(rs->fd, NULL, NULL);
                if (c < 0)
                        continue;
                serve_one(rs, c);
                close(c);
        }
        return NULL;
}

static void responder_start(responder *rs, const route *routes, size_t n, bool unix_socket)
{
        memset(rs, 0, sizeof(*rs));
        rs->routes = routes;
        rs->n_routes = n;
        if (unix_socket) {
                struct sockaddr_un sa = {.sun_family = AF_UNIX};
                snprintf(rs->sock_path, sizeof(rs->sock_path), "/tmp/vigil-test-cli-%d.sock",
                         (int)getpid());
                unlink(rs->sock_path);
                snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", rs->sock_path);
                rs->fd = socket(AF_UNIX, SOCK_STREAM, 0);
                assert_true(rs->fd >= 0);
                assert_int_equal(bind(rs->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        } else {
                struct sockaddr_in sa = {.sin_family = AF_INET,
                                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
                socklen_t sl = sizeof(sa);
                rs->fd = socket(AF_INET, SOCK_STREAM, 0);
                assert_true(rs->fd >= 0);
                assert_int_equal(bind(rs->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
                assert_int_equal(getsockname(rs->fd, (struct sockaddr *)&sa, &sl), 0);
                rs->port = ntohs(sa.sin_port);
        }
        assert_int_equal(listen(rs->fd, 16), 0);
        assert_int_equal(pthread_create(&rs->thread, NULL, serve, rs), 0);
}

static void responder_stop(responder *rs)
{
        atomic_store(&rs->stop, true);
        pthread_join(rs->thread, NULL);
        close(rs->fd);
        if (rs->sock_path[0])
                unlink(rs->sock_path);
}

/* A TCP port on 127.0.0.1 where nothing listens (bound, then closed). */
static int closed_port(void)
{
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t sl = sizeof(sa);
        int fd = socket(AF_INET, SOCK_STREAM, 0);

        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
        close(fd);
        return ntohs(sa.sin_port);
}

/* A ctx whose output and messages go to memory. */
typedef struct capture {
        cli_ctx ctx;
        char *out, *err;     /* memstream buffers */
        size_t out_n, err_n; /* sizes */
} capture;

static void capture_init(capture *c)
{
        memset(c, 0, sizeof(*c));
        cli_ctx_init(&c->ctx);
        c->ctx.out = open_memstream(&c->out, &c->out_n);
        c->ctx.err = open_memstream(&c->err, &c->err_n);
        c->ctx.timeout_us = 3 * 1000000LL;
}

static void capture_flush(capture *c)
{
        fflush(c->ctx.out);
        fflush(c->ctx.err);
}

static void capture_release(capture *c)
{
        fclose(c->ctx.out);
        fclose(c->ctx.err);
        free(c->out);
        free(c->err);
        cli_ctx_release(&c->ctx);
}

static const char fields_json[] =
    "{\"fields\":["
    "{\"id\":150,\"name\":\"GPU_TEMP\",\"dcgm_name\":\"DCGM_FI_DEV_GPU_TEMP\","
    "\"native\":\"vigil_gpu_temperature_celsius\",\"unit\":\"C\",\"tier\":\"fast\","
    "\"interval_us\":1000000},"
    "{\"id\":155,\"name\":\"POWER_USAGE\",\"dcgm_name\":\"DCGM_FI_DEV_POWER_USAGE\","
    "\"native\":\"vigil_gpu_power_watts\",\"unit\":\"W\",\"tier\":\"fast\","
    "\"interval_us\":1000000},"
    "{\"id\":156,\"name\":\"TOTAL_ENERGY_CONSUMPTION\",\"dcgm_name\":"
    "\"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION\",\"native\":\"vigil_gpu_energy_joules_total\","
    "\"unit\":\"mJ\",\"tier\":\"slow\",\"interval_us\":10000000}]}";

static const char gpus_json[] =
    "{\"count\":2,\"driver_version\":\"580.1\",\"nvml_version\":\"12.580\",\"gpus\":["
    "{\"index\":0,\"uuid\":\"GPU-aaaa\",\"name\":\"NVIDIA H200\","
    "\"pci_bus_id\":\"00000000:18:00.0\",\"state\":\"up\",\"fields\":["
    "{\"id\":150,\"name\":\"GPU_TEMP\",\"status\":\"ok\",\"value\":43},"
    "{\"id\":155,\"name\":\"POWER_USAGE\",\"status\":\"ok\",\"value\":87.9},"
    "{\"id\":156,\"name\":\"TOTAL_ENERGY_CONSUMPTION\",\"status\":\"not_supported\"}]},"
    "{\"index\":1,\"uuid\":\"GPU-bbbb\",\"name\":\"NVIDIA H200\","
    "\"pci_bus_id\":\"00000000:2A:00.0\",\"state\":\"lost\",\"fields\":["
    "{\"id\":150,\"name\":\"GPU_TEMP\",\"status\":\"gpu_lost\"}]}]}";

static const char status_json[] =
    "{\"version\":\"0.1.0\",\"hostname\":\"node1\",\"pid\":1234,\"uptime_seconds\":3725.5,"
    "\"simulated\":true,\"gpu_count\":2,\"gpus_up\":1,\"ready\":true,"
    "\"tiers\":{\"fast\":{\"interval_seconds\":1,\"sweeps\":12,\"late_sweeps\":0,"
    "\"last_duration_seconds\":0.00012}},\"cache\":{\"bytes\":123456,\"samples\":98765}}";

static const route routes[] = {
    {"/api/v1/fields", 200, fields_json},
    {"/api/v1/gpus/9", 404,
     "{\"error\":{\"code\":404,\"message\":\"no GPU with index or uuid '9'\"}}"},
    {"/api/v1/gpus", 200, gpus_json},
    {"/api/v1/status", 200, status_json},
    {"/forbidden", 403, "{\"error\":{\"code\":403,\"message\":\"token lacks role 'admin'\"}}"},
    {"/notjson", 200, "this is not json"},
};

/* ---- tests ---- */

static void test_normalize_host(void **state)
{
        static const struct {
                const char *in;
                int ret;
                const char *out;
        } cases[] = {
            {"a:5555", 0, "http://a:5555"},
            {"  http://b:1/  ", 0, "http://b:1"},
            {"https://c.example:443", 0, "https://c.example:443"},
            {"HTTP://d", 0, "HTTP://d"},
            {"10.0.0.1", 0, "http://10.0.0.1"},
            {"[::1]:5555", 0, "http://[::1]:5555"},
            {"", -EINVAL, NULL},
            {"   ", -EINVAL, NULL},
            {"ftp://x", -EINVAL, NULL},
            {"http://", -EINVAL, NULL},
            {"http:///", -EINVAL, NULL},
            {"//", -EINVAL, NULL},
            {"a b", -EINVAL, NULL},
        };
        (void)state;
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                char *out = (char *)0x1;
                int r = client_normalize_host(cases[i].in, &out);
                assert_int_equal(r, cases[i].ret);
                if (r == 0) {
                        assert_string_equal(out, cases[i].out);
                        free(out);
                } else {
                        assert_ptr_equal(out, (char *)0x1); /* untouched on failure */
                }
        }
}

static void test_host_list(void **state)
{
        static const char *bad[] = {"", ",", "a,", ",a", "a,,b", "a, ,b", "a,ftp://b"};
        cli_ctx ctx;

        (void)state;
        cli_ctx_init(&ctx);
        assert_int_equal(client_add_hosts(&ctx, "primary:5555, https://secondary:5556/"), 0);
        assert_int_equal(ctx.n_targets, 2);
        assert_string_equal(ctx.targets[0].base, "http://primary:5555");
        assert_string_equal(ctx.targets[1].base, "https://secondary:5556");
        assert_null(ctx.targets[0].socket);
        assert_int_equal(client_add_socket(&ctx, "/run/x.sock"), 0);
        assert_string_equal(client_target_name(&ctx.targets[2]), "/run/x.sock");
        assert_string_equal(ctx.targets[2].base, "http://localhost");
        /* defaults do not override explicit targets */
        assert_int_equal(client_add_defaults(&ctx), 0);
        assert_int_equal(ctx.n_targets, 3);
        cli_ctx_release(&ctx);

        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                cli_ctx_init(&ctx);
                assert_int_equal(client_add_hosts(&ctx, bad[i]), -EINVAL);
                cli_ctx_release(&ctx);
        }

        cli_ctx_init(&ctx);
        setenv("VIGIL_HOST", "x:1,y:2", 1);
        assert_int_equal(client_add_defaults(&ctx), 0);
        unsetenv("VIGIL_HOST");
        assert_int_equal(ctx.n_targets, 2);
        assert_string_equal(ctx.targets[1].base, "http://y:2");
        cli_ctx_release(&ctx);

        cli_ctx_init(&ctx);
        assert_int_equal(client_add_hosts(&ctx, "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q"), -E2BIG);
        cli_ctx_release(&ctx);
}

static void test_url_escape(void **state)
{
        static const struct {
                const char *in, *out;
        } cases[] = {
            {"GPU_TEMP", "GPU_TEMP"},
            {"a b&c=d", "a%20b%26c%3Dd"},
            {"GPU-1234/x?", "GPU-1234%2Fx%3F"},
            {"~.-_", "~.-_"},
            {"\xc3\xa9", "%C3%A9"},
            {"", ""},
        };
        char *u;

        (void)state;
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                char *e = client_escape(cases[i].in);
                assert_non_null(e);
                assert_string_equal(e, cases[i].out);
                free(e);
        }
        u = client_build_url("http://h:1", "/api/v1/gpus?fields=150,155");
        assert_string_equal(u, "http://h:1/api/v1/gpus?fields=150,155");
        free(u);
        u = client_build_url("http://h:1", "healthz");
        assert_string_equal(u, "http://h:1/healthz");
        free(u);
}

static char *render_table(table *t)
{
        buf b;

        buf_init(&b, 0);
        assert_int_equal(table_render(t, &b), 0);
        return buf_steal(&b, NULL);
}

static void test_table_plain(void **state)
{
        table *t = NULL;
        char *s;

        (void)state;
        assert_int_equal(table_new(3, (const char *const[]){"ID", "NAME", "UNIT"}, &t), 0);
        table_set_align(t, 0, TABLE_RIGHT);
        assert_int_equal(table_add_rowv(t, "150", "GPU_TEMP", "C"), 0);
        assert_int_equal(table_add_rowv(t, "1", "TOTAL_ENERGY_CONSUMPTION", ""), 0);
        assert_int_equal(table_add_rowv(t, "20", "\xc2\xb0\x43", "\xc2\xb5s"), 0); /* °C, µs */
        assert_int_equal(table_rows(t), 3);
        s = render_table(t);
        assert_string_equal(s, " ID  NAME                      UNIT\n"
                               "150  GPU_TEMP                  C\n"
                               "  1  TOTAL_ENERGY_CONSUMPTION\n"
                               " 20  \xc2\xb0\x43                        \xc2\xb5s\n");
        free(s);
        table_free(t);
        assert_int_equal(table_new(0, NULL, &t), -EINVAL);
        assert_int_equal(table_new(TABLE_MAX_COLS + 1, NULL, &t), -EINVAL);
        assert_int_equal(table_text_width("a\xc3\xa9z\nmore", 100), 3);
}

static void test_table_box(void **state)
{
        table *t = NULL;
        char *s;

        (void)state;
        assert_int_equal(table_new(2, (const char *const[]){"GPU ID", "Device Information"}, &t),
                         0);
        table_set_style(t, TABLE_BOX);
        assert_int_equal(table_add_rowv(t, "0", "Name: X\nPCI Bus ID: 00:18.0"), 0);
        assert_int_equal(table_add_rowv(t, "1", NULL), 0);
        s = render_table(t);
        assert_string_equal(s, "+--------+---------------------+\n"
                               "| GPU ID | Device Information  |\n"
                               "+--------+---------------------+\n"
                               "| 0      | Name: X             |\n"
                               "|        | PCI Bus ID: 00:18.0 |\n"
                               "+--------+---------------------+\n"
                               "| 1      |                     |\n"
                               "+--------+---------------------+\n");
        /* every line of a boxed table has the same width */
        {
                size_t w = strcspn(s, "\n");
                for (char *p = s; *p;) {
                        size_t lw = strcspn(p, "\n");
                        assert_int_equal(lw, w);
                        p += lw + 1;
                }
                assert_int_equal(w, strlen("+--------+---------------------+"));
        }
        free(s);
        table_free(t);
}

static json_t *J(const char *s)
{
        json_t *j = json_loads(s, 0, NULL);
        assert_non_null(j);
        return j;
}

static void test_dmon_values(void **state)
{
        static const struct {
                const char *fv, *out;
        } cases[] = {
            {"{\"status\":\"ok\",\"value\":43}", "43"},
            {"{\"status\":\"ok\",\"value\":-5}", "-5"},
            {"{\"status\":\"ok\",\"value\":87.9}", "87.9"},
            {"{\"status\":\"ok\",\"value\":59.0214}", "59.021"},
            {"{\"status\":\"ok\",\"value\":100.0}", "100"},
            {"{\"status\":\"ok\",\"value\":0.0}", "0"},
            {"{\"status\":\"ok\",\"value\":\"P0\"}", "P0"},
            {"{\"status\":\"ok\"}", "ERR"},
            {"{\"status\":\"not_supported\"}", "N/A"},
            {"{\"status\":\"not_supported\",\"value\":0}", "N/A"},
            {"{\"status\":\"no_permission\"}", "N/A"},
            {"{\"status\":\"gpu_lost\"}", "LOST"},
            {"{\"status\":\"no_data\"}", "-"},
            {"{\"status\":\"not_watched\"}", "OFF"},
            {"{\"status\":\"stale\",\"last_value\":45,\"age_seconds\":9.5}", "45*"},
            {"{\"status\":\"stale\",\"last_value\":250.5}", "250.5*"},
            {"{\"status\":\"stale\",\"value\":45}", "STALE"},
            {"{\"status\":\"stale\"}", "STALE"},
            {"{\"status\":\"error\"}", "ERR"},
            {"{\"status\":\"something_new\"}", "ERR"},
            {"{}", "N/A"},
        };
        char out[64];

        (void)state;
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                json_t *j = J(cases[i].fv);
                assert_string_equal(dmon_format_value(j, out, sizeof(out)), cases[i].out);
                json_decref(j);
        }
        assert_string_equal(dmon_format_value(NULL, out, sizeof(out)), "N/A");
}

static void test_dmon_tags(void **state)
{
        static const struct {
                const char *sym, *tag;
        } cases[] = {
            {"GPU_TEMP", "TMPTR"},
            {"POWER_USAGE", "POWER"},
            {"GPU_UTIL", "GPUTL"},
            {"MEM_COPY_UTIL", "MCUTL"},
            {"FB_USED", "FBUSD"},
            {"FB_FREE", "FBFRE"},
            {"SM_CLOCK", "SMCLK"},
            {"MEM_CLOCK", "MMCLK"},
            {"MEMORY_TEMP", "MMTMP"},
            {"TOTAL_ENERGY_CONSUMPTION", "TOTEC"},
            {"PCIE_REPLAY_COUNTER", "PCIRP"},
            {"XID_ERRORS", "XIDER"},
            {"ECC_DBE_VOL_TOTAL", "ECC_D"},
            {"PSTATE", "PSTAT"},
            {"ab", "AB"},
            {"gpu_temp", "TMPTR"},
        };
        char out[16];

        (void)state;
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
                assert_string_equal(dmon_field_tag(cases[i].sym, out, sizeof(out)), cases[i].tag);
}

static void test_dmon_resolve_and_render(void **state)
{
        json_t *meta = J(fields_json), *gpus = J(gpus_json);
        dmon_field f[8];
        char bad[64];
        buf b;
        int n;

        (void)state;
        n = dmon_resolve_fields(meta, "gpu_temp, 155,DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", f, 8,
                                bad, sizeof(bad));
        assert_int_equal(n, 3);
        assert_int_equal(f[0].id, 150);
        assert_string_equal(f[0].name, "GPU_TEMP");
        assert_string_equal(f[1].tag, "POWER");
        assert_string_equal(f[2].tag, "TOTEC");
        assert_int_equal(dmon_resolve_fields(meta, "GPU_TEMP,FOO", f, 8, bad, sizeof(bad)),
                         -EINVAL);
        assert_string_equal(bad, "FOO");
        assert_int_equal(dmon_resolve_fields(meta, "999", f, 8, bad, sizeof(bad)), -EINVAL);
        assert_int_equal(dmon_resolve_fields(meta, ",", f, 8, bad, sizeof(bad)), -EINVAL);
        assert_int_equal(dmon_resolve_fields(meta, "150,155", f, 1, bad, sizeof(bad)), -E2BIG);

        buf_init(&b, 0);
        assert_int_equal(dmon_render_header(&b, f, 3), 0);
        assert_int_equal(
            dmon_render_row(&b, json_array_get(json_object_get(gpus, "gpus"), 0), f, 3), 0);
        assert_int_equal(
            dmon_render_row(&b, json_array_get(json_object_get(gpus, "gpus"), 1), f, 3), 0);
        assert_string_equal(b.data, "#Entity   TMPTR   POWER   TOTEC\n"
                                    "ID\n"
                                    "GPU 0     43      87.9    N/A\n"
                                    "GPU 1     LOST    LOST    LOST\n");
        buf_release(&b);
        json_decref(meta);
        json_decref(gpus);
}

static void test_unreachable_message(void **state)
{
        client_attempt a[] = {
            {"http://a:5555", "connection refused"},
            {"http://b:5555", "timed out"},
            {"/run/vigil/vigild.sock", "no such file or directory"},
        };
        buf b;

        (void)state;
        buf_init(&b, 0);
        assert_int_equal(client_compose_unreachable(&b, a, 2), 0);
        assert_string_equal(b.data, "cannot reach vigild at 'http://a:5555' (connection refused), "
                                    "'http://b:5555' (timed out)");
        buf_reset(&b);
        client_compose_unreachable(&b, a + 2, 1);
        assert_string_equal(b.data,
                            "cannot reach vigild at '/run/vigil/vigild.sock' (no such file or "
                            "directory)");
        buf_release(&b);
}

static void test_strip_controls(void **state)
{
        static const struct {
                const char *in, *out;
        } cases[] = {
            {"plain text\twith tab\n", "plain text\twith tab\n"},
            {"\x1b[31mred\x1b[0m", "?[31mred?[0m"},
            {"\x1b]0;title\x07x", "?]0;title?x"},
            {"a\rb\x7f", "a?b?"},
            {"\xc2\x9b"
             "2J",
             "?2J"}, /* C1 CSI */
            {"caf\xc3\xa9 \xc2\xb0"
             "C",
             "caf\xc3\xa9 \xc2\xb0"
             "C"}, /* UTF-8 kept */
        };
        char out[64];

        (void)state;
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                unsigned st = 0;
                size_t n = client_strip_controls(out, cases[i].in, strlen(cases[i].in), &st);
                assert_int_equal(st, 0);
                assert_int_equal(n, strlen(cases[i].out));
                assert_string_equal(out, cases[i].out);
        }
        {
                /* a C1 control split across two writes */
                unsigned st = 0;
                size_t n = client_strip_controls(out, "x\xc2", 2, &st);
                assert_int_equal(n, 1);
                assert_int_equal(client_strip_controls(out + n, "\x9b", 1, &st), 1);
                assert_string_equal(out, "x?");
        }
}

static void test_tls_problem(void **state)
{
        (void)state;
        assert_string_equal(
            client_tls_problem(60,
                               "SSL certificate problem: unable to get local issuer certificate"),
            "certificate not trusted");
        assert_string_equal(client_tls_problem(60, "SSL: no alternative certificate subject name "
                                                   "matches target host name 'localhost'"),
                            "hostname mismatch");
        assert_string_equal(client_tls_problem(56, "OpenSSL SSL_read: error:0A00045C:SSL "
                                                   "routines::tlsv13 alert certificate required"),
                            "client certificate required");
        assert_string_equal(client_tls_problem(35, "error:0A00010B:SSL routines::wrong version "
                                                   "number"),
                            "not a TLS server (plain http?)");
        assert_null(client_tls_problem(7, "Failed to connect"));
        assert_null(client_tls_problem(56, "Connection reset by peer"));
}

static void test_status_map(void **state)
{
        static const struct {
                long status;
                int err, exit_code;
        } cases[] = {
            {400, -EINVAL, 2},    {401, -EPERM, 4},    {403, -EACCES, 4},     {404, -ENOENT, 5},
            {409, -EBUSY, 7},     {413, -EMSGSIZE, 2}, {501, -EOPNOTSUPP, 6}, {503, -EAGAIN, 8},
            {504, -ETIMEDOUT, 3}, {500, -EIO, 1},      {418, -EINVAL, 2},     {599, -EIO, 1},
        };

        (void)state;
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                int e = client_status_to_errno(cases[i].status);
                assert_int_equal(e, cases[i].err);
                assert_int_equal(errmap_exit_code(e), cases[i].exit_code);
                /* the inverse of the daemon's mapping where one exists */
                if (cases[i].status != 418 && cases[i].status != 599)
                        assert_int_equal(errmap_http_status(e), cases[i].status);
        }
}

static void test_failover(void **state)
{
        responder rs;
        capture c;
        json_t *j = NULL;
        char hosts[128];
        int p1 = closed_port();

        (void)state;
        responder_start(&rs, routes, ARRAY_SIZE(routes), false);
        capture_init(&c);
        snprintf(hosts, sizeof(hosts), "127.0.0.1:%d,127.0.0.1:%d", p1, rs.port);
        assert_int_equal(client_add_hosts(&c.ctx, hosts), 0);
        c.ctx.token = strdup("s3cret");

        assert_int_equal(client_get(&c.ctx, "/api/v1/status", &j), 0);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "hostname")), "node1");
        json_decref(j);
        assert_int_equal(c.ctx.active, 1); /* the secondary answered and is now first */
        assert_string_equal(rs.last_auth, "Bearer s3cret");
        assert_string_equal(rs.last_target, "/api/v1/status");

        /* the next request goes straight to the one that answered */
        j = NULL;
        assert_int_equal(client_get(&c.ctx, "/api/v1/fields", &j), 0);
        json_decref(j);
        assert_int_equal(atomic_load(&rs.hits), 2);
        capture_flush(&c);
        assert_int_equal(c.err_n, 0); /* failover is silent when it works */

        capture_release(&c);
        responder_stop(&rs);
}

static void test_unreachable_all(void **state)
{
        capture c;
        json_t *j = NULL;
        char hosts[128], expect[256];
        int p1 = closed_port(), p2 = closed_port();
        int r;

        (void)state;
        capture_init(&c);
        snprintf(hosts, sizeof(hosts), "127.0.0.1:%d,http://127.0.0.1:%d/", p1, p2);
        assert_int_equal(client_add_hosts(&c.ctx, hosts), 0);
        r = client_get(&c.ctx, "/api/v1/status", &j);
        assert_int_equal(r, -EHOSTUNREACH);
        assert_null(j);
        assert_int_equal(errmap_exit_code(r), 3);
        capture_flush(&c);
        snprintf(expect, sizeof(expect),
                 "vigil: cannot reach vigild at 'http://127.0.0.1:%d' (connection refused), "
                 "'http://127.0.0.1:%d' (connection refused)\n",
                 p1, p2);
        assert_string_equal(c.err, expect);
        capture_release(&c);

        /* a missing unix socket is named by its path */
        capture_init(&c);
        assert_int_equal(client_add_socket(&c.ctx, "/nonexistent/vigild.sock"), 0);
        r = client_get(&c.ctx, "/healthz", NULL);
        assert_int_equal(errmap_exit_code(r), 3);
        capture_flush(&c);
        assert_non_null(strstr(c.err, "cannot reach vigild at '/nonexistent/vigild.sock' ("));
        capture_release(&c);
}

static void test_http_errors(void **state)
{
        responder rs;
        capture c;
        json_t *j = NULL;
        char host[64];

        (void)state;
        responder_start(&rs, routes, ARRAY_SIZE(routes), false);
        capture_init(&c);
        snprintf(host, sizeof(host), "127.0.0.1:%d", rs.port);
        assert_int_equal(client_add_hosts(&c.ctx, host), 0);

        assert_int_equal(client_get(&c.ctx, "/api/v1/gpus/9", &j), -ENOENT);
        assert_null(j);
        assert_int_equal(client_get(&c.ctx, "/forbidden", &j), -EACCES);
        assert_int_equal(client_get(&c.ctx, "/notjson", &j), -EBADMSG);
        assert_null(j);
        c.ctx.max_body = 64; /* smaller than the gpus answer */
        assert_int_equal(client_get(&c.ctx, "/api/v1/gpus", &j), -E2BIG);
        assert_null(j);
        capture_flush(&c);
        assert_non_null(strstr(c.err, "vigil: no GPU with index or uuid '9' (HTTP 404)\n"));
        assert_non_null(strstr(c.err, "vigil: token lacks role 'admin' (HTTP 403)\n"));
        assert_non_null(strstr(c.err, "vigil: failed to decode the answer from 'http://"));
        assert_non_null(strstr(c.err, "exceeds the limit of 64 bytes"));

        capture_release(&c);
        responder_stop(&rs);
}

static void test_unix_socket(void **state)
{
        responder rs;
        capture c;
        json_t *j = NULL;

        (void)state;
        responder_start(&rs, routes, ARRAY_SIZE(routes), true);
        capture_init(&c);
        /* a dead TCP host first, then the socket: failover crosses transports */
        char host[64];
        snprintf(host, sizeof(host), "127.0.0.1:%d", closed_port());
        assert_int_equal(client_add_hosts(&c.ctx, host), 0);
        assert_int_equal(client_add_socket(&c.ctx, rs.sock_path), 0);
        assert_int_equal(client_get(&c.ctx, "/api/v1/gpus", &j), 0);
        assert_int_equal(json_integer_value(json_object_get(j, "count")), 2);
        json_decref(j);
        assert_string_equal(rs.last_target, "/api/v1/gpus");
        capture_release(&c);
        responder_stop(&rs);
}

static int run_cmd(capture *c, int (*fn)(int, char **, cli_ctx *), int argc, ...)
{
        char *argv[16];
        va_list ap;

        va_start(ap, argc);
        for (int i = 0; i < argc; i++)
                argv[i] = va_arg(ap, char *);
        va_end(ap);
        argv[argc] = NULL;
        return fn(argc, argv, &c->ctx);
}

static void test_commands(void **state)
{
        responder rs;
        capture c;
        char host[64];
        int r;

        (void)state;
        responder_start(&rs, routes, ARRAY_SIZE(routes), false);
        snprintf(host, sizeof(host), "127.0.0.1:%d", rs.port);

        capture_init(&c);
        assert_int_equal(client_add_hosts(&c.ctx, host), 0);
        r = run_cmd(&c, cmd_discovery, 2, "discovery", "-l");
        assert_int_equal(r, 0);
        capture_flush(&c);
        assert_non_null(strstr(c.out, "2 GPUs found.\n+--------+----"));
        assert_non_null(strstr(c.out, "| GPU ID | Device Information "));
        assert_non_null(strstr(c.out, "| 0      | Name: NVIDIA H200 "));
        assert_non_null(strstr(c.out, "|        | PCI Bus ID: 00000000:18:00.0 "));
        assert_non_null(strstr(c.out, "|        | Device UUID: GPU-bbbb "));
        assert_non_null(strstr(c.out, "|        | State: lost "));
        capture_release(&c);

        /* dmon: two ticks of GPU 1 only, then a bad field fails before any request for values */
        capture_init(&c);
        assert_int_equal(client_add_hosts(&c.ctx, host), 0);
        r = run_cmd(&c, cmd_dmon, 9, "dmon", "-e", "GPU_TEMP,155", "-i", "1", "-c", "2", "-d",
                    "100");
        assert_int_equal(r, 0);
        assert_string_equal(rs.last_target, "/api/v1/gpus?fields=150,155");
        capture_flush(&c);
        assert_string_equal(c.out, "#Entity   TMPTR   POWER\n"
                                   "ID\n"
                                   "GPU 1     LOST    LOST\n"
                                   "GPU 1     LOST    LOST\n");
        capture_release(&c);

        capture_init(&c);
        assert_int_equal(client_add_hosts(&c.ctx, host), 0);
        r = run_cmd(&c, cmd_dmon, 3, "dmon", "-e", "GPU_TEMP,FOO");
        assert_int_equal(r, -EINVAL);
        assert_int_equal(errmap_exit_code(r), 2);
        capture_flush(&c);
        assert_string_equal(c.err, "vigil: unknown field 'FOO'\n");
        assert_int_equal(c.out_n, 0);
        capture_release(&c);

        static const char *const bad_args[][3] = {
            {"dmon", "-d", "50"},
            {"dmon", "-c", "x"},
            {"dmon", "-i", "a"},
            {"dmon", "-z", ""},
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad_args); i++) {
                capture_init(&c);
                assert_int_equal(client_add_hosts(&c.ctx, host), 0);
                r = run_cmd(&c, cmd_dmon, bad_args[i][2][0] ? 3 : 2, bad_args[i][0], bad_args[i][1],
                            bad_args[i][2]);
                assert_int_equal(r, -EINVAL);
                capture_flush(&c);
                assert_non_null(strstr(c.err, "usage: vigil dmon"));
                capture_release(&c);
        }

        capture_init(&c);
        assert_int_equal(client_add_hosts(&c.ctx, host), 0);
        r = run_cmd(&c, cmd_dmon, 7, "dmon", "-e", "150", "-i", "7", "-c", "1");
        capture_flush(&c);
        assert_int_equal(r, -ENODEV);
        assert_string_equal(c.err, "vigil: no GPU with index '7'\n");
        capture_release(&c);

        /* the header comes back after 20 rows, at a tick boundary: 2 GPUs × 11 ticks */
        capture_init(&c);
        assert_int_equal(client_add_hosts(&c.ctx, host), 0);
        r = run_cmd(&c, cmd_dmon, 7, "dmon", "-e", "150", "-c", "11", "-d", "100");
        assert_int_equal(r, 0);
        capture_flush(&c);
        {
                int headers = 0, lines = 0;
                for (char *p = c.out; (p = strchr(p, '\n')); p++)
                        lines++;
                for (char *p = c.out; (p = strstr(p, "#Entity")); p++)
                        headers++;
                assert_int_equal(headers, 2);
                assert_int_equal(lines, 22 + 2 * 2);
                assert_non_null(
                    strstr(c.out, "GPU 1     LOST\n#Entity   TMPTR\nID\nGPU 0     43\n"));
        }
        capture_release(&c);

        /* dmon --json: one compact object per tick, filtered to the chosen GPUs */
        capture_init(&c);
        assert_int_equal(client_add_hosts(&c.ctx, host), 0);
        r = run_cmd(&c, cmd_dmon, 8, "dmon", "-e", "GPU_TEMP", "-j", "-i", "0", "-c", "1");
        assert_int_equal(r, 0);
        capture_flush(&c);
        {
                json_t *j = J(c.out);
                assert_int_equal(json_integer_value(json_object_get(j, "count")), 1);
                assert_string_equal(json_string_value(json_object_get(
                                        json_array_get(json_object_get(j, "gpus"), 0), "uuid")),
                                    "GPU-aaaa");
                json_decref(j);
                assert_ptr_equal(strchr(c.out, '\n'), c.out + c.out_n - 1);
        }
        capture_release(&c);

        capture_init(&c);
        assert_int_equal(client_add_hosts(&c.ctx, host), 0);
        assert_int_equal(run_cmd(&c, cmd_status, 1, "status"), 0);
        capture_flush(&c);
        assert_non_null(strstr(c.out, "Version:     0.1.0\n"));
        assert_non_null(strstr(c.out, "Uptime:      1h 2m 5s\n"));
        assert_non_null(strstr(c.out, "GPUs:        1/2 up\n"));
        assert_non_null(strstr(c.out, "Mode:        simulated"));
        assert_non_null(strstr(c.out, "Cache:       120.6 KiB, 98765 samples\n"));
        assert_non_null(strstr(c.out, "fast"));
        assert_non_null(strstr(c.out, "120us"));
        capture_release(&c);

        capture_init(&c);
        assert_int_equal(client_add_hosts(&c.ctx, host), 0);
        assert_int_equal(run_cmd(&c, cmd_fields, 1, "fields"), 0);
        capture_flush(&c);
        assert_non_null(strstr(c.out, "ID  NAME "));
        assert_non_null(strstr(c.out, "150  GPU_TEMP "));
        assert_non_null(strstr(c.out, "vigil_gpu_energy_joules_total  mJ    slow       10s\n"));
        capture_release(&c);

        capture_init(&c);
        assert_int_equal(client_add_hosts(&c.ctx, host), 0);
        assert_int_equal(run_cmd(&c, cmd_fields, 2, "fields", "--json"), 0);
        capture_flush(&c);
        {
                json_t *j = J(c.out);
                assert_int_equal(json_array_size(json_object_get(j, "fields")), 3);
                json_decref(j);
        }
        capture_release(&c);

        responder_stop(&rs);
}

static void test_parse_helpers(void **state)
{
        long v = -1;
        char out[32];

        (void)state;
        assert_int_equal(cli_parse_long("100", 0, 1000, &v), 0);
        assert_int_equal(v, 100);
        assert_int_equal(cli_parse_long("1001", 0, 1000, &v), -ERANGE);
        assert_int_equal(cli_parse_long("1x", 0, 1000, &v), -EINVAL);
        assert_int_equal(cli_parse_long("", 0, 1000, &v), -EINVAL);
        assert_int_equal(v, 100);
        assert_string_equal(cli_format_uptime(12.5, out, sizeof(out)), "12.5s");
        assert_string_equal(cli_format_uptime(125, out, sizeof(out)), "2m 5s");
        assert_string_equal(cli_format_uptime(90061, out, sizeof(out)), "1d 1h 1m");
}

static int group_setup(void **state)
{
        (void)state;
        return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
        (void)state;
        curl_global_cleanup();
        return 0;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_normalize_host),
            cmocka_unit_test(test_host_list),
            cmocka_unit_test(test_url_escape),
            cmocka_unit_test(test_table_plain),
            cmocka_unit_test(test_table_box),
            cmocka_unit_test(test_dmon_values),
            cmocka_unit_test(test_dmon_tags),
            cmocka_unit_test(test_dmon_resolve_and_render),
            cmocka_unit_test(test_unreachable_message),
            cmocka_unit_test(test_strip_controls),
            cmocka_unit_test(test_tls_problem),
            cmocka_unit_test(test_status_map),
            cmocka_unit_test(test_parse_helpers),
            cmocka_unit_test(test_failover),
            cmocka_unit_test(test_unreachable_all),
            cmocka_unit_test(test_http_errors),
            cmocka_unit_test(test_unix_socket),
            cmocka_unit_test(test_commands),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
