/* fuzz_workload.c — the workload module's parsers on arbitrary bytes: a /proc/PID/cgroup file, a
 * /var/log/containers file name, and a kubelet ListPodResourcesResponse. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "workload/workload-internal.h"
#include "workload/workload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *s = malloc(size + 1), path[256], err[256];
        workload_owner o;
        kube_names kn;
        kube_alloc *a = NULL;
        size_t n = 0;

        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        workload_parse_cgroup(s, &o, path, sizeof(path));
        names_parse(s, &kn);
        if (kubelet_decode(data, size, &a, &n, err, sizeof(err)) == 0)
                free(a);
        free(s);
        return 0;
}
