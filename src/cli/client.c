/* client.c — libcurl client for vigild with ordered failover across targets. A target that does
 * not answer at the transport level (refused, unresolvable, connect timeout) passes the request
 * to the next one; a target that answers with any HTTP status wins and becomes the first one
 * tried next time, so that a dmon loop keeps talking to the same daemon. */
#include "client.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <curl/curl.h>

void cli_ctx_init(cli_ctx *ctx)
{
        *ctx = (cli_ctx){
            .timeout_us = CLIENT_DEFAULT_TIMEOUT_US,
            .connect_us = CLIENT_CONNECT_TIMEOUT_US,
            .max_body = CLIENT_MAX_BODY,
            .out = stdout,
            .err = stderr,
        };
}

void cli_ctx_release(cli_ctx *ctx)
{
        for (size_t i = 0; i < ctx->n_targets; i++) {
                free(ctx->targets[i].base);
                free(ctx->targets[i].socket);
        }
        ctx->n_targets = 0;
        if (ctx->token) {
                /* the token is a secret: do not leave it in freed memory */
                explicit_bzero(ctx->token, strlen(ctx->token));
                free(ctx->token);
                ctx->token = NULL;
        }
        if (ctx->password) {
                explicit_bzero(ctx->password, strlen(ctx->password));
                free(ctx->password);
                ctx->password = NULL;
        }
        free(ctx->user);
        ctx->user = NULL;
        free(ctx->cacert);
        ctx->cacert = NULL;
        free(ctx->capath);
        ctx->capath = NULL;
        free(ctx->cert);
        ctx->cert = NULL;
        free(ctx->key);
        ctx->key = NULL;
        if (ctx->curl)
                curl_easy_cleanup(ctx->curl);
        ctx->curl = NULL;
}

void cli_error(cli_ctx *ctx, const char *fmt, ...)
{
        va_list ap;
        FILE *f = ctx && ctx->err ? ctx->err : stderr;

        fputs("vigil: ", f);
        va_start(ap, fmt);
        vfprintf(f, fmt, ap);
        va_end(ap);
        fputc('\n', f);
        fflush(f);
}

int client_normalize_host(const char *s, char **ret)
{
        const char *end, *sep;
        size_t n;
        char *r;

        while (*s && isspace((unsigned char)*s))
                s++;
        end = s + strlen(s);
        while (end > s && isspace((unsigned char)end[-1]))
                end--;
        sep = memmem(s, (size_t)(end - s), "://", 3);
        /* drop trailing '/', but never into the "://" of the scheme */
        while (end > (sep ? sep + 3 : s) && end[-1] == '/')
                end--;
        n = (size_t)(end - s);
        if (n == 0)
                return -EINVAL;
        for (const char *p = s; p < end; p++)
                if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
                        return -EINVAL;
        if (sep) {
                size_t slen = (size_t)(sep - s);
                if (!((slen == 4 && strncasecmp(s, "http", 4) == 0) ||
                      (slen == 5 && strncasecmp(s, "https", 5) == 0)))
                        return -EINVAL;
                if ((size_t)(end - sep) <= 3)
                        return -EINVAL; /* "http://" with no host */
                if (asprintf(&r, "%.*s", (int)n, s) < 0)
                        return -ENOMEM;
        } else if (asprintf(&r, "http://%.*s", (int)n, s) < 0) {
                return -ENOMEM;
        }
        *ret = r;
        return 0;
}

int client_add_hosts(cli_ctx *ctx, const char *list)
{
        _cleanup_free_ char *copy = strdup(list);
        char *save = NULL, *tok;
        const char *p;
        int r;

        if (!copy)
                return -ENOMEM;
        /* strtok would skip empty entries; an empty entry ("a,,b", "a,") is a typo worth refusing */
        for (p = list; *p; p++)
                ;
        if (p == list || list[0] == ',' || p[-1] == ',' || strstr(list, ",,"))
                return -EINVAL;
        for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                char *base = NULL;

                if (ctx->n_targets >= CLIENT_MAX_TARGETS)
                        return -E2BIG;
                r = client_normalize_host(tok, &base);
                if (r < 0)
                        return r;
                ctx->targets[ctx->n_targets++] = (client_target){.base = base};
        }
        return 0;
}

int client_add_socket(cli_ctx *ctx, const char *path)
{
        char *base, *sock;

        if (!path || !*path)
                return -EINVAL;
        if (ctx->n_targets >= CLIENT_MAX_TARGETS)
                return -E2BIG;
        base = strdup("http://localhost");
        sock = strdup(path);
        if (!base || !sock) {
                free(base);
                free(sock);
                return -ENOMEM;
        }
        ctx->targets[ctx->n_targets++] = (client_target){.base = base, .socket = sock};
        return 0;
}

int client_add_defaults(cli_ctx *ctx)
{
        const char *env = getenv("VIGIL_HOST");
        struct stat st;

        if (ctx->n_targets > 0)
                return 0;
        if (env && *env)
                return client_add_hosts(ctx, env);
        if (stat(CLIENT_DEFAULT_SOCKET, &st) == 0 && S_ISSOCK(st.st_mode))
                return client_add_socket(ctx, CLIENT_DEFAULT_SOCKET);
        return client_add_hosts(ctx, CLIENT_DEFAULT_URL);
}

char *client_escape(const char *s)
{
        static const char hex[] = "0123456789ABCDEF";
        char *r = malloc(strlen(s) * 3 + 1), *w = r;

        if (!r)
                return NULL;
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
                        *w++ = (char)*p;
                } else {
                        *w++ = '%';
                        *w++ = hex[*p >> 4];
                        *w++ = hex[*p & 15];
                }
        }
        *w = '\0';
        return r;
}

char *client_build_url(const char *base, const char *path)
{
        char *r;

        if (asprintf(&r, "%s%s%s", base, path[0] == '/' ? "" : "/", path) < 0)
                return NULL;
        return r;
}

const char *client_target_name(const client_target *t)
{
        return t->socket ? t->socket : t->base;
}

int client_compose_unreachable(buf *b, const client_attempt *a, size_t n)
{
        buf_puts(b, "cannot reach vigild at ");
        for (size_t i = 0; i < n; i++)
                buf_printf(b, "%s'%s' (%s)", i ? ", " : "", a[i].target, a[i].reason);
        if (n == 0)
                buf_puts(b, "any host (none configured)");
        return b->err;
}

int client_compose_tls_failure(buf *b, const client_attempt *a, size_t n)
{
        buf_puts(b, "TLS failure with vigild at ");
        for (size_t i = 0; i < n; i++)
                buf_printf(b, "%s'%s' (%s)", i ? ", " : "", a[i].target, a[i].reason);
        return b->err;
}

int client_status_to_errno(long status)
{
        static const struct {
                long status;
                int err;
        } map[] = {
            {400, -EINVAL},     {401, -EPERM},  {403, -EACCES},    {404, -ENOENT},
            {405, -EINVAL},     {409, -EBUSY},  {413, -EMSGSIZE},  {429, -EAGAIN},
            {501, -EOPNOTSUPP}, {503, -EAGAIN}, {504, -ETIMEDOUT},
        };

        for (size_t i = 0; i < ARRAY_SIZE(map); i++)
                if (map[i].status == status)
                        return map[i].err;
        if (status >= 400 && status < 500)
                return -EINVAL;
        return -EIO;
}

/* ---- transfer ---- */

typedef struct sink {
        buf body;       /* the answer, bounded */
        bool too_large; /* the bound was hit */
} sink;

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
        sink *s = userdata;
        size_t n = size * nmemb;

        if (buf_append(&s->body, ptr, n) < 0) {
                s->too_large = s->body.err == -E2BIG;
                return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
        }
        return n;
}

static int on_progress(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
        cli_ctx *ctx = clientp;

        (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
        return ctx->interrupted && *ctx->interrupted ? 1 : 0;
}

const char *client_tls_problem(int curl_code, const char *msg)
{
        static const struct {
                const char *needle; /* in curl's (OpenSSL's) text, case-insensitive */
                const char *problem;
        } alerts[] = {
            {"certificate required", "client certificate required"},
            {"alert handshake failure", "client certificate required or no common cipher"},
            {"unknown ca", "client certificate not trusted by the daemon"},
            {"bad certificate", "client certificate refused by the daemon"},
            {"certificate expired", "certificate expired"},
            {"wrong version number", "not a TLS server (plain http?)"},
            {"protocol version", "no common TLS version"},
        };
        const char *m = msg ? msg : "";

        switch (curl_code) {
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_ISSUER_ERROR:
                if (strcasestr(m, "subject name") || strcasestr(m, "does not match") ||
                    strcasestr(m, "hostname"))
                        return "hostname mismatch";
                if (strcasestr(m, "expired"))
                        return "certificate expired";
                if (strcasestr(m, "self-signed") || strcasestr(m, "self signed"))
                        return "certificate not trusted (self-signed)";
                return "certificate not trusted";
        case CURLE_SSL_CACERT_BADFILE:
                return "cannot read the CA certificates";
        case CURLE_SSL_CERTPROBLEM:
                return "cannot use the client certificate or key";
        case CURLE_SSL_CIPHER:
                return "no common cipher";
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
                for (size_t i = 0; i < ARRAY_SIZE(alerts); i++)
                        if (strcasestr(m, alerts[i].needle))
                                return alerts[i].problem;
                return curl_code == CURLE_SSL_CONNECT_ERROR ? "TLS handshake failed" : NULL;
        default:
                return NULL;
        }
}

/* Why a transport-level failure happened, for the unreachable message. curl's own text is kept
 * as it is: it names the file, host or alert involved. Returns the TLS problem or NULL. */
static const char *describe_failure(CURL *c, CURLcode cc, const char *errbuf, char *out, size_t len)
{
        const char *curl_msg = errbuf && *errbuf ? errbuf : curl_easy_strerror(cc);
        const char *tls = client_tls_problem((int)cc, curl_msg);
        long os_err = 0;

        if (tls) {
                snprintf(out, len, "%s: %s", tls, curl_msg);
                return tls;
        }
        curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &os_err);
        switch (cc) {
        case CURLE_OPERATION_TIMEDOUT:
                snprintf(out, len, "timed out");
                break;
        case CURLE_COULDNT_RESOLVE_HOST:
                snprintf(out, len, "cannot resolve host");
                break;
        case CURLE_COULDNT_CONNECT:
                if (os_err > 0) {
                        snprintf(out, len, "%s", strerror((int)os_err));
                        out[0] = (char)tolower((unsigned char)out[0]);
                        break;
                }
                snprintf(out, len, "cannot connect");
                break;
        case CURLE_GOT_NOTHING:
                snprintf(out, len, "empty reply");
                break;
        default:
                snprintf(out, len, "%s", curl_msg);
                break;
        }
        return NULL;
}

static bool failover_allowed(CURLcode cc, bool idempotent, bool tls)
{
        /* a TLS failure happens before the daemon acts on the request */
        if (tls)
                return true;
        switch (cc) {
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_UNSUPPORTED_PROTOCOL:
                return true;
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_GOT_NOTHING:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
                return idempotent;
        default:
                return false;
        }
}

/* The daemon's {"error":{"message":...}}, or a generic line. */
static void report_http_error(cli_ctx *ctx, const char *url, long status, const buf *body)
{
        json_t *j = body->len ? json_loadb(body->data, body->len, 0, NULL) : NULL;
        const char *msg = NULL;

        if (j) {
                json_t *e = json_object_get(j, "error");
                msg = json_string_value(json_object_get(e, "message"));
                if (!msg)
                        msg = json_string_value(e);
        }
        if (msg) {
                size_t n = strlen(msg);
                _cleanup_free_ char *clean = malloc(n + 1);
                unsigned st = 0;

                if (clean) {
                        client_strip_controls(clean, msg, n, &st);
                        msg = clean;
                } else {
                        msg = "(unprintable message)";
                }
                cli_error(ctx, "%s (HTTP %ld)", msg, status);
        } else
                cli_error(ctx, "request '%s' failed with HTTP %ld", url, status);
        json_decref(j);
}

static CURL *get_handle(cli_ctx *ctx)
{
        if (!ctx->curl)
                ctx->curl = curl_easy_init();
        else
                curl_easy_reset(ctx->curl);
        return ctx->curl;
}

int client_request(cli_ctx *ctx, const char *method, const char *path, const json_t *body,
                   json_t **ret)
{
        char reasons[CLIENT_MAX_TARGETS][CURL_ERROR_SIZE + 128];
        char errbuf[CURL_ERROR_SIZE];
        size_t n_tls = 0;
        client_attempt attempts[CLIENT_MAX_TARGETS];
        size_t n_attempts = 0;
        bool idempotent = strcmp(method, "GET") == 0;
        _cleanup_free_ char *payload = NULL;
        _cleanup_free_ char *auth = NULL;
        struct curl_slist *hdrs = NULL;
        bool all_timeouts = true;
        int r = -EHOSTUNREACH;

        if (ctx->n_targets == 0) {
                cli_error(ctx, "no vigild host configured");
                return -EINVAL;
        }
        if (body) {
                payload = json_dumps(body, JSON_COMPACT);
                if (!payload)
                        return -ENOMEM;
        }
        hdrs = curl_slist_append(hdrs, "Accept: application/json");
        if (body)
                hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        if (ctx->token) {
                if (asprintf(&auth, "Authorization: Bearer %s", ctx->token) < 0) {
                        curl_slist_free_all(hdrs);
                        return -ENOMEM;
                }
                hdrs = curl_slist_append(hdrs, auth);
        }
        if (!hdrs) {
                r = -ENOMEM;
                goto out;
        }

        for (size_t k = 0; k < ctx->n_targets; k++) {
                size_t i = (ctx->active + k) % ctx->n_targets;
                const client_target *t = &ctx->targets[i];
                _cleanup_free_ char *url = client_build_url(t->base, path);
                sink s = {0};
                CURL *c = get_handle(ctx);
                CURLcode cc;
                long status = 0;

                if (!url || !c) {
                        r = -ENOMEM;
                        goto out;
                }
                buf_init(&s.body, ctx->max_body ? ctx->max_body : CLIENT_MAX_BODY);
                curl_easy_setopt(c, CURLOPT_URL, url);
                curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, t->socket);
                curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
                if (payload) {
                        curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload);
                        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
                }
                curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
                curl_easy_setopt(c, CURLOPT_USERAGENT, "vigil/" VIGIL_VERSION);
                curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
                curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(ctx->timeout_us / 1000));
                curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                                 (long)(MIN(ctx->connect_us, ctx->timeout_us) / 1000));
                curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
                curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
                curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
                curl_easy_setopt(c, CURLOPT_XFERINFODATA, ctx);
                curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
                curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
                curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
                /* vigild is addressed directly; an http_proxy meant for the internet must not
                 * stand between an operator and the node (and mask "unreachable") */
                curl_easy_setopt(c, CURLOPT_PROXY, "");
                errbuf[0] = '\0';
                curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
                if (ctx->cacert)
                        curl_easy_setopt(c, CURLOPT_CAINFO, ctx->cacert);
                if (ctx->capath)
                        curl_easy_setopt(c, CURLOPT_CAPATH, ctx->capath);
                if (ctx->cert) {
                        curl_easy_setopt(c, CURLOPT_SSLCERT, ctx->cert);
                        curl_easy_setopt(c, CURLOPT_SSLKEY, ctx->key ? ctx->key : ctx->cert);
                }
                if (ctx->user) {
                        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
                        curl_easy_setopt(c, CURLOPT_USERNAME, ctx->user);
                        curl_easy_setopt(c, CURLOPT_PASSWORD, ctx->password ? ctx->password : "");
                }

                cc = curl_easy_perform(c);
                if (cc == CURLE_ABORTED_BY_CALLBACK) {
                        buf_release(&s.body);
                        r = -EINTR;
                        goto out;
                }
                if (cc == CURLE_WRITE_ERROR && s.too_large) {
                        buf_release(&s.body);
                        cli_error(ctx, "answer from '%s' exceeds the limit of %zu bytes", url,
                                  ctx->max_body ? ctx->max_body : (size_t)CLIENT_MAX_BODY);
                        r = -E2BIG;
                        goto out;
                }
                if (cc != CURLE_OK) {
                        const char *tls;

                        buf_release(&s.body);
                        tls = describe_failure(c, cc, errbuf, reasons[n_attempts],
                                               sizeof(reasons[0]));
                        attempts[n_attempts] =
                            (client_attempt){client_target_name(t), reasons[n_attempts]};
                        n_attempts++;
                        if (tls)
                                n_tls++;
                        if (cc != CURLE_OPERATION_TIMEDOUT)
                                all_timeouts = false;
                        if (failover_allowed(cc, idempotent, tls != NULL))
                                continue;
                        break;
                }

                /* this target answered: stick to it */
                ctx->active = i;
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
                if (status < 200 || status >= 300) {
                        report_http_error(ctx, url, status, &s.body);
                        buf_release(&s.body);
                        r = client_status_to_errno(status);
                        goto out;
                }
                r = 0;
                if (ret) {
                        json_error_t jerr;
                        json_t *j =
                            s.body.len ? json_loadb(s.body.data, s.body.len, 0, &jerr) : NULL;
                        if (!j) {
                                cli_error(ctx, "failed to decode the answer from '%s': %s", url,
                                          s.body.len ? jerr.text : "empty body");
                                r = -EBADMSG;
                        } else {
                                *ret = j;
                        }
                }
                buf_release(&s.body);
                goto out;
        }

        {
                buf m;
                buf_init(&m, 0);
                if (n_tls > 0 && n_tls == n_attempts)
                        client_compose_tls_failure(&m, attempts, n_attempts);
                else
                        client_compose_unreachable(&m, attempts, n_attempts);
                cli_error(ctx, "%s", m.data ? m.data : "cannot reach vigild");
                buf_release(&m);
        }
        /* a TLS failure is a refusal to talk (exit 4), not an absent daemon (exit 3) */
        if (n_tls > 0)
                r = -EACCES;
        else
                r = all_timeouts && n_attempts > 0 ? -ETIMEDOUT : -EHOSTUNREACH;
out:
        curl_slist_free_all(hdrs);
        if (auth)
                explicit_bzero(auth, strlen(auth));
        return r;
}

int client_print_json(cli_ctx *ctx, const json_t *j, bool compact)
{
        _cleanup_free_ char *s = json_dumps(j, (compact ? JSON_COMPACT : JSON_INDENT(2)) |
                                                   JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));

        FILE *f = ctx->raw_out ? ctx->raw_out : ctx->out;

        if (!s)
                return -ENOMEM;
        /* text already written to the sanitizing stream goes out first */
        fflush(ctx->out);
        fputs(s, f);
        fputc('\n', f);
        return 0;
}

size_t client_strip_controls(char *dst, const char *src, size_t n, unsigned *state)
{
        char *w = dst;

        for (size_t i = 0; i < n; i++) {
                unsigned char ch = (unsigned char)src[i];

                if (*state == 0xC2) {
                        *state = 0;
                        if (ch >= 0x80 && ch <= 0x9F) {
                                *w++ = '?'; /* a C1 control: CSI, OSC, ... in one byte */
                                continue;
                        }
                        *w++ = (char)0xC2;
                }
                if (ch == 0xC2) {
                        *state = 0xC2;
                        continue;
                }
                if ((ch < 0x20 && ch != '\n' && ch != '\t') || ch == 0x7F)
                        *w++ = '?';
                else
                        *w++ = (char)ch;
        }
        *w = '\0';
        return (size_t)(w - dst);
}

typedef struct sanitizer {
        FILE *under;    /* where clean bytes go; not owned */
        unsigned state; /* client_strip_controls() carry */
} sanitizer;

static ssize_t sanitizer_write(void *cookie, const char *data, size_t n)
{
        sanitizer *sz = cookie;
        char tmp[4096 + 2];
        size_t done = 0;

        while (done < n) {
                size_t k = MIN(n - done, (size_t)4096), w;

                w = client_strip_controls(tmp, data + done, k, &sz->state);
                if (w && fwrite(tmp, 1, w, sz->under) != w)
                        return done ? (ssize_t)done : -1;
                done += k;
        }
        /* the stream above is line-buffered; keep the lines moving through a pipe too */
        fflush(sz->under);
        return (ssize_t)n;
}

static int sanitizer_close(void *cookie)
{
        sanitizer *sz = cookie;
        int r = 0;

        if (sz->state == 0xC2 && fputc(0xC2, sz->under) == EOF)
                r = EOF;
        if (fflush(sz->under) != 0)
                r = EOF;
        free(sz);
        return r;
}

FILE *client_sanitizing_stream(FILE *under)
{
        cookie_io_functions_t io = {.write = sanitizer_write, .close = sanitizer_close};
        sanitizer *sz = calloc(1, sizeof(*sz));
        FILE *f;

        if (!sz)
                return NULL;
        sz->under = under;
        f = fopencookie(sz, "w", io);
        if (!f) {
                free(sz);
                return NULL;
        }
        /* line-buffered like a terminal, so dmon rows appear as they are made */
        setvbuf(f, NULL, _IOLBF, 0);
        return f;
}
