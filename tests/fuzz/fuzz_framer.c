/* fuzz_framer.c — the request framer (api/framer.h) on arbitrary streams, cut into arbitrary
 * pieces and read in arbitrary sizes: what comes out is always the stream itself, or a prefix of
 * it followed by what stands for the refused rest (the internal request for a head, the end of a
 * chunked body for a body). Bytes 0 and 1 choose the read size and the piece size; the rest is
 * the stream. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/framer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct feed {
        const uint8_t *p;
        size_t n, at, piece;
        unsigned calls;
};

static ssize_t feed_read(void *io, void *buf, size_t n)
{
        struct feed *f = io;
        size_t k = f->n - f->at;

        if (++f->calls % 3 == 0 && f->at < f->n)
                return -EAGAIN; /* nothing now, between pieces */
        if (!k)
                return 0;
        if (k > f->piece)
                k = f->piece;
        if (k > n)
                k = n;
        memcpy(buf, f->p + f->at, k);
        f->at += k;
        return (ssize_t)k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct feed f;
        framer_conn *c;
        char *out, synth[256];
        size_t got = 0, want;
        const char *msg;
        int k;

        if (size < 2)
                return 0;
        want = 1 + data[0];
        f = (struct feed){.p = data + 2, .n = size - 2, .piece = 1 + (size_t)data[1] * 64};
        out = malloc(f.n + sizeof(synth) + 256);
        c = framer_new(feed_read, &f, -EAGAIN);
        if (!out || !c)
                abort();
        /* every read gives a byte or more, or says "again" (at most every third read of the feed
         * is one): 4 "agains" in a row once the feed is spent mean it is all out */
        for (unsigned guard = 0, again = 0; guard < 8 * (f.n + 256) && again < 4; guard++) {
                ssize_t r = framer_read(c, out + got, want);
                if (r > 0) {
                        got += (size_t)r;
                        again = 0;
                        if (got > f.n + sizeof(synth))
                                abort(); /* more out than in */
                        continue;
                }
                if (r == 0)
                        break;
                again += f.at == f.n;
        }
        snprintf(synth, sizeof(synth),
                 "GET %s HTTP/1.1\r\nHost: vigil\r\nConnection: close\r\n\r\n",
                 framer_refusal_target());
        if (framer_status(c, &msg, NULL)) {
                const char *const tails[] = {synth, "0\r\n\r\n", "\r\n0\r\n\r\n", "\r\n"};
                bool ok = false;
                for (size_t t = 0; t < sizeof(tails) / sizeof(tails[0]) && !ok; t++) {
                        k = (int)strlen(tails[t]);
                        ok = got >= (size_t)k && got - (size_t)k <= f.n &&
                             !memcmp(out + got - k, tails[t], (size_t)k) &&
                             !memcmp(out, f.p, got - (size_t)k);
                }
                if (!ok)
                        abort(); /* not a prefix and what stands for the rest */
        } else if (memcmp(out, f.p, got)) {
                abort(); /* a changed byte */
        }
        framer_free(c);
        free(out);
        return 0;
}
