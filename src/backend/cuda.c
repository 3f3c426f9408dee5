/* cuda.c — loading the CUDA driver API (libcuda.so.1, or libvigil-fakecuda.so in tests): dlopen,
 * dlsym of every entry point in CUDA_FUNCS, cuInit. The error mapping lives here, so nothing above
 * the backend sees a CUresult as a number it must interpret. */
#include "cuda.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"

int cuda_errno(CUresult r)
{
        switch (r) {
        case CUDA_SUCCESS:
                return 0;
        case CUDA_ERROR_OUT_OF_MEMORY:
                return -ENOMEM;
        case CUDA_ERROR_NO_DEVICE:
        case CUDA_ERROR_INVALID_DEVICE:
        case CUDA_ERROR_DEVICE_UNAVAILABLE:
                return -ENODEV;
        case CUDA_ERROR_INVALID_VALUE:
        case CUDA_ERROR_INVALID_HANDLE:
        case CUDA_ERROR_INVALID_CONTEXT:
                return -EINVAL;
        case CUDA_ERROR_LAUNCH_TIMEOUT:
                return -ETIMEDOUT;
        case CUDA_ERROR_INVALID_PTX:
        case CUDA_ERROR_INVALID_IMAGE:
        case CUDA_ERROR_NO_BINARY_FOR_GPU:
        case CUDA_ERROR_UNSUPPORTED_PTX_VERSION:
                return -ENOEXEC;
        case CUDA_ERROR_NOT_FOUND:
                return -ENOENT;
        case CUDA_ERROR_NOT_INITIALIZED:
        case CUDA_ERROR_DEINITIALIZED:
                return -ENXIO;
        default:
                return -EIO;
        }
}

const char *cuda_describe(const cuda_api *c, CUresult r, char *buf, size_t len)
{
        const char *name = NULL, *text = NULL;

        if (c && c->cuGetErrorName)
                c->cuGetErrorName(r, &name);
        if (c && c->cuGetErrorString)
                c->cuGetErrorString(r, &text);
        snprintf(buf, len, "%s (%d)%s%s", name ? name : "CUDA error", r, text ? ": " : "",
                 text ? text : "");
        return buf;
}

/* Newest first where the driver has several versions of one entry point. */
static void *sym(void *dl, const char *name)
{
        void *p;

        if (strcmp(name, "cuEventElapsedTime") == 0 && (p = dlsym(dl, "cuEventElapsedTime_v2")))
                return p;
        return dlsym(dl, name);
}

int cuda_open(const char *library, const char *scenario, cuda_api **ret, char *err, size_t errlen)
{
        _cleanup_free_ cuda_api *c = calloc(1, sizeof(*c));
        vigil_fakecuda_configure_fn configure;
        const char *lib = library && *library ? library : "libcuda.so.1";
        CUresult cr;
        char why[256];

        if (!c)
                return -ENOMEM;
        snprintf(c->library, sizeof(c->library), "%s", lib);
        c->dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
        if (!c->dl) {
                const char *e = dlerror();
                snprintf(err, errlen, "cannot load '%s': %s", lib, e ? e : "unknown error");
                return -ELIBACC;
        }
#define CUDA_RESOLVE(name, r_, a_)                                                                 \
        *(void **)&c->name = sym(c->dl, #name);                                                    \
        if (!c->name) {                                                                            \
                snprintf(err, errlen, "cannot load '%s': symbol '%s' missing (driver too old?)",   \
                         lib, #name);                                                              \
                return -ELIBACC;                                                                   \
        }
        CUDA_FUNCS(CUDA_RESOLVE)
#undef CUDA_RESOLVE
        *(void **)&configure = dlsym(c->dl, "vigil_fakecuda_configure");
        if (configure) {
                int r = configure(scenario, err, errlen);
                if (r < 0)
                        return r;
                c->fake = true;
        }
        cr = c->cuInit(0);
        if (cr != CUDA_SUCCESS) {
                snprintf(err, errlen, "cuInit failed: %s", cuda_describe(c, cr, why, sizeof(why)));
                return cr == CUDA_ERROR_NO_DEVICE ? -ENODEV : cuda_errno(cr);
        }
        cr = c->cuDriverGetVersion(&c->driver_version);
        if (cr != CUDA_SUCCESS)
                c->driver_version = 0;
        *ret = TAKE_PTR(c);
        return 0;
}

cuda_api *cuda_close(cuda_api *c)
{
        free(c);
        return NULL;
}
