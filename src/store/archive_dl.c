/* archive_dl.c — dlopen of libarchive at first use, and its table of entry points, through the
 * common lazy loader (common/lazydl.h). See archive_dl.h for why. */
#include "archive_dl.h"

#include "common/lazydl.h"
#include "common/macros.h"

static lazy_dl lib =
    LAZY_DL_INIT(ARCHIVE_DL_SONAME, "archive_", "backups need the libarchive13 package");
static archive_dl api; /* filled by the first lazy_dl_open(); read-only afterwards */

int archive_dl_get(const archive_dl **ret, char *err, size_t errlen)
{
        int r = LAZY_DL_OPEN(&lib, ARCHIVE_DL_FUNCS, api, err, errlen);

        if (r < 0)
                return r;
        *ret = &api;
        return 0;
}
