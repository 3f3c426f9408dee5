/* cuda_types.h — the subset of the CUDA driver API (cuda.h) that the diagnostics use, declared
 * here so that nothing needs the CUDA toolkit at build time. Shared by the backend (src/backend/
 * cuda.c), which resolves the symbols from libcuda.so.1 with dlsym, and the fake CUDA
 * (src/fakecuda/), which exports them. Values and signatures follow NVIDIA's public cuda.h; only
 * the versioned names that exist since CUDA 4 (the _v2 entry points) are used, so any driver of
 * the last decade answers. Not a complete cuda.h: add an entry point to CUDA_FUNCS and both sides
 * pick it up. */
#ifndef VIGIL_CUDA_TYPES_H
#define VIGIL_CUDA_TYPES_H

#include <stddef.h>
#include <stdint.h>

typedef int CUresult;                   /* CUDA_SUCCESS or a CUDA_ERROR_* */
typedef int CUdevice;                   /* device ordinal */
typedef unsigned long long CUdeviceptr; /* device address (64-bit on every supported platform) */
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef struct CUevent_st *CUevent;

/* CUresult values (cuda.h cudaError_enum). */
#define CUDA_SUCCESS                       0
#define CUDA_ERROR_INVALID_VALUE           1
#define CUDA_ERROR_OUT_OF_MEMORY           2
#define CUDA_ERROR_NOT_INITIALIZED         3
#define CUDA_ERROR_DEINITIALIZED           4
#define CUDA_ERROR_DEVICE_UNAVAILABLE      46
#define CUDA_ERROR_NO_DEVICE               100
#define CUDA_ERROR_INVALID_DEVICE          101
#define CUDA_ERROR_INVALID_IMAGE           200
#define CUDA_ERROR_INVALID_CONTEXT         201
#define CUDA_ERROR_NO_BINARY_FOR_GPU       209
#define CUDA_ERROR_ECC_UNCORRECTABLE       214
#define CUDA_ERROR_INVALID_PTX             218
#define CUDA_ERROR_UNSUPPORTED_PTX_VERSION 222
#define CUDA_ERROR_INVALID_HANDLE          400
#define CUDA_ERROR_NOT_FOUND               500
#define CUDA_ERROR_NOT_READY               600
#define CUDA_ERROR_ILLEGAL_ADDRESS         700
#define CUDA_ERROR_LAUNCH_TIMEOUT          702
#define CUDA_ERROR_LAUNCH_FAILED           719
#define CUDA_ERROR_SYSTEM_DRIVER_MISMATCH  803
#define CUDA_ERROR_UNKNOWN                 999

/* CUdevice_attribute values used. */
#define CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK    1
#define CU_DEVICE_ATTRIBUTE_CLOCK_RATE               13 /* kHz */
#define CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT     16
#define CU_DEVICE_ATTRIBUTE_PCI_BUS_ID               33
#define CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID            34
#define CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE        36 /* kHz */
#define CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH  37 /* bits */
#define CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID            50
#define CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR 75
#define CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR 76

#define CU_EVENT_DEFAULT       0x0
#define CU_EVENT_BLOCKING_SYNC 0x1

/* X-macro over the entry points: F(symbol exported by libcuda, return, parameters). The
 * backend's table and the fake's exports are both generated from it. */
#define CUDA_FUNCS(F)                                                                              \
        F(cuInit, CUresult, (unsigned int flags))                                                  \
        F(cuDriverGetVersion, CUresult, (int *version))                                            \
        F(cuGetErrorString, CUresult, (CUresult error, const char **str))                          \
        F(cuGetErrorName, CUresult, (CUresult error, const char **str))                            \
        F(cuDeviceGetCount, CUresult, (int *count))                                                \
        F(cuDeviceGet, CUresult, (CUdevice * dev, int ordinal))                                    \
        F(cuDeviceGetName, CUresult, (char *name, int len, CUdevice dev))                          \
        F(cuDeviceGetAttribute, CUresult, (int *value, int attrib, CUdevice dev))                  \
        F(cuDeviceGetPCIBusId, CUresult, (char *busid, int len, CUdevice dev))                     \
        F(cuDeviceTotalMem_v2, CUresult, (size_t * bytes, CUdevice dev))                           \
        F(cuDevicePrimaryCtxRetain, CUresult, (CUcontext * ctx, CUdevice dev))                     \
        F(cuDevicePrimaryCtxRelease_v2, CUresult, (CUdevice dev))                                  \
        F(cuCtxSetCurrent, CUresult, (CUcontext ctx))                                              \
        F(cuCtxSynchronize, CUresult, (void))                                                      \
        F(cuModuleLoadData, CUresult, (CUmodule * mod, const void *image))                         \
        F(cuModuleUnload, CUresult, (CUmodule mod))                                                \
        F(cuModuleGetFunction, CUresult, (CUfunction * fn, CUmodule mod, const char *name))        \
        F(cuLaunchKernel, CUresult,                                                                \
          (CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,          \
           unsigned bz, unsigned shared_bytes, CUstream stream, void **params, void **extra))      \
        F(cuMemGetInfo_v2, CUresult, (size_t * free_bytes, size_t * total_bytes))                  \
        F(cuMemAlloc_v2, CUresult, (CUdeviceptr * dptr, size_t bytes))                             \
        F(cuMemFree_v2, CUresult, (CUdeviceptr dptr))                                              \
        F(cuMemAllocHost_v2, CUresult, (void **pp, size_t bytes))                                  \
        F(cuMemFreeHost, CUresult, (void *p))                                                      \
        F(cuMemcpyHtoD_v2, CUresult, (CUdeviceptr dst, const void *src, size_t bytes))             \
        F(cuMemcpyDtoH_v2, CUresult, (void *dst, CUdeviceptr src, size_t bytes))                   \
        F(cuMemcpyDtoD_v2, CUresult, (CUdeviceptr dst, CUdeviceptr src, size_t bytes))             \
        F(cuMemcpyPeer, CUresult,                                                                  \
          (CUdeviceptr dst, CUcontext dst_ctx, CUdeviceptr src, CUcontext src_ctx, size_t bytes))  \
        F(cuMemsetD32_v2, CUresult, (CUdeviceptr dst, unsigned int value, size_t n))               \
        F(cuEventCreate, CUresult, (CUevent * ev, unsigned int flags))                             \
        F(cuEventRecord, CUresult, (CUevent ev, CUstream stream))                                  \
        F(cuEventSynchronize, CUresult, (CUevent ev))                                              \
        F(cuEventElapsedTime, CUresult, (float *ms, CUevent start, CUevent end))                   \
        F(cuEventDestroy_v2, CUresult, (CUevent ev))

/* The fake CUDA's extra entry point (absent from the real libcuda.so.1): pick the scenario file
 * (NULL = $VIGIL_FAKE_SCENARIO, then built-in defaults) before cuInit. 0 or -errno with
 * "FILE:LINE: reason" in err. */
typedef int (*vigil_fakecuda_configure_fn)(const char *scenario_path, char *err, size_t errlen);

#endif
