/* curl_dl.c — dlopen of libcurl at first use, and its table of entry points (through
 * common/lazydl.h). See curl_dl.h for why. */
#include "curl_dl.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>

#include "lazydl.h"
#include "macros.h"

static lazy_dl lib =
    LAZY_DL_INIT(CURL_DL_SONAME, "curl_", "alerting and S3 backups need the libcurl4 package");
static curl_dl api; /* filled by the first lazy_dl_open(); read-only afterwards */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_r = -ELIBACC; /* 0 once curl_global_init succeeded */
static char init_err[512];    /* why it failed */

/* curl_global_init is not thread-safe; pthread_once makes this the only call. */
static void global_init(void)
{
        CURLcode cc = api.global_init(CURL_GLOBAL_DEFAULT);

        if (cc != CURLE_OK) {
                snprintf(init_err, sizeof(init_err), "cannot initialize '%s': %s", CURL_DL_SONAME,
                         api.easy_strerror(cc));
                return;
        }
        init_r = 0;
}

int curl_dl_get(const curl_dl **ret, char *err, size_t errlen)
{
        int r = LAZY_DL_OPEN(&lib, CURL_DL_FUNCS, api, err, errlen);

        if (r < 0)
                return r;
        pthread_once(&init_once, global_init);
        if (init_r < 0) {
                if (err && errlen)
                        snprintf(err, errlen, "%s", init_err);
                return init_r;
        }
        *ret = &api;
        return 0;
}
