/* test_framer.c — the framer that every connection's bytes pass through before libmicrohttpd
 * reads them (api/framer.h), over a scripted read function: good streams come out byte for byte
 * whatever the pieces they arrive in and the sizes libmicrohttpd reads with; a bad head, and
 * everything after it, comes out as the one internal request after the requests before it; a
 * head is never given out before it is judged; bodies (Content-Length, chunked) are skipped, not
 * judged as heads; and what the framer does not frame is handed on untouched. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/framer.h"

/* The peer: pieces of bytes, a NULL piece is "nothing now" (one -EAGAIN), then the end or
 * -EAGAIN forever. */
struct script {
        const char *const *part;
        const size_t *len;
        size_t n, k, off;
        bool eof;
        size_t reads;
};

static ssize_t script_read(void *io, void *buf, size_t n)
{
        struct script *s = io;
        size_t k;

        s->reads++;
        if (s->k == s->n)
                return s->eof ? 0 : -EAGAIN;
        if (!s->part[s->k]) {
                s->k++;
                return -EAGAIN;
        }
        k = s->len[s->k] - s->off < n ? s->len[s->k] - s->off : n;
        memcpy(buf, s->part[s->k] + s->off, k);
        s->off += k;
        if (s->off == s->len[s->k]) {
                s->k++;
                s->off = 0;
        }
        return (ssize_t)k;
}

static uint64_t rng = 88172645463325252ull;

static size_t rnd(size_t n)
{
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return (size_t)(rng % n);
}

struct out {
        char *b;
        size_t len;
        int last; /* the last result: 0 the end, -EAGAIN */
};

/* Read as libmicrohttpd does (read size from sizes(), or random up to 64 when max is 0) until
 * the script is spent and the framer says "again", or the end. */
static void drain(framer_conn *c, struct script *s, size_t max, struct out *o)
{
        char buf[40000];

        o->len = 0;
        o->b = realloc(o->b, 1);
        for (int guard = 0; guard < 100000; guard++) {
                size_t want = max ? max : 1 + rnd(64);
                ssize_t r = framer_read(c, buf, want);

                assert_true(r <= (ssize_t)want);
                if (r > 0) {
                        o->b = realloc(o->b, o->len + (size_t)r);
                        memcpy(o->b + o->len, buf, (size_t)r);
                        o->len += (size_t)r;
                        continue;
                }
                o->last = (int)r;
                if (r == 0 || s->k == s->n)
                        return;
        }
        fail_msg("the framer never finished");
}

/* The stream text cut into pieces at random places, with "nothing now" between some. */
static void cut(const char *text, size_t len, struct script *s, const char **part, size_t *plen,
                size_t cap)
{
        size_t at = 0, k = 0;

        while (at < len && k + 2 < cap) {
                size_t n = 1 + rnd(len - at < 300 ? len - at : 300);
                if (rnd(3) == 0)
                        part[k] = NULL, plen[k++] = 0;
                part[k] = text + at;
                plen[k++] = n;
                at += n;
        }
        if (at < len) {
                part[k] = text + at;
                plen[k++] = len - at;
        }
        *s = (struct script){.part = part, .len = plen, .n = k};
}

static void synthetic(char *b, size_t len)
{
        snprintf(b, len, "GET %s HTTP/1.1\r\nHost: vigil\r\nConnection: close\r\n\r\n",
                 framer_refusal_target());
}

static const char good_stream[] =
    "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n"
    "\r\n" /* an empty line before a request line */
    "POST /api/v1/inject HTTP/1.1\r\nHost: x\r\nContent-Length: 24\r\n\r\n"
    "GARBAGE\r\n\r\nPRI * HTTP/2"        /* a body that would be refused as a head */
    "GET /healthz HTTP/1.1\nHost: x\n\n" /* bare LF */
    "POST /api/v1/inject HTTP/1.1\r\nHost: x\r\ntransfer-encoding: Chunked\r\n"
    "Content-Length: 3\r\n\r\n" /* Transfer-Encoding wins */
    "5;name=val\r\nGARBA\r\n"
    "a\nGE\r\n\r\n\0\0\0\0\r\n"
    "0\r\nX-Trailer: GARBAGE\r\n\r\n"
    "GET /healthz HTTP/1.0\r\n\r\n";

static void test_good_streams_pass_untouched(void **state)
{
        const char *part[4096];
        size_t plen[4096];
        struct out o = {0};

        (void)state;
        for (int round = 0; round < 400; round++) {
                struct script s;
                framer_conn *c;
                const char *msg;

                cut(good_stream, sizeof(good_stream) - 1, &s, part, plen, 4096);
                s.eof = round % 2;
                c = framer_new(script_read, &s, -EAGAIN);
                assert_non_null(c);
                drain(c, &s, round % 4 == 0 ? 32768 : 0, &o);
                assert_int_equal(o.len, sizeof(good_stream) - 1);
                assert_memory_equal(o.b, good_stream, o.len);
                assert_int_equal(framer_status(c, &msg, NULL), 0);
                assert_int_equal(o.last, s.eof ? 0 : -EAGAIN);
                framer_free(c);
        }
        free(o.b);
}

struct bad {
        const char *head;
        unsigned status;
};

static void test_bad_head_after_good_ones(void **state)
{
        static char huge_line[20000], huge_head[20000];
        const struct bad bad[] = {
            {"GARBAGE\r\n\r\n", 400},
            {"GET /healthz\r\n\r\n", 400},
            {"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505},
            {"GET / HTTP/1.1\r\nHost: x\r\nX: a\x01"
             "b\r\nNoColon\r\n\r\n",
             400},
            {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n", 400},
            {huge_line, 414},
            {huge_head, 431},
        };
        const char *part[4096];
        size_t plen[4096];
        struct out o = {0};
        char synth[256], stream[50000];

        (void)state;
        memset(huge_line, 'a', sizeof(huge_line) - 1);
        memcpy(huge_line, "GET /", 5);
        snprintf(huge_head, sizeof(huge_head), "GET / HTTP/1.1\r\nHost: x\r\nX: ");
        memset(huge_head + strlen(huge_head), 'b', sizeof(huge_head) - 1 - strlen(huge_head));
        synthetic(synth, sizeof(synth));
        for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++)
                for (int round = 0; round < 60; round++) {
                        const char *pre =
                            "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                            "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
                        struct script s;
                        framer_conn *c;
                        const char *msg = NULL;
                        unsigned request = 0;
                        int len = snprintf(stream, sizeof(stream), "%s%sGET /c HTTP/1.1\r\n\r\n",
                                           pre, bad[b].head);

                        cut(stream, (size_t)len, &s, part, plen, 4096);
                        s.eof = round % 2;
                        c = framer_new(script_read, &s, -EAGAIN);
                        drain(c, &s, round % 3 == 0 ? 32768 : 0, &o);
                        /* the good requests, then the internal one, and nothing of the rest */
                        assert_int_equal(o.len, strlen(pre) + strlen(synth));
                        assert_memory_equal(o.b, pre, strlen(pre));
                        assert_memory_equal(o.b + strlen(pre), synth, strlen(synth));
                        assert_int_equal(framer_status(c, &msg, &request), bad[b].status);
                        assert_non_null(msg);
                        assert_int_equal(request, 3); /* the internal request, after two */
                        /* never the end after a refusal: libmicrohttpd would drop its answer */
                        assert_int_equal(framer_read(c, stream, 100), -EAGAIN);
                        framer_free(c);
                }
        free(o.b);
}

static void test_bad_chunked_body(void **state)
{
        static const struct {
                const char *body;   /* after the head */
                const char *ending; /* what ends it for libmicrohttpd */
                unsigned status;
        } bad[] = {
            {"5\r\nabcde\r\nzz\r\nGARBAGE", "0\r\n\r\n", 400},          /* not hex */
            {"5 \r\nabcde\r\n0\r\n\r\n", "0\r\n\r\n", 400},             /* a space */
            {";ext\r\n0\r\n\r\n", "0\r\n\r\n", 400},                    /* no size */
            {"5\r\nabcdeXY0\r\n\r\n", "\r\n0\r\n\r\n", 400},            /* no line end */
            {"5\r\nabcde\rX\r\n", "\r\n0\r\n\r\n", 400},                /* CR, not CRLF */
            {"1\r\na\r\n0\r\nGood: 1\r\nNoColon\r\n\r\n", "\r\n", 400}, /* a trailer */
            {"10000000000000000\r\n", "0\r\n\r\n", 413},                /* over 64 bits */
        };
        const char *head = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                           "POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        const char *part[4096];
        size_t plen[4096];
        struct out o = {0};
        char stream[512], want[512];

        (void)state;
        for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++)
                for (int round = 0; round < 60; round++) {
                        /* what libmicrohttpd gets: the good part, then the ending */
                        size_t good = strlen(head);
                        struct script s;
                        framer_conn *c;
                        const char *msg = NULL;
                        unsigned request = 0;
                        int len = snprintf(stream, sizeof(stream), "%s%sGET /c HTTP/1.1\r\n\r\n",
                                           head, bad[b].body);

                        /* the good prefix of the body: up to the unit that is refused */
                        if (!strcmp(bad[b].ending, "\r\n"))
                                good += (size_t)(strstr(bad[b].body, "NoColon") - bad[b].body);
                        else if (!strcmp(bad[b].ending, "\r\n0\r\n\r\n"))
                                good += strlen("5\r\nabcde");
                        else if (strstr(bad[b].body, "abcde\r\nzz"))
                                good += strlen("5\r\nabcde\r\n");
                        snprintf(want, sizeof(want), "%.*s%s", (int)good, stream, bad[b].ending);
                        cut(stream, (size_t)len, &s, part, plen, 4096);
                        s.eof = round % 2;
                        c = framer_new(script_read, &s, -EAGAIN);
                        drain(c, &s, round % 3 == 0 ? 32768 : 0, &o);
                        assert_int_equal(o.len, strlen(want));
                        assert_memory_equal(o.b, want, o.len);
                        assert_int_equal(framer_status(c, &msg, &request), bad[b].status);
                        assert_non_null(msg);
                        assert_int_equal(request, 2); /* the POST carries the refusal */
                        assert_int_equal(framer_read(c, stream, 100), -EAGAIN);
                        framer_free(c);
                }
        free(o.b);
}

static void test_head_held_until_judged(void **state)
{
        const char *part[] = {"GET /healthz HTTP/1.1\r\nHo", NULL, "st: x\r\n\r\nGET /x HT"};
        const size_t plen[] = {strlen(part[0]), 0, strlen(part[2])};
        struct script s = {.part = part, .len = plen, .n = 3};
        framer_conn *c = framer_new(script_read, &s, -EAGAIN);
        char buf[256];
        ssize_t r;

        (void)state;
        /* nothing of a head that is not whole: libmicrohttpd would start parsing it */
        assert_int_equal(framer_read(c, buf, sizeof(buf)), -EAGAIN);
        r = framer_read(c, buf, sizeof(buf));
        assert_int_equal(r, strlen("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert_memory_equal(buf, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", (size_t)r);
        /* the next head's first piece waits; the peer ends inside it: what came, then the end */
        assert_int_equal(framer_read(c, buf, sizeof(buf)), -EAGAIN);
        s.eof = true;
        r = framer_read(c, buf, sizeof(buf));
        assert_int_equal(r, strlen("GET /x HT"));
        assert_int_equal(framer_read(c, buf, sizeof(buf)), 0);
        framer_free(c);
}

static void test_unframed_passes(void **state)
{
        /* an unknown transfer coding: the access handler refuses it (501) and closes; the
         * framer hands everything on from there */
        static const char *const streams[] = {
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nGARBAGE\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\nzz\r\n\r\n",
        };
        struct out o = {0};

        (void)state;
        for (size_t i = 0; i < sizeof(streams) / sizeof(streams[0]); i++) {
                const char *part[] = {streams[i]};
                const size_t plen[] = {strlen(streams[i])};
                struct script s = {.part = part, .len = plen, .n = 1, .eof = true};
                framer_conn *c = framer_new(script_read, &s, -EAGAIN);
                const char *msg;

                drain(c, &s, 7, &o);
                assert_int_equal(o.len, plen[0]);
                assert_memory_equal(o.b, streams[i], o.len);
                assert_int_equal(framer_status(c, &msg, NULL), 0);
                framer_free(c);
        }
        free(o.b);
}

static void test_pending_and_target(void **state)
{
        const char *part[] = {"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n"};
        const size_t plen[] = {strlen(part[0])};
        struct script s = {.part = part, .len = plen, .n = 1};
        framer_conn *c = framer_new(script_read, &s, -EAGAIN);
        const char *t = framer_refusal_target();
        char buf[8];

        (void)state;
        /* a small read leaves judged bytes waiting: libmicrohttpd asks for them (TLS) */
        assert_int_equal(framer_read(c, buf, sizeof(buf)), 8);
        assert_true(framer_pending(c) > 0);
        /* "/" and 32 hex digits, the same for the whole process */
        assert_int_equal(strlen(t), 33);
        assert_int_equal(t[0], '/');
        assert_int_equal(strspn(t + 1, "0123456789abcdef"), 32);
        assert_ptr_equal(t, framer_refusal_target());
        framer_free(c);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_good_streams_pass_untouched),
            cmocka_unit_test(test_bad_head_after_good_ones),
            cmocka_unit_test(test_bad_chunked_body),
            cmocka_unit_test(test_head_held_until_judged),
            cmocka_unit_test(test_unframed_passes),
            cmocka_unit_test(test_pending_and_target),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
