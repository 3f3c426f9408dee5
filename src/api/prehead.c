/* prehead.c — see prehead.h. Written by hand because libmicrohttpd, which parses every request,
 * offers no hook before its own refusals; the checks mirror what it refuses (RFC 9112 request
 * line and field syntax), not a second HTTP parser: a head that passes goes to it untouched. */
#include "prehead.h"

#include <string.h>
#include <strings.h>

static bool is_tchar(unsigned char c)
{
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               (c && strchr("!#$%&'*+-.^_`|~", c));
}

size_t prehead_end(const char *b, size_t n)
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
        {
                /* each query argument is an entry in libmicrohttpd's per-connection pool: one,
                 * and one more per '&' */
                const char *q = memchr(l + t0, '?', i - 1 - t0);
                unsigned args = q ? 1 : 0;
                for (const char *e = l + i - 1; q && q < e; q++)
                        args += *q == '&';
                if (args > PREHEAD_MAX_ARGS) {
                        *msg = "too many query arguments (over 100)";
                        return 414;
                }
        }
        return 0;
bad:
        *msg = "malformed request line (not METHOD TARGET HTTP/1.x)";
        return 400;
}

/* Every line a field or a folded continuation; every Content-Length field 1*DIGIT, all alike
 * (RFC 9110 8.6); at most PREHEAD_MAX_FIELDS fields and cookies. */
static unsigned check_fields(const char *b, size_t end, const char **msg)
{
        const char *cl = NULL;
        size_t cl_len = 0;
        unsigned entries = 0;

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
                if (name == len && line[0] != ' ' && line[0] != '\t') {
                        /* not a continuation (obs-fold) either: libmicrohttpd's HTML 400 */
                        *msg = "malformed header line (no colon)";
                        return 400;
                }
                if (name < len) {
                        /* libmicrohttpd keeps each field, and each cookie, in its 32 KiB pool */
                        entries++;
                        if (name == 6 && !strncasecmp(line, "Cookie", 6))
                                for (size_t k = name; k < len; k++)
                                        entries += line[k] == ';';
                        if (entries > PREHEAD_MAX_FIELDS) {
                                *msg = "too many header fields and cookies (over 100)";
                                return 431;
                        }
                }
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
        size_t end = prehead_end(b, n), line;
        unsigned st;

        /* tolerated before the request line, as RFC 9112 2.2 allows and libmicrohttpd does */
        while (n >= 2 && b[0] == '\r' && b[1] == '\n') {
                b += 2;
                n -= 2;
                nl = memchr(b, '\n', n);
                end = prehead_end(b, n);
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
                /* the header lines that are whole can be judged already */
                const char *last = memrchr(b, '\n', n);
                return check_fields(nl + 1, (size_t)(last + 1 - (nl + 1)), msg);
        }
        if (memchr(b, '\0', end)) {
                *msg = "nul byte in the request head";
                return 400;
        }
        return check_fields(nl + 1, end - (size_t)(nl + 1 - b), msg);
}

prehead_body_kind prehead_body(const char *b, size_t end, uint64_t *len)
{
        bool have_cl = false;

        *len = 0;
        for (size_t i = 0; i < end;) {
                const char *line = b + i, *nl = memchr(line, '\n', end - i);
                size_t n = nl ? (size_t)(nl - line) : end - i, v;

                i += n + 1;
                if (n && line[n - 1] == '\r')
                        n--;
                if (line == b)
                        continue; /* the request line */
                if (!n)
                        break;
                for (v = 0; v < n && line[v] != ':'; v++)
                        ;
                if (v == n)
                        continue;
                {
                        size_t name = v, ve = n;
                        bool te = name == 17 && !strncasecmp(line, "Transfer-Encoding", 17);
                        bool cl = name == 14 && !strncasecmp(line, "Content-Length", 14);

                        if (!te && (!cl || have_cl))
                                continue;
                        v++;
                        while (v < ve && (line[v] == ' ' || line[v] == '\t'))
                                v++;
                        while (ve > v && (line[ve - 1] == ' ' || line[ve - 1] == '\t'))
                                ve--;
                        if (te) /* the first one decides, and wins over Content-Length */
                                return ve - v == 7 && !strncasecmp(line + v, "chunked", 7)
                                           ? PREHEAD_BODY_CHUNKED
                                           : PREHEAD_BODY_UNKNOWN;
                        have_cl = true;
                        for (; v < ve; v++) /* digits only: prehead_check saw to it */
                                *len = *len * 10 + (uint64_t)(line[v] - '0');
                }
        }
        return PREHEAD_BODY_LENGTH;
}
