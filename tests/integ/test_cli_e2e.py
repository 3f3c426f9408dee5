#!/usr/bin/env python3
"""The CLI against a real daemon: discovery, dmon, status, fields, JSON output, failover."""
import json

from harness import Vigild, check, free_port, main, run_cli, wait_for


def test_discovery_lists_8():
    with Vigild() as v:
        p = run_cli("--host", v.url, "discovery", "-l", check_rc=0)
        check("8 GPUs found." in p.stdout, "discovery output:\n" + p.stdout)
        gpus = v.get_json("/api/v1/gpus")["gpus"]
        for g in gpus:
            check(g["uuid"] in p.stdout, "uuid %s not listed" % g["uuid"])
        p = run_cli("--host", v.url, "--json", "discovery", "-l", check_rc=0)
        check(json.loads(p.stdout)["count"] == 8, "discovery --json")


def test_dmon_streams_rows():
    with Vigild() as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        p = run_cli("--host", v.url, "dmon", "-e", "GPU_TEMP,POWER_USAGE", "-d", "200", "-c", "2",
                    check_rc=0)
        rows = [l for l in p.stdout.splitlines() if l.startswith("GPU ")]
        check(len(rows) == 16, "expected 2 ticks x 8 GPUs, got %d rows:\n%s" % (len(rows), p.stdout))
        check("TMPTR" in p.stdout and "POWER" in p.stdout, "header tags:\n" + p.stdout)
        p = run_cli("--host", v.url, "dmon", "-e", "NO_SUCH_FIELD", "-c", "1")
        check(p.returncode == 2 and "NO_SUCH_FIELD" in p.stderr, "bad field: %d %s" % (p.returncode, p.stderr))


def test_dmon_shows_lost_not_numbers():
    with Vigild() as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        v.inject(gpu=5, lost=True)
        wait_for(lambda: v.get_json("/api/v1/gpus/5")["state"] == "lost", 5, "GPU 5 lost")
        p = run_cli("--host", v.url, "dmon", "-e", "GPU_TEMP", "-i", "5", "-c", "1", check_rc=0)
        row = [l for l in p.stdout.splitlines() if l.startswith("GPU 5")][0]
        check("LOST" in row, "lost GPU row: %r" % row)


def test_status_fields_and_socket():
    with Vigild() as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        p = run_cli("--socket", v.sock, "status", check_rc=0)
        check("8" in p.stdout and "simulat" in p.stdout.lower(), "status:\n" + p.stdout)
        p = run_cli("--socket", v.sock, "fields", check_rc=0)
        check("DCGM_FI_DEV_GPU_TEMP" in p.stdout, "fields:\n" + p.stdout)


def test_host_failover():
    with Vigild() as v:
        dead = "http://127.0.0.1:%d" % free_port()
        p = run_cli("--host", dead + "," + v.url, "discovery", "-l", check_rc=0)
        check("8 GPUs found." in p.stdout, "failover output:\n" + p.stdout)
    p = run_cli("--host", dead, "status")
    check(p.returncode == 3 and dead in p.stderr, "unreachable: rc %d, %s" % (p.returncode, p.stderr))


if __name__ == "__main__":
    main([test_discovery_lists_8, test_dmon_streams_rows, test_dmon_shows_lost_not_numbers,
          test_status_fields_and_socket, test_host_failover])
