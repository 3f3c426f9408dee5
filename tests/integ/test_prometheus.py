#!/usr/bin/env python3
"""A real Prometheus (Debian's /usr/bin/prometheus) scrapes `vigild --simulate` on loopback with
the shipped alert rules (GPUTemperatureHigh's `for:` shortened): up==1, one temperature series per
GPU, an injected temperature rise on GPU 2 fires GPUTemperatureHigh for gpu="2" and for no other
GPU. A second vigild in dcgm naming is scraped too and its families land in Prometheus.
Prometheus negotiates OpenMetrics first, so this also checks that its parser accepts ours."""
import json
import os
import re
import shutil
import subprocess
import urllib.parse
import urllib.request

from harness import Failure, SRC, Vigild, check, free_port, main, scratch_dir, wait_for

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
ALERTS = os.path.join(SRC, "deploy", "prometheus", "vigil-alerts.yml")
CSV = os.path.join(SRC, "deploy", "dcgm", "default-counters.csv")


def shortened_rules(path):
    """The shipped rules with GPUTemperatureHigh's `for:` cut to 2s (text edit, no YAML lib)."""
    out, in_rule = [], False
    with open(path) as f:
        for line in f:
            if re.match(r"\s*- alert: ", line):
                in_rule = "GPUTemperatureHigh" in line
            elif in_rule and re.match(r"\s*for: ", line):
                line = re.sub(r"for: .*", "for: 2s", line)
                in_rule = False
            out.append(line)
    text = "".join(out)
    check("for: 2s" in text, "GPUTemperatureHigh rule not found in %s" % path)
    return text


class Prometheus:
    def __init__(self, targets):
        self.tmp = scratch_dir("vigil-prom-")
        d = self.tmp.name
        with open(os.path.join(d, "alerts.yml"), "w") as f:
            f.write(shortened_rules(ALERTS))
        jobs = "".join(
            "  - job_name: %s\n    static_configs:\n      - targets: ['%s']\n" % (job, hostport)
            for job, hostport in targets)
        with open(os.path.join(d, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n"
                    "  evaluation_interval: 1s\nrule_files: [alerts.yml]\nscrape_configs:\n" + jobs)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log = open(os.path.join(d, "prometheus.log"), "w+")
        self.proc = subprocess.Popen(
            [PROMETHEUS, "--config.file", os.path.join(d, "prometheus.yml"),
             "--storage.tsdb.path", os.path.join(d, "data"),
             "--web.listen-address", "127.0.0.1:%d" % self.port],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=d)

    def api(self, path, **params):
        q = ("?" + urllib.parse.urlencode(params)) if params else ""
        with urllib.request.urlopen(self.url + path + q, timeout=5) as r:
            body = json.loads(r.read())
        check(body.get("status") == "success", "prometheus %s: %s" % (path, body))
        return body["data"]

    def query(self, expr):
        return self.api("/api/v1/query", query=expr)["result"]

    def logs(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.tmp.cleanup()


def hostport(v):
    return v.url.split("://", 1)[1]


def test_prometheus_scrapes_and_alerts():
    if not os.path.exists(PROMETHEUS):
        raise Failure("prometheus is not installed (apt-get install prometheus)")
    native = Vigild().wait_listening()
    dcgm = Vigild(args=["--collectors", CSV]).wait_listening()
    prom = Prometheus([("vigil", hostport(native)), ("dcgm-exporter", hostport(dcgm))])
    try:
        wait_for(lambda: prom.query('up{job="vigil"} == 1'), 30, 'up{job="vigil"} == 1', 0.3)
        wait_for(lambda: prom.query('up{job="dcgm-exporter"} == 1'), 10, "dcgm job up", 0.3)
        temps = wait_for(lambda: (lambda r: r if len(r) == 8 else None)(
            prom.query('vigil_gpu_temperature_celsius{job="vigil"}')), 10, "8 temperature series", 0.3)
        check(sorted(int(t["metric"]["gpu"]) for t in temps) == list(range(8)),
              "temperature series per GPU: %s" % [t["metric"] for t in temps])
        check(all(float(t["value"][1]) < 85 for t in temps), "a GPU is already hot: %s" % temps)
        # dcgm naming: the families and dcgm-exporter's labels reach Prometheus
        for fam in ("DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_XID_ERRORS"):
            r = wait_for(lambda: (lambda r: r if len(r) == 8 else None)(
                prom.query('%s{job="dcgm-exporter"}' % fam)), 10, fam, 0.3)
            m = r[0]["metric"]
            check(all(k in m for k in ("UUID", "modelName", "device", "DCGM_FI_DRIVER_VERSION")),
                  "%s labels %s" % (fam, m))
        check(not prom.query('{job="dcgm-exporter",__name__=~"vigil_.*"}'), "vigil_ families in dcgm job")

        native.inject(gpu=2, field="GPU_TEMP", value=95)

        def firing():
            alerts = prom.api("/api/v1/alerts")["alerts"]
            hot = [a for a in alerts if a["labels"].get("alertname") == "GPUTemperatureHigh"]
            if any(a["labels"].get("gpu") == "2" and a["state"] == "firing" for a in hot):
                return hot
            return None
        hot = wait_for(firing, 30, "GPUTemperatureHigh firing for gpu 2", 0.5)
        others = [a for a in hot if a["labels"].get("gpu") != "2"]
        check(not others, "GPUTemperatureHigh for other GPUs: %s" % others)
        a = [a for a in hot if a["labels"].get("gpu") == "2"][0]
        check(a["labels"].get("job") == "vigil" and a["labels"].get("severity") == "warning",
              "alert labels %s" % a["labels"])
    except Exception:
        import sys
        sys.stderr.write("---- prometheus log ----\n" + prom.logs()[-4000:] + "\n")
        raise
    finally:
        prom.stop()
        native.stop()
        dcgm.stop()


def test_gzip_once_per_snapshot():
    """Accept-Encoding: gzip (what Prometheus sends) gets the page gzip-compressed, with
    Content-Encoding and Vary; every gzip scraper of one snapshot gets the same bytes, and they
    decompress to the page a plain scrape of that snapshot gets."""
    import gzip
    with Vigild(scenario="constant-2gpu.yaml") as v:
        wait_for(lambda: 'gpu="0"' in v.metrics(), 10, "first sweep")
        for accept in ("text/plain;version=0.0.4", "application/openmetrics-text;version=1.0.0"):
            for _ in range(5):
                hz = {"Accept": accept, "Accept-Encoding": "gzip"}
                st, h1, z1 = v.request("GET", "/metrics", headers=hz)
                st2, h2, z2 = v.request("GET", "/metrics", headers=hz)
                _, hp, plain = v.request("GET", "/metrics", headers={"Accept": accept})
                st3, h3, z3 = v.request("GET", "/metrics", headers=hz)
                if z1 == z2 == z3:
                    break
            check(st == 200 and h1.get("Content-Encoding") == "gzip",
                  "gzip not served: %d %r" % (st, h1))
            check("Accept-Encoding" in h1.get("Vary", ""), "Vary %r" % h1.get("Vary"))
            check(z1 == z2 == z3, "gzip scrapers of one snapshot got different bytes")
            check(gzip.decompress(z1) == plain, "gzip page differs from the plain page")
            check(len(z1) * 3 < len(plain), "gzip %d bytes vs plain %d" % (len(z1), len(plain)))
            check("Content-Encoding" not in hp, "plain scrape encoded: %r" % hp)
            _, h0, _ = v.request("GET", "/metrics", headers={"Accept": accept,
                                                             "Accept-Encoding": "gzip;q=0, identity"})
            check("Content-Encoding" not in h0, "gzip;q=0 still compressed")


if __name__ == "__main__":
    main([test_prometheus_scrapes_and_alerts, test_gzip_once_per_snapshot])
