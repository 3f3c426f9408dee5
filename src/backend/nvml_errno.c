/* nvml_errno.c — NVML return codes become negative errno here and nowhere else (STYLE.md). The
 * bottom of the backend's files: it calls nothing of theirs. */
#include "nvml-internal.h"

#include <errno.h>

int backend_errno_from_nvml(int r)
{
        switch (r) {
        case NVML_SUCCESS:
                return 0;
        case NVML_ERROR_NOT_SUPPORTED:
        case NVML_ERROR_FUNCTION_NOT_FOUND:
        case NVML_ERROR_VGPU_ECC_NOT_SUPPORTED:
        case NVML_ERROR_FREQ_NOT_SUPPORTED:
        case NVML_ERROR_DEPRECATED:
                return -EOPNOTSUPP;
        case NVML_ERROR_NO_PERMISSION:
                return -EACCES;
        case NVML_ERROR_INVALID_ARGUMENT:
        case NVML_ERROR_UNINITIALIZED:
        case NVML_ERROR_ALREADY_INITIALIZED:
                return -EINVAL;
        case NVML_ERROR_NOT_FOUND:
                return -ENOENT;
        case NVML_ERROR_INSUFFICIENT_SIZE:
                return -ENOBUFS;
        case NVML_ERROR_INSUFFICIENT_POWER:
        case NVML_ERROR_CORRUPTED_INFOROM:
        case NVML_ERROR_IRQ_ISSUE:
        case NVML_ERROR_OPERATING_SYSTEM:
                return -EIO;
        case NVML_ERROR_DRIVER_NOT_LOADED:
                return -ENXIO;
        case NVML_ERROR_TIMEOUT:
                return -ETIMEDOUT;
        case NVML_ERROR_LIBRARY_NOT_FOUND:
                return -ELIBACC;
        case NVML_ERROR_GPU_IS_LOST:
        case NVML_ERROR_GPU_NOT_FOUND:
        case NVML_ERROR_RESET_REQUIRED:
                return -ENODEV;
        case NVML_ERROR_LIB_RM_VERSION_MISMATCH:
        case NVML_ERROR_ARGUMENT_VERSION_MISMATCH:
                return -EPROTO;
        case NVML_ERROR_IN_USE:
                return -EBUSY;
        case NVML_ERROR_MEMORY:
        case NVML_ERROR_INSUFFICIENT_RESOURCES:
                return -ENOMEM;
        case NVML_ERROR_NO_DATA:
                return -ENODATA;
        case NVML_ERROR_NOT_READY:
                return -EAGAIN;
        case NVML_ERROR_INVALID_STATE:
                return -EBADFD;
        default:
                return -EIO;
        }
}
