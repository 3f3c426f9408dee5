/* nvml_topo.c — the topology `vigil topo` shows: for each pair of GPUs the nearest common
 * ancestor on the PCIe tree (nvmlDeviceGetTopologyCommonAncestor), and for each GPU the CPUs near
 * it (nvmlDeviceGetCpuAffinity) and its NUMA node (nvmlDeviceGetNumaNodeId, else sysfs). Read
 * when the backend opens and when a GPU is re-attached; the HTTP threads read the copy.
 * NVLink connections between GPUs are not here: they are per link (nvml_nvlink.c). */
#include "nvml-internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "common/vtime.h"

static enum backend_topo_level level_of(nvmlGpuTopologyLevel_t l)
{
        switch (l) {
        case NVML_TOPOLOGY_INTERNAL:
                return BTOPO_BOARD;
        case NVML_TOPOLOGY_SINGLE:
                return BTOPO_PIX;
        case NVML_TOPOLOGY_MULTIPLE:
                return BTOPO_PXB;
        case NVML_TOPOLOGY_HOSTBRIDGE:
                return BTOPO_PHB;
        case NVML_TOPOLOGY_NODE:
                return BTOPO_NODE;
        case NVML_TOPOLOGY_SYSTEM:
                return BTOPO_SYS;
        default:
                return BTOPO_UNKNOWN;
        }
}

const char *backend_topo_level_name(enum backend_topo_level l)
{
        static const char *const names[] = {
            [BTOPO_SELF] = "X",  [BTOPO_BOARD] = "SXM", [BTOPO_PIX] = "PIX", [BTOPO_PXB] = "PXB",
            [BTOPO_PHB] = "PHB", [BTOPO_NODE] = "NODE", [BTOPO_SYS] = "SYS", [BTOPO_UNKNOWN] = "?",
        };
        return (unsigned)l < sizeof(names) / sizeof(names[0]) ? names[l] : "?";
}

/* A CPU mask as a list: "0-55,112-167". */
static void cpulist(const unsigned long *mask, unsigned words, char *out, size_t len)
{
        unsigned bits = (unsigned)(sizeof(unsigned long) * 8), n = words * bits;
        size_t o = 0;

        out[0] = '\0';
        for (unsigned c = 0; c < n;) {
                unsigned e;
                int w;
                if (!(mask[c / bits] & (1UL << (c % bits)))) {
                        c++;
                        continue;
                }
                for (e = c; e + 1 < n && (mask[(e + 1) / bits] & (1UL << ((e + 1) % bits))); e++)
                        ;
                w = e > c ? snprintf(out + o, len - o, "%s%u-%u", o ? "," : "", c, e)
                          : snprintf(out + o, len - o, "%s%u", o ? "," : "", c);
                if (w < 0 || (size_t)w >= len - o) {
                        out[o] = '\0'; /* too long: keep what fits */
                        return;
                }
                o += (size_t)w;
                c = e + 1;
        }
}

/* sysfs numa_node of a PCI device ("00000000:18:00.0" → /sys/bus/pci/devices/0000:18:00.0). */
static int sysfs_numa(const char *bus_id)
{
        char path[128], dev[32];
        const char *p = bus_id;
        char *buf = NULL;
        size_t n = 0;
        int node;

        if (strlen(bus_id) == 16) /* NVML's 8-digit domain; sysfs has 4 */
                p += 4;
        snprintf(dev, sizeof(dev), "%s", p);
        for (char *q = dev; *q; q++)
                *q = (char)tolower((unsigned char)*q);
        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/numa_node", dev);
        if (file_read_all(path, 32, &buf, &n) < 0)
                return -1;
        node = atoi(buf);
        free(buf);
        return node >= 0 ? node : -1;
}

void nvml_topo_refresh(backend *b)
{
        nvmlDevice_t h[BACKEND_TOPO_MAX];
        backend_topology *t = calloc(1, sizeof(*t)), *old;
        unsigned n = b->count < BACKEND_TOPO_MAX ? b->count : BACKEND_TOPO_MAX;

        if (!t)
                return; /* keep the previous copy */
        t->n = n;
        for (unsigned i = 0; i < n; i++) {
                pthread_mutex_lock(&b->gpus[i].lock);
                h[i] = b->gpus[i].lost ? NULL : b->gpus[i].handle;
                pthread_mutex_unlock(&b->gpus[i].lock);
        }
        for (unsigned i = 0; i < n; i++) {
                unsigned long mask[16] = {0};
                unsigned node = 0;
                nvmlPciInfo_t pci;

                t->numa_node[i] = -1;
                for (unsigned j = 0; j < n; j++) {
                        nvmlGpuTopologyLevel_t l;
                        if (i == j) {
                                t->level[i][j] = BTOPO_SELF;
                                continue;
                        }
                        t->level[i][j] = BTOPO_UNKNOWN;
                        if (h[i] && h[j] &&
                            CALL(b, topology_common_ancestor, h[i], h[j], &l) == NVML_SUCCESS)
                                t->level[i][j] = (unsigned char)level_of(l);
                }
                if (!h[i])
                        continue;
                if (CALL(b, cpu_affinity, h[i], 16, mask) == NVML_SUCCESS)
                        cpulist(mask, 16, t->cpus[i], sizeof(t->cpus[i]));
                if (CALL(b, numa_node_id, h[i], &node) == NVML_SUCCESS) {
                        t->numa_node[i] = (int)node;
                } else if (!b->fake) { /* the fake's bus ids are not this machine's */
                        memset(&pci, 0, sizeof(pci));
                        if (CALL(b, pci_info, h[i], &pci) == NVML_SUCCESS)
                                t->numa_node[i] = sysfs_numa(pci.busId);
                }
        }
        t->ts_us = time_real_us();
        pthread_mutex_lock(&b->topo_lock);
        old = b->topo;
        b->topo = t;
        pthread_mutex_unlock(&b->topo_lock);
        free(old);
}

void nvml_topo_free(backend *b)
{
        free(b->topo);
        b->topo = NULL;
}

int backend_topology_get(backend *b, backend_topology *out)
{
        int r = -ENODATA;

        pthread_mutex_lock(&b->topo_lock);
        if (b->topo) {
                *out = *b->topo;
                r = 0;
        }
        pthread_mutex_unlock(&b->topo_lock);
        return r;
}
