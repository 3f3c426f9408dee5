/* server.c — libmicrohttpd wiring, the listening sockets and the dispatch of a request: find its
 * route (routes.c), describe it to the security gate (security/gate.h) and answer from the
 * verdict, or run the handler. Every response is built by reply.c.
 * We create the listening sockets ourselves (getaddrinfo/bind/listen) and hand them to MHD, so
 * addresses parse the same way everywhere, port 0 works, and a unix socket is just another fd.
 * Responses are queued on the second access-handler call, never the first: as Debian builds
 * libmicrohttpd 0.9.75, answering on the first call closes every keep-alive connection. */
#include "api.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "api-internal.h"
#include "https.h"
#include "framer.h"
#include "reply.h"
#include "routes.h"
#include "selfmetrics.h"
#include "security/cidr.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/vtime.h"

/* What the gate needs to know about r, read from libmicrohttpd and the socket. */
static void gate_input_of(request *r, const route *rt, gate_input *in)
{
        /* The socket's own family tells the unix socket from TCP (with a thread pool,
         * MHD_CONNECTION_INFO_DAEMON is a worker, not the daemon we started). */
        const union MHD_ConnectionInfo *fi =
            MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);

        memset(in, 0, sizeof(*in));
        in->method = r->method;
        in->path = r->path;
        in->perm = rt->perm;
        in->is_inject = rt->is_inject;
        in->body = r->body.data;
        in->body_len = r->body.len;
        in->is_unix = fi && getsockname(fi->connect_fd, (struct sockaddr *)&ss, &sl) == 0 &&
                      ss.ss_family == AF_UNIX;
        if (in->is_unix) {
                struct ucred cr;
                socklen_t cl = sizeof(cr);
                if (getsockopt(fi->connect_fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0) {
                        in->peer_cred_ok = true;
                        in->uid = cr.uid;
                        in->gid = cr.gid;
                }
                in->tls_client_ok = true;
                return;
        }
        {
                const union MHD_ConnectionInfo *ai =
                    MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
                if (ai && ai->client_addr)
                        cidr_from_sockaddr(ai->client_addr, in->peer);
        }
        in->authorization = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
        in->forwarded_for =
            MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-Forwarded-For");
        in->tls_client_ok = https_client_ok(r->api, r->conn);
}

/* The gate said no: the reply is ours, the audit record the gate's. */
static enum MHD_Result reply_denied(request *r, const gate_verdict *v)
{
        r->challenge = v->challenge;
        r->retry_after = v->retry_after;
        if (v->err)
                return api_reply_errno(r, v->err, "%s", v->message);
        return api_reply_http_error(r, v->status, NULL, "%s", v->message);
}

/* The request target as sent (before libmicrohttpd unescapes it): a %00 would cut the path
 * short where the router reads it, and a '%' without two hex digits is not a path at all. */
static bool target_ok(const char *t)
{
        for (const char *p = t; *p && *p != '?'; p++) {
                if (*p != '%')
                        continue;
                if (!isxdigit((unsigned char)p[1]) || !isxdigit((unsigned char)p[2]))
                        return false;
                if (p[1] == '0' && p[2] == '0')
                        return false;
                p += 2;
        }
        return true;
}

/* The bytes allowed in a header name (RFC 9110 "token"). */
static bool token_char(unsigned char c)
{
        return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

struct header_check {
        const char *bad; /* first header that fails, NULL = all good */
        const char *why;
};

static enum MHD_Result check_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    size_t key_size, const char *value, size_t value_size)
{
        struct header_check *hc = cls;

        (void)kind;
        for (size_t i = 0; i < key_size; i++)
                if (!token_char((unsigned char)key[i])) {
                        hc->bad = key;
                        hc->why =
                            "a header name must be a token (no spaces, controls or separators)";
                        return MHD_NO;
                }
        if (key_size == 0 || (value && memchr(value, '\0', value_size))) {
                hc->bad = key;
                hc->why = key_size ? "a header value may not contain a NUL byte"
                                   : "a header name may not be empty";
                return MHD_NO;
        }
        return MHD_YES;
}

/* The request body cap: http.max_request_body, 64 KiB when unset. */
static size_t body_cap(const api *a)
{
        return a->opt.max_body ? a->opt.max_body : 65536;
}

/* A request that must be refused before its body is read, or NULL (first handler call). These
 * answer on the first call on purpose: libmicrohttpd then closes the connection, which is what
 * a request that cannot be framed needs. */
static enum MHD_Result refuse_early(request *r, const char *version, bool *refused)
{
        const char *te = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Transfer-Encoding");
        const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Length");
        size_t max = body_cap(r->api);

        *refused = false;
        /* RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400. Checked here, not by
         * libmicrohttpd's strict mode, whose answer is HTML with its status line sent twice. */
        if (version && !strcmp(version, "HTTP/1.1") &&
            !MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Host")) {
                *refused = true;
                r->close = true;
                return api_reply_errno(r, -EINVAL, "an HTTP/1.1 request needs a Host header");
        }
        if (te && strcasecmp(te, "chunked")) {
                /* libmicrohttpd would wait for a body it cannot frame */
                *refused = true;
                r->close = true;
                return api_reply_errno(r, -EOPNOTSUPP, "transfer encoding '%.64s' is not supported",
                                       te);
        }
        if (!te && cl && strtoull(cl, NULL, 10) > max) {
                /* said before the body comes: no upload only to be refused at its end (the
                 * framer has checked that Content-Length is digits) */
                *refused = true;
                r->close = true;
                return api_reply_errno(r, -EMSGSIZE, "request body exceeds %zu bytes", max);
        }
        return MHD_YES;
}

static enum MHD_Result dispatch(request *r)
{
        char path[1024];
        bool path_known = false;
        char allow[64] = "";
        const route *rt;
        gate_input in;
        gate_verdict v;
        enum MHD_Result res;

        {
                unsigned st;
                const char *why;
                if (framer_refusal(r->conn, r->ordinal, r->path, &st, &why)) {
                        /* a head or a chunked body that could not be framed (framer.h) */
                        r->close = true;
                        return api_reply_http_error(r, st, NULL, "%s", why);
                }
        }
        if (strlen(r->path) >= sizeof(path))
                return api_reply_http_error(r, 414, NULL, "request path is too long");
        if (r->bad_target) {
                r->close = true;
                return api_reply_errno(r, -EINVAL,
                                       "request path has a NUL byte (%%00) or an invalid escape");
        }
        {
                struct header_check hc = {0};
                MHD_get_connection_values_n(r->conn, MHD_HEADER_KIND, check_header, &hc);
                if (hc.bad) {
                        r->close = true;
                        return api_reply_errno(r, -EINVAL, "%s: '%.64s'", hc.why, hc.bad);
                }
        }
        snprintf(path, sizeof(path), "%s", r->path);
        rt = routes_find(r->method, path, r, &path_known, allow, sizeof(allow));
        if (!rt && path_known)
                return api_reply_http_error(r, 405, allow, "method not allowed");
        if (!rt)
                return api_reply_errno(r, -ENOENT, "no such endpoint '%s'", r->path);
        r->route = rt->pattern;
        gate_input_of(r, rt, &in);
        gate_check(r->api->opt.gate, &in, &r->sec, &v);
        if (!v.allow)
                res = reply_denied(r, &v);
        else if (r->too_large)
                res = api_reply_errno(r, -EMSGSIZE, "request body exceeds %zu bytes",
                                      body_cap(r->api));
        else
                res = rt->fn(r);
        gate_done(r->api->opt.gate, &in, &r->sec, r->status, &v);
        return res;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
        api *a = cls;
        request *r = *con_cls;

        if (!r || !r->started) {
                /* First call: only set up. Answering now would cost keep-alive. */
                bool refused;
                if (!r)
                        r = calloc(1, sizeof(*r));
                if (!r)
                        return MHD_NO;
                r->started = true;
                r->api = a;
                r->conn = conn;
                r->method = method;
                r->path = url;
                buf_init(&r->body, body_cap(a));
                gate_begin(&r->sec);
                *con_cls = r;
                r->ordinal = framer_request_started(conn);
                {
                        enum MHD_Result res = refuse_early(r, version, &refused);
                        if (refused)
                                return res;
                }
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

/* libmicrohttpd's URI log hook: the request target as the client sent it. The request struct
 * starts here (its result becomes con_cls); on_request fills it in. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
        request *r = calloc(1, sizeof(*r));

        (void)cls;
        (void)conn;
        if (r)
                r->bad_target = !target_ok(uri);
        return r;
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
        if (r->started)
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

/* MHD's accept policy callback: the gate's allowlist. */
static enum MHD_Result accept_cb(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
        (void)addrlen;
        return gate_accept_addr(cls, addr) ? MHD_YES : MHD_NO;
}

static struct MHD_Daemon *start_mhd(api *a, int fd, bool per_ip)
{
        unsigned flags =
            MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_USE_ITC;

        if (per_ip && a->opt.tls)
                flags |= MHD_USE_TLS;
        return MHD_start_daemon(
            flags, 0, per_ip && a->opt.gate ? accept_cb : NULL, a->opt.gate, on_request, a,
            MHD_OPTION_LISTEN_SOCKET, fd,
            /* every request head is judged before libmicrohttpd parses it (framer.h) */
            MHD_OPTION_NOTIFY_CONNECTION, (per_ip && a->opt.tls) ? framer_on_tls : framer_on_plain,
            a, MHD_OPTION_ARRAY, https_options(a, per_ip), MHD_OPTION_THREAD_POOL_SIZE,
            a->opt.threads ? a->opt.threads : 2, MHD_OPTION_CONNECTION_LIMIT,
            a->opt.max_connections ? a->opt.max_connections : 256,
            MHD_OPTION_PER_IP_CONNECTION_LIMIT,
            per_ip ? (a->opt.max_per_ip ? a->opt.max_per_ip : 32) : 0,
            MHD_OPTION_CONNECTION_TIMEOUT, a->opt.timeout_s ? a->opt.timeout_s : 30,
            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768, MHD_OPTION_STRICT_FOR_CLIENT, 0,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, a, MHD_OPTION_URI_LOG_CALLBACK, on_uri, a,
            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, a, MHD_OPTION_END);
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
        atomic_store(&a->dcgm, a->counters != NULL);
        expo_pin_profiling(a->counters, a->opt.sampler);
        snapshot_slot_init(&a->metrics);
        snapshot_slot_init(&a->metrics_om);
        snapshot_slot_init(&a->metrics_gz[0]);
        snapshot_slot_init(&a->metrics_gz[1]);
        pthread_mutex_init(&a->render_lock, NULL);
        pthread_mutex_init(&a->gzip_lock, NULL);
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

int api_set_metrics(api *a, const struct counter_set *counters, bool dcgm_naming,
                    const api_label *labels, size_t n_labels)
{
        counter_set *own = NULL, *old_own;
        api_label *nl = calloc(n_labels + 1, sizeof(*nl)), *old_labels;
        size_t old_n;
        int r = 0;

        if (!nl)
                return -ENOMEM;
        for (size_t i = 0; i < n_labels; i++) {
                nl[i].name = strdup(labels[i].name);
                nl[i].value = strdup(labels[i].value);
                if (!nl[i].name || !nl[i].value)
                        r = -ENOMEM;
        }
        if (r == 0 && dcgm_naming && !counters)
                r = counters_default(&own, NULL, 0);
        if (r < 0) {
                for (size_t i = 0; i < n_labels; i++) {
                        free((char *)nl[i].name);
                        free((char *)nl[i].value);
                }
                free(nl);
                return r;
        }
        /* Every reader of the families and labels renders under render_lock. */
        pthread_mutex_lock(&a->render_lock);
        old_own = a->own_counters;
        old_labels = a->labels;
        old_n = a->n_labels;
        a->own_counters = own;
        a->counters = counters ? counters : own;
        a->labels = nl;
        a->n_labels = n_labels;
        a->opt.counters = a->counters;
        a->opt.dcgm_naming = a->counters != NULL;
        atomic_store(&a->dcgm, a->counters != NULL);
        a->opt.extra_labels = a->labels;
        a->opt.n_extra_labels = a->n_labels;
        expo_pin_profiling(a->counters, a->opt.sampler);
        pthread_mutex_unlock(&a->render_lock);
        /* The snapshots were rendered with the old set: a scrape before the next sweep renders
         * its variant again. */
        a->last_sweep_us = time_real_us();
        counters_free(old_own);
        for (size_t i = 0; i < old_n; i++) {
                free((char *)old_labels[i].name);
                free((char *)old_labels[i].value);
        }
        free(old_labels);
        return 0;
}

api *api_free(api *a)
{
        if (!a)
                return NULL;
        api_stop(a);
        snapshot_slot_release(&a->metrics);
        snapshot_slot_release(&a->metrics_om);
        snapshot_slot_release(&a->metrics_gz[0]);
        snapshot_slot_release(&a->metrics_gz[1]);
        pthread_mutex_destroy(&a->gzip_lock);
        a->own_counters = counters_free(a->own_counters);
        pthread_mutex_destroy(&a->render_lock);
        buf_release(&a->render_buf);
        free_strings(a);
        free(a);
        return NULL;
}
