/* prehead.c — see prehead.h. Written by hand because libmicrohttpd, which parses every request,
 * offers no hook before its own refusals; the checks mirror what it refuses (RFC 9112 request
 * line and field syntax), not a second HTTP parser: a head that passes goes to it untouched. */
#include "prehead.h"

#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "common/vtime.h"
#include "reply.h"

/* How long the first bytes may take, in all, and per pause between two segments: clients send
 * a request head at once; a slower one goes on to libmicrohttpd (and its timeout) as before,
 * so a silent or trickling client holds the accepting thread at most this long. */
#define WAIT_FIRST_MS 10    /* for the first bytes */
#define WAIT_TOTAL_US 30000 /* for the whole head */
#define WAIT_PAUSE_US 5000  /* without a new byte */

static bool is_tchar(unsigned char c)
{
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* The end of the head (just past the blank line) in b[0..n), or 0. */
static size_t head_end(const char *b, size_t n)
{
        for (size_t i = 0; i + 1 < n; i++) {
                if (b[i] != '\n')
                        continue;
                if (b[i + 1] == '\n')
                        return i + 2;
                if (b[i + 1] == '\r' && i + 2 < n && b[i + 2] == '\n')
                        return i + 3;
        }
        return 0;
}

static unsigned check_request_line(const char *l, size_t n, const char **msg)
{
        size_t i = 0, t0;

        while (i < n && is_tchar((unsigned char)l[i]))
                i++;
        if (i == 0 || i >= n || l[i] != ' ')
                goto bad;
        t0 = ++i;
        while (i < n && l[i] != ' ') {
                if ((unsigned char)l[i] <= 0x20 || l[i] == 0x7f)
                        goto bad;
                i++;
        }
        if (i == t0 || i >= n)
                goto bad;
        i++;
        if (n - i != 8 || memcmp(l + i, "HTTP/", 5) || l[i + 5] < '0' || l[i + 5] > '9' ||
            l[i + 6] != '.' || l[i + 7] < '0' || l[i + 7] > '9')
                goto bad;
        if (memcmp(l + i + 5, "1.1", 3) && memcmp(l + i + 5, "1.0", 3)) {
                *msg = "http version not supported (1.0 and 1.1 are)";
                return 505;
        }
        return 0;
bad:
        *msg = "malformed request line (not METHOD TARGET HTTP/1.x)";
        return 400;
}

/* Every Content-Length field: 1*DIGIT, all alike (RFC 9110 8.6). */
static unsigned check_fields(const char *b, size_t end, const char **msg)
{
        const char *cl = NULL;
        size_t cl_len = 0;

        for (size_t i = 0; i < end;) {
                const char *line = b + i, *nl = memchr(line, '\n', end - i);
                size_t len = (size_t)(nl - line), name;

                i += len + 1;
                if (len && line[len - 1] == '\r')
                        len--;
                if (!len)
                        break; /* the blank line */
                for (name = 0; name < len && line[name] != ':'; name++)
                        ;
                if (name != 14 || strncasecmp(line, "Content-Length", 14))
                        continue;
                size_t v = name + 1, ve = len;
                while (v < ve && (line[v] == ' ' || line[v] == '\t'))
                        v++;
                while (ve > v && (line[ve - 1] == ' ' || line[ve - 1] == '\t'))
                        ve--;
                if (ve == v || ve - v > 19 || strspn(line + v, "0123456789") < ve - v)
                        goto bad;
                if (cl && (cl_len != ve - v || memcmp(cl, line + v, cl_len)))
                        goto bad;
                cl = line + v;
                cl_len = ve - v;
        }
        return 0;
bad:
        *msg = "bad content-length";
        return 400;
}

unsigned prehead_check(const char *b, size_t n, const char **msg)
{
        const char *nl = memchr(b, '\n', n);
        size_t end = head_end(b, n), line;
        unsigned st;

        /* tolerated before the request line, as RFC 9112 2.2 allows and libmicrohttpd does */
        while (n >= 2 && b[0] == '\r' && b[1] == '\n') {
                b += 2;
                n -= 2;
                nl = memchr(b, '\n', n);
                end = head_end(b, n);
        }
        if (!nl) {
                if (n >= PREHEAD_MAX) {
                        *msg = "request line too long";
                        return 414;
                }
                return 0;
        }
        line = (size_t)(nl - b);
        if (line && b[line - 1] == '\r')
                line--;
        st = check_request_line(b, line, msg);
        if (st)
                return st;
        if (!end) {
                if (n >= PREHEAD_MAX) {
                        *msg = "request headers too large";
                        return 431;
                }
                if (memchr(b, '\0', n)) {
                        *msg = "nul byte in the request head";
                        return 400;
                }
                return 0;
        }
        if (memchr(b, '\0', end)) {
                *msg = "nul byte in the request head";
                return 400;
        }
        return check_fields(nl + 1, end - (size_t)(nl + 1 - b), msg);
}

void prehead_on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                           enum MHD_ConnectionNotificationCode toe)
{
        char head[PREHEAD_MAX + 1], sink[4096], out[1024];
        const union MHD_ConnectionInfo *fi;
        int64_t start = time_mono_us(), grew;
        const char *msg = NULL;
        struct pollfd pfd;
        ssize_t n, got;
        unsigned st;
        size_t len;

        (void)socket_context;
        if (toe != MHD_CONNECTION_NOTIFY_STARTED)
                return;
        fi = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!fi)
                return;
        pfd = (struct pollfd){.fd = fi->connect_fd, .events = POLLIN};
        n = recv(pfd.fd, head, PREHEAD_MAX, MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && poll(&pfd, 1, WAIT_FIRST_MS) == 1)
                n = recv(pfd.fd, head, PREHEAD_MAX, MSG_PEEK | MSG_DONTWAIT);
        if (n <= 0)
                return; /* nothing yet, closed or failed: libmicrohttpd's, as before */
        /* poll cannot wait for more bytes while unread ones wait: peek again every millisecond
         * while the head grows, until it ends, fills the budget, or the peer pauses */
        grew = time_mono_us();
        while (!head_end(head, (size_t)n) && n < PREHEAD_MAX) {
                int64_t now = time_mono_us();

                if (now - start >= WAIT_TOTAL_US || now - grew >= WAIT_PAUSE_US)
                        break;
                poll(NULL, 0, 1);
                got = recv(pfd.fd, head, PREHEAD_MAX, MSG_PEEK | MSG_DONTWAIT);
                if (got <= 0)
                        break;
                if (got > n) {
                        n = got;
                        grew = time_mono_us();
                }
        }
        st = prehead_check(head, (size_t)n, &msg);
        if (!st)
                return;
        len = api_raw_error(cls, st, msg, out, sizeof(out));
        /* read what came (so closing sends no RST over our answer), answer, end our side: the
         * read libmicrohttpd then makes sees the end and it closes the connection */
        while (recv(pfd.fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
                ;
        if (len && send(pfd.fd, out, len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
                /* the peer is gone: nothing to answer */
        }
        shutdown(pfd.fd, SHUT_RDWR);
}
