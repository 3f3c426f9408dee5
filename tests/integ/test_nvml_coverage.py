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


ALL_PROFILING = "collection:\n  profiling: all\n"


def test_gpm_fields_native():
    with Vigild(HGX, config=ALL_PROFILING) as v:
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


def field_status(v, fid, gpu=0):
    return [f for f in v.get_json("/api/v1/gpus?fields=%d" % fid)["gpus"][gpu]["fields"]][0]


def test_profiling_on_demand():
    """collection.profiling: auto (the default) reads a profiling field only while it is exported,
    configured or asked for: SM active is not on /metrics, asking for it through the API answers
    "pending" and then its value; a collection.fields entry keeps SM occupancy collected."""
    cfg = "collection:\n  fields:\n    DCGM_FI_PROF_SM_OCCUPANCY: 5s\n"
    with Vigild(HGX, config=cfg) as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        m = parse_metrics(v.metrics())
        check(series(m, "vigil_gpu_graphics_engine_active_ratio", gpu=0), "default profile exported")
        check(series(m, "vigil_gpu_sm_occupancy_ratio", gpu=3)[0][1] == 0.35, "configured field")
        for name in ("vigil_gpu_sm_active_ratio", "vigil_gpu_nvdec0_active_ratio",
                     "vigil_gpu_fp64_pipe_active_ratio"):
            check(not series(m, name), "%s read though nothing asked for it" % name)
        f = field_status(v, 1002)
        check(f["status"] in ("pending", "ok"), "asked-for field: %s" % f)
        f = wait_for(lambda: (lambda f: f if f["status"] == "ok" else None)(field_status(v, 1002)),
                     30, "SM active read after it was asked for")
        check(f["value"] == 0.7, "SM active value %s" % f)
        check(series(parse_metrics(v.metrics()), "vigil_gpu_sm_active_ratio", gpu=1)[0][1] == 0.25,
              "an asked-for field is exported while it is collected")
        check(field_status(v, 1017)["status"] in ("pending", "ok"), "NVDEC0 asked for")


def test_dmon_profiling_ids():
    with Vigild(HGX) as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        # the first dmon asks for them: "-" until the next slow sweep has read them
        p = run_cli("--host", v.url, "dmon", "-e", "1002,1003,1004,1005", "-d", "200", "-c", "1",
                    check_rc=0)
        check("SMACT" in p.stdout, "dcgmi tags:\n" + p.stdout)
        wait_for(lambda: field_status(v, 1003)["status"] == "ok", 30, "SM occupancy read")
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
            f.write(text.replace("per_gpu:\n", "per_gpu:\n  3:\n    nvlink_down: [7, 9]\n"
                                 "  5:\n    nvlink_down: [%s]\n" % ", ".join(map(str, range(18)))))
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
            check([i["gpu"] for i in inc] == [3], "incident on GPU 3 only (GPU 5: all down, "
                  "NVLink not in use): %r" % inc)
            check(v.get_json("/api/v1/gpus/5/nvlink")["links_up"] == 0, "GPU 5 all down")
            check(v.get_json("/api/v1/health")["gpus"][3]["systems"]["nvlink"]["status"] == "FAIL",
                  "GPU 3 NVLink FAIL")


def test_nvlink_errors_rule():
    # CRC errors on GPU 2 warn, a replay error on GPU 6 fails (DCGM's 1-minute deltas); the other
    # GPUs stay quiet. The slow tier (10 s) needs two reads in the window.
    with Vigild(HGX) as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        v.inject(gpu=2, field="NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", value=12)
        v.inject(gpu=6, field="NVLINK_REPLAY_ERROR_COUNT_TOTAL", value=3)
        inc = wait_for(lambda: (lambda l: l if len(l) >= 2 else None)(
            [i for i in v.get_json("/api/v1/incidents")["incidents"]
             if i.get("condition") == "nvlink_errors"]), 30, "nvlink_errors incidents")
        by_gpu = {i["gpu"]: i for i in inc}
        check(set(by_gpu) == {2, 6}, "incidents on GPUs 2 and 6 only: %r" % sorted(by_gpu))
        check(by_gpu[2]["severity"].lower().startswith("warn"), "CRC warns: %r" % by_gpu[2])
        check(by_gpu[6]["severity"].lower() in ("fail", "critical"), "replay fails: %r" % by_gpu[6])
        nv = v.get_json("/api/v1/gpus/6/nvlink")
        check(nv["links"][0]["replay_errors"] == 3, "per-link replay %r" % nv["links"][0])


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


def test_mig_instances_and_labels():
    with Vigild("mig-h200.yaml", config="metrics:\n  naming: dcgm\n") as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        mig = wait_for(lambda: (lambda d: d if d["status"] == "ok" else None)(
            v.get_json("/api/v1/gpus/0/mig")), 15, "MIG read")
        check(mig["mode"] == "enabled" and len(mig["instances"]) == 4, "4 instances: %r" % mig)
        profs = sorted((i["profile"], i["gpu_instance_id"]) for i in mig["instances"])
        check(profs == [("1g.18gb", 7), ("1g.18gb", 8), ("2g.35gb", 3), ("3g.71gb", 1)],
              "profiles %r" % profs)
        i0 = mig["instances"][0]
        check(i0["uuid"].startswith("MIG-") and i0["memory_total_bytes"] == 18 * 10**9
              and i0["memory_used_bytes"] + i0["memory_free_bytes"] == i0["memory_total_bytes"],
              "instance %r" % i0)
        m = parse_metrics(v.metrics())
        used = series(m, "DCGM_FI_DEV_FB_USED", gpu=0)
        inst = [d for d, _ in used if "GPU_I_ID" in d]
        check(len(inst) == 4 and {d["GPU_I_PROFILE"] for d in inst} == {"1g.18gb", "2g.35gb",
                                                                          "3g.71gb"},
              "MIG samples %r" % inst)
        check(all(d["device"] == "nvidia0" for d in inst), "device label")
        text = v.metrics()
        line = [l for l in text.splitlines() if l.startswith("DCGM_FI_DEV_FB_USED{") and
                "GPU_I_ID" in l][0]
        names = [x.split("=")[0] for x in line[line.index("{") + 1:line.rindex("}")].split('",')]
        check(names[:8] == ["gpu", "UUID", "pci_bus_id", "device", "modelName", "GPU_I_PROFILE",
                            "GPU_I_ID", "Hostname"], "label order %r" % names)
        # GPU 1 turns MIG on 8 s in: picked up by a later slow sweep.
        check(v.get_json("/api/v1/gpus/1/mig")["mode"] == "disabled", "GPU 1 whole at start")
        mig1 = wait_for(lambda: (lambda d: d if d.get("mode") == "enabled" else None)(
            v.get_json("/api/v1/gpus/1/mig")), 30, "GPU 1 in MIG mode")
        check([i["profile"] for i in mig1["instances"]] == ["7g.141gb"], "7g %r" % mig1)


def test_mig_native():
    with Vigild("mig-h200.yaml") as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        m = wait_for(lambda: (lambda x: x if series(x, "vigil_mig_memory_total_bytes") else None)(
            parse_metrics(v.metrics())), 15, "MIG families")
        tot = series(m, "vigil_mig_memory_total_bytes", gpu=0, profile="3g.71gb")
        check(len(tot) == 1 and tot[0][1] == 71e9 and tot[0][0]["gpu_instance_id"] == "1",
              "3g total %r" % tot)
        check(series(m, "vigil_gpu_mig_mode", gpu=0)[0][1] == 1, "mode metric")
        check(series(m, "vigil_gpu_mig_instances", gpu=0)[0][1] == 4, "instances metric")
        check(not series(m, "vigil_mig_memory_total_bytes", gpu=1), "GPU 1 not in MIG yet")
    with Vigild(HGX) as v:  # no MIG configured: NVML says not supported
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        check(v.get_json("/api/v1/gpus/0/mig")["status"] == "not_supported", "no MIG")


def test_config_get():
    with Vigild(HGX) as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        out = run_cli("--host", v.url, "config", "get", "-i", "0", check_rc=0).stdout
        for want in ("SM Application Clock (MHz) | 1980", "Memory Application Clock (MHz) | 3201",
                     "ECC Mode", "Enabled (pending Enabled)", "Power Limit (W)", "| 700",
                     "Compute Mode", "Unrestricted", "Persistence Mode"):
            check(want in " ".join(out.split()).replace("| ", "| ") or want in out,
                  "%r in:\n%s" % (want, out))
        p = run_cli("--host", v.url, "config", "set", "-P", "300")
        check(p.returncode == 2 and "only 'get'" in p.stderr, "set refused: %s" % p.stderr)


if __name__ == "__main__":
    main([test_gpm_fields_native, test_profiling_on_demand, test_dmon_profiling_ids,
          test_dcp_csv_loads,
          test_nvlink_api_cli, test_nvlink_dcgm_names, test_nvlink_down_fails_health,
          test_nvlink_errors_rule,
          test_no_nvlink_is_honest, test_topology, test_mig_instances_and_labels,
          test_mig_native, test_config_get])
