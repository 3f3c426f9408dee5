/* workload.h — who runs on each GPU: the processes the driver lists per GPU (PID, GPU memory,
 * per-process utilisation, accounting stats when accounting mode is on), each attributed to its
 * owner through /proc/PID/cgroup: a Kubernetes pod (UID, container id), a Slurm job, a Docker
 * container or a systemd unit. Read on its own thread ("vg-workload") after each slow-tier sweep
 * (or on its own interval), never on the HTTP path: readers get copies of the last read.
 *
 * With kubernetes on, pod owners also get their namespace, pod and container names: from the
 * kubelet's container log links (container id -> names) and the kubelet's pod-resources API
 * (which container holds which GPU, as dcgm-exporter reads it). Job statistics build on
 * workload_gpu_processes(). */
#ifndef VIGIL_WORKLOAD_H
#define VIGIL_WORKLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "fields/fields.h"

typedef struct workload workload;
struct sampler;

/* Kinds of owner; pinned (shown in the API as their names): append only. */
enum workload_owner_kind {
        WL_OWNER_NONE = 0,   /* no owner found (host process, or the process is gone) */
        WL_OWNER_POD = 1,    /* Kubernetes pod: id = pod UID */
        WL_OWNER_SLURM = 2,  /* Slurm job: id = job id */
        WL_OWNER_UNIT = 3,   /* systemd unit: id = unit name ("foo.service") */
        WL_OWNER_DOCKER = 4, /* Docker container (not under Kubernetes): id = container id */
};

typedef struct workload_owner {
        enum workload_owner_kind kind; /* what owns the process */
        char id[80];                   /* pod UID, Slurm job id, unit name, container id; "" */
        char container_id[80];         /* pods: the container's runtime id; "" when not known */
        char runtime[16];              /* pods/Docker: "containerd", "cri-o", "docker", "" */
        char qos[16];                  /* pods: "guaranteed", "burstable", "besteffort" */
        char step[32];                 /* Slurm: job step ("0", "batch", "extern"), "" */
        char ns[64];                   /* pods: namespace, "" when not known (kubelet) */
        char pod[256];                 /* pods: pod name, "" when not known (kubelet) */
        char container[64];            /* pods: container name, "" when not known (kubelet) */
} workload_owner;

typedef struct workload_process {
        unsigned gpu;         /* GPU index */
        backend_process p;    /* what NVML said (backend.h) */
        workload_owner owner; /* who owns it */
        int owner_status;     /* 0 attributed (kind may be NONE), -ENOENT gone from /proc,
                                      -EACCES, -EBADMSG (cgroup file unreadable), -errno */
        char comm[32];        /* /proc/PID/comm, "" when unreadable */
        char cgroup[256];     /* the cgroup path attribution used, "" when none */
} workload_process;

typedef struct workload_options {
        backend *backend;        /* borrowed */
        struct sampler *sampler; /* borrowed: GPU count, lost GPUs */
        const char *proc_root;   /* host /proc ("/proc"); copied */
        int64_t interval_us;     /* 0 = after every slow-tier sweep; else own period (usec) */
        size_t max_processes;    /* processes kept per GPU (1..BACKEND_PROC_MAX); extra dropped */
        bool kubernetes;         /* ask the kubelet and read the container log links */
        const char *kubelet_socket;     /* pod-resources socket ("unix://" optional); copied */
        int64_t kubelet_timeout_us;     /* deadline of one List call */
        const char *container_logs_dir; /* "/var/log/containers"; copied */
        /* Pod labels from the API server (kubernetes on; kubeapi.c). */
        bool pod_labels;                 /* GET the pods of the GPUs' owners from the API server */
        const char *pod_label_allowlist; /* comma-joined POSIX EREs, "" = every label; copied */
        const char *kube_api_url;        /* "https://host:port"; "" = from KUBERNETES_SERVICE_* */
        const char *kube_token_file;     /* bearer token, read again at each request; copied */
        const char *kube_ca_file;        /* CA bundle the API server's certificate is checked on */
        int64_t pod_labels_refresh_us;   /* a pod's labels are fetched again after this long */
        /* Called on the reader thread after each successful read of a GPU with its processes
         * (procs valid only during the call); may be NULL. Automatic jobs are fed from it. */
        void (*on_read)(void *userdata, unsigned gpu, const workload_process *procs, size_t n,
                        int64_t ts_us);
        void *userdata;
} workload_options;

/* Set up (no thread yet). Caller owns *ret. -EINVAL for a bad option. */
int workload_new(const workload_options *opt, workload **ret);
/* Start the reader thread. */
int workload_start(workload *w);
/* Stop and join it; safe to call twice and with NULL. */
void workload_stop(workload *w);
workload *workload_free(workload *w); /* NULL ok; returns NULL */

/* The sampler's "sweep done": a slow sweep wakes the reader (interval 0). Never blocks; any
 * thread; NULL ok. */
void workload_on_sweep(workload *w, enum field_tier tier);

/* The current processes of GPU gpu with their owners, as last read. On success *ret is a malloc'd
 * array of *n entries (NULL when 0; caller frees) and *ts_us (may be NULL) the read's time, usec
 * since epoch. Returns 0, -ENOENT (no such GPU), -ENODATA (not read yet), -ENODEV (GPU lost),
 * -EOPNOTSUPP (the GPU lists no processes) or -errno of the last read; outputs untouched on
 * failure. Any thread. Automatic jobs are built on this. */
int workload_gpu_processes(workload *w, unsigned gpu, workload_process **ret, size_t *n,
                           int64_t *ts_us);

/* The one owner of GPU gpu, for the labels of its metrics: the one pod the kubelet assigned the
 * GPU to (dcgm-exporter's mapping); else the one pod or Slurm job all attributed processes on it
 * belong to. 0, -ENOENT when none, -EMLINK when several share it (the per-process families carry
 * the split). Any thread. */
int workload_gpu_owner(workload *w, unsigned gpu, workload_owner *out);

typedef struct workload_stats {
        uint64_t reads;         /* reads of all GPUs completed */
        uint64_t dropped;       /* processes beyond max_processes, summed over reads */
        uint64_t errors;        /* per-GPU reads that failed (not counting lost GPUs) */
        double last_duration_s; /* wall time of the last read */
        int64_t last_us;        /* end of the last read, usec since epoch; 0 = none */
} workload_stats;

void workload_get_stats(workload *w, workload_stats *out);
/* The configured read interval (usec; 0 = after every slow-tier sweep). NULL ok (0). */
int64_t workload_interval(const workload *w);

/* The kubelet client's state (kubernetes on). */
typedef struct workload_kubelet {
        bool enabled;       /* workload.kubernetes */
        int status;         /* 0 answered at the last read; -errno; -ENODATA not asked yet */
        char error[256];    /* why the last call failed, "" when it answered */
        int64_t last_ok_us; /* usec since epoch of the last answer; 0 = never */
        size_t allocations; /* GPU devices assigned to containers in the last answer */
        size_t names;       /* container log links read at the last read */
} workload_kubelet;

void workload_kubelet_get(workload *w, workload_kubelet *out);

/* ---- pod labels (kubeapi.c): the pod's Kubernetes labels, as dcgm-exporter's
 * --kubernetes-enable-pod-labels adds them ---- */

#define WORKLOAD_POD_LABELS_MAX      16  /* labels kept per pod (the first ones, API order) */
#define WORKLOAD_POD_LABEL_NAME_MAX  128 /* bytes of a label name; longer keys are left out */
#define WORKLOAD_POD_LABEL_VALUE_MAX 256 /* bytes of a value; longer values are left out */

typedef struct workload_pod_label {
        char name[WORKLOAD_POD_LABEL_NAME_MAX];   /* sanitised: [a-zA-Z0-9_], not a digit first */
        char value[WORKLOAD_POD_LABEL_VALUE_MAX]; /* as the API server gave it */
} workload_pod_label;

/* The labels of the pod o names (kind POD with namespace and pod name), as last fetched: copies
 * up to max into out and returns how many. 0 when pod labels are off, the pod was not fetched,
 * its fetch failed or the pod the API server described has another UID than o->id (a name
 * reused by a new pod). Any thread. */
size_t workload_pod_labels(workload *w, const workload_owner *o, workload_pod_label *out,
                           size_t max);

/* The API-server client's state (pod labels on). */
typedef struct workload_kubeapi {
        bool enabled;       /* workload.pod_labels */
        bool up;            /* a request of the last read was answered (200; 404: pod gone) */
        uint64_t requests;  /* pod GETs made */
        uint64_t errors;    /* of which gave no labels (transport, TLS, 401/403, 404, bad JSON) */
        size_t pods;        /* pods in the cache */
        char error[256];    /* why the last failed request failed, "" when none has */
        int64_t last_ok_us; /* usec since epoch of the last answer; 0 = never */
} workload_kubeapi;

void workload_kubeapi_get(workload *w, workload_kubeapi *out);

/* A Kubernetes label key as a Prometheus label name, as dcgm-exporter writes it: every byte
 * outside [a-zA-Z0-9_] becomes '_' ("app.kubernetes.io/name" -> "app_kubernetes_io_name"); Vigil
 * also puts '_' before a leading digit (Prometheus refuses such a name). 0, -EINVAL (empty key),
 * -ENAMETOOLONG (does not fit len). */
int workload_pod_label_name(const char *key, char *out, size_t len);
/* Compile a comma-joined list of POSIX extended regexes (the allowlist); 0, or -EINVAL with
 * "bad regex 'RE': REASON" in why. Used by the configuration check. */
int workload_pod_label_allowlist_check(const char *list, char *why, size_t whylen);
/* Does the allowlist (comma-joined EREs, "" = allow all) admit the label key? Each regex is
 * searched in the key (unanchored, like Go's MatchString); any match admits it. A list that does
 * not compile admits nothing. For tests; the reader keeps its compiled copy. */
bool workload_pod_label_allowed(const char *list, const char *key);

/* "pod", "slurm", "unit", "docker", "none". */
const char *workload_owner_kind_name(enum workload_owner_kind k);

/* ---- attribution (cgroup.c), exposed for tests ---- */

/* Attribute from the text of a /proc/PID/cgroup file (cgroup v2 "0::/path", v1
 * "N:controllers:/path", or both in hybrid mode). Fills *out (kind NONE when nothing matches) and
 * the path used into path (may be NULL). Returns 0, or -EBADMSG when no line parses. */
int workload_parse_cgroup(const char *text, workload_owner *out, char *path, size_t pathlen);
/* Read PROC_ROOT/PID/cgroup and PROC_ROOT/PID/comm (bounded reads) and attribute. Returns 0,
 * -ENOENT (no such process), -EACCES, or -EBADMSG. comm may be NULL. */
int workload_read_owner(const char *proc_root, unsigned pid, workload_owner *out, char *path,
                        size_t pathlen, char *comm, size_t commlen);

#endif
