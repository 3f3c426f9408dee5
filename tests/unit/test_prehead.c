/* test_prehead.c — prehead_check, the judge of each request head before libmicrohttpd parses it:
 * what it refuses (and with which status), and what it must pass on untouched — every form of
 * request libmicrohttpd accepts, and heads too short to judge; and prehead_body, how the body
 * after a head is framed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/prehead.h"

#define S(lit) lit, sizeof(lit) - 1

static unsigned judge(const char *b, size_t n)
{
        const char *msg = NULL;
        unsigned st = prehead_check(b, n, &msg);

        if (st)
                assert_non_null(msg);
        return st;
}

static void test_accepted(void **state)
{
        (void)state;
        assert_int_equal(judge(S("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")), 0);
        assert_int_equal(judge(S("GET /healthz HTTP/1.0\r\n\r\n")), 0);
        assert_int_equal(judge(S("GET /healthz HTTP/1.1\nHost: x\n\n")), 0); /* bare LF */
        assert_int_equal(judge(S("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")), 0);
        assert_int_equal(judge(S("GET http://h:5555/metrics HTTP/1.1\r\nHost: h\r\n\r\n")), 0);
        assert_int_equal(judge(S("\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")), 0); /* RFC 9112 2.2 */
        assert_int_equal(judge(S("POST /api/v1/inject HTTP/1.1\r\nHost: x\r\n"
                                 "Content-Length: 4\r\ncontent-length:  4 \r\n\r\n{\"\0}")),
                         0); /* the same length twice; a NUL in the body is the body's business */
        /* too little to judge: libmicrohttpd decides (and its timeout) */
        assert_int_equal(judge(S("GE")), 0);
        assert_int_equal(judge(S("GET / HTTP/1.1\r\nHost: x\r\n")), 0);
}

static void test_request_line(void **state)
{
        (void)state;
        assert_int_equal(judge(S("GARBAGE\r\n\r\n")), 400);
        assert_int_equal(judge(S("GET /\r\n\r\n")), 400);              /* HTTP/0.9 */
        assert_int_equal(judge(S("GET  / HTTP/1.1\r\n\r\n")), 400);    /* empty target */
        assert_int_equal(judge(S("GET / HTTP/1.1 x\r\n\r\n")), 400);   /* a fourth part */
        assert_int_equal(judge(S("G(T / HTTP/1.1\r\n\r\n")), 400);     /* not a token */
        assert_int_equal(judge(S("GET /a\tb HTTP/1.1\r\n\r\n")), 400); /* control byte */
        assert_int_equal(judge(S("GET / HTTQ/1.1\r\n\r\n")), 400);
        assert_int_equal(judge(S("GET / HTTP/2.0\r\nHost: x\r\n\r\n")), 505);
        assert_int_equal(judge(S("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")),
                         505); /* h2 prior knowledge */
        assert_int_equal(judge(S("GET / HTTP/1.2\r\n\r\n")), 505);
}

static void test_sizes(void **state)
{
        char *b = malloc(PREHEAD_MAX);

        (void)state;
        assert_non_null(b);
        memcpy(b, "GET /", 5);
        memset(b + 5, 'a', PREHEAD_MAX - 5); /* no end of line within the budget */
        assert_int_equal(judge(b, PREHEAD_MAX), 414);
        assert_int_equal(judge(b, PREHEAD_MAX - 1), 0); /* may still end: not judged */
        memcpy(b, "GET / HTTP/1.1\r\nX-A: ", 21);       /* the line ends, the head does not */
        assert_int_equal(judge(b, PREHEAD_MAX), 431);
        free(b);
}

static void test_fields(void **state)
{
        (void)state;
        assert_int_equal(judge(S("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n")), 400);
        assert_int_equal(judge(S("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b")), 400); /* partial */
        assert_int_equal(judge(S("POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n")), 400);
        assert_int_equal(judge(S("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n")), 400);
        assert_int_equal(judge(S("POST / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n")), 400);
        assert_int_equal(judge(S("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n")), 400);
        assert_int_equal(
            judge(S("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n")), 400);
        assert_int_equal(
            judge(S("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n")),
            400); /* does not fit 64 bits */
        assert_int_equal(judge(S("GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n")), 400);
        assert_int_equal(judge(S("GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n")), 400); /* partial */
        assert_int_equal(judge(S("GET / HTTP/1.1\r\nX-A: a\r\n  folded\r\n\r\n")),
                         0); /* obs-fold */
}

/* libmicrohttpd's pool: at most 100 fields plus cookies, and 100 query arguments. */
static void test_counts(void **state)
{
        char *b = malloc(PREHEAD_MAX);
        size_t n;

        (void)state;
        assert_non_null(b);
        for (unsigned args = 100; args <= 101; args++) {
                n = (size_t)snprintf(b, PREHEAD_MAX, "GET /x?a=1");
                for (unsigned k = 1; k < args; k++)
                        n += (size_t)snprintf(b + n, PREHEAD_MAX - n, "&a=%u", k);
                n += (size_t)snprintf(b + n, PREHEAD_MAX - n, " HTTP/1.1\r\nHost: x\r\n\r\n");
                assert_int_equal(judge(b, n), args > 100 ? 414 : 0);
        }
        for (unsigned fields = 100; fields <= 101; fields++) {
                n = (size_t)snprintf(b, PREHEAD_MAX, "GET /x HTTP/1.1\r\n");
                for (unsigned k = 0; k < fields; k++)
                        n += (size_t)snprintf(b + n, PREHEAD_MAX - n, "X-%u: v\r\n", k);
                n += (size_t)snprintf(b + n, PREHEAD_MAX - n, "\r\n");
                assert_int_equal(judge(b, n), fields > 100 ? 431 : 0);
        }
        /* cookies count too: 1 field with 100 cookies, then one more field */
        n = (size_t)snprintf(b, PREHEAD_MAX, "GET /x HTTP/1.1\r\nCookie: c0=v");
        for (unsigned k = 1; k < 100; k++)
                n += (size_t)snprintf(b + n, PREHEAD_MAX - n, "; c%u=v", k);
        n += (size_t)snprintf(b + n, PREHEAD_MAX - n, "\r\n\r\n");
        assert_int_equal(judge(b, n), 0);
        memcpy(b + n - 2, "X: 1\r\n\r\n", 9);
        assert_int_equal(judge(b, n + 7), 431);
        free(b);
}

static prehead_body_kind body(const char *b, size_t n, uint64_t *len)
{
        size_t end = prehead_end(b, n);

        assert_true(end > 0);
        return prehead_body(b, end, len);
}

static void test_body(void **state)
{
        uint64_t len = 99;

        (void)state;
        assert_int_equal(body(S("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), &len), PREHEAD_BODY_LENGTH);
        assert_int_equal(len, 0);
        assert_int_equal(body(S("POST / HTTP/1.1\ncontent-length:  12 \n\nbody"), &len),
                         PREHEAD_BODY_LENGTH);
        assert_int_equal(len, 12);
        assert_int_equal(body(S("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: "
                                "chunked\r\n\r\n"),
                              &len),
                         PREHEAD_BODY_CHUNKED); /* wins over Content-Length, as in libmicrohttpd */
        assert_int_equal(body(S("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n"
                                "Transfer-Encoding: chunked\r\n\r\n"),
                              &len),
                         PREHEAD_BODY_UNKNOWN); /* the first one decides */
        assert_int_equal(prehead_end(S("GET / HTTP/1.1\r\nHost: x\r\n")), 0);
        assert_int_equal(prehead_end(S("GET / HTTP/1.1\r\n\r\nGET")), 18);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_accepted), cmocka_unit_test(test_request_line),
            cmocka_unit_test(test_sizes),    cmocka_unit_test(test_fields),
            cmocka_unit_test(test_counts),   cmocka_unit_test(test_body),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
