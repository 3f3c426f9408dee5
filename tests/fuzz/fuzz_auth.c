/* fuzz_auth.c — the Authorization header and the whole JWT path on arbitrary bytes: bearer
 * parsing, shape checks, base64url, the JOSE header, libjwt with a real key, the claims. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "security/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const char secret[] = "fuzz-secret-fuzz-secret-fuzz-secret-0123";
        auth_jwt_key k = {.alg = AUTH_ALG_HS256,
                          .key = (unsigned char *)secret,
                          .key_len = sizeof(secret) - 1,
                          .issuer = "i",
                          .audience = "a",
                          .leeway_s = 60};
        char *hdr = malloc(size + 1);
        const char *tok, *why;
        size_t n;
        auth_claims c;

        if (!hdr)
                return 0;
        memcpy(hdr, data, size);
        hdr[size] = '\0';
        if (auth_parse_bearer(hdr, &tok, &n) == 0)
                auth_jwt_verify(&k, tok, n, 1700000000, &c, &why);
        auth_jwt_verify(&k, hdr, strlen(hdr), 1700000000, &c, &why);
        free(hdr);
        return 0;
}
