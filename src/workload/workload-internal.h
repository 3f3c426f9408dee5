/* workload-internal.h — what the files of src/workload share: the kubelet client (kubelet.c) and
 * the container-name index (names.c). Private to src/workload; workload.h is the contract.
 *
 * The files, each calling only those above it:
 *   cgroup.c    /proc/PID/cgroup -> owner (pod UID + container id, Slurm job, Docker, unit)
 *   names.c     the kubelet's container log links -> namespace / pod / container names
 *   kubelet.c   pod-resources List over gRPC (libgrpc loaded at first use) -> GPU allocations
 *   workload.c  the reader thread, the join, the copies readers get */
#ifndef VIGIL_WORKLOAD_INTERNAL_H
#define VIGIL_WORKLOAD_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#define KUBE_DEVICE_MAX 128  /* bytes of one device id ("GPU-<uuid>::3", "MIG-<uuid>") */
#define KUBE_ALLOC_MAX  4096 /* allocations kept from one List answer */

/* One device assigned to one container, as the kubelet's List reports it. */
typedef struct kube_alloc {
        char ns[64];                  /* pod namespace */
        char pod[256];                /* pod name */
        char container[64];           /* container name */
        char resource[64];            /* "nvidia.com/gpu", "nvidia.com/mig-1g.18gb", ... */
        char device[KUBE_DEVICE_MAX]; /* device id as the device plugin reported it */
} kube_alloc;

/* Ask the kubelet (pod-resources v1 List on the unix socket at path, "unix://" prefix optional)
 * within timeout_us. On success *ret is a malloc'd array of the devices of resources named
 * "nvidia.com/..." (*n entries, caller frees). Returns 0, -ELIBACC (libgrpc missing), -ENOENT
 * (no socket), -ETIMEDOUT, -ECONNREFUSED / -EPROTO (gRPC or decoding failed) with a reason in
 * err. Blocks up to timeout_us. Any thread. */
int kubelet_list(const char *path, int64_t timeout_us, kube_alloc **ret, size_t *n, char *err,
                 size_t errlen);

/* Decode a serialized ListPodResourcesResponse (exposed for tests). Same results as above. */
int kubelet_decode(const uint8_t *data, size_t len, kube_alloc **ret, size_t *n, char *err,
                   size_t errlen);

/* Container id -> names, from the kubelet's /var/log/containers links
 * ("POD_NAMESPACE_CONTAINER-<container id>.log"). */
typedef struct kube_names {
        char id[72];        /* container id (64 hex) */
        char ns[64];        /* namespace */
        char pod[256];      /* pod name */
        char container[64]; /* container name */
} kube_names;

#define KUBE_NAMES_MAX 8192 /* entries read from the directory */

/* Read dir. *ret malloc'd (*n entries; caller frees). 0 or -errno (-ENOENT: no such dir). */
int names_scan(const char *dir, kube_names **ret, size_t *n);
/* Parse one file name; 0 or -EINVAL. */
int names_parse(const char *file, kube_names *out);

#endif
