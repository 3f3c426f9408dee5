/* client.h — the CLI's HTTP client for vigild's REST API (docs/internals/api-contract.md), over
 * libcurl: an ordered list of targets (TCP base URLs and/or one unix socket) tried with failover,
 * a bearer token header, bounded responses, JSON decoding and mapping of HTTP errors back to a
 * negative errno (so that src/common/errmap.h gives the exit code).
 *
 * It is not a general HTTP library: it speaks GET/POST with JSON bodies to one daemon.
 * Single-threaded: one cli_ctx per thread. Every function that can fail returns -errno; the ones
 * that talk to the daemon also print one message, quoting its subject, on ctx->err. */
#ifndef VIGIL_CLI_CLIENT_H
#define VIGIL_CLI_CLIENT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "common/buf.h"
#include "common/macros.h"

#define CLIENT_DEFAULT_SOCKET     "/run/vigil/vigild.sock"
#define CLIENT_DEFAULT_URL        "http://127.0.0.1:5555"
#define CLIENT_DEFAULT_TIMEOUT_US (5 * 1000000LL)
#define CLIENT_CONNECT_TIMEOUT_US (1 * 1000000LL)
#define CLIENT_MAX_BODY           (16u << 20) /* bytes; a larger answer is refused */
#define CLIENT_MAX_TARGETS        16
#define CLIENT_MAX_TOKEN          8192

/* One place the daemon may answer. */
typedef struct client_target {
        char
            *base; /* "http://host:port" without trailing '/', or "http://localhost" for a socket */
        char *socket; /* unix socket path, or NULL for TCP; owned */
} client_target;

typedef struct cli_ctx {
        client_target targets[CLIENT_MAX_TARGETS]; /* tried in order; owned */
        size_t n_targets;                          /* entries used */
        size_t active;      /* index of the target that answered last; tried first */
        char *token;        /* bearer token or NULL; owned; never printed */
        char *user;         /* --user: basic-auth user name or NULL; owned */
        char *password;     /* basic-auth password (VIGIL_PASSWORD or prompt); owned; never
                               printed, wiped on release */
        char *cacert;       /* --cacert / SSL_CERT_FILE: CA bundle file or NULL; owned */
        char *capath;       /* SSL_CERT_DIR: CA directory (c_rehash layout) or NULL; owned */
        char *cert;         /* --cert: client certificate (PEM) or NULL; owned */
        char *key;          /* --key: its private key (PEM) or NULL (key inside --cert); owned */
        bool json;          /* --json: print the daemon's JSON instead of text */
        int64_t timeout_us; /* whole request, usec */
        int64_t connect_us; /* per-target connect, usec */
        size_t max_body;    /* bytes; 0 = CLIENT_MAX_BODY */
        FILE *out;          /* normal output: stdout through client_sanitizing_stream() */
        FILE *raw_out;      /* stdout itself, for JSON (already escaped); NULL = out */
        FILE *err;          /* messages (stderr) */
        volatile sig_atomic_t
            *interrupted; /* set by a signal handler: abort transfers; may be NULL */
        void *curl;       /* CURL *, reused across requests for keep-alive; owned */
} cli_ctx;

/* Initialise with defaults (no targets, 5 s timeout, stdout/stderr). */
void cli_ctx_init(cli_ctx *ctx);
void cli_ctx_release(cli_ctx *ctx);

/* Print "vigil: <message>\n" on ctx->err. */
void cli_error(cli_ctx *ctx, const char *fmt, ...) _printf_(2, 3);

/* Normalise one host: trim blanks, add "http://" when there is no scheme, drop trailing '/'.
 * Only http and https are accepted. Returns 0 and *ret (caller frees), -EINVAL (empty or bad
 * scheme) or -ENOMEM. */
int client_normalize_host(const char *s, char **ret);

/* Append the comma-separated --host list to ctx->targets. Returns 0, -EINVAL (an empty entry
 * or bad URL), -E2BIG (more than CLIENT_MAX_TARGETS) or -ENOMEM. */
int client_add_hosts(cli_ctx *ctx, const char *list);
/* Append a unix socket target. */
int client_add_socket(cli_ctx *ctx, const char *path);
/* When no target was given: env VIGIL_HOST, else the default socket if it exists, else
 * CLIENT_DEFAULT_URL. A no-op when targets exist. */
int client_add_defaults(cli_ctx *ctx);

/* Percent-encode s for use in a path segment or query value (RFC 3986 unreserved kept).
 * Caller frees. Returns NULL on allocation failure. */
char *client_escape(const char *s);
/* base + path ("/api/v1/..."); caller frees; NULL on allocation failure. */
char *client_build_url(const char *base, const char *path);

/* Name a target for messages: the base URL or the socket path. */
const char *client_target_name(const client_target *t);

/* One failed connection attempt, for the unreachable message. */
typedef struct client_attempt {
        const char *target; /* client_target_name() */
        const char *reason; /* "connection refused", "timed out", ... */
} client_attempt;
/* "cannot reach vigild at 'A' (why), 'B' (why)" into b. */
int client_compose_unreachable(buf *b, const client_attempt *a, size_t n);

/* "TLS failure with vigild at 'A' (problem: curl's message), ..." into b. */
int client_compose_tls_failure(buf *b, const client_attempt *a, size_t n);

/* Map an HTTP status (>= 400) to a negative errno, inverse of errmap_http_status(). */
int client_status_to_errno(long status);

/* Send method path [body] to the first target that answers, starting from ctx->active.
 * path starts with '/' and is already escaped. body may be NULL.
 * On 2xx: returns 0 and *ret (caller json_decref()s) when ret is not NULL.
 * Errors (each printed once on ctx->err): no target answered → -EHOSTUNREACH or -ETIMEDOUT;
 * HTTP error → client_status_to_errno(status) with the daemon's message; answer over
 * max_body → -E2BIG; not JSON → -EBADMSG; interrupted → -EINTR (nothing printed).
 * Only GETs fail over after a transfer timed out; other methods only when the connection failed. */
int client_request(cli_ctx *ctx, const char *method, const char *path, const json_t *body,
                   json_t **ret);

static inline int client_get(cli_ctx *ctx, const char *path, json_t **ret)
{
        return client_request(ctx, "GET", path, NULL, ret);
}

/* Copy n bytes of src to dst without terminal control sequences: every C0 control except '\n'
 * and '\t', DEL, and the C1 controls (U+0080..U+009F, as UTF-8 "\xC2\x80".."\xC2\x9F")
 * become '?', so that text from the daemon cannot move the cursor, retitle the terminal or
 * hide lines. *state carries a pending 0xC2 byte between calls (start with 0). dst must hold
 * n + 1 bytes. Returns the bytes written to dst. */
size_t client_strip_controls(char *dst, const char *src, size_t n, unsigned *state);
/* A stream that writes to `under` through client_strip_controls(); used for ctx->out in text
 * mode. Returns NULL on failure (the caller keeps `under`). Closing it does not close `under`. */
FILE *client_sanitizing_stream(FILE *under);

/* Why a TLS handshake or verification failed, from curl's code and error text: "certificate not
 * trusted", "hostname mismatch", "client certificate required", ... or NULL when cc is not a
 * TLS failure. */
const char *client_tls_problem(int curl_code, const char *curl_message);

/* Print j on ctx->out as indented JSON (compact = one line), with a newline. */
int client_print_json(cli_ctx *ctx, const json_t *j, bool compact);

#endif
