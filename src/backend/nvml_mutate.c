/* nvml_mutate.c — the guarded mutators (power limit, reset) and the fake NVML's injection and
 * statistics entry points. Mutations are exercised against the fake only; a real GPU is reset
 * through `nvidia-smi --gpu-reset` when the caller allows it. */
#include "nvml-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macros.h"
#include "common/spawn.h"
#include "common/vtime.h"

int backend_set_power_limit(backend *b, unsigned idx, unsigned milliwatts)
{
        nvmlDevice_t h;
        int lost;

        if (idx >= b->count)
                return -EINVAL;
        h = nvml_slot_handle(b, idx, &lost);
        if (lost)
                return -ENODEV;
        return backend_errno_from_nvml(CALL(b, set_power_limit, h, milliwatts));
}

int backend_compute_processes(backend *b, unsigned idx, unsigned *count)
{
        nvmlDevice_t h;
        unsigned n = 0;
        int lost, rc;

        if (idx >= b->count)
                return -EINVAL;
        h = nvml_slot_handle(b, idx, &lost);
        if (lost)
                return -ENODEV;
        rc = CALL(b, compute_processes, h, &n, NULL);
        if (rc != NVML_SUCCESS && rc != NVML_ERROR_INSUFFICIENT_SIZE)
                return backend_errno_from_nvml(rc);
        *count = n;
        return 0;
}

#define RESET_TIMEOUT_US (60 * USEC_PER_SEC) /* nvidia-smi --gpu-reset is killed after this */

/* nvidia-smi --gpu-reset -i BUSID; output discarded, killed after RESET_TIMEOUT_US. */
static int reset_with_nvidia_smi(const char *bus_id, char *err, size_t errlen)
{
        const char *argv[] = {"nvidia-smi", "--gpu-reset", "-i", bus_id, NULL};
        spawn_opts o = {.argv = argv, .timeout_us = RESET_TIMEOUT_US, .quiet = true};
        int status = 0, r;

        r = spawn_run(&o, &status);
        if (r == -ETIMEDOUT) {
                snprintf(err, errlen, "nvidia-smi --gpu-reset -i %s timed out", bus_id);
                return -ETIMEDOUT;
        }
        if (r < 0) {
                snprintf(err, errlen, "failed to run nvidia-smi: %s", strerror(-r));
                return r;
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                snprintf(err, errlen, "nvidia-smi --gpu-reset -i %s failed (%s %d)", bus_id,
                         WIFEXITED(status) ? "exit" : "signal",
                         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
                return WIFEXITED(status) && WEXITSTATUS(status) == 127 ? -ENOENT : -EIO;
        }
        return 0;
}

int backend_reset_gpu(backend *b, unsigned idx, char *err, size_t errlen)
{
        gpu_identity id;
        int r;

        if (errlen)
                err[0] = '\0';
        if (idx >= b->count) {
                snprintf(err, errlen, "no GPU %u", idx);
                return -EINVAL;
        }
        if (b->fake_inject) {
                struct fake_inject req = {.kind = FAKE_INJECT_RESET, .gpu = idx};
                return b->fake_inject(&req, err, errlen);
        }
        r = backend_device_info(b, idx, &id);
        if (r < 0) {
                snprintf(err, errlen, "failed to read the PCI bus id of GPU %u: %s", idx,
                         strerror(-r));
                return r;
        }
        return reset_with_nvidia_smi(id.pci_bus_id, err, errlen);
}

int backend_inject(backend *b, const backend_injection *req, char *err, size_t errlen)
{
        static const enum fake_inject_kind kinds[] = {
            [BACKEND_INJECT_XID] = FAKE_INJECT_XID,
            [BACKEND_INJECT_FIELD] = FAKE_INJECT_FIELD,
            [BACKEND_INJECT_FIELD_CLEAR] = FAKE_INJECT_FIELD_CLEAR,
            [BACKEND_INJECT_ECC_DBE] = FAKE_INJECT_ECC_DBE,
            [BACKEND_INJECT_ECC_SBE] = FAKE_INJECT_ECC_SBE,
            [BACKEND_INJECT_LOST] = FAKE_INJECT_LOST,
            [BACKEND_INJECT_CALL_COST] = FAKE_INJECT_CALL_COST,
            [BACKEND_INJECT_ADVANCE] = FAKE_INJECT_ADVANCE,
            [BACKEND_INJECT_RESET] = FAKE_INJECT_RESET,
        };
        struct fake_inject f;

        if (!b->fake_inject) {
                snprintf(err, errlen, "injection needs the fake NVML (vigild --simulate)");
                return -ENOENT;
        }
        if ((unsigned)req->kind >= ARRAY_SIZE(kinds) || !kinds[req->kind]) {
                snprintf(err, errlen, "unknown injection kind %d", (int)req->kind);
                return -EINVAL;
        }
        f = (struct fake_inject){.kind = kinds[req->kind],
                                 .gpu = req->gpu,
                                 .field_id = req->field_id,
                                 .value = req->value,
                                 .count = req->count,
                                 .call = req->call};
        return b->fake_inject(&f, err, errlen);
}

int backend_fake_stats(backend *b, unsigned long long *calls, unsigned long long *cost_ns)
{
        struct fake_stats st = {0};

        if (!b->fake_stats)
                return -ENOENT;
        b->fake_stats(&st);
        *calls = st.calls;
        *cost_ns = st.cost_ns;
        return 0;
}
