/* kubelet.c — the kubelet's pod-resources API (v1.PodResourcesLister/List over gRPC on a unix
 * socket), as dcgm-exporter asks it: which container holds which GPU. The gRPC C core is loaded
 * at the first call (common/lazydl.h): libgrpc and what it pulls in (abseil, re2, c-ares, ...)
 * are several MiB that a node without Kubernetes never maps. The answer is decoded with
 * protobuf-c from code generated at build time from podresources.proto. One call per read, with
 * a deadline: a slow or absent kubelet costs at most the timeout, and names are simply missing. */
#include "workload-internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

#include "common/lazydl.h"
#include "common/macros.h"
#include "podresources.pb-c.h"

#define KUBELET_METHOD  "/v1.PodResourcesLister/List"
#define KUBELET_MSG_MAX (16 << 20) /* bytes of one answer (a node of 110 pods is ~100 KiB) */

#define GRPC_FUNCS(X)                                                                              \
        X(grpc_init)                                                                               \
        X(grpc_insecure_credentials_create)                                                        \
        X(grpc_channel_credentials_release)                                                        \
        X(grpc_channel_create)                                                                     \
        X(grpc_channel_destroy)                                                                    \
        X(grpc_completion_queue_create_for_pluck)                                                  \
        X(grpc_completion_queue_pluck)                                                             \
        X(grpc_completion_queue_shutdown)                                                          \
        X(grpc_completion_queue_destroy)                                                           \
        X(grpc_channel_create_call)                                                                \
        X(grpc_call_start_batch)                                                                   \
        X(grpc_call_cancel)                                                                        \
        X(grpc_call_unref)                                                                         \
        X(grpc_metadata_array_init)                                                                \
        X(grpc_metadata_array_destroy)                                                             \
        X(grpc_byte_buffer_length)                                                                 \
        X(grpc_byte_buffer_reader_init)                                                            \
        X(grpc_byte_buffer_reader_readall)                                                         \
        X(grpc_byte_buffer_reader_destroy)                                                         \
        X(grpc_byte_buffer_destroy)                                                                \
        X(grpc_raw_byte_buffer_create)                                                             \
        X(grpc_slice_from_static_string)                                                           \
        X(grpc_slice_unref)

static struct {
#define GRPC_MEMBER(name) __typeof__(name) *name;
        GRPC_FUNCS(GRPC_MEMBER)
#undef GRPC_MEMBER
} g;

static lazy_dl lib =
    LAZY_DL_INIT("libgrpc.so.29", "", "Kubernetes pod names need the libgrpc29 package");
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void grpc_start(void)
{
        g.grpc_init(); /* once per process; never shut down (the client lives as long as vigild) */
}

static int load(char *err, size_t errlen)
{
        int r = LAZY_DL_OPEN(&lib, GRPC_FUNCS, g, err, errlen);

        if (r < 0)
                return r;
        pthread_once(&init_once, grpc_start);
        return 0;
}

static void copy(char *dst, size_t cap, const char *s)
{
        snprintf(dst, cap, "%s", s ? s : "");
}

int kubelet_decode(const uint8_t *data, size_t len, kube_alloc **ret, size_t *n, char *err,
                   size_t errlen)
{
        V1__ListPodResourcesResponse *resp =
            v1__list_pod_resources_response__unpack(NULL, len, data);
        kube_alloc *out = NULL;
        size_t k = 0, cap = 0;

        if (!resp) {
                snprintf(err, errlen,
                         "the kubelet's answer does not decode as "
                         "ListPodResourcesResponse");
                return -EPROTO;
        }
        for (size_t p = 0; p < resp->n_pod_resources; p++) {
                const V1__PodResources *pr = resp->pod_resources[p];
                for (size_t c = 0; c < pr->n_containers; c++) {
                        const V1__ContainerResources *cr = pr->containers[c];
                        for (size_t d = 0; d < cr->n_devices; d++) {
                                const V1__ContainerDevices *cd = cr->devices[d];
                                if (!cd->resource_name ||
                                    strncmp(cd->resource_name, "nvidia.com/", 11) != 0)
                                        continue;
                                for (size_t i = 0; i < cd->n_device_ids && k < KUBE_ALLOC_MAX;
                                     i++) {
                                        if (k == cap) {
                                                size_t nc = cap ? cap * 2 : 16;
                                                kube_alloc *t = realloc(out, nc * sizeof(*out));
                                                if (!t) {
                                                        free(out);
                                                        v1__list_pod_resources_response__free_unpacked(
                                                            resp, NULL);
                                                        return -ENOMEM;
                                                }
                                                out = t;
                                                cap = nc;
                                        }
                                        copy(out[k].ns, sizeof(out[k].ns), pr->namespace_);
                                        copy(out[k].pod, sizeof(out[k].pod), pr->name);
                                        copy(out[k].container, sizeof(out[k].container), cr->name);
                                        copy(out[k].resource, sizeof(out[k].resource),
                                             cd->resource_name);
                                        copy(out[k].device, sizeof(out[k].device),
                                             cd->device_ids[i]);
                                        k++;
                                }
                        }
                }
        }
        v1__list_pod_resources_response__free_unpacked(resp, NULL);
        *ret = out;
        *n = k;
        return 0;
}

static gpr_timespec deadline_in(int64_t us)
{
        struct timespec now;
        gpr_timespec t;

        clock_gettime(CLOCK_REALTIME, &now);
        t.tv_sec = now.tv_sec + us / 1000000;
        t.tv_nsec = (int32_t)(now.tv_nsec + (us % 1000000) * 1000);
        if (t.tv_nsec >= 1000000000) {
                t.tv_sec++;
                t.tv_nsec -= 1000000000;
        }
        t.clock_type = GPR_CLOCK_REALTIME;
        return t;
}

int kubelet_list(const char *path, int64_t timeout_us, kube_alloc **ret, size_t *n, char *err,
                 size_t errlen)
{
        char target[4200];
        const char *sock = strncmp(path, "unix://", 7) == 0 ? path + 7 : path;
        grpc_channel_credentials *creds;
        grpc_channel *ch;
        grpc_completion_queue *cq;
        grpc_call *call;
        grpc_metadata_array md_init, md_trail;
        grpc_byte_buffer *request, *answer = NULL;
        grpc_status_code status = GRPC_STATUS_UNKNOWN;
        grpc_slice details, empty;
        grpc_op ops[6];
        grpc_event ev;
        struct stat st;
        int r;

        if (stat(sock, &st) < 0) {
                r = -errno;
                snprintf(err, errlen, "cannot reach the kubelet at '%s': %s", sock,
                         strerror(errno));
                return r;
        }
        if ((r = load(err, errlen)) < 0)
                return r;
        snprintf(target, sizeof(target), "unix://%s", sock);
        creds = g.grpc_insecure_credentials_create();
        ch = g.grpc_channel_create(target, creds, NULL);
        g.grpc_channel_credentials_release(creds);
        cq = g.grpc_completion_queue_create_for_pluck(NULL);
        call = g.grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                          g.grpc_slice_from_static_string(KUBELET_METHOD), NULL,
                                          deadline_in(timeout_us), NULL);
        empty = g.grpc_slice_from_static_string(""); /* ListPodResourcesRequest: zero bytes */
        request = g.grpc_raw_byte_buffer_create(&empty, 1);
        g.grpc_metadata_array_init(&md_init);
        g.grpc_metadata_array_init(&md_trail);
        memset(ops, 0, sizeof(ops));
        memset(&details, 0, sizeof(details));
        ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[1].op = GRPC_OP_SEND_MESSAGE;
        ops[1].data.send_message.send_message = request;
        ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[3].data.recv_initial_metadata.recv_initial_metadata = &md_init;
        ops[4].op = GRPC_OP_RECV_MESSAGE;
        ops[4].data.recv_message.recv_message = &answer;
        ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
        ops[5].data.recv_status_on_client.trailing_metadata = &md_trail;
        ops[5].data.recv_status_on_client.status = &status;
        ops[5].data.recv_status_on_client.status_details = &details;
        if (g.grpc_call_start_batch(call, ops, ARRAY_SIZE(ops), (void *)1, NULL) != GRPC_CALL_OK) {
                snprintf(err, errlen, "cannot start a gRPC call to the kubelet at '%s'", sock);
                r = -EPROTO;
                goto out;
        }
        /* the call carries its own deadline; the extra second only guards against a stuck
         * queue, and then the call is cancelled and drained */
        ev = g.grpc_completion_queue_pluck(cq, (void *)1, deadline_in(timeout_us + 1000000), NULL);
        if (ev.type != GRPC_OP_COMPLETE) {
                g.grpc_call_cancel(call, NULL);
                ev = g.grpc_completion_queue_pluck(cq, (void *)1, deadline_in(5000000), NULL);
        }
        if (status == GRPC_STATUS_DEADLINE_EXCEEDED) {
                snprintf(err, errlen, "the kubelet at '%s' did not answer within %lld ms", sock,
                         (long long)(timeout_us / 1000));
                r = -ETIMEDOUT;
        } else if (status != GRPC_STATUS_OK || !answer) {
                snprintf(err, errlen, "the kubelet at '%s' answered gRPC status %d", sock,
                         (int)status);
                r = status == GRPC_STATUS_UNAVAILABLE ? -ECONNREFUSED : -EPROTO;
        } else if (g.grpc_byte_buffer_length(answer) > KUBELET_MSG_MAX) {
                snprintf(err, errlen, "the kubelet's answer is larger than %d bytes",
                         KUBELET_MSG_MAX);
                r = -EFBIG;
        } else {
                grpc_byte_buffer_reader rd;
                if (!g.grpc_byte_buffer_reader_init(&rd, answer)) {
                        snprintf(err, errlen, "cannot read the kubelet's answer");
                        r = -EPROTO;
                } else {
                        grpc_slice all = g.grpc_byte_buffer_reader_readall(&rd);
                        r = kubelet_decode(GRPC_SLICE_START_PTR(all), GRPC_SLICE_LENGTH(all), ret,
                                           n, err, errlen);
                        g.grpc_slice_unref(all);
                        g.grpc_byte_buffer_reader_destroy(&rd);
                }
        }
out:
        if (answer)
                g.grpc_byte_buffer_destroy(answer);
        g.grpc_byte_buffer_destroy(request);
        g.grpc_slice_unref(details);
        g.grpc_metadata_array_destroy(&md_init);
        g.grpc_metadata_array_destroy(&md_trail);
        g.grpc_call_unref(call);
        g.grpc_completion_queue_shutdown(cq);
        g.grpc_completion_queue_pluck(cq, NULL, deadline_in(5000000), NULL); /* SHUTDOWN */
        g.grpc_completion_queue_destroy(cq);
        g.grpc_channel_destroy(ch);
        return r;
}
