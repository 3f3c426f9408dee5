#!/usr/bin/env python3
"""A real Prometheus (Debian's /usr/bin/prometheus) scrapes `vigild --simulate` on loopback with
the shipped alert rules (the `for:` of GPUTemperatureHigh and GPUHealthFail shortened): up==1, one
temperature series per GPU, an injected temperature rise on GPU 2 fires GPUTemperatureHigh for
gpu="2" and for no other GPU, a double-bit ECC error on GPU 5 fires GPUHealthFail for its memory
system only, and every dashboard panel query runs. A second vigild in dcgm naming is scraped too and its families land in Prometheus.
Prometheus negotiates OpenMetrics first, so this also checks that its parser accepts ours.
test_seed_config_alerts loads the seed's own prometheus-config.yaml and dcgm-alerts.yml
(tests/data/seed/) and checks that each of its five alerts fires on its fault and on nothing
else."""
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
SEED = os.path.join(SRC, "tests", "data", "seed")


SHORTENED = ("GPUTemperatureHigh", "GPUHealthFail")


def shortened_rules(path):
    """The shipped rules with the `for:` of SHORTENED cut to 2s (text edit, no YAML lib)."""
    out, in_rule = [], False
    with open(path) as f:
        for line in f:
            m = re.match(r"\s*- alert: (\S+)", line)
            if m:
                in_rule = m.group(1) in SHORTENED
            elif in_rule and re.match(r"\s*for: ", line):
                line = re.sub(r"for: .*", "for: 2s", line)
                in_rule = False
            out.append(line)
    text = "".join(out)
    check(text.count("for: 2s") == len(SHORTENED), "%s not all found in %s" % (SHORTENED, path))
    return text


class Prometheus:
    def __init__(self, targets=None, files=None):
        """targets: [(job, host:port)] with the shipped rules; or files: {name: text} written as
        they are, prometheus.yml among them."""
        self.tmp = scratch_dir("vigil-prom-")
        d = self.tmp.name
        if files is None:
            jobs = "".join(
                "  - job_name: %s\n    static_configs:\n      - targets: ['%s']\n" % (job, hostport)
                for job, hostport in targets)
            files = {"alerts.yml": shortened_rules(ALERTS),
                     "prometheus.yml": "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n"
                     "  evaluation_interval: 1s\nrule_files: [alerts.yml]\nscrape_configs:\n" + jobs}
        for name, text in files.items():
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
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


DASHBOARD = os.path.join(SRC, "deploy", "grafana", "vigil-dashboard.json")
# Panels that must show data on healthy fake GPUs: Vigil's health engine (checked systems, systems
# not monitored, incidents, responsiveness).
HEALTH_PANELS = ("Health per system (checked systems only)", "Systems not monitored",
                 "Incidents open and acknowledged", "Responsive (NVML calls answer)")


def dashboard_queries_answer(prom):
    """Every query of every dashboard panel, its Grafana variables set to match all, runs without
    error in the real Prometheus scraping vigild; the health panels return series."""
    with open(DASHBOARD) as f:
        dash = json.load(f)

    def panels(ps):
        for p in ps:
            yield p
            yield from panels(p.get("panels", []))
    n = 0
    for p in panels(dash["panels"]):
        for t in p.get("targets", []):
            e = t["expr"].replace("$__rate_interval", "1m").replace("$__range", "1h")
            e = e.replace("$__interval", "1m")
            e = re.sub(r"\$\{?(\w+)\}?", ".*", e)
            r = prom.query(e)            # raises on a query Prometheus refuses
            n += 1
            if p["title"] in HEALTH_PANELS:
                check(r, "dashboard panel %r: no series for %s" % (p["title"], e))
    found = {p["title"] for p in panels(dash["panels"])}
    check(set(HEALTH_PANELS) <= found, "health panels missing from the dashboard: %s"
          % (set(HEALTH_PANELS) - found))
    check(n > 40, "only %d dashboard queries found" % n)


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
        dashboard_queries_answer(prom)

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

        # the health engine in Prometheus: a double-bit ECC error fails GPU 5's memory system;
        # GPUHealthFail fires for it, and for no system that is not monitored (nvlink, inforom
        # and driver on the fake: vigil_gpu_health_monitored 0, no vigil_gpu_health series)
        native.inject(gpu=5, ecc_dbe=1)

        def health_fail():
            alerts = prom.api("/api/v1/alerts")["alerts"]
            f = [a for a in alerts if a["labels"].get("alertname") == "GPUHealthFail"]
            if any(a["labels"].get("gpu") == "5" and a["labels"].get("system") == "memory"
                   and a["state"] == "firing" for a in f):
                return f
            return None
        fail = wait_for(health_fail, 30, "GPUHealthFail firing for gpu 5 system memory", 0.5)
        # GPU 2, held at 95 C above, fails thermal (health.temperature.critical 90) as it should
        check([a["labels"] for a in fail if (a["labels"].get("gpu"), a["labels"].get("system"))
               not in (("5", "memory"), ("2", "thermal"))] == [], "GPUHealthFail elsewhere: %s" % fail)
        unmonitored = prom.query('vigil_gpu_health_monitored{job="vigil"} == 0')
        check(unmonitored, "no system is 'not monitored' on the fake (nvlink expected)")
        check(not prom.query('vigil_gpu_health{job="vigil"} and on (gpu, system) '
                             'vigil_gpu_health_monitored{job="vigil"} == 0'),
              "vigil_gpu_health series for systems not monitored")
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


# The seed's files, changed only as a user changes them (target host names) and with every
# duration scaled down (`for:` 1m -> 1s; scrape and evaluation intervals 15s -> 1s, 30s -> 2s;
# the 5m range of rate() is left as it is) so that the test takes a minute, not a quarter hour.
# Any other difference from the files in tests/data/seed/ fails the test.
SCALED_LINE = re.compile(r"^(\s*(?:scrape_interval|evaluation_interval|for):\s*)(\d+)([sm])\s*$")


def scale_duration(line):
    m = SCALED_LINE.match(line)
    if not m:
        return line
    n, unit = int(m.group(2)), m.group(3)
    seconds = n if unit == "m" else max(1, n // 15)   # 5m -> 5s; 15s/30s -> 1s/2s
    return "%s%ds\n" % (m.group(1), seconds)


def seed_prometheus_files(targets):
    """The seed's prometheus-config.yaml (as prometheus.yml) and dcgm-alerts.yml for a real
    Prometheus; targets replace the example host names."""
    with open(os.path.join(SEED, "prometheus-config.yaml")) as f:
        conf = f.readlines()
    with open(os.path.join(SEED, "dcgm-alerts.yml")) as f:
        rules = f.readlines()
    out_conf, replaced, job = [], 0, None
    for line in conf:
        m = re.match(r"\s*- job_name:\s*['\"]?([\w-]+)", line)
        if m:
            job = m.group(1)
        if job == "dcgm-hostengine" and re.match(r"\s*- targets: \[", line):
            line = re.sub(r"\[.*\]", "[%s]" % ", ".join("'%s'" % t for t in targets), line)
            replaced += 1
        out_conf.append(scale_duration(line))
    check(replaced == 1, "the seed's dcgm-hostengine job has %d target lists, want 1" % replaced)
    out_rules = [scale_duration(line) for line in rules]
    for orig, new in zip(conf + rules, out_conf + out_rules):
        check(orig == new or SCALED_LINE.match(orig) or "targets:" in orig,
              "seed file line changed beyond hosts and durations: %r -> %r" % (orig, new))
    return {"prometheus.yml": "".join(out_conf), "dcgm-alerts.yml": "".join(out_rules)}


def seed_alert_names():
    """alert name -> the fault it is about, read from the seed's rule file by its expression."""
    kinds = (("up{", "down"), ("temperature", "hot"), ("memory_usage", "memory"),
             ("errors_total", "errors"), ("latency", "latency"))
    names, name = {}, None
    with open(os.path.join(SEED, "dcgm-alerts.yml")) as f:
        for line in f:
            m = re.match(r"\s*- alert:\s*(\S+)", line)
            if m:
                name = m.group(1)
            m = re.match(r"\s*expr:\s*(.*)", line)
            if m and name:
                kind = [k for pat, k in kinds if pat in m.group(1)]
                check(len(kind) == 1, "seed alert %s: unexpected expression %r" % (name, m.group(1)))
                names[kind[0]] = name
    check(sorted(names) == sorted(k for _, k in kinds), "seed alerts found: %s" % names)
    return names


def test_seed_config_alerts():
    """Each of the seed's five alerts fires on its fault (hot GPU, memory nearly full, XIDs and
    ECC errors, a hung NVML call, vigild down), for that GPU or node only, and none is pending
    while the fake GPUs are healthy."""
    if not os.path.exists(PROMETHEUS):
        raise Failure("prometheus is not installed (apt-get install prometheus)")
    names = seed_alert_names()
    kind_of = {v: k for k, v in names.items()}
    main_v = Vigild().wait_listening()                     # 8 GPUs: hot, memory, errors
    hang = Vigild("health-watchdog.yaml",                  # 2 GPUs: a hung NVML call
                  config="health: {nvml_call_timeout: 1s}\n").wait_listening()
    down = Vigild("constant-2gpu.yaml").wait_listening()  # stopped: up == 0
    nodes = {hostport(main_v): "main", hostport(hang): "hang", hostport(down): "down"}
    prom = Prometheus(files=seed_prometheus_files(list(nodes)))

    def active():
        """[(kind, node, gpu_id, state, description)] of the seed's alerts, pending or firing."""
        out = []
        for a in prom.api("/api/v1/alerts")["alerts"]:
            kind = kind_of.get(a["labels"].get("alertname"))
            check(kind, "alert not from the seed file: %s" % a["labels"])
            out.append((kind, nodes.get(a["labels"].get("instance")), a["labels"].get("gpu_id"),
                        a["state"], a["annotations"].get("description", "")))
        return out

    try:
        # healthy: every node scraped at least 8 times and the rules evaluated meanwhile
        for hp in nodes:
            wait_for(lambda: prom.query('count_over_time(up{job="dcgm-hostengine",instance="%s"}[1m]) >= 8'
                                        % hp), 30, "8 scrapes of %s" % hp, 0.5)
        for fam in ("dcgm_gpu_temperature_celsius", "dcgm_gpu_memory_usage_bytes",
                    "dcgm_gpu_memory_total_bytes", "dcgm_gpu_errors_total",
                    "dcgm_collection_latency_seconds"):
            r = prom.query('%s{instance="%s"}' % (fam, hostport(main_v)))
            check(sorted(x["metric"].get("gpu_id") for x in r) == [str(i) for i in range(8)],
                  "%s: want one series per GPU with gpu_id, got %s" % (fam, r))
        check(active() == [], "seed alerts on healthy fake GPUs: %s" % active())

        total_mib = int(float(prom.query('dcgm_gpu_memory_total_bytes{instance="%s",gpu_id="3"}'
                                         % hostport(main_v))[0]["value"][1])) // 1048576
        main_v.inject(gpu=2, field="GPU_TEMP", value=95)
        main_v.inject(gpu=3, field="FB_USED", value=total_mib * 95 // 100)
        main_v.inject(gpu=4, ecc_dbe=100)
        for _ in range(40):
            main_v.inject(gpu=5, xid=13)
        hang.inject(call="nvmlDeviceGetTemperature", cost_us=40000000)
        down.stop()

        want = {("hot", "main", "2"), ("memory", "main", "3"), ("errors", "main", "4"),
                ("errors", "main", "5"), ("latency", "hang", "0"), ("down", "down", None)}

        def all_firing():
            got = active()
            firing = {(k, n, g) for k, n, g, st, _ in got if st == "firing"}
            return got if want <= firing else None
        got = wait_for(all_firing, 60, "all six seed alerts firing (%s)" % sorted(want, key=str), 0.5)
        hang.inject(call="nvmlDeviceGetTemperature", cost_us=0)
        stray = [a for a in got if a[:3] not in want and not (a[0] == "latency" and a[1] == "hang")]
        check(not stray, "seed alerts for GPUs or nodes without a fault: %s" % stray)
        for kind, node, gpu, _, desc in got:
            if gpu is not None and kind != "latency":
                check(desc.startswith("GPU %s " % gpu), "description without gpu_id: %r" % desc)
    except Exception:
        import sys
        sys.stderr.write("---- prometheus log ----\n" + prom.logs()[-4000:] + "\n")
        raise
    finally:
        prom.stop()
        main_v.stop()
        hang.stop(timeout=60)
        down.stop()


if __name__ == "__main__":
    main([test_prometheus_scrapes_and_alerts, test_gzip_once_per_snapshot, test_seed_config_alerts])
