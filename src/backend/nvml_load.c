/* nvml_load.c — loading the NVML library: dlopen of libnvidia-ml.so.1 (or the fake NVML for
 * --simulate), the entry points of nvml_syms.h resolved newest version first, the fake's
 * extension entry points, backend_open/close and the versions. NVML return codes become errno in
 * nvml_errno.c. */
#include "nvml-internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/lazydl.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/vtime.h"

/* ---- open ------------------------------------------------------------------------------ */

static int resolve(backend *b, char *err, size_t errlen)
{
#define NVML_FN(ret, member, required, args, ...)                                                  \
        {                                                                                          \
                static const char *const names[] = {__VA_ARGS__, NULL};                            \
                *(void **)&b->api.member = dl_sym_first(b->dl, names); /* newest first */          \
                if (!b->api.member && (required)) {                                                \
                        snprintf(err, errlen, "'%s' does not export '%s'", b->library, names[0]);  \
                        return -ENOSYS;                                                            \
                }                                                                                  \
        }
#include "nvml/nvml_syms.h"
#undef NVML_FN
        return 0;
}

/* Where the fake NVML lives: $VIGIL_FAKENVML, next to our binary (../lib), the install dir. */
static void find_fake(char *path, size_t len)
{
        const char *env = getenv("VIGIL_FAKENVML");
        char exe[PATH_MAX];
        ssize_t n;

        if (env && *env) {
                snprintf(path, len, "%s", env);
                return;
        }
        n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n > 0) {
                char *slash;
                exe[n] = '\0';
                slash = strrchr(exe, '/');
                if (slash) {
                        *slash = '\0';
                        static const char *const rel[] = {"/../lib/libvigil-fakenvml.so",
                                                          "/../lib/vigil/libvigil-fakenvml.so"};
                        for (size_t i = 0; i < ARRAY_SIZE(rel); i++) {
                                int k = snprintf(path, len, "%s%s", exe, rel[i]);
                                if (k < 0 || (size_t)k >= len)
                                        continue;
                                if (access(path, R_OK) == 0)
                                        return;
                        }
                }
        }
        snprintf(path, len, "libvigil-fakenvml.so");
}

int backend_open(const backend_options *opt, backend **ret, char *err, size_t errlen)
{
        _cleanup_free_ backend *b = calloc(1, sizeof(*b));
        const char *lib = opt && opt->library ? opt->library : "libnvidia-ml.so.1";
        int r, rc;

        if (!b)
                return -ENOMEM;
        if (opt && opt->simulate)
                find_fake(b->library, sizeof(b->library));
        else
                snprintf(b->library, sizeof(b->library), "%s", lib);

        b->dl = dlopen(b->library, RTLD_NOW | RTLD_LOCAL);
        if (!b->dl) {
                snprintf(err, errlen, "cannot load NVML library '%s': %s", b->library, dlerror());
                return -ELIBACC;
        }
        r = resolve(b, err, errlen);
        if (r < 0)
                goto fail;

        {
                int (*configure)(const char *, char *, size_t) =
                    (int (*)(const char *, char *, size_t))dlsym(b->dl, "vigil_fake_configure");
                *(void **)&b->fake_inject = dlsym(b->dl, "vigil_fake_inject");
                *(void **)&b->fake_stats = dlsym(b->dl, "vigil_fake_stats");
                b->fake = configure != NULL;
                if (opt && opt->simulate && !configure) {
                        snprintf(err, errlen, "'%s' is not the Vigil fake NVML", b->library);
                        r = -ELIBBAD;
                        goto fail;
                }
                if (configure) {
                        r = configure(opt ? opt->scenario : NULL, err, errlen);
                        if (r < 0)
                                goto fail;
                }
        }

        rc = b->api.init();
        if (rc != NVML_SUCCESS) {
                const char *why = b->api.error_string ? b->api.error_string(rc) : "error";
                snprintf(err, errlen, "cannot initialise NVML from '%s': %s", b->library, why);
                r = backend_errno_from_nvml(rc);
                goto fail;
        }
        rc = b->api.device_count(&b->count);
        if (rc != NVML_SUCCESS) {
                snprintf(err, errlen, "cannot count GPUs: %s",
                         b->api.error_string ? b->api.error_string(rc) : "error");
                r = backend_errno_from_nvml(rc);
                b->api.shutdown();
                goto fail;
        }
        if (b->count > MAX_GPUS) {
                log_warn("backend", "found %u GPUs, watching the first %d", b->count, MAX_GPUS);
                b->count = MAX_GPUS;
        }
        b->gpus = calloc(b->count ? b->count : 1, sizeof(*b->gpus));
        if (!b->gpus) {
                r = -ENOMEM;
                b->api.shutdown();
                goto fail;
        }
        b->n_slots = b->count ? b->count : 1;
        for (unsigned i = 0; i < b->n_slots; i++) {
                pthread_mutex_init(&b->gpus[i].lock, NULL);
                pthread_mutex_init(&b->gpus[i].gpm_lock, NULL);
                pthread_mutex_init(&b->gpus[i].nvl_lock, NULL);
                b->gpus[i].nvl.status = -ENODATA;
                b->gpus[i].mig.status = -ENODATA;
                b->gpus[i].nvl_supported = -1;
                b->gpus[i].gpm_prev = -1;
                b->gpus[i].gpm_supported = -1;
                b->gpus[i].method = calloc(field_count(), 1);
                if (!b->gpus[i].method) {
                        r = -ENOMEM;
                        b->api.shutdown();
                        goto fail;
                }
        }
        for (unsigned i = 0; i < b->count; i++) {
                r = nvml_attach(b, i);
                if (r < 0) {
                        log_warn("backend", "failed to attach GPU %u: %s", i, strerror(-r));
                        b->gpus[i].lost = 1;
                }
        }
        pthread_mutex_init(&b->topo_lock, NULL);
        nvml_topo_refresh(b);
        *ret = TAKE_PTR(b);
        return 0;
fail:
        for (unsigned i = 0; i < b->n_slots; i++)
                free(b->gpus[i].method);
        free(b->gpus);
        dlclose(b->dl);
        return r;
}

backend *backend_close(backend *b)
{
        if (!b)
                return NULL;
        if (b->events && b->api.event_set_free)
                b->api.event_set_free(b->events);
        for (unsigned i = 0; i < b->n_slots; i++) { /* GPM samples go back before shutdown */
                pthread_mutex_lock(&b->gpus[i].gpm_lock);
                nvml_gpm_release_locked(b, &b->gpus[i]);
                pthread_mutex_unlock(&b->gpus[i].gpm_lock);
        }
        b->api.shutdown();
        for (unsigned i = 0; i < b->n_slots; i++) {
                free(b->gpus[i].method);
                pthread_mutex_destroy(&b->gpus[i].lock);
                pthread_mutex_destroy(&b->gpus[i].gpm_lock);
                pthread_mutex_destroy(&b->gpus[i].nvl_lock);
        }
        free(b->gpus);
        nvml_topo_free(b);
        pthread_mutex_destroy(&b->topo_lock);
        dlclose(b->dl);
        free(b);
        return NULL;
}

int backend_is_fake(const backend *b)
{
        return b->fake;
}

const char *backend_library(const backend *b)
{
        return b->library;
}

void backend_versions(backend *b, char *driver, size_t dlen, char *nvml, size_t nlen)
{
        char tmp[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE];

        driver[0] = nvml[0] = '\0';
        if (b->api.system_driver_version &&
            b->api.system_driver_version(tmp, sizeof(tmp)) == NVML_SUCCESS)
                snprintf(driver, dlen, "%s", tmp);
        if (b->api.system_nvml_version &&
            b->api.system_nvml_version(tmp, sizeof(tmp)) == NVML_SUCCESS)
                snprintf(nvml, nlen, "%s", tmp);
}
