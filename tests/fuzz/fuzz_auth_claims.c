/* fuzz_auth_claims.c — the JOSE header and claims checks on arbitrary JSON. */
#include <stddef.h>
#include <stdint.h>

#include "security/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        auth_jwt_key k = {.alg = AUTH_ALG_HS256, .issuer = "i", .audience = "a", .leeway_s = 60};
        json_error_t e;
        json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &e);
        const char *why;
        auth_claims c;

        if (!j)
                return 0;
        auth_check_header(j, AUTH_ALG_HS256, &why);
        auth_check_claims(j, &k, 1700000000, &c, &why);
        json_decref(j);
        return 0;
}
