/* framer.c — see framer.h. Written by hand: libmicrohttpd frames requests itself and has no hook
 * before its parser, and no library frames HTTP/1.1 requests on another library's connection.
 * The framing mirrors libmicrohttpd 0.9.75's (connection.c): empty lines before a request line
 * are skipped, Transfer-Encoding wins over Content-Length, chunk-size lines end in CRLF or LF
 * with an optional ";extension", trailers end at an empty line. A Transfer-Encoding other than
 * chunked cannot be framed: the access handler refuses it with 501 and the connection is closed,
 * so the framer hands the rest on untouched. */

/* recv is defined below; glibc's fortified inline recv would clash with it */
#undef _FORTIFY_SOURCE
#include "framer.h"

#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <gnutls/gnutls.h>

#include "prehead.h"

/* Connections on descriptors below this are framed: a table indexed by descriptor costs every
 * recv of the process one atomic load, and only the pages of descriptors in use are touched. */
#define FD_SLOTS 65536
/* The internal request that stands for a refused head, at most. */
#define SYNTH_MAX 160
/* A chunk-size line longer than this is refused (400), as Go's server refuses it. */
#define CHUNK_LINE_MAX 4096
/* A trailer line longer than this is refused (431); it fits the holding buffer. */
#define TRAILER_LINE_MAX PREHEAD_MAX
/* After a refusal, what one read discards of the peer's further bytes, at most. */
#define DISCARD_MAX (256 * 1024)

enum fstate {
        F_HEAD,       /* at a request head (or the empty lines before it) */
        F_BODY,       /* left: bytes of a Content-Length body */
        F_CHUNK_SIZE, /* at a chunk-size line */
        F_CHUNK_DATA, /* left: bytes of chunk data */
        F_CHUNK_END,  /* at the line end after chunk data */
        F_TRAILER,    /* at a trailer line (or the empty line that ends the body) */
        F_PASS,       /* no longer framed */
        F_REFUSED,    /* a head or a body was refused; queue_refusal stands for the rest */
};

struct framer_conn {
        framer_io_fn read;
        void *io;
        ssize_t again;
        enum fstate state;
        uint64_t left;
        bool eof;   /* the peer ended */
        char *buf;  /* held + rel, allocated while either is in use */
        char *held; /* a unit (head, chunk line, trailer) that came in pieces: PREHEAD_MAX */
        size_t held_len;
        char *rel; /* judged bytes for framer_read: PREHEAD_MAX + SYNTH_MAX bytes */
        size_t rel_len, rel_off;
        unsigned status; /* the refusal */
        const char *msg;
        const char *ending; /* a refused body: what ends it for libmicrohttpd; NULL for a head */
        unsigned heads;     /* good heads passed */
        unsigned refused;   /* the ordinal of the refused request (1 = the first) */
        unsigned served;    /* requests the access handler started (framer_request_started) */
        /* set by the notify callbacks */
        int fd;
        bool tls;
};

framer_conn *framer_new(framer_io_fn read, void *io, ssize_t again)
{
        framer_conn *c = calloc(1, sizeof(*c));

        if (c) {
                c->read = read;
                c->io = io;
                c->again = again;
                c->fd = -1;
        }
        return c;
}

void framer_free(framer_conn *c)
{
        if (c) {
                free(c->buf);
                free(c);
        }
}

static bool ensure_buf(framer_conn *c)
{
        if (!c->buf) {
                c->buf = malloc(2 * PREHEAD_MAX + SYNTH_MAX);
                if (!c->buf)
                        return false;
                c->held = c->buf;
                c->rel = c->buf + PREHEAD_MAX;
                c->held_len = c->rel_len = c->rel_off = 0;
        }
        return true;
}

/* Give the buffer back once nothing is held or waiting. */
static void release_buf(framer_conn *c)
{
        if (c->rel_off >= c->rel_len)
                c->rel_len = c->rel_off = 0;
        if (c->buf && !c->held_len && !c->rel_len) {
                free(c->buf);
                c->buf = c->held = c->rel = NULL;
        }
}

static int hex_digit(char ch)
{
        if (ch >= '0' && ch <= '9')
                return ch - '0';
        if (ch >= 'a' && ch <= 'f')
                return ch - 'a' + 10;
        if (ch >= 'A' && ch <= 'F')
                return ch - 'A' + 10;
        return -1;
}

/* The head at p[i..n): judge it, and past a good one set up its body. Returns the new offset:
 * past the head, or i when the head is refused (state F_REFUSED) or not whole yet. */
static size_t frame_head(framer_conn *c, const char *p, size_t n, size_t i)
{
        size_t look = n - i < PREHEAD_MAX ? n - i : PREHEAD_MAX, end;
        const char *msg = NULL;
        prehead_body_kind kind;
        uint64_t len;
        unsigned st;

        end = prehead_end(p + i, look);
        st = prehead_check(p + i, end ? end : look, &msg);
        if (st) {
                c->state = F_REFUSED;
                c->status = st;
                c->msg = msg;
                c->refused = c->heads + 1; /* the internal request that stands for it */
                return i;
        }
        if (!end)
                return i; /* look < PREHEAD_MAX: prehead_check decides at the budget */
        c->heads++;
        kind = prehead_body(p + i, end, &len);
        if (kind == PREHEAD_BODY_CHUNKED) {
                c->state = F_CHUNK_SIZE;
        } else if (kind == PREHEAD_BODY_UNKNOWN) {
                c->state = F_PASS;
        } else if (len) {
                c->state = F_BODY;
                c->left = len;
        }
        return i + end;
}

/* The request whose body is at hand is refused: its body is ended for libmicrohttpd by ending
 * (what completes the chunked framing from where it stands), and its access handler answers the
 * refusal (framer_refusal). */
static size_t refuse_body(framer_conn *c, size_t i, unsigned status, const char *msg,
                          const char *ending)
{
        c->state = F_REFUSED;
        c->status = status;
        c->msg = msg;
        c->ending = ending;
        c->refused = c->heads;
        return i;
}

/* The chunk-size line at p[i..n), as libmicrohttpd reads it: hex digits up to ';' (an extension
 * follows) or up to the line end (CRLF or LF). Returns the offset past it; i when it is not whole
 * yet or refused. */
static size_t frame_chunk_size(framer_conn *c, const char *p, size_t n, size_t i)
{
        size_t look = n - i < CHUNK_LINE_MAX ? n - i : CHUNK_LINE_MAX, len, digits, d;
        const char *lf = memchr(p + i, '\n', look), *semi;
        uint64_t v = 0;
        bool over = false;

        if (!lf) {
                if (n - i >= CHUNK_LINE_MAX)
                        return refuse_body(c, i, 400, "chunk size line too long", "0\r\n\r\n");
                return i;
        }
        len = (size_t)(lf - (p + i));
        semi = memchr(p + i, ';', len);
        if (semi)
                digits = (size_t)(semi - (p + i));
        else
                digits = len && p[i + len - 1] == '\r' ? len - 1 : len;
        for (d = 0; d < digits; d++) {
                int h = hex_digit(p[i + d]);
                if (h < 0)
                        break;
                over |= v > UINT64_MAX >> 4;
                v = v << 4 | (uint64_t)h;
        }
        if (!digits || d != digits)
                return refuse_body(c, i, 400, "malformed chunked body (bad chunk size)",
                                   "0\r\n\r\n");
        if (over)
                return refuse_body(c, i, 413, "chunk size too large", "0\r\n\r\n");
        c->left = v;
        c->state = v ? F_CHUNK_DATA : F_TRAILER;
        return i + len + 1;
}

/* The line end after chunk data: CRLF or LF. */
static size_t frame_chunk_end(framer_conn *c, const char *p, size_t n, size_t i)
{
        if (p[i] == '\n') {
                c->state = F_CHUNK_SIZE;
                return i + 1;
        }
        if (p[i] == '\r' && i + 1 == n)
                return i; /* the LF may follow */
        if (p[i] == '\r' && p[i + 1] == '\n') {
                c->state = F_CHUNK_SIZE;
                return i + 2;
        }
        return refuse_body(c, i, 400, "malformed chunked body (no line end after chunk data)",
                           "\r\n0\r\n\r\n");
}

/* A trailer line: a field (with a colon), a folded continuation, or the empty line that ends
 * the body. */
static size_t frame_trailer(framer_conn *c, const char *p, size_t n, size_t i)
{
        size_t look = n - i < TRAILER_LINE_MAX ? n - i : TRAILER_LINE_MAX, len, text;
        const char *lf = memchr(p + i, '\n', look);

        if (!lf) {
                if (n - i >= TRAILER_LINE_MAX)
                        return refuse_body(c, i, 431, "trailer line too long", "\r\n");
                return i;
        }
        len = (size_t)(lf - (p + i));
        text = len && p[i + len - 1] == '\r' ? len - 1 : len;
        if (!text) {
                c->state = F_HEAD;
                return i + len + 1;
        }
        if (p[i] != ' ' && p[i] != '\t' && !memchr(p + i, ':', text))
                return refuse_body(c, i, 400, "malformed trailer line (no colon)", "\r\n");
        return i + len + 1;
}

/* Follow the stream through p[0..n). Returns how many bytes are judged good; when fewer than
 * n, the rest is either refused with what follows it (state F_REFUSED) or the start of a unit
 * that is not whole yet (a head, a chunk-size line, the line end after chunk data, a trailer
 * line), to be held until it is. */
static size_t frame(framer_conn *c, const char *p, size_t n)
{
        size_t i = 0, take, next;

        while (i < n) {
                switch (c->state) {
                case F_PASS:
                        return n;
                case F_REFUSED:
                        return i;
                case F_HEAD:
                        /* empty lines before a request line, as RFC 9112 2.2 allows */
                        if (p[i] == '\n') {
                                i++;
                                continue;
                        }
                        if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n') {
                                i += 2;
                                continue;
                        }
                        next = frame_head(c, p, n, i);
                        break;
                case F_CHUNK_SIZE:
                        next = frame_chunk_size(c, p, n, i);
                        break;
                case F_CHUNK_END:
                        next = frame_chunk_end(c, p, n, i);
                        break;
                case F_TRAILER:
                        next = frame_trailer(c, p, n, i);
                        break;
                default: /* F_BODY, F_CHUNK_DATA */
                        take = n - i < c->left ? n - i : (size_t)c->left;
                        c->left -= take;
                        if (!c->left)
                                c->state = c->state == F_BODY ? F_HEAD : F_CHUNK_END;
                        next = i + take;
                        break;
                }
                if (next == i)
                        return i;
                i = next;
        }
        return n;
}

/* What stands for the refused rest of the stream: the internal request for a head, the end of
 * the body for a body. */
static void queue_refusal(framer_conn *c)
{
        int k = c->ending ? snprintf(c->rel + c->rel_len, SYNTH_MAX, "%s", c->ending)
                          : snprintf(c->rel + c->rel_len, SYNTH_MAX,
                                     "GET %s HTTP/1.1\r\nHost: vigil\r\nConnection: close\r\n\r\n",
                                     framer_refusal_target());

        if (k > 0 && k < SYNTH_MAX)
                c->rel_len += (size_t)k;
}

/* held[0..held_len) grew: judge what can be judged; what passes goes to rel (empty here). */
static void frame_held(framer_conn *c)
{
        size_t a = frame(c, c->held, c->held_len);

        memcpy(c->rel + c->rel_len, c->held, a);
        c->rel_len += a;
        if (c->state == F_REFUSED) {
                c->held_len = 0;
                queue_refusal(c);
        } else if (a) {
                memmove(c->held, c->held + a, c->held_len - a);
                c->held_len -= a;
        }
}

/* After a refusal: read what the peer sends and drop it (closing over unread bytes would reset
 * the connection under our answer). */
static void discard(framer_conn *c)
{
        char sink[4096];
        size_t total = 0;
        ssize_t r;

        while (total < DISCARD_MAX && (r = c->read(c->io, sink, sizeof(sink))) > 0)
                total += (size_t)r;
}

ssize_t framer_read(framer_conn *c, void *out, size_t size)
{
        char *dst = out;
        size_t got = 0, a;
        ssize_t r;

        while (got < size) {
                if (c->rel_off < c->rel_len) {
                        size_t k = c->rel_len - c->rel_off < size - got ? c->rel_len - c->rel_off
                                                                        : size - got;
                        memcpy(dst + got, c->rel + c->rel_off, k);
                        c->rel_off += k;
                        got += k;
                        continue;
                }
                release_buf(c);
                if (c->state == F_REFUSED) {
                        discard(c);
                        return got ? (ssize_t)got : c->again;
                }
                if (c->eof)
                        break;
                if (c->held_len) {
                        /* the rest of a held unit: into held, not dst, until it is judged */
                        r = c->read(c->io, c->held + c->held_len, PREHEAD_MAX - c->held_len);
                        if (r < 0)
                                return got ? (ssize_t)got : r;
                        if (r == 0) {
                                /* the peer ended inside a held unit: libmicrohttpd gets what came,
                                 * then the end, and closes as it would have */
                                c->eof = true;
                                c->state = F_PASS;
                                memcpy(c->rel, c->held, c->held_len);
                                c->rel_len = c->held_len;
                                c->held_len = 0;
                                continue;
                        }
                        c->held_len += (size_t)r;
                        frame_held(c);
                        continue;
                }
                r = c->read(c->io, dst + got, size - got);
                if (r < 0)
                        return got ? (ssize_t)got : r;
                if (r == 0) {
                        c->eof = true;
                        break;
                }
                a = frame(c, dst + got, (size_t)r);
                if (a < (size_t)r && !ensure_buf(c)) {
                        c->state = F_PASS; /* out of memory: libmicrohttpd judges alone */
                        a = (size_t)r;
                }
                if (a < (size_t)r) {
                        if (c->state == F_REFUSED) {
                                queue_refusal(c);
                        } else {
                                memcpy(c->held, dst + got + a, (size_t)r - a);
                                c->held_len = (size_t)r - a;
                        }
                }
                got += a;
                if (a == (size_t)r)
                        break; /* all of it judged good, in place */
        }
        return (ssize_t)got;
}

size_t framer_pending(const framer_conn *c)
{
        return c->rel_len - c->rel_off;
}

unsigned framer_status(const framer_conn *c, const char **msg, unsigned *request)
{
        if (c->state != F_REFUSED)
                return 0;
        *msg = c->msg;
        if (request)
                *request = c->refused;
        return c->status;
}

/* --- libmicrohttpd's reads ---------------------------------------------------------------- */

static _Atomic(framer_conn *) slots[FD_SLOTS];
static pthread_once_t resolved = PTHREAD_ONCE_INIT;
static ssize_t (*real_recv)(int, void *, size_t, int);
static ssize_t (*real_tls_recv)(gnutls_session_t, void *, size_t);
static size_t (*real_tls_pending)(gnutls_session_t);

static void *next_symbol(const char *name, const char *version)
{
        void *f = version ? dlvsym(RTLD_NEXT, name, version) : NULL;

        return f ? f : dlsym(RTLD_NEXT, name);
}

static void resolve(void)
{
        real_recv = next_symbol("recv", NULL);
        real_tls_recv = next_symbol("gnutls_record_recv", "GNUTLS_3_4");
        real_tls_pending = next_symbol("gnutls_record_check_pending", "GNUTLS_3_4");
}

static framer_conn *slot(int fd)
{
        if (fd < 0 || fd >= FD_SLOTS)
                return NULL;
        return atomic_load_explicit(&slots[fd], memory_order_acquire);
}

/* Read and drop what a socket holds now (DISCARD_MAX at most), without waiting. */
static void drain_socket(int fd)
{
        char sink[4096];
        size_t total = 0;
        ssize_t r;

        while (total < DISCARD_MAX && (r = real_recv(fd, sink, sizeof(sink), MSG_DONTWAIT)) > 0)
                total += (size_t)r;
}

static ssize_t plain_io(void *io, void *dst, size_t n)
{
        ssize_t r = real_recv((int)(intptr_t)io, dst, n, 0);

        return r < 0 ? -(ssize_t)errno : r;
}

static ssize_t tls_io(void *io, void *dst, size_t n)
{
        return real_tls_recv(io, dst, n);
}

/* These three replace libc's and GnuTLS's for the whole process (the executable's definitions
 * come first in the dynamic linker's search); anything not a framed connection goes straight
 * through. Exported whatever the visibility default is. */
__attribute__((visibility("default"))) ssize_t recv(int fd, void *dst, size_t n, int flags)
{
        framer_conn *c;
        ssize_t r;

        pthread_once(&resolved, resolve);
        c = flags ? NULL : slot(fd);
        if (!c || c->tls)
                return real_recv(fd, dst, n, flags);
        r = framer_read(c, dst, n);
        if (r < 0) {
                errno = (int)-r;
                return -1;
        }
        return r;
}

static framer_conn *tls_slot(gnutls_session_t s)
{
        framer_conn *c = slot(gnutls_transport_get_int(s));

        return c && c->tls ? c : NULL;
}

__attribute__((visibility("default"))) ssize_t gnutls_record_recv(gnutls_session_t s, void *dst,
                                                                  size_t n)
{
        framer_conn *c;

        pthread_once(&resolved, resolve);
        c = tls_slot(s);
        if (!c)
                return real_tls_recv(s, dst, n);
        c->io = s;
        return framer_read(c, dst, n);
}

__attribute__((visibility("default"))) size_t gnutls_record_check_pending(gnutls_session_t s)
{
        framer_conn *c;

        pthread_once(&resolved, resolve);
        c = tls_slot(s);
        return real_tls_pending(s) + (c ? framer_pending(c) : 0);
}

/* --- the connections libmicrohttpd announces ------------------------------------------------ */

/* How long a new TLS connection may take to send its first bytes before we stop looking for a
 * plain HTTP request: a TLS client sends its ClientHello at once, and a silent client must not
 * hold the accepting thread (it then goes on to the handshake, and the connection timeout). */
#define PEEK_WAIT_MS 10

/* Whether the first bytes are a plain HTTP request line, as Go's server tells them from a TLS
 * record header. */
static bool looks_like_http(const char *b, size_t n)
{
        static const char *const starts[] = {"GET /", "HEAD ", "POST ", "PUT /", "OPTIO"};

        for (size_t i = 0; n >= 5 && i < sizeof(starts) / sizeof(starts[0]); i++)
                if (!memcmp(b, starts[i], 5))
                        return true;
        return false;
}

/* A new connection on the TLS listener (fd): when its first bytes are a plain HTTP request, answer
 * it as Go's server (dcgm-exporter, node_exporter) does, "400 Client sent an HTTP request to an
 * HTTPS server.", instead of a silently closed connection, so a scrape with the wrong scheme
 * says why it failed; the socket is then shut down and the handshake libmicrohttpd tries fails
 * at once. Waits at most 10 ms for the first bytes (a TLS client sends its ClientHello at once).
 * Returns whether it answered. */
static bool answer_plain_http(int fd)
{
        static const char answer[] = "HTTP/1.0 400 Bad Request\r\n\r\n"
                                     "Client sent an HTTP request to an HTTPS server.\n";
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        char head[8];
        ssize_t n;

        n = recv(fd, head, 5, MSG_PEEK | MSG_DONTWAIT);
        if (n < 5 && poll(&pfd, 1, PEEK_WAIT_MS) == 1)
                n = recv(fd, head, 5, MSG_PEEK | MSG_DONTWAIT);
        if (n < 5 || !looks_like_http(head, (size_t)n))
                return false;
        drain_socket(fd); /* so closing sends no reset over our answer */
        if (send(fd, answer, sizeof(answer) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
                /* nothing more to do: the handshake fails and the connection closes */
        }
        shutdown(fd, SHUT_RDWR);
        return true;
}

static pthread_once_t target_once = PTHREAD_ONCE_INIT;
static char target[2 + 2 * 16];

static void make_target(void)
{
        unsigned char rnd[16];
        size_t k = 0;

        /* blocks only before the kernel's pool is first initialised (early boot) */
        while (k < sizeof(rnd)) {
                ssize_t r = getrandom(rnd + k, sizeof(rnd) - k, 0);
                if (r > 0)
                        k += (size_t)r;
                else if (errno != EINTR)
                        abort(); /* getrandom cannot fail otherwise on Linux >= 3.17 */
        }
        target[0] = '/';
        for (size_t i = 0; i < sizeof(rnd); i++)
                snprintf(target + 1 + 2 * i, 3, "%02x", rnd[i]);
}

const char *framer_refusal_target(void)
{
        pthread_once(&target_once, make_target);
        return target;
}

static void on_connection(struct MHD_Connection *mc, void **ctx,
                          enum MHD_ConnectionNotificationCode toe, bool tls)
{
        const union MHD_ConnectionInfo *fi;
        framer_conn *c = *ctx;
        int fd;

        pthread_once(&resolved, resolve);
        if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
                if (!c)
                        return;
                /* what is still unread (after a refusal, or a body refused before it was read),
                 * so closing sends no reset over the answer; raw bytes, also for TLS (the
                 * session is already gone here) */
                drain_socket(c->fd);
                atomic_store_explicit(&slots[c->fd], NULL, memory_order_release);
                framer_free(c);
                *ctx = NULL;
                return;
        }
        if (toe != MHD_CONNECTION_NOTIFY_STARTED)
                return;
        fi = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!fi || fi->connect_fd < 0 || fi->connect_fd >= FD_SLOTS)
                return; /* not framed: libmicrohttpd's own answers */
        fd = fi->connect_fd;
        if (tls && answer_plain_http(fd))
                return;
        c = framer_new(tls ? tls_io : plain_io, tls ? NULL : (void *)(intptr_t)fd,
                       tls ? GNUTLS_E_AGAIN : -EAGAIN);
        if (!c)
                return;
        c->fd = fd;
        c->tls = tls;
        *ctx = c;
        atomic_store_explicit(&slots[fd], c, memory_order_release);
}

void framer_on_plain(void *cls, struct MHD_Connection *mc, void **socket_context,
                     enum MHD_ConnectionNotificationCode toe)
{
        (void)cls;
        on_connection(mc, socket_context, toe, false);
}

void framer_on_tls(void *cls, struct MHD_Connection *mc, void **socket_context,
                   enum MHD_ConnectionNotificationCode toe)
{
        (void)cls;
        on_connection(mc, socket_context, toe, true);
}

static framer_conn *conn_of(struct MHD_Connection *mc)
{
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

        return ci ? ci->socket_context : NULL;
}

unsigned framer_request_started(struct MHD_Connection *mc)
{
        framer_conn *c = conn_of(mc);

        return c ? ++c->served : 0;
}

bool framer_refusal(struct MHD_Connection *mc, unsigned request, const char *url, unsigned *status,
                    const char **msg)
{
        const framer_conn *c = conn_of(mc);

        if (!c || c->state != F_REFUSED || !request || request != c->refused)
                return false;
        /* a refused head: only the internal request stands for it */
        if (!c->ending && strcmp(url, framer_refusal_target()))
                return false;
        *status = framer_status(c, msg, NULL);
        return true;
}
