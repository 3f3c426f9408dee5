#!/usr/bin/env python3
"""NVML coverage on the HGX H200 scenario: every DCGM profiling field read through GPM (native and
dcgm naming, per-GPU values, `vigil dmon -e 1002,1003,1004,1005`), dcgm-exporter's
dcp-metrics-included.csv loaded unchanged, NVLink per link (API, `vigil nvlink`, DCGM's NVLink
fields, the NVLink health rules), and the topology (API, `vigil topo`)."""
import json
import os
import tempfile

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


def test_nvlink_api_cli():
    with Vigild(HGX) as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        nv = wait_for(lambda: (lambda d: d if d["status"] == "ok" else None)(
            v.get_json("/api/v1/gpus/0/nvlink")), 15, "NVLink read")
        check(len(nv["links"]) == 18 and nv["links_up"] == 18, "18 links up: %r" % nv["links_up"])
        l0 = nv["links"][0]
        check(l0["state"] == "up" and l0["version"] == 4 and l0["remote_type"] == "nvswitch"
              and l0["remote_pci_bus_id"] == "00000000:05:00.0", "link 0 %r" % l0)
        check(nv["links"][17]["remote_pci_bus_id"] == "00000000:08:00.0", "link 17 to switch 3")
        check(l0["crc_flit_errors"] == 0 and l0["replay_errors"] == 0, "no errors %r" % l0)
        p = run_cli("--host", v.url, "nvlink", check_rc=0)
        check("gpuId 7:" in p.stdout and " ".join(["U"] * 18) in p.stdout, "status:\n" + p.stdout)
        p = run_cli("--host", v.url, "nvlink", "-i", "2", "-e", check_rc=0)
        check("CRC Flit" in p.stdout and "nvswitch 00000000:07:00.0" in p.stdout, "-e:\n" + p.stdout)
        p = run_cli("--host", v.url, "--json", "nvlink", "-i", "1", check_rc=0)
        check(json.loads(p.stdout)[0]["gpu"] == 1, "--json")
        m = parse_metrics(v.metrics())
        check(series(m, "vigil_gpu_nvlink_links_up", gpu=4)[0][1] == 18, "links up metric")
        check(series(m, "vigil_gpu_nvlink_replay_errors_total", gpu=4)[0][1] == 0, "replay metric")
        h = v.get_json("/api/v1/health")
        check(h["gpus"][0]["systems"]["nvlink"]["status"] == "PASS", "NVLink healthy")


def test_nvlink_dcgm_names():
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "c.csv")
        with open(p, "w") as f:
            f.write("DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL, counter, CRC flit\n"
                    "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_TOTAL, counter, 4.6 name\n"
                    "DCGM_FI_PROF_NVLINK_TX_BYTES, gauge, NVLink tx\n"
                    "DCGM_FI_PROF_SM_ACTIVE, gauge, SM active\n")
        with Vigild(HGX, args=["--collectors", p]) as v:
            wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
            m = parse_metrics(v.metrics())
            for name in ("DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
                         "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_TOTAL", "DCGM_FI_PROF_NVLINK_TX_BYTES",
                         "DCGM_FI_PROF_SM_ACTIVE"):
                check(len(series(m, name)) == 8, "%s on 8 GPUs" % name)
            check(series(m, "DCGM_FI_PROF_SM_ACTIVE", gpu=1)[0][1] == 0.25, "SM active gpu 1")


def test_nvlink_down_fails_health():
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "down.yaml")
        with open(os.path.join(SRC, "tests", "scenarios", HGX)) as f:
            text = f.read()
        with open(p, "w") as f:
            f.write(text.replace("per_gpu:\n", "per_gpu:\n  3:\n    nvlink_down: [7, 9]\n"))
        with Vigild(p) as v:
            wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
            nv = wait_for(lambda: (lambda d: d if d["status"] == "ok" else None)(
                v.get_json("/api/v1/gpus/3/nvlink")), 15, "NVLink read")
            check(nv["links_up"] == 16 and nv["links"][7]["state"] == "down", "2 links down")
            out = run_cli("--host", v.url, "nvlink", "-i", "3", check_rc=0).stdout
            check("U U U U U U U D U D" in out, "D for down links:\n" + out)
            inc = wait_for(lambda: [i for i in v.get_json("/api/v1/incidents")["incidents"]
                                    if i.get("condition") == "nvlink_down"] or None, 20,
                           "nvlink_down incident")
            check(inc[0]["gpu"] == 3, "incident on GPU 3: %r" % inc)
            check(v.get_json("/api/v1/health")["gpus"][3]["systems"]["nvlink"]["status"] == "FAIL",
                  "GPU 3 NVLink FAIL")


def test_no_nvlink_is_honest():
    with Vigild() as v:  # the default scenario: no NVLink
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        nv = wait_for(lambda: (lambda d: d if d["status"] != "not_read_yet" else None)(
            v.get_json("/api/v1/gpus/0/nvlink")), 15, "NVLink read")
        check(nv["status"] == "not_supported" and nv["links"] == [], "not supported: %r" % nv)
        out = run_cli("--host", v.url, "nvlink", "-i", "0", check_rc=0).stdout
        check("no NVLink" in out, out)
        check(not series(parse_metrics(v.metrics()), "vigil_gpu_nvlink_links_up"), "no family")


def test_topology():
    with Vigild(HGX) as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        t = v.get_json("/api/v1/topology")
        check(len(t["gpus"]) == 8 and len(t["matrix"]) == 8, "8x8")
        check(t["matrix"][0][0]["pcie"] == "X" and t["matrix"][0][1]["pcie"] == "PIX"
              and t["matrix"][0][2]["pcie"] == "NODE" and t["matrix"][0][4]["pcie"] == "SYS",
              "PCIe levels %r" % t["matrix"][0])
        check(t["gpus"][0]["cpu_affinity"] == "0-55" and t["gpus"][5]["cpu_affinity"] == "56-111",
              "CPU affinity %r" % t["gpus"])
        check(t["gpus"][0]["numa_node"] == 0 and t["gpus"][7]["numa_node"] == 1, "NUMA")
        wait_for(lambda: v.get_json("/api/v1/topology")["matrix"][0][3]["nvlinks"] == 18, 15,
                 "NVLink count in the matrix")
        out = run_cli("--host", v.url, "topo", check_rc=0).stdout
        lines = out.splitlines()
        check(lines[0].split()[:2] == ["GPU0", "GPU1"] and "NUMA Affinity" in lines[0], out)
        row0 = lines[1].split()
        check(row0[:4] == ["GPU0", "X", "NV18", "NV18"] and row0[-2:] == ["0-55", "0"], out)


if __name__ == "__main__":
    main([test_gpm_fields_native, test_dmon_profiling_ids, test_dcp_csv_loads,
          test_nvlink_api_cli, test_nvlink_dcgm_names, test_nvlink_down_fails_health,
          test_no_nvlink_is_honest, test_topology])
