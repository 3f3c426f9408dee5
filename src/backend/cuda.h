/* cuda.h — the CUDA driver API as the diagnostics see it: libcuda.so.1 (or the fake CUDA)
 * dlopen'd at run time, its entry points in a table. No CUDA toolkit at build time: the types
 * are declared in nvml/cuda_types.h. CUresult codes become -errno here and nowhere else.
 *
 * Threads: the table is filled once by cuda_open(); the CUDA calls themselves are thread-safe as
 * the driver's are. Meant for the diag child process: a hung driver call hangs the caller. */
#ifndef VIGIL_BACKEND_CUDA_H
#define VIGIL_BACKEND_CUDA_H

#include <stdbool.h>
#include <stddef.h>

#include "nvml/cuda_types.h"

typedef struct cuda_api {
#define CUDA_SLOT(name, ret, args) ret(*name) args;
        CUDA_FUNCS(CUDA_SLOT)
#undef CUDA_SLOT
        void *dl;           /* dlopen handle */
        bool fake;          /* the fake CUDA answered (it exports vigil_fakecuda_configure) */
        char library[256];  /* what was loaded */
        int driver_version; /* cuDriverGetVersion: 1000 × major + 10 × minor */
} cuda_api;

/* Load LIBRARY (NULL = "libcuda.so.1"), resolve every entry point and call cuInit(0). For the
 * fake CUDA, SCENARIO (may be NULL) is handed to vigil_fakecuda_configure first. Returns 0, or
 * -ELIBACC (cannot load / symbol missing), -ENODEV (cuInit: no device), -EIO, with a reason in
 * err. Caller owns *ret (cuda_close). */
int cuda_open(const char *library, const char *scenario, cuda_api **ret, char *err, size_t errlen);
cuda_api *cuda_close(cuda_api *c); /* NULL ok; returns NULL. Does not dlclose (see lazydl.h). */

/* CUresult → -errno: OUT_OF_MEMORY -ENOMEM, NO_DEVICE/INVALID_DEVICE/DEVICE_UNAVAILABLE -ENODEV,
 * ECC_UNCORRECTABLE/ILLEGAL_ADDRESS/LAUNCH_FAILED -EIO, LAUNCH_TIMEOUT -ETIMEDOUT, INVALID_PTX &
 * co -ENOEXEC, NOT_FOUND -ENOENT, others -EIO; 0 for CUDA_SUCCESS. */
int cuda_errno(CUresult r);

/* "CUDA_ERROR_LAUNCH_FAILED (719): unspecified launch failure" into buf; returns buf. */
const char *cuda_describe(const cuda_api *c, CUresult r, char *buf, size_t len);

#endif
