/* jwt_dl.c — dlopen of libjwt at first use (through common/lazydl.h). See jwt_dl.h for why. */
#include "jwt_dl.h"

#include <errno.h>

#include "common/lazydl.h"
#include "common/macros.h"

static lazy_dl lib =
    LAZY_DL_INIT(JWT_DL_SONAME, "jwt_", "JWT authentication needs the libjwt0 package");
static jwt_dl api; /* filled by the first lazy_dl_open(); read-only afterwards */

int jwt_dl_get(const jwt_dl **ret, char *err, size_t errlen)
{
        char buf[512];
        int r = LAZY_DL_OPEN(&lib, JWT_DL_FUNCS, api, err ? err : buf, err ? errlen : sizeof(buf));

        if (r < 0)
                return r;
        *ret = &api;
        return 0;
}
