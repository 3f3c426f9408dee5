/* fuzz_auth.c — the Authorization header and the whole JWT path on arbitrary bytes: bearer
 * parsing, shape checks, base64url, the JOSE header, libjwt with a real key, the claims; then the
 * same bytes through the gate (security/gate.h) as Authorization and X-Forwarded-For, whose
 * verdict must be allow or a 401/403/429 denial. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "security/auth.h"
#include "security/gate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static auth_gate *fuzz_gate(void)
{
        static auth_gate *g;
        gate_options o = {
            .authn = true,
            .jwt_secret = "fuzz-secret-fuzz-secret-fuzz-secret-0123",
            .authz = true,
            .role_perms =
                {[ROLE_VIEWER] = "read", [ROLE_OPERATOR] = "read,write", [ROLE_ADMIN] = "*"},
            .allowed_ips = "",
            .trusted_proxies = "0.0.0.0/0,::/0",
        };
        char err[256];

        if (!g && gate_new(&o, &g, err, sizeof(err)) < 0)
                abort();
        return g;
}

static void through_gate(const char *hdr)
{
        gate_input in = {.authorization = hdr,
                         .forwarded_for = hdr,
                         .tls_client_ok = true,
                         .method = "GET",
                         .path = "/api/v1/gpus",
                         .perm = PERM_READ,
                         .peer = {[10] = 0xff, [11] = 0xff, [12] = 192, [15] = 1}};
        gate_req s;
        gate_verdict v;

        gate_begin(&s);
        gate_check(fuzz_gate(), &in, &s, &v);
        if (!v.allow && v.status != 401 && v.status != 403 && v.status != 429)
                abort();
        if (!memchr(s.source_ip, '\0', sizeof(s.source_ip)) ||
            !memchr(s.principal, '\0', sizeof(s.principal)))
                abort();
}

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
        through_gate(hdr);
        free(hdr);
        return 0;
}
