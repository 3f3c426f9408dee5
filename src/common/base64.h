/* base64.h — base64 (RFC 4648 §4) and base64url (§5). The one copy behind HTTP basic auth
 * (web-config) and JWT segments. */
#ifndef VIGIL_COMMON_BASE64_H
#define VIGIL_COMMON_BASE64_H

#include <stddef.h>
#include <sys/types.h>

typedef enum base64_kind {
        BASE64_STD, /* A-Z a-z 0-9 + /, '=' padding written and required (length % 4 == 0) */
        BASE64_URL, /* A-Z a-z 0-9 - _, no padding written; trailing '=' accepted on input */
} base64_kind;

/* Bytes base64_encode() writes for N input bytes, without the NUL. */
size_t base64_encoded_len(size_t n, base64_kind k);

/* Encode IN[0..N) into OUT (NUL-terminated). Returns the length written (no NUL), or -ENOBUFS
 * when OUTLEN < base64_encoded_len() + 1 (OUT untouched). */
ssize_t base64_encode(const void *in, size_t n, base64_kind k, char *out, size_t outlen);

/* Decode S[0..N) into OUT and NUL-terminate it (decoded text can be used as a string). Returns
 * the bytes decoded (no NUL), -EINVAL for a character outside the alphabet, misplaced padding or
 * an impossible length, -ENOBUFS when OUT cannot hold the result and its NUL. Bits left over in
 * the last character are ignored (as the copies this replaced did). */
ssize_t base64_decode(const char *s, size_t n, base64_kind k, void *out, size_t outlen);

#endif
