/* redact.c — redact_text (see redact.h): one pass over the words of a text, each copied or
 * replaced. Bounded output, no allocation. */
#include "redact.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "common/macros.h"

typedef struct out_buf {
        char *p;    /* destination */
        size_t cap; /* bytes at p */
        size_t n;   /* bytes written, without the terminator */
} out_buf;

static void put(out_buf *o, const char *s, size_t len)
{
        size_t room;

        if (!o->cap)
                return;
        room = o->cap - 1 - o->n;
        len = MIN(len, room);
        memcpy(o->p + o->n, s, len);
        o->n += len;
        o->p[o->n] = '\0';
}

static void puts_(out_buf *o, const char *s)
{
        put(o, s, strlen(s));
}

static bool is_space(char c)
{
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_quote(char c)
{
        return c == '\'' || c == '"';
}

bool redact_name_is_secret(const char *name, size_t len)
{
        static const char *const words[] = {"pass",    "pwd",       "secret", "token",
                                            "key",     "auth",      "cred",   "cookie",
                                            "session", "signature", "private"};
        char low[64];
        size_t n = 0;

        while (len && *name == '-') {
                name++;
                len--;
        }
        if (!len)
                return false;
        for (size_t i = 0; i < len && n < sizeof(low) - 1; i++) {
                char c = name[i];
                low[n++] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
        }
        low[n] = '\0';
        for (size_t i = 0; i < ARRAY_SIZE(words); i++)
                if (strstr(low, words[i]))
                        return true;
        return false;
}

/* NAME=value as a shell environment assignment: [A-Z_][A-Z0-9_]*, at least one capital. */
static bool is_env_name(const char *s, size_t len)
{
        bool cap = false;

        if (!len || (s[0] >= '0' && s[0] <= '9'))
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (c >= 'A' && c <= 'Z')
                        cap = true;
                else if (!(c == '_' || (c >= '0' && c <= '9')))
                        return false;
        }
        return cap;
}

static bool word_is(const char *s, size_t len, const char *what)
{
        return strlen(what) == len && !strncasecmp(s, what, len);
}

/* The URL starting at u (len bytes, "scheme://..."): userinfo, query and fragment hidden. */
static bool put_url(out_buf *o, const char *u, size_t len)
{
        const char *end = u + len, *auth = strstr(u, "://") + 3, *host = auth, *rest, *q;
        bool hid = false;

        rest = auth;
        while (rest < end && *rest != '/' && *rest != '?' && *rest != '#')
                rest++;
        for (const char *c = auth; c < rest; c++)
                if (*c == '@')
                        host = c + 1;
        put(o, u, (size_t)(auth - u));
        if (host != auth) {
                puts_(o, REDACT_MARK "@");
                hid = true;
        }
        q = rest;
        while (q < end && *q != '?' && *q != '#')
                q++;
        put(o, host, (size_t)(q - host));
        if (q < end) {
                put(o, q, 1);
                puts_(o, REDACT_MARK);
                hid = true;
        }
        return hid;
}

bool redact_text(const char *s, char *out, size_t outlen)
{
        out_buf o = {out, outlen, 0};
        bool pending = false, hid = false;

        if (outlen)
                out[0] = '\0';
        if (!s)
                return false;
        while (*s) {
                const char *w = s, *core, *core_end, *eq, *url;
                size_t wl;

                if (is_space(*s)) {
                        put(&o, s, 1);
                        s++;
                        continue;
                }
                while (*s && !is_space(*s))
                        s++;
                wl = (size_t)(s - w);
                core = w;
                core_end = s;
                while (core < core_end && is_quote(*core))
                        core++;
                while (core_end > core && is_quote(core_end[-1]))
                        core_end--;
                if (pending) {
                        size_t cl = (size_t)(core_end - core);
                        if (word_is(core, cl, "bearer") || word_is(core, cl, "basic")) {
                                put(&o, w, wl);
                                continue;
                        }
                        put(&o, w, (size_t)(core - w));
                        puts_(&o, REDACT_MARK);
                        put(&o, core_end, (size_t)(s - core_end));
                        pending = false;
                        hid = true;
                        continue;
                }
                url = NULL;
                for (const char *c = core; c + 3 <= core_end; c++)
                        if (!strncmp(c, "://", 3)) {
                                url = c;
                                break;
                        }
                if (url) {
                        /* back to the first character of the scheme */
                        while (url > core && ((url[-1] >= 'a' && url[-1] <= 'z') ||
                                              (url[-1] >= 'A' && url[-1] <= 'Z') ||
                                              (url[-1] >= '0' && url[-1] <= '9') ||
                                              url[-1] == '+' || url[-1] == '-' || url[-1] == '.'))
                                url--;
                        put(&o, w, (size_t)(url - w));
                        hid |= put_url(&o, url, (size_t)(core_end - url));
                        put(&o, core_end, (size_t)(s - core_end));
                        continue;
                }
                eq = memchr(core, '=', (size_t)(core_end - core));
                if (eq && eq > core) {
                        const char *name = core;
                        size_t nl = (size_t)(eq - core);
                        if ((name[0] != '-' && is_env_name(name, nl)) ||
                            redact_name_is_secret(name, nl)) {
                                put(&o, w, (size_t)(eq + 1 - w));
                                puts_(&o, REDACT_MARK);
                                put(&o, core_end, (size_t)(s - core_end));
                                hid = true;
                                continue;
                        }
                } else if (core < core_end && core[0] == '-' &&
                           redact_name_is_secret(core, (size_t)(core_end - core))) {
                        pending = true;
                } else {
                        size_t cl = (size_t)(core_end - core);
                        if (word_is(core, cl, "bearer") || word_is(core, cl, "basic") ||
                            word_is(core, cl, "authorization:"))
                                pending = true;
                }
                put(&o, w, wl);
        }
        return hid;
}
