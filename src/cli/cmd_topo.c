/* cmd_topo.c — `vigil topo`: the GPU matrix `nvidia-smi topo -m` prints (NV<n> where GPUs share
 * n NVLinks, else the PCIe path X/PIX/PXB/PHB/NODE/SYS) with CPU and NUMA affinity, from
 * GET /api/v1/topology. */
#include "commands.h"

#include <errno.h>
#include <string.h>

static const char usage[] = "vigil topo [-j|--json]";

static void help(cli_ctx *ctx)
{
        fprintf(ctx->out,
                "usage: %s\n\n"
                "GPU topology (like `nvidia-smi topo -m`): how each pair of GPUs is connected,\n"
                "and the CPUs and NUMA node near each GPU.\n\n"
                "  X    = self\n"
                "  SYS  = through PCIe and the interconnect between NUMA nodes\n"
                "  NODE = through PCIe and the host bridges of one NUMA node\n"
                "  PHB  = through PCIe and a PCIe host bridge\n"
                "  PXB  = through several PCIe bridges, no host bridge\n"
                "  PIX  = through at most one PCIe bridge\n"
                "  NV#  = through # NVLinks (via NVSwitches on HGX boards)\n\n"
                "  -j, --json   print the daemon's JSON (GET /api/v1/topology)\n"
                "  -h, --help   show this help\n",
                usage);
}

static int render(cli_ctx *ctx, const json_t *root)
{
        const json_t *gpus = json_object_get(root, "gpus"), *m = json_object_get(root, "matrix");
        _cleanup_(buf_release) buf b = {0};
        size_t n = json_array_size(gpus);

        buf_init(&b, 0);
        buf_printf(&b, "        ");
        for (size_t j = 0; j < n; j++)
                buf_printf(&b, "GPU%-5zu", j);
        buf_printf(&b, "CPU Affinity    NUMA Affinity\n");
        for (size_t i = 0; i < n; i++) {
                const json_t *g = json_array_get(gpus, i), *row = json_array_get(m, i);
                const json_t *numa = json_object_get(g, "numa_node");
                buf_printf(&b, "GPU%-5zu", i);
                for (size_t j = 0; j < n; j++) {
                        const json_t *c = json_array_get(row, j);
                        long long nv = json_integer_value(json_object_get(c, "nvlinks"));
                        char cell[24];
                        if (nv > 0)
                                snprintf(cell, sizeof(cell), "NV%lld", nv);
                        else
                                snprintf(cell, sizeof(cell), "%s",
                                         json_string_value(json_object_get(c, "pcie")) ?: "?");
                        buf_printf(&b, "%-8s", cell);
                }
                buf_printf(&b, "%-16s",
                           json_string_value(json_object_get(g, "cpu_affinity")) ?: "N/A");
                if (json_is_integer(numa))
                        buf_printf(&b, "%lld\n", (long long)json_integer_value(numa));
                else
                        buf_printf(&b, "N/A\n");
        }
        buf_printf(&b, "\nLegend: X self, NV# # NVLinks, PIX/PXB/PHB/NODE/SYS PCIe path "
                       "(vigil topo --help)\n");
        if (b.err)
                return b.err;
        cli_write_buf(ctx, &b);
        return 0;
}

int cmd_topo(int argc, char **argv, cli_ctx *ctx)
{
        static const cli_view view = {usage, help, "/api/v1/topology", render, "m"};

        return cli_run_view(argc, argv, ctx, &view);
}
