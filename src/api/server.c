/* server.c — libmicrohttpd wiring, the listening sockets and the route table.
 * We create the listening sockets ourselves (getaddrinfo/bind/listen) and hand them to MHD, so
 * addresses parse the same way everywhere, port 0 works, and a unix socket is just another fd.
 * Responses are queued on the second access-handler call, never the first: as Debian builds
 * libmicrohttpd 0.9.75, answering on the first call closes every keep-alive connection. */
#include "api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "api-internal.h"
#include "selfmetrics.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/vtime.h"

typedef enum MHD_Result (*handler_fn)(request *r);
static bool route_match(const char *pattern, const char *path, request *r);

/* Every route, one line each. "{x}" matches one path segment and is captured in request.seg.
 * perm is what the caller's role must hold (auth.h); a route without one is admin-only. */
static const struct route {
        const char *method;
        const char *pattern;
        handler_fn fn;
        enum auth_perm perm;
} routes[] = {
    {"GET", "/metrics", h_metrics, PERM_METRICS},
    {"GET", "/healthz", h_healthz, PERM_OPEN},
    {"GET", "/readyz", h_readyz, PERM_OPEN},
    {"GET", "/api/v1/status", h_status, PERM_READ},
    {"GET", "/api/v1/gpus", h_gpus, PERM_READ},
    {"GET", "/api/v1/gpus/{id}", h_gpu, PERM_READ},
    {"GET", "/api/v1/gpus/{id}/history", h_history, PERM_READ},
    {"GET", "/api/v1/fields", h_fields, PERM_READ},
    {"GET", "/api/v1/anomalies", h_anomalies, PERM_READ},
    {"POST", "/api/v1/backup", h_backup_create, PERM_ADMIN},
    {"GET", "/api/v1/backups", h_backups, PERM_ADMIN},
    {"GET", "/api/v1/keys", h_keys, PERM_ADMIN},
    {"POST", "/api/v1/keys/rotate", h_keys_rotate, PERM_ADMIN},
    {"POST", "/api/v1/inject", h_inject, PERM_ADMIN},
    {"GET", "/api/v1/health", h_health, PERM_READ},
    {"GET", "/api/v1/incidents", h_incidents, PERM_READ},
    {"POST", "/api/v1/incidents/{id}/ack", h_incident_ack, PERM_WRITE},
    {"GET", "/api/v1/audit", h_audit, PERM_ADMIN},
    {"GET", "/api/v1/audit/verify", h_audit_verify, PERM_ADMIN},
    {"GET", "/api/v1/config", h_config, PERM_ADMIN},
    {"POST", "/api/v1/config/reload", h_config_reload, PERM_ADMIN},
    {"POST", "/api/v1/tokens/revoke", h_token_revoke, PERM_ADMIN},
};

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
                if (!strcmp(method, routes[i].method) ||
                    (!strcmp(method, "HEAD") && !strcmp(routes[i].method, "GET")))
                        return routes[i].perm;
        }
        return known ? -EPERM : -ENOENT;
}

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
                        r->seg[r->n_seg++] = s; /* terminated at '/' by the caller's copy */
                } else if ((size_t)(pe - p) != (size_t)(se - s) || strncmp(p, s, pe - p) != 0) {
                        return false;
                }
                p = pe;
                s = se;
        }
        return *p == '\0' && (*s == '\0' || (s[0] == '/' && s[1] == '\0'));
}

static enum MHD_Result reply(request *r, unsigned status, char *data, size_t len, const char *ctype)
{
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
        enum MHD_Result ret;

        if (!resp) {
                free(data);
                return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", ctype);
        MHD_add_response_header(resp, "Cache-Control", "no-store");
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
        api_decorate_response(r, resp, status);
        if (r->api->draining) /* the client reconnects, to our successor */
                MHD_add_response_header(resp, "Connection", "close");
        r->status = status;
        ret = MHD_queue_response(r->conn, status, resp);
        MHD_destroy_response(resp);
        return ret;
}

enum MHD_Result api_reply_json(request *r, unsigned status, json_t *body)
{
        char *s = json_dumps(body, JSON_COMPACT);
        size_t len;

        json_decref(body);
        if (!s)
                return MHD_NO;
        len = strlen(s);
        /* newline-terminated for curl users */
        {
                char *t = realloc(s, len + 2);
                if (!t) {
                        free(s);
                        return MHD_NO;
                }
                s = t;
                s[len++] = '\n';
                s[len] = '\0';
        }
        return reply(r, status, s, len, "application/json");
}

enum MHD_Result api_reply_error(request *r, unsigned status, const char *fmt, ...)
{
        char msg[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return api_reply_json(
            r, status, json_pack("{s:{s:i,s:s}}", "error", "code", (int)status, "message", msg));
}

static enum MHD_Result dispatch(request *r)
{
        char path[1024];
        bool path_known = false;
        char allow[64] = "";

        if (strlen(r->path) >= sizeof(path))
                return api_reply_error(r, 414, "request path is too long");
        snprintf(path, sizeof(path), "%s", r->path);
        for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
                const char *method = r->method;
                if (!route_match(routes[i].pattern, path, r))
                        continue;
                path_known = true;
                if (strcmp(method, "HEAD") == 0)
                        method = "GET";
                if (strcmp(method, routes[i].method) != 0) {
                        snprintf(allow + strlen(allow), sizeof(allow) - strlen(allow), "%s%s",
                                 allow[0] ? ", " : "", routes[i].method);
                        continue;
                }
                r->route = routes[i].pattern;
                /* cut captured segments at their '/' */
                for (size_t k = 0; k < r->n_seg; k++) {
                        char *sl = strchr((char *)r->seg[k], '/');
                        if (sl)
                                *sl = '\0';
                }
                {
                        int denied;
                        enum MHD_Result res;
                        if (!gate_check(r, routes[i].perm, routes[i].fn == h_inject, &denied))
                                return (enum MHD_Result)denied;
                        if (r->too_large)
                                res = api_reply_error(r, 413, "request body exceeds %zu bytes",
                                                      r->api->opt.max_body);
                        else
                                res = routes[i].fn(r);
                        gate_done(r);
                        return res;
                }
        }
        if (path_known) {
                json_t *j = json_pack("{s:{s:i,s:s}}", "error", "code", 405, "message",
                                      "method not allowed");
                char *s = json_dumps(j, JSON_COMPACT);
                struct MHD_Response *resp;
                enum MHD_Result ret;

                json_decref(j);
                if (!s)
                        return MHD_NO;
                resp = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
                if (!resp) {
                        free(s);
                        return MHD_NO;
                }
                MHD_add_response_header(resp, "Content-Type", "application/json");
                MHD_add_response_header(resp, "Allow", allow);
                api_decorate_response(r, resp, 405);
                r->status = 405;
                ret = MHD_queue_response(r->conn, 405, resp);
                MHD_destroy_response(resp);
                return ret;
        }
        return api_reply_error(r, 404, "no such endpoint '%s'", r->path);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
        api *a = cls;
        request *r = *con_cls;

        (void)version;
        if (!r) {
                /* First call: only set up. Answering now would cost keep-alive. */
                r = calloc(1, sizeof(*r));
                if (!r)
                        return MHD_NO;
                r->api = a;
                r->conn = conn;
                r->method = method;
                r->path = url;
                buf_init(&r->body, a->opt.max_body ? a->opt.max_body : 65536);
                gate_begin(r);
                *con_cls = r;
                return MHD_YES;
        }
        if (*upload_data_size > 0) {
                if (!r->too_large && buf_append(&r->body, upload_data, *upload_data_size) < 0)
                        r->too_large = true;
                *upload_data_size = 0;
                return MHD_YES;
        }
        a->requests++;
        {
                int64_t t0 = time_mono_us();
                enum MHD_Result res = dispatch(r);
                selfmetrics_http_observe(r->route, r->status ? r->status : 200,
                                         (double)(time_mono_us() - t0) / 1e6);
                return res;
        }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
        request *r = *con_cls;

        (void)cls;
        (void)conn;
        (void)toe;
        if (!r)
                return;
        buf_release(&r->body);
        free(r);
        *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
        char msg[512];
        size_t n;

        (void)cls;
        vsnprintf(msg, sizeof(msg), fmt, ap);
        n = strlen(msg);
        while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
                msg[--n] = '\0';
        log_debug("http", "%s", msg);
}

/* Split "host:port" / "[v6]:port". */
static int split_hostport(const char *s, char *host, size_t hl, char *port, size_t pl)
{
        const char *colon;

        if (s[0] == '[') {
                const char *close = strchr(s, ']');
                if (!close || close[1] != ':')
                        return -EINVAL;
                snprintf(host, hl, "%.*s", (int)(close - s - 1), s + 1);
                snprintf(port, pl, "%s", close + 2);
        } else {
                colon = strrchr(s, ':');
                if (!colon)
                        return -EINVAL;
                snprintf(host, hl, "%.*s", (int)(colon - s), s);
                snprintf(port, pl, "%s", colon + 1);
        }
        return port[0] ? 0 : -EINVAL;
}

static int listen_tcp(const char *addr, char *url, size_t urllen, char *err, size_t errlen)
{
        struct addrinfo hints = {.ai_family = AF_UNSPEC,
                                 .ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
        struct addrinfo *res = NULL;
        char host[256], port[16];
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        char shown[INET6_ADDRSTRLEN] = "";
        int fd = -1, one = 1, r;

        if (split_hostport(addr, host, sizeof(host), port, sizeof(port)) < 0) {
                snprintf(err, errlen, "cannot parse listen address '%s': expected ADDR:PORT", addr);
                return -EINVAL;
        }
        r = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
        if (r != 0) {
                snprintf(err, errlen, "cannot resolve listen address '%s': %s", addr,
                         gai_strerror(r));
                return -EINVAL;
        }
        fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
        if (fd < 0) {
                r = -errno;
                goto fail;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (res->ai_family == AF_INET6) {
                int zero = 0; /* "[::]:5555" serves IPv4 too */
                setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
        }
        if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 128) < 0) {
                r = -errno;
                goto fail;
        }
        getsockname(fd, (struct sockaddr *)&ss, &sl);
        if (ss.ss_family == AF_INET) {
                struct sockaddr_in *in = (struct sockaddr_in *)&ss;
                inet_ntop(AF_INET, &in->sin_addr, shown, sizeof(shown));
                snprintf(url, urllen, "http://%s:%u", shown, ntohs(in->sin_port));
        } else {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
                inet_ntop(AF_INET6, &in6->sin6_addr, shown, sizeof(shown));
                snprintf(url, urllen, "http://[%s]:%u", shown, ntohs(in6->sin6_port));
        }
        freeaddrinfo(res);
        return fd;
fail:
        snprintf(err, errlen, "cannot listen on '%s': %s", addr, strerror(-r));
        if (fd >= 0)
                close(fd);
        freeaddrinfo(res);
        return r;
}

static int listen_unix(const char *path, char *err, size_t errlen)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd, r;

        if (strlen(path) >= sizeof(sa.sun_path)) {
                snprintf(err, errlen, "socket path '%s' is too long", path);
                return -ENAMETOOLONG;
        }
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        /* A stale socket from a previous run is replaced; a live one is refused. */
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
                close(fd);
                snprintf(err, errlen, "cannot listen on '%s': another vigild is serving it", path);
                return -EADDRINUSE;
        }
        unlink(path);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
                r = -errno;
                close(fd);
                snprintf(err, errlen, "cannot listen on '%s': %s", path, strerror(-r));
                return r;
        }
        chmod(path, 0660);
        return fd;
}

/* The URL of a listener we did not bind ourselves (takeover). */
static int inherited_tcp(int fd, char *url, size_t urllen)
{
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        char shown[INET6_ADDRSTRLEN] = "";

        if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_INET) {
                struct sockaddr_in *in = (struct sockaddr_in *)&ss;
                inet_ntop(AF_INET, &in->sin_addr, shown, sizeof(shown));
                snprintf(url, urllen, "http://%s:%u", shown, ntohs(in->sin_port));
        } else if (ss.ss_family == AF_INET6) {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
                inet_ntop(AF_INET6, &in6->sin6_addr, shown, sizeof(shown));
                snprintf(url, urllen, "http://[%s]:%u", shown, ntohs(in6->sin6_port));
        }
        return fd;
}

static void free_strings(api *a)
{
        for (size_t i = 0; i < a->n_labels; i++) {
                free((char *)a->labels[i].name);
                free((char *)a->labels[i].value);
        }
        free(a->labels);
        free(a->hostname);
        free(a->listen);
        free(a->socket_path);
        free(a->addr_file);
}

static struct MHD_Daemon *start_mhd(api *a, int fd, bool per_ip)
{
        unsigned flags =
            MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_USE_ITC;

        if (per_ip && a->opt.tls)
                flags |= MHD_USE_TLS;
        return MHD_start_daemon(
            flags, 0, per_ip && a->opt.gate ? gate_accept : NULL, a->opt.gate, on_request, a,
            MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_ARRAY,
            per_ip && a->opt.tls ? tls_mhd_options(a->opt.tls) : tls_no_options(),
            MHD_OPTION_THREAD_POOL_SIZE, a->opt.threads ? a->opt.threads : 2,
            MHD_OPTION_CONNECTION_LIMIT, a->opt.max_connections ? a->opt.max_connections : 256,
            MHD_OPTION_PER_IP_CONNECTION_LIMIT,
            per_ip ? (a->opt.max_per_ip ? a->opt.max_per_ip : 32) : 0,
            MHD_OPTION_CONNECTION_TIMEOUT, a->opt.timeout_s ? a->opt.timeout_s : 30,
            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768, MHD_OPTION_STRICT_FOR_CLIENT, 1,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, a, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, a,
            MHD_OPTION_END);
}

int api_new(const api_options *opt, api **ret)
{
        _cleanup_free_ api *a = calloc(1, sizeof(*a));

        if (!a)
                return -ENOMEM;
        a->opt = *opt;
        a->hostname = strdup(opt->hostname ? opt->hostname : "");
        a->listen = strdup(opt->listen ? opt->listen : "");
        a->socket_path = strdup(opt->socket_path ? opt->socket_path : "");
        a->addr_file = strdup(opt->addr_file ? opt->addr_file : "");
        a->labels = calloc(opt->n_extra_labels + 1, sizeof(api_label));
        if (!a->hostname || !a->listen || !a->socket_path || !a->addr_file || !a->labels)
                goto oom;
        for (size_t i = 0; i < opt->n_extra_labels; i++) {
                a->labels[i].name = strdup(opt->extra_labels[i].name);
                a->labels[i].value = strdup(opt->extra_labels[i].value);
                a->n_labels++;
                if (!a->labels[i].name || !a->labels[i].value)
                        goto oom;
        }
        a->opt.hostname = a->hostname;
        a->opt.listen = a->listen;
        a->opt.socket_path = a->socket_path;
        a->opt.addr_file = a->addr_file;
        a->opt.extra_labels = a->labels;
        a->opt.n_extra_labels = a->n_labels;
        a->start_us = time_real_us();
        a->counters = opt->counters;
        if (opt->dcgm_naming && !opt->counters) {
                int r = counters_default(&a->own_counters, NULL, 0);
                if (r < 0) {
                        free_strings(a);
                        return r;
                }
                a->counters = a->own_counters;
        }
        a->opt.counters = a->counters;
        a->opt.dcgm_naming = a->counters != NULL;
        snapshot_slot_init(&a->metrics);
        snapshot_slot_init(&a->metrics_om);
        pthread_mutex_init(&a->render_lock, NULL);
        buf_init(&a->render_buf, 64u << 20);
        *ret = TAKE_PTR(a);
        return 0;
oom:
        free_strings(a);
        return -ENOMEM;
}

int api_start(api *a, char *url, size_t urllen, char *err, size_t errlen)
{
        int fd;

        url[0] = '\0';
        if (a->opt.inherit_tcp_fd > 0) {
                fd = inherited_tcp(a->opt.inherit_tcp_fd, url, urllen);
                a->tcp = start_mhd(a, fd, true);
                if (!a->tcp) {
                        close(fd);
                        snprintf(err, errlen, "cannot serve the inherited listener %s", url);
                        return -EIO;
                }
                a->tcp_fd = fd;
        } else if (a->listen[0]) {
                fd = listen_tcp(a->listen, url, urllen, err, errlen);
                if (fd < 0)
                        return fd;
                a->tcp = start_mhd(a, fd, true);
                if (!a->tcp) {
                        close(fd);
                        snprintf(err, errlen, "cannot start the HTTP server on '%s'", a->listen);
                        return -EIO;
                }
                a->tcp_fd = fd;
        }
        if (a->opt.tls && !strncmp(url, "http://", 7)) { /* the URL says what is served */
                char tmp[256];
                snprintf(tmp, sizeof(tmp), "https://%s", url + 7);
                snprintf(url, urllen, "%s", tmp);
        }
        if (a->socket_path[0]) {
                fd = a->opt.inherit_unix_fd > 0 ? a->opt.inherit_unix_fd
                                                : listen_unix(a->socket_path, err, errlen);
                if (fd < 0) {
                        api_stop(a);
                        return fd;
                }
                a->unix_srv = start_mhd(a, fd, false);
                if (!a->unix_srv) {
                        close(fd);
                        api_stop(a);
                        snprintf(err, errlen, "cannot start the HTTP server on '%s'",
                                 a->socket_path);
                        return -EIO;
                }
                a->unix_fd = fd;
                a->unix_bound = true;
        }
        if (a->addr_file[0] && url[0]) {
                /* write-then-rename so a reader never sees a partial address */
                char tmp[4096];
                FILE *f;
                snprintf(tmp, sizeof(tmp), "%s.tmp", a->addr_file);
                f = fopen(tmp, "w");
                if (f) {
                        fprintf(f, "%s\n", url);
                        if (fclose(f) == 0)
                                rename(tmp, a->addr_file);
                        else
                                unlink(tmp);
                }
        }
        return 0;
}

static unsigned open_connections(struct MHD_Daemon *d)
{
        const union MHD_DaemonInfo *i =
            d ? MHD_get_daemon_info(d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS) : NULL;

        return i ? i->num_connections : 0;
}

/* Stop accepting. MHD then leaves the listening sockets to us (closed in api_stop). */
static void quiesce(api *a)
{
        if (a->quiesced)
                return;
        if (a->tcp)
                MHD_quiesce_daemon(a->tcp);
        if (a->unix_srv)
                MHD_quiesce_daemon(a->unix_srv);
        a->quiesced = true;
}

unsigned api_drain(api *a, int64_t timeout_us)
{
        int64_t deadline = time_mono_us() + timeout_us;
        unsigned open;

        if (!a)
                return 0;
        a->draining = true;
        quiesce(a);
        for (;;) {
                open = open_connections(a->tcp) + open_connections(a->unix_srv);
                if (open == 0 || time_mono_us() >= deadline)
                        return open;
                usleep(5000);
        }
}

void api_listen_fds(api *a, int *tcp_fd, int *unix_fd)
{
        *tcp_fd = a && a->tcp ? a->tcp_fd : -1;
        *unix_fd = a && a->unix_srv ? a->unix_fd : -1;
}

void api_handed_over(api *a)
{
        if (a)
                a->unix_bound = false;
}

void api_stop(api *a)
{
        if (!a)
                return;
        quiesce(a);
        if (a->tcp) {
                MHD_stop_daemon(a->tcp);
                a->tcp = NULL;
                close(a->tcp_fd);
        }
        if (a->unix_srv) {
                MHD_stop_daemon(a->unix_srv);
                a->unix_srv = NULL;
                close(a->unix_fd);
        }
        if (a->unix_bound) {
                unlink(a->socket_path);
                a->unix_bound = false;
        }
}

api *api_free(api *a)
{
        if (!a)
                return NULL;
        api_stop(a);
        snapshot_slot_release(&a->metrics);
        snapshot_slot_release(&a->metrics_om);
        a->own_counters = counters_free(a->own_counters);
        pthread_mutex_destroy(&a->render_lock);
        buf_release(&a->render_buf);
        free_strings(a);
        free(a);
        return NULL;
}
