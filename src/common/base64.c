/* base64.c — base64 and base64url (base64.h). */
#include "base64.h"

#include <errno.h>
#include <stdint.h>

static const char std_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int value(unsigned char c, base64_kind k)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == (k == BASE64_URL ? '-' : '+'))
                return 62;
        if (c == (k == BASE64_URL ? '_' : '/'))
                return 63;
        return -1;
}

size_t base64_encoded_len(size_t n, base64_kind k)
{
        if (k == BASE64_STD)
                return (n + 2) / 3 * 4;
        return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

ssize_t base64_encode(const void *in, size_t n, base64_kind k, char *out, size_t outlen)
{
        const unsigned char *p = in;
        const char *a = k == BASE64_URL ? url_alpha : std_alpha;
        size_t need = base64_encoded_len(n, k), o = 0;

        if (outlen < need + 1)
                return -ENOBUFS;
        for (size_t i = 0; i < n; i += 3) {
                uint32_t v = (uint32_t)p[i] << 16;
                size_t left = n - i;
                if (left > 1)
                        v |= (uint32_t)p[i + 1] << 8;
                if (left > 2)
                        v |= p[i + 2];
                out[o++] = a[(v >> 18) & 63];
                out[o++] = a[(v >> 12) & 63];
                if (left > 1)
                        out[o++] = a[(v >> 6) & 63];
                else if (k == BASE64_STD)
                        out[o++] = '=';
                if (left > 2)
                        out[o++] = a[v & 63];
                else if (k == BASE64_STD)
                        out[o++] = '=';
        }
        out[o] = '\0';
        return (ssize_t)o;
}

ssize_t base64_decode(const char *s, size_t n, base64_kind k, void *out, size_t outlen)
{
        unsigned char *q = out;
        size_t o = 0, pad = 0;
        uint32_t acc = 0;
        unsigned bits = 0;

        if (k == BASE64_STD) {
                if (n % 4)
                        return -EINVAL;
                while (pad < 2 && n > pad && s[n - 1 - pad] == '=')
                        pad++;
        } else {
                while (n > pad && s[n - 1 - pad] == '=')
                        pad++;
        }
        n -= pad;
        if (n % 4 == 1)
                return -EINVAL;
        if (outlen < n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0) + 1)
                return -ENOBUFS;
        for (size_t i = 0; i < n; i++) {
                int v = value((unsigned char)s[i], k);
                if (v < 0)
                        return -EINVAL;
                acc = (acc << 6) | (uint32_t)v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        q[o++] = (unsigned char)(acc >> bits);
                }
        }
        q[o] = '\0';
        return (ssize_t)o;
}
