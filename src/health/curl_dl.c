/* curl_dl.c — dlopen of libcurl at first use, and its table of entry points (modeled on
 * backend/nvml.c). See curl_dl.h for why. */
#include "curl_dl.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static curl_dl api;           /* filled by load(); read-only afterwards */
static int load_r = -ELIBACC; /* 0 once everything resolved and initialized */
static char load_err[512];    /* why loading failed */

static void load(void)
{
        void *dl = dlopen(CURL_DL_SONAME, RTLD_NOW | RTLD_LOCAL);
        const char *missing = NULL;
        CURLcode cc;

        if (!dl) {
                snprintf(load_err, sizeof(load_err),
                         "cannot load '%s': %s; alerting needs the libcurl4 package",
                         CURL_DL_SONAME, dlerror());
                return;
        }
#define CURL_DL_RESOLVE(name)                                                                      \
        *(void **)&api.name = dlsym(dl, "curl_" #name);                                            \
        if (!api.name && !missing)                                                                 \
                missing = "curl_" #name;
        CURL_DL_FUNCS(CURL_DL_RESOLVE)
#undef CURL_DL_RESOLVE
        if (missing) {
                snprintf(load_err, sizeof(load_err),
                         "cannot load '%s': symbol '%s' is missing (libcurl too old?); alerting "
                         "needs the libcurl4 package",
                         CURL_DL_SONAME, missing);
                return;
        }
        /* curl_global_init is not thread-safe; pthread_once makes this the only call. */
        cc = api.global_init(CURL_GLOBAL_DEFAULT);
        if (cc != CURLE_OK) {
                snprintf(load_err, sizeof(load_err), "cannot initialize '%s': %s", CURL_DL_SONAME,
                         api.easy_strerror(cc));
                return;
        }
        load_r = 0;
}

int curl_dl_get(const curl_dl **ret, char *err, size_t errlen)
{
        pthread_once(&once, load);
        if (load_r < 0) {
                if (err && errlen)
                        snprintf(err, errlen, "%s", load_err);
                return load_r;
        }
        *ret = &api;
        return 0;
}
