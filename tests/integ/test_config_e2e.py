#!/usr/bin/env python3
"""Configuration as a user meets it: --check-config, refusal at start with file:line, per-field
intervals, extra labels, and SIGHUP reloads that keep the running config when the file is bad."""
import json
import os
import signal
import subprocess
import time

from harness import VIGILD, Vigild, check, main, parse_metrics, series, wait_for


def test_check_config():
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        good = os.path.join(d, "good.yaml")
        bad = os.path.join(d, "bad.yaml")
        open(good, "w").write("collection:\n  tiers: {fast: 2s}\n")
        open(bad, "w").write("collection:\n  tiers:\n    fast: 2s\n    bogus: 1\n")
        p = subprocess.run([VIGILD, "--check-config", good], capture_output=True, text=True)
        check(p.returncode == 0, "good config refused: %s" % p.stderr)
        p = subprocess.run([VIGILD, "--check-config", bad], capture_output=True, text=True)
        check(p.returncode == 1, "bad config accepted")
        check("bad.yaml:4" in p.stderr and "bogus" in p.stderr, "message lacks file:line/key: %s" % p.stderr)


def test_bad_config_refused_at_start():
    v = Vigild(config="listen: [1, 2]\n")
    rc = v.proc.wait(10)
    check(rc != 0, "vigild started with a bad config")
    check("vigil.yaml:1" in v.logs(), "no file:line in %s" % v.logs())


def test_extra_labels_and_field_intervals():
    cfg = ("metrics:\n  extra_labels: {cluster: \"a\\\"b\"}\n  hostname: node-x\n"
           "collection:\n  fields: {MEMORY_TEMP: \"off\", TOTAL_ENERGY_CONSUMPTION: 5s}\n")
    with Vigild(config=cfg) as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        m = parse_metrics(v.metrics())
        t = series(m, "vigil_gpu_temperature_celsius", gpu=0)
        check(t and t[0][0].get("cluster") == 'a"b' and t[0][0]["hostname"] == "node-x",
              "labels %s" % (t and t[0][0]))
        check(not series(m, "vigil_gpu_memory_temperature_celsius"), "field switched off is exported")
        fields = {f["name"]: f for f in v.get_json("/api/v1/fields")["fields"]}
        check(fields["TOTAL_ENERGY_CONSUMPTION"]["interval_us"] == 5000000, "energy interval")
        check(fields["MEMORY_TEMP"]["interval_us"] == 0, "memory temp off")


def test_sighup_keeps_running_config_when_bad():
    with Vigild(config="logging: {level: info}\n") as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        cpath = os.path.join(v.data, "vigil.yaml")
        open(cpath, "w").write("logging: {level: loud}\n")
        v.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "keeping the running one" in v.logs(), 5, "reload refusal logged")
        check(v.get("/healthz")[0] == 200, "daemon died on a bad reload")
        open(cpath, "w").write("logging: {level: debug}\n")
        v.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reloaded the configuration" in v.logs(), 5, "good reload logged")
        p = subprocess.run(["curl", "-s", "--unix-socket", v.sock, "http://localhost/api/v1/config"],
                           capture_output=True, text=True, timeout=10)
        cfg = json.loads(p.stdout)
        check(cfg["logging"]["level"] == "debug", "effective config after reload: %s" % cfg["logging"])


if __name__ == "__main__":
    main([test_check_config, test_bad_config_refused_at_start, test_extra_labels_and_field_intervals,
          test_sighup_keeps_running_config_when_bad])
