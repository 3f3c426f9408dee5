"""test_diag.py — `vigil diag` end to end on the fake NVML and the fake CUDA: each injected fault
is reported as the right test failing with the right reason, a hung kernel and a GPU falling off
the bus cost a failed test and never the CLI, Ctrl-C cancels within seconds, and the exit codes
are those of docs/diagnostics.md."""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import SCENARIOS, VIGIL, Failure, check, main  # noqa: E402

SHORT = ["--param", "memtest.duration=1", "--param", "sm_stress.duration=1",
         "--param", "targeted_power.duration=3", "--param", "memory_bandwidth.duration=1"]


def diag(level, scenario, *extra, env=None, timeout=120):
    args = [VIGIL, "diag", "-r", str(level), "--local", "--json",
            "--simulate=" + os.path.join(SCENARIOS, scenario)] + list(extra)
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=e)
    try:
        run = json.loads(p.stdout)
    except ValueError:
        raise Failure("vigil diag: not JSON (exit %d)\nstdout:\n%s\nstderr:\n%s" % (
            p.returncode, p.stdout, p.stderr))
    return p.returncode, run


def res(run, test, gpu):
    for r in run["results"]:
        if r["test"] == test and r["gpu"] == gpu:
            return r
    raise Failure("no result for %s on GPU %s in %s" % (test, gpu, [
        (r["test"], r["gpu"]) for r in run["results"]]))


def expect(run, test, gpu, verdict, reason=None):
    r = res(run, test, gpu)
    check(r["result"] == verdict, "%s GPU %s: %s, expected %s (%s)" % (
        test, gpu, r["result"], verdict, r["reason"]))
    if reason:
        check(reason in r["reason"], "%s GPU %s: reason %r lacks %r" % (test, gpu, r["reason"], reason))
    return r


def test_level1_findings():
    rc, run = diag(1, "diag-level1.yaml")
    check(rc == 11, "exit %d, expected 11 (a test failed)" % rc)
    expect(run, "page_retirement", 0, "fail", "row remapping is pending")
    expect(run, "ecc", 0, "fail", "2 double-bit")
    expect(run, "pcie_link", 1, "fail", "x8 of x16")
    expect(run, "clock_events", 1, "fail", "hw_slowdown")
    expect(run, "pcie_link", 2, "pass", "idle GPU lowers its link generation")
    expect(run, "persistence_mode", 2, "warn", "persistence mode is off")
    expect(run, "nvml_library", None, "pass")
    expect(run, "cuda_library", None, "pass")
    check(not [r for r in run["results"] if r["test"] == "memory"], "level 1 ran a GPU test")


def test_level2_faults():
    rc, run = diag(2, "diag-faults.yaml")
    check(rc == 11, "exit %d" % rc)
    expect(run, "memory", 0, "fail", "first at device address 0x10000100008")
    expect(run, "pcie_h2d", 1, "fail", "3.0 GB/s")
    expect(run, "pcie_d2h", 1, "fail")
    r = expect(run, "pcie_h2d", 0, "pass")
    check(abs(r["value"] - 55) < 0.5 and r["threshold_source"].startswith("PCIe gen5 x16"), r)
    expect(run, "sm_check", 1, "fail", "128 of 132 SMs")
    for t in ("memory", "sm_check", "pcie_h2d", "pcie_d2h", "pcie_latency", "p2p_bandwidth"):
        expect(run, t, 2, "pass")


def test_level3_short_passes():
    rc, run = diag(3, "constant-2gpu.yaml", *SHORT, "--param", "targeted_power.min_fraction=0.3")
    check(rc == 0, "exit %d: %s" % (rc, [r for r in run["results"] if r["result"] in ("fail", "warn")]))
    for g in (0, 1):
        expect(run, "memtest", g, "pass", "90 % of free memory")
        r = expect(run, "memory_bandwidth", g, "pass")
        check(r["threshold_source"].startswith("SKU table H200"), r)
        expect(run, "sm_stress", g, "pass", "FP32 TFLOPS")
        r = expect(run, "targeted_power", g, "pass", "limit 700 W")
        check(r["threshold"] == 210 and r["threshold_source"] == "param targeted_power.min_fraction", r)
    check(run["status"] == "completed" and run["result"] == "pass", run["status"])


def test_level3_memtest_finds_fault_and_params_override():
    rc, run = diag(3, "diag-faults.yaml", *SHORT, "--param", "sm_stress.min_tflops=100", "-i", "0")
    check(rc == 11, "exit %d" % rc)
    expect(run, "memtest", 0, "fail", "0x10000100008")
    r = expect(run, "sm_stress", 0, "fail")
    check(r["threshold"] == 100 and r["threshold_source"] == "param sm_stress.min_tflops", r)
    check(all(r["gpu"] in (0, None) for r in run["results"]), "-i 0 tested other GPUs")


def test_hung_kernel_fails_the_test_not_the_cli():
    start = time.monotonic()
    rc, run = diag(2, "diag-hang.yaml", env={"VIGIL_DIAG_TIMEOUT_SCALE": "0.05"}, timeout=60)
    check(rc == 12, "exit %d, expected 12 (run did not complete)" % rc)
    expect(run, "sm_check", 0, "fail", "did not finish within its timeout")
    check(run["status"] == "failed", run["status"])
    check(time.monotonic() - start < 30, "took %.0fs" % (time.monotonic() - start))


def test_gpu_lost_mid_test():
    rc, run = diag(2, "diag-lost.yaml")
    check(rc == 11, "exit %d" % rc)
    expect(run, "memory", 1, "fail", "GPU fell off the bus during memory")
    expect(run, "sm_check", 1, "skip", "fell off the bus")
    expect(run, "sm_check", 0, "pass")
    expect(run, "memory", 0, "pass")


def test_ctrl_c_cancels_within_seconds():
    args = [VIGIL, "diag", "-r", "3", "--local", "--json",
            "--simulate=" + os.path.join(SCENARIOS, "constant-2gpu.yaml")]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    p.send_signal(signal.SIGINT)
    start = time.monotonic()
    out, err = p.communicate(timeout=15)
    check(time.monotonic() - start < 5, "cancel took %.1fs" % (time.monotonic() - start))
    check(p.returncode == 130, "exit %d, expected 130\n%s" % (p.returncode, err))
    run = json.loads(out)
    check(run["status"] == "cancelled", run["status"])


def test_usage_errors():
    p = subprocess.run([VIGIL, "diag", "-r", "4", "--local"], capture_output=True, text=True)
    check(p.returncode == 2, "exit %d for -r 4" % p.returncode)
    p = subprocess.run([VIGIL, "diag", "-r", "1", "--local", "--simulate", "--param", "bogus.key=1"],
                       capture_output=True, text=True)
    check(p.returncode != 0 and "unknown parameter" in p.stderr, p.stderr)


if __name__ == "__main__":
    main([test_level1_findings, test_level2_faults, test_level3_short_passes,
          test_level3_memtest_finds_fault_and_params_override, test_hung_kernel_fails_the_test_not_the_cli,
          test_gpu_lost_mid_test, test_ctrl_c_cancels_within_seconds, test_usage_errors])
