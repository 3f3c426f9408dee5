/* archive_dl.c — dlopen of libarchive at first use, and its table of entry points (modeled on
 * backend/nvml.c). See archive_dl.h for why. */
#include "archive_dl.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static archive_dl api;        /* filled by load(); read-only afterwards */
static int load_r = -ELIBACC; /* 0 once everything resolved */
static char load_err[512];    /* why loading failed */

static void load(void)
{
        void *dl = dlopen(ARCHIVE_DL_SONAME, RTLD_NOW | RTLD_LOCAL);
        const char *missing = NULL;

        if (!dl) {
                snprintf(load_err, sizeof(load_err),
                         "cannot load '%s': %s; backups need the libarchive13 package",
                         ARCHIVE_DL_SONAME, dlerror());
                return;
        }
#define ARCHIVE_DL_RESOLVE(name)                                                                   \
        *(void **)&api.name = dlsym(dl, "archive_" #name);                                         \
        if (!api.name && !missing)                                                                 \
                missing = "archive_" #name;
        ARCHIVE_DL_FUNCS(ARCHIVE_DL_RESOLVE)
#undef ARCHIVE_DL_RESOLVE
        if (missing) {
                /* Keep dl open: unloading a library that another part of the process may have
                 * loaded too gains nothing, and nothing here points into it once load_r < 0. */
                snprintf(load_err, sizeof(load_err),
                         "cannot load '%s': symbol '%s' is missing (libarchive too old?); backups "
                         "need the libarchive13 package",
                         ARCHIVE_DL_SONAME, missing);
                return;
        }
        load_r = 0;
}

int archive_dl_get(const archive_dl **ret, char *err, size_t errlen)
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
