#!/usr/bin/env python3
"""NVML coverage on the HGX H200 scenario: every DCGM profiling field read through GPM (native and
dcgm naming, per-GPU values, `vigil dmon -e 1002,1003,1004,1005`), and dcgm-exporter's
dcp-metrics-included.csv loaded unchanged."""
import os

from harness import (SRC, Vigild, check, main, parse_metrics, run_cli, series, wait_for)

HGX = "hgx-h200.yaml"
DCP_CSV = os.path.join(SRC, "deploy", "dcgm", "dcp-metrics-included.csv")
# The profiling fields are slow-tier (10 s); the first sweep reads every tier once.


def test_gpm_fields_native():
    with Vigild(HGX) as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        m = wait_for(lambda: (lambda x: x if series(x, "vigil_gpu_sm_active_ratio", gpu=1) else None)(
            parse_metrics(v.metrics())), 15, "sm active")
        check(series(m, "vigil_gpu_sm_active_ratio", gpu=0)[0][1] == 0.7, "gpu0 SM active")
        check(series(m, "vigil_gpu_sm_active_ratio", gpu=1)[0][1] == 0.25, "gpu1 SM active")
        check(series(m, "vigil_gpu_sm_occupancy_ratio", gpu=3)[0][1] == 0.35, "occupancy")
        tx = series(m, "vigil_gpu_nvlink_transmit_bytes_per_second", gpu=2)[0][1]
        check(abs(tx - 1.2e11) / 1.2e11 < 1e-6, "NVLink tx %r B/s" % tx)
        check(series(m, "vigil_gpu_nvlink_transmit_bytes_per_second", gpu=7)[0][1] == 0, "idle GPU")
        check(series(m, "vigil_gpu_nvdec0_active_ratio", gpu=1)[0][1] == 0.5, "NVDEC0")
        body = v.get("/api/v1/fields")[2]
        body = body.decode() if isinstance(body, bytes) else body
        for name in ("DCGM_FI_PROF_SM_ACTIVE", "DCGM_FI_PROF_PIPE_FP64_ACTIVE",
                     "DCGM_FI_PROF_NVLINK_RX_BYTES", "DCGM_FI_PROF_PIPE_INT_ACTIVE",
                     "DCGM_FI_PROF_NVJPG7_ACTIVE", "DCGM_FI_PROF_NVOFA0_ACTIVE"):
            check(name in body, "%s in /api/v1/fields" % name)


def test_dmon_profiling_ids():
    with Vigild(HGX) as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        wait_for(lambda: series(parse_metrics(v.metrics()), "vigil_gpu_sm_active_ratio", gpu=0),
                 15, "sm active sampled")
        p = run_cli("--host", v.url, "dmon", "-e", "1002,1003,1004,1005", "-d", "200", "-c", "1",
                    check_rc=0)
        check("SMACT" in p.stdout and "SMOCC" in p.stdout and "TENSO" in p.stdout
              and "DRAMA" in p.stdout, "dcgmi tags:\n" + p.stdout)
        rows = [l.split() for l in p.stdout.splitlines() if l.startswith("GPU ")]
        check(len(rows) == 8, "8 GPUs:\n" + p.stdout)
        check(rows[1][2] == "0.25" and rows[0][2] == "0.7", "values:\n" + p.stdout)


def test_dcp_csv_loads():
    with Vigild(HGX, args=["--collectors", DCP_CSV]) as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        m = parse_metrics(v.metrics())
        for name in ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
                     "DCGM_FI_PROF_DRAM_ACTIVE", "DCGM_FI_PROF_PCIE_TX_BYTES",
                     "DCGM_FI_DEV_GPU_TEMP"):
            check(len(series(m, name)) == 8, "%s on 8 GPUs" % name)
        check(series(m, "DCGM_FI_PROF_GR_ENGINE_ACTIVE", gpu=7)[0][1] == 0, "idle GPU 7")


if __name__ == "__main__":
    main([test_gpm_fields_native, test_dmon_profiling_ids, test_dcp_csv_loads])
