/* fuzz_webconfig.c — web-config.yml parsing, basic-auth header decoding and audit-body scrubbing
 * on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "security/webconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static basic_auth *b;
        webconfig *w = NULL;
        char err[256], user[WEBCONFIG_MAX_USER], out[AUDIT_BODY_MAX + 64];
        const char *why;
        char *s = malloc(size + 1);

        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        if (webconfig_parse("fuzz.yml", "/d", s, size, &w, err, sizeof(err)) == 0)
                webconfig_free(w);
        if (!b) {
                /* one user at the lowest cost so the header path stays fast */
                const char *y = "basic_auth_users:\n  u: "
                                "$2b$04$iUIS4sWgyi3Cv/QNjjCQ8ehmnVipn9mEdhs4BUQsMCCT.i0Q8UEN.\n";
                if (webconfig_parse("seed", NULL, y, strlen(y), &w, err, sizeof(err)) == 0) {
                        basic_auth_new(w, 1, &b);
                        webconfig_free(w);
                }
        }
        if (b && size < 600)
                basic_auth_check(b, s, 1, user, sizeof(user), &why);
        audit_body_scrub(s, size, out, sizeof(out));
        free(s);
        return 0;
}
