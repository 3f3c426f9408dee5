/* ossl_dl.c — dlopen of libcrypto at first use, and its table of entry points (through
 * common/lazydl.h). See ossl_dl.h for why. */
#include "ossl_dl.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>

#include "lazydl.h"
#include "log.h"
#include "macros.h"

static lazy_dl lib = LAZY_DL_INIT(OSSL_DL_SONAME, "",
                                  "the audit chain, JWT and basic auth, webhook signatures and "
                                  "encryption at rest need the libssl3 package");
static ossl_dl api; /* filled by the first lazy_dl_open(); read-only afterwards */

int ossl_dl_get(const ossl_dl **ret, char *err, size_t errlen)
{
        char buf[512];
        int r = LAZY_DL_OPEN(&lib, OSSL_DL_FUNCS, api, err ? err : buf, err ? errlen : sizeof(buf));

        if (r < 0)
                return r;
        *ret = &api;
        return 0;
}

const ossl_dl *ossl_dl_lib(void)
{
        static bool logged;
        const ossl_dl *o = NULL;
        char err[512];

        if (ossl_dl_get(&o, err, sizeof(err)) == 0)
                return o;
        /* lazy_dl_open returns the first call's result to every caller: log it once. */
        if (!__atomic_exchange_n(&logged, true, __ATOMIC_RELAXED))
                log_warn("crypto", "%s", err);
        return NULL;
}
