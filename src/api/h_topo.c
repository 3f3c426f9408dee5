/* h_topo.c — GET /api/v1/gpus/{id}/nvlink and GET /api/v1/topology. Both answer from copies the
 * backend keeps (the slow tier's NVLink read; the topology read at start and re-attach): no NVML
 * call on an HTTP thread. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api-internal.h"
#include "reply.h"
#include "backend/backend.h"
#include "common/vtime.h"
#include "sampler/sampler.h"

static const char *remote_name(enum backend_nvlink_remote r)
{
        switch (r) {
        case BNL_REMOTE_GPU:
                return "gpu";
        case BNL_REMOTE_SWITCH:
                return "nvswitch";
        case BNL_REMOTE_OTHER:
                return "other";
        default:
                return "unknown";
        }
}

static void set_counter(json_t *o, const char *key, uint64_t v)
{
        json_object_set_new(o, key, v == UINT64_MAX ? json_null() : json_integer((json_int_t)v));
}

static json_t *link_json(unsigned l, const backend_nvlink *k)
{
        json_t *o = json_object();

        json_object_set_new(o, "link", json_integer(l));
        if (k->state < 0) {
                json_object_set_new(o, "state", json_string("not_supported"));
                return o;
        }
        json_object_set_new(o, "state", json_string(k->state ? "up" : "down"));
        json_object_set_new(o, "version", k->version ? json_integer(k->version) : json_null());
        json_object_set_new(o, "remote_type", json_string(remote_name(k->remote)));
        json_object_set_new(o, "remote_pci_bus_id",
                            k->remote_bus_id[0] ? json_string(k->remote_bus_id) : json_null());
        set_counter(o, "crc_flit_errors", k->crc_flit);
        set_counter(o, "crc_data_errors", k->crc_data);
        set_counter(o, "replay_errors", k->replay);
        set_counter(o, "recovery_errors", k->recovery);
        set_counter(o, "tx_kib", k->tx_kib);
        set_counter(o, "rx_kib", k->rx_kib);
        return o;
}

/* The NVLink copy of one GPU as JSON; "status" says when there is none and why. */
static json_t *nvlink_json(api *a, unsigned idx)
{
        backend_nvlink_info nv;
        json_t *o = json_object(), *arr = json_array();
        unsigned up = 0;

        json_object_set_new(o, "gpu", json_integer(idx));
        if (backend_nvlink_get(a->opt.backend, idx, &nv) < 0)
                nv.status = -EINVAL;
        switch (nv.status) {
        case 0:
                json_object_set_new(o, "status", json_string("ok"));
                break;
        case -EOPNOTSUPP:
                json_object_set_new(o, "status", json_string("not_supported"));
                break;
        case -ENODATA:
                json_object_set_new(o, "status", json_string("not_read_yet"));
                break;
        case -ENODEV:
                json_object_set_new(o, "status", json_string("lost"));
                break;
        default:
                json_object_set_new(o, "status", json_string(strerror(-nv.status)));
                break;
        }
        if (nv.status == 0 || nv.status == -ENODEV) {
                for (unsigned l = 0; l < nv.n_links && l < BACKEND_NVLINK_MAX; l++) {
                        json_array_append_new(arr, link_json(l, &nv.links[l]));
                        up += nv.links[l].state == 1;
                }
                json_object_set_new(o, "timestamp_us", json_integer(nv.ts_us));
        }
        json_object_set_new(o, "links_up", json_integer(up));
        json_object_set_new(o, "links", arr);
        return o;
}

enum MHD_Result h_nvlink(request *r)
{
        api *a = r->api;
        unsigned idx;
        sampler_gpu g;

        if (sampler_gpu_find(a->opt.sampler, r->seg[0], &idx) < 0 ||
            sampler_gpu_get(a->opt.sampler, idx, &g) < 0)
                return api_reply_errno(r, -ENODEV, "no GPU '%s'", r->seg[0]);
        return api_reply_json(r, 200, nvlink_json(a, idx));
}

/* Links of GPU i up to an NVSwitch, and up directly to the GPU at bus id peer. */
static void nvlink_counts(const backend_nvlink_info *nv, const char *peer, unsigned *sw,
                          unsigned *direct)
{
        *sw = *direct = 0;
        if (nv->status != 0)
                return;
        for (unsigned l = 0; l < nv->n_links && l < BACKEND_NVLINK_MAX; l++) {
                const backend_nvlink *k = &nv->links[l];
                if (k->state != 1)
                        continue;
                *sw += k->remote == BNL_REMOTE_SWITCH;
                *direct +=
                    peer && k->remote == BNL_REMOTE_GPU && !strcasecmp(k->remote_bus_id, peer);
        }
}

enum MHD_Result h_topology(request *r)
{
        api *a = r->api;
        backend_topology *t = malloc(sizeof(*t));
        backend_nvlink_info *nv = NULL;
        sampler_gpu *g = NULL;
        json_t *o, *gpus, *matrix;
        int rc;

        if (!t)
                return api_reply_errno(r, -ENOMEM, "out of memory");
        rc = backend_topology_get(a->opt.backend, t);
        if (rc < 0) {
                free(t);
                return api_reply_errno(r, -EAGAIN, "the topology has not been read yet");
        }
        nv = calloc(t->n ? t->n : 1, sizeof(*nv));
        g = calloc(t->n ? t->n : 1, sizeof(*g));
        if (!nv || !g) {
                free(t);
                free(nv);
                free(g);
                return api_reply_errno(r, -ENOMEM, "out of memory");
        }
        for (unsigned i = 0; i < t->n; i++) {
                if (backend_nvlink_get(a->opt.backend, i, &nv[i]) < 0)
                        nv[i].status = -EINVAL;
                if (sampler_gpu_get(a->opt.sampler, i, &g[i]) < 0)
                        memset(&g[i], 0, sizeof(g[i]));
        }
        o = json_object();
        gpus = json_array();
        matrix = json_array();
        for (unsigned i = 0; i < t->n; i++) {
                json_t *gi = json_object(), *row = json_array();
                unsigned up = 0;

                json_object_set_new(gi, "gpu", json_integer(i));
                if (g[i].id.uuid[0]) {
                        json_object_set_new(gi, "uuid", json_string(g[i].id.uuid));
                        json_object_set_new(gi, "pci_bus_id", json_string(g[i].id.pci_bus_id));
                }
                json_object_set_new(gi, "cpu_affinity",
                                    t->cpus[i][0] ? json_string(t->cpus[i]) : json_null());
                json_object_set_new(gi, "numa_node",
                                    t->numa_node[i] >= 0 ? json_integer(t->numa_node[i])
                                                         : json_null());
                for (unsigned l = 0; nv[i].status == 0 && l < nv[i].n_links; l++)
                        up += nv[i].links[l].state == 1;
                json_object_set_new(gi, "nvlinks_up", json_integer(up));
                json_array_append_new(gpus, gi);
                /* Each pair: the PCIe path, and the NVLinks between them: direct links to the
                 * peer, else as many as both have up to NVSwitches ("NV<n>", as nvidia-smi topo
                 * -m prints). */
                for (unsigned j = 0; j < t->n; j++) {
                        json_t *c = json_object();
                        unsigned sw_i = 0, sw_j = 0, direct = 0, other = 0, nvl = 0;

                        json_object_set_new(c, "pcie",
                                            json_string(backend_topo_level_name(
                                                (enum backend_topo_level)t->level[i][j])));
                        if (i != j) {
                                nvlink_counts(&nv[i],
                                              g[j].id.pci_bus_id[0] ? g[j].id.pci_bus_id : NULL,
                                              &sw_i, &direct);
                                nvlink_counts(&nv[j], NULL, &sw_j, &other);
                                nvl = direct ? direct : (sw_i < sw_j ? sw_i : sw_j);
                        }
                        json_object_set_new(c, "nvlinks", json_integer(nvl));
                        json_array_append_new(row, c);
                }
                json_array_append_new(matrix, row);
        }
        json_object_set_new(o, "gpus", gpus);
        json_object_set_new(o, "matrix", matrix);
        json_object_set_new(o, "timestamp_us", json_integer(t->ts_us));
        free(t);
        free(nv);
        free(g);
        return api_reply_json(r, 200, o);
}

/* GET /api/v1/gpus/{id}/mig: the MIG mode and instances the slow tier last read. */
enum MHD_Result h_mig(request *r)
{
        api *a = r->api;
        backend_mig_info mi;
        unsigned idx;
        sampler_gpu g;
        json_t *o, *arr;

        if (sampler_gpu_find(a->opt.sampler, r->seg[0], &idx) < 0 ||
            sampler_gpu_get(a->opt.sampler, idx, &g) < 0)
                return api_reply_errno(r, -ENODEV, "no GPU '%s'", r->seg[0]);
        if (backend_mig_get(a->opt.backend, idx, &mi) < 0)
                mi.status = -EINVAL;
        o = json_object();
        arr = json_array();
        json_object_set_new(o, "gpu", json_integer(idx));
        json_object_set_new(o, "status",
                            json_string(mi.status == 0             ? "ok"
                                        : mi.status == -EOPNOTSUPP ? "not_supported"
                                        : mi.status == -ENODATA    ? "not_read_yet"
                                        : mi.status == -ENODEV     ? "lost"
                                                                   : strerror(-mi.status)));
        if (mi.status == 0) {
                json_object_set_new(o, "mode", json_string(mi.mode ? "enabled" : "disabled"));
                json_object_set_new(o, "pending_mode",
                                    json_string(mi.pending_mode ? "enabled" : "disabled"));
                for (unsigned k = 0; k < mi.n && k < BACKEND_MIG_MAX; k++) {
                        const backend_mig_instance *in = &mi.inst[k];
                        json_t *e = json_object();
                        json_object_set_new(e, "gpu_instance_id", json_integer(in->gpu_instance));
                        json_object_set_new(e, "compute_instance_id",
                                            json_integer(in->compute_instance));
                        json_object_set_new(e, "uuid", json_string(in->uuid));
                        json_object_set_new(e, "profile", json_string(in->profile));
                        if (in->mem_status == 0) {
                                json_object_set_new(e, "memory_total_bytes",
                                                    json_integer((json_int_t)in->mem_total));
                                json_object_set_new(e, "memory_used_bytes",
                                                    json_integer((json_int_t)in->mem_used));
                                json_object_set_new(e, "memory_free_bytes",
                                                    json_integer((json_int_t)in->mem_free));
                        }
                        json_array_append_new(arr, e);
                }
                json_object_set_new(o, "timestamp_us", json_integer(mi.ts_us));
        }
        json_object_set_new(o, "instances", arr);
        return api_reply_json(r, 200, o);
}
