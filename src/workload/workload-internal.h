/* workload-internal.h — what the files of src/workload share: the kubelet client (kubelet.c) and
 * the container-name index (names.c). Private to src/workload; workload.h is the contract.
 *
 * The files, each calling only those above it:
 *   cgroup.c    /proc/PID/cgroup -> owner (pod UID + container id, Slurm job, Docker, unit)
 *   names.c     the kubelet's container log links -> namespace / pod / container names
 *   kubelet.c   pod-resources List over gRPC (libgrpc loaded at first use) -> GPU allocations
 *   kubeapi.c   the API server's pod GET (libcurl loaded at first use) -> the pods' labels
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

/* ---- kubeapi.c: pod labels from the API server ---- */

#include <regex.h>
#include <stdbool.h>

#include "workload.h"

/* The compiled allowlist: any regex searched in a label key admits it; none = every key. */
typedef struct kube_allow {
        regex_t *re; /* n compiled */
        size_t n;
} kube_allow;

/* Compile the comma-joined list; 0, -ENOMEM, or -EINVAL with "bad regex 'RE': REASON" in err. */
int kube_allow_compile(const char *list, kube_allow *out, char *err, size_t errlen);
bool kube_allow_match(const kube_allow *a, const char *key);
void kube_allow_free(kube_allow *a);

/* Parse a Pod object (GET .../pods/NAME answer): metadata.uid into uid, and the labels the
 * allowlist admits, sanitised, into out (at most max, *n of them; the rest and those too long or
 * whose sanitised name repeats an earlier one counted in *left_out). 0, or -EBADMSG with the
 * reason in err (not JSON, not a Pod, a label value not a string). */
int kubeapi_parse_pod(const char *json, size_t len, const kube_allow *allow, char *uid,
                      size_t uidlen, workload_pod_label *out, size_t max, size_t *n,
                      size_t *left_out, char *err, size_t errlen);

/* One pod a read found on a GPU: what the label cache is keyed and checked on. */
typedef struct kube_pod_ref {
        char ns[64];
        char pod[256];
        char uid[80]; /* "" when the read did not see it (kubelet assignment only) */
} kube_pod_ref;

#define KUBEAPI_PODS_MAX 1024 /* pods cached; more are not fetched */

typedef struct kubeapi kubeapi;

/* Set up from the options (URL resolved from KUBERNETES_SERVICE_HOST/PORT when empty). 0,
 * -ENOMEM, -EINVAL with the reason in err (bad allowlist, no URL). Loads nothing yet. */
int kubeapi_new(const workload_options *opt, kubeapi **ret, char *err, size_t errlen);
kubeapi *kubeapi_free(kubeapi *k); /* NULL ok; returns NULL */
/* The reader thread, after each read: keep the cache to the pods found (drop the others), fetch
 * those never fetched, due again (refresh) or whose UID changed. Blocks for the requests. */
void kubeapi_refresh(kubeapi *k, const kube_pod_ref *pods, size_t n);
/* Copy the cached labels of (ns, pod) when fetched and its UID agrees with uid ("" = unknown).
 * Any thread. */
size_t kubeapi_lookup(kubeapi *k, const char *ns, const char *pod, const char *uid,
                      workload_pod_label *out, size_t max);
void kubeapi_state(kubeapi *k, workload_kubeapi *out);

#endif
