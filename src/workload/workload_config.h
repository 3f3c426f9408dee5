/* workload_config.h — the workload module's own configuration: the workload: section of vigil.yaml
 * as the daemon's option table (src/daemon/config.c) writes it; vigild turns it into
 * workload_options and the exposition's label switches at start (the keys are restart-only).
 * Strings are owned by whoever owns the struct. Plain data. */
#ifndef VIGIL_WORKLOAD_CONFIG_H
#define VIGIL_WORKLOAD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

typedef struct workload_config {
        bool enabled;               /* read processes per GPU at all */
        char *proc_root;            /* host /proc ("/proc"; "/host/proc" in a DaemonSet) */
        int64_t interval_us;        /* usec between reads; 0 = after every slow-tier sweep */
        unsigned max_processes;     /* processes kept per GPU (1..1024) */
        bool kubernetes;            /* ask the kubelet; GPU metrics carry pod labels */
        char *kubelet_socket;       /* pod-resources socket path ("unix://" optional) */
        int64_t kubelet_timeout_us; /* usec; deadline of one List call */
        char *container_logs_dir;   /* the kubelet's container log links (container id -> names) */
        bool pod_uid_label;         /* also pod_uid (dcgm-exporter --kubernetes-enable-pod-uid) */
        bool pod_labels;            /* the pods' Kubernetes labels, from the API server */
        char *pod_label_allowlist;  /* comma-joined POSIX EREs on label keys; "" = all */
        char *kube_api_url;         /* "" = https://$KUBERNETES_SERVICE_HOST:$..._PORT */
        char *kube_token_file;      /* bearer token (projected: read again at each request) */
        char *kube_ca_file;         /* CA bundle for the API server's certificate */
        int64_t pod_labels_refresh_us; /* usec; a pod's labels are fetched again after this */
        bool slurm;                    /* GPU metrics carry hpc_job (dcgm-exporter's label) */
        bool process_metrics;          /* per-process families in /metrics */
        unsigned max_process_series; /* per-process series per family, all GPUs (cardinality cap) */
} workload_config;

#endif
