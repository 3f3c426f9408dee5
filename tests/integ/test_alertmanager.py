"""test_alertmanager.py — a real Alertmanager (Debian's prometheus-alertmanager, on loopback with a
temporary config and data dir) receives vigild's alerts, checked with amtool; and with
Alertmanager down while vigild restarts, the alert still arrives once Alertmanager is back
(the durable outbox). Skipped (exit 77) when Alertmanager is not installed."""
import json
import os
import shutil
import subprocess
import time

from harness import VIGILD, Vigild, check, free_port, main, scratch_dir, skip, wait_for

AM = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
AMTOOL = shutil.which("amtool")


class Alertmanager:
    def __init__(self, port=None, data=None):
        self.tmp = scratch_dir("vigil-am-")
        self.data = data or self.tmp.name
        self.port = port or free_port()
        cfg = os.path.join(self.tmp.name, "am.yml")
        with open(cfg, "w") as f:
            f.write("route: {receiver: 'null', group_wait: 1s}\nreceivers: [{name: 'null'}]\n")
        self.url = "http://127.0.0.1:%d" % self.port
        self.log = open(os.path.join(self.tmp.name, "am.log"), "w")
        self.proc = subprocess.Popen(
            [AM, "--config.file=" + cfg, "--storage.path=" + self.data,
             "--web.listen-address=127.0.0.1:%d" % self.port, "--cluster.listen-address=",
             "--log.level=warn"], stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: self._ready(), 20, "alertmanager ready")

    def _ready(self):
        import urllib.request
        with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as r:
            return r.status == 200

    def alerts(self, **labels):
        args = [AMTOOL, "alert", "query", "--alertmanager.url=" + self.url, "-o", "json"]
        args += ["%s=%s" % kv for kv in labels.items()]
        p = subprocess.run(args, capture_output=True, text=True, timeout=10)
        if p.returncode != 0:
            raise OSError(p.stderr)
        return json.loads(p.stdout or "[]")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def cfg_for(url):
    return "health: {resolve_after: 2s}\nalerting: {alertmanagers: ['%s'], resend_interval: 5s, timeout: 2s}\n" % url


def test_alert_reaches_alertmanager():
    am = Alertmanager()
    try:
        with Vigild(scenario="constant-2gpu.yaml", config=cfg_for(am.url)) as v:
            wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
            v.inject(gpu=1, xid=79)
            a = wait_for(lambda: am.alerts(alertname="VigilXid79"), 15, "alert in Alertmanager")
            lab = a[0]["labels"]
            check(lab["severity"] == "critical" and lab["gpu"] == "1" and lab["condition"] == "xid_79",
                  "labels %r" % lab)
            check(lab["uuid"].startswith("GPU-") and lab["hostname"], "uuid/hostname labels")
            ann = a[0]["annotations"]
            check(ann["summary"] and ann["action"] and ann["description"], "annotations %r" % ann)
    finally:
        am.stop()


def test_outbox_survives_outage_and_restart():
    am = Alertmanager()
    port, amdata = am.port, am.data
    am.stop()  # Alertmanager is down from here
    keep = None
    try:
        with Vigild(scenario="constant-2gpu.yaml", config=cfg_for(am.url)) as v:
            wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
            v.inject(gpu=0, xid=48)
            wait_for(lambda: "vigil_alert_send_failures_total" in v.metrics() and
                     any(l.startswith("vigil_alert_send_failures_total ") and float(l.split()[1]) > 0
                         for l in v.metrics().splitlines()), 10, "a failed send")
            d, keep = v.data, v.tmp
            v.tmp = None
        # vigild restarted (same data dir) while Alertmanager is still down, then it comes back
        v2 = Vigild(scenario="constant-2gpu.yaml", config=cfg_for(am.url), args=["--data-dir", d])
        v2.data = d
        with v2.wait_listening():
            # the restarted daemon reloaded the durable outbox and is still retrying
            v2.wait_metric("vigil_alert_outbox_depth", lambda n: n >= 1, what="the outbox reloaded")
            am2 = Alertmanager(port=port, data=amdata)
            try:
                a = wait_for(lambda: am2.alerts(alertname="VigilXid48"), 30, "alert after the outage")
                check(a[0]["labels"]["gpu"] == "0", "gpu label")
            finally:
                am2.stop()
    finally:
        if keep:
            keep.cleanup()


def _ends_in(alert):
    """Seconds from now until the alert's endsAt, as Alertmanager keeps it."""
    from datetime import datetime, timezone
    end = alert["endsAt"]
    end = end[:19] + "+00:00"  # drop fractions and zone: Alertmanager answers in UTC
    return (datetime.fromisoformat(end) - datetime.now(timezone.utc)).total_seconds()


def test_endsat_outlives_resend_interval():
    """endsAt = send time + 4 x max(resend_interval, evaluation interval), as Prometheus sets
    ValidUntil: an alert resent every 5 minutes must not expire in Alertmanager between two
    sends (a fixed 4 minutes made it resolve by itself and fire again: flapping)."""
    am = Alertmanager()
    try:
        cfg = ("health: {resolve_after: 2s}\nalerting: {alertmanagers: ['%s'], "
               "resend_interval: 5m, timeout: 2s}\n" % am.url)
        with Vigild(scenario="constant-2gpu.yaml", config=cfg) as v:
            wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
            v.inject(gpu=1, xid=79)
            a = wait_for(lambda: am.alerts(alertname="VigilXid79"), 15, "alert in Alertmanager")
            left = _ends_in(a[0])
            check(left > 19 * 60 and left < 21 * 60,
                  "endsAt %s is %.0fs away; want about 4 x 5m" % (a[0]["endsAt"], left))
    finally:
        am.stop()


def test_endsat_scaled_short_interval():
    """The same ratio scaled down: resend 2 s gives endsAt about 8 s ahead, and the alert stays
    active in Alertmanager across several resend gaps while the incident is open."""
    am = Alertmanager()
    try:
        cfg = ("health: {resolve_after: 60s, xid_hold: 1h}\nalerting: {alertmanagers: ['%s'], "
               "resend_interval: 2s, timeout: 2s}\n" % am.url)
        with Vigild(scenario="constant-2gpu.yaml", config=cfg) as v:
            wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
            v.inject(gpu=0, xid=79)
            a = wait_for(lambda: am.alerts(alertname="VigilXid79"), 15, "alert in Alertmanager")
            left = _ends_in(a[0])
            check(0 < left <= 10, "endsAt %s is %.0fs away; want about 4 x 2s" % (a[0]["endsAt"], left))
            end = time.monotonic() + 10
            while time.monotonic() < end:  # five resend gaps
                a = am.alerts(alertname="VigilXid79")
                check(a and a[0]["status"]["state"] == "active", "alert not active: %r" % a)
                time.sleep(0.5)
    finally:
        am.stop()


def test_configured_labels():
    """alerting.labels (e.g. cluster) are on every alert Vigil sends, as Alertmanager stores it;
    a reload (SIGHUP) changes them for the next alert; a label Vigil sets itself is refused."""
    import http.server
    import signal
    import threading
    hooks = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            hooks.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a):
            pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    am = Alertmanager()
    try:
        base = ("health: {resolve_after: 60s, xid_hold: 1h}\nalerting:\n  alertmanagers: ['%s']\n"
                "  webhooks: [{url: 'http://127.0.0.1:%d/hook'}]\n"
                "  resend_interval: 2s\n  timeout: 2s\n" % (am.url, srv.server_address[1]))
        with Vigild(scenario="constant-2gpu.yaml",
                    config=base + "  labels: {cluster: training-a, region: eu-1}\n") as v:
            wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
            v.inject(gpu=1, xid=79)
            a = wait_for(lambda: am.alerts(alertname="VigilXid79", cluster="training-a"), 15,
                         "alert with cluster=training-a in Alertmanager")
            lab = a[0]["labels"]
            check(lab.get("region") == "eu-1" and lab["gpu"] == "1" and lab["severity"] == "critical"
                  and lab["condition"] == "xid_79", "labels %r" % lab)
            h = wait_for(lambda: [x for x in hooks if x.get("incident", {}).get("gpu") == 1], 15,
                         "the webhook's alert")
            check(h[0].get("labels") == {"cluster": "training-a", "region": "eu-1"},
                  "webhook labels %r" % h[0].get("labels"))
            # reload: the next alert (a new incident, and the resends) carries the new value
            with open(os.path.join(v.data, "vigil.yaml"), "w") as f:
                f.write(base + "  labels: {cluster: training-b}\n")
            v.proc.send_signal(signal.SIGHUP)
            v.inject(gpu=0, xid=48)
            a = wait_for(lambda: am.alerts(alertname="VigilXid48", cluster="training-b"), 15,
                         "alert with cluster=training-b after the reload")
            check("region" not in a[0]["labels"], "a removed label is still sent: %r" % a[0]["labels"])
            wait_for(lambda: am.alerts(alertname="VigilXid79", cluster="training-b"), 15,
                     "the open incident's resend carries the new labels")
        bad_cfg = os.path.join(am.tmp.name, "bad.yaml")
        for bad in ("severity", "alertname", "condition", "gpu", "hostname"):
            with open(bad_cfg, "w") as f:
                f.write("alerting: {labels: {cluster: a, %s: x}}\n" % bad)
            p = subprocess.run([VIGILD, "--check-config", bad_cfg], capture_output=True,
                               text=True, timeout=30)
            check(p.returncode != 0 and "alerting.labels" in p.stderr and bad in p.stderr,
                  "alerting.labels.%s accepted: rc %d %s" % (bad, p.returncode, p.stderr))
    finally:
        am.stop()
        srv.shutdown()


if __name__ == "__main__":
    if not AM or not AMTOOL:
        skip("prometheus-alertmanager/amtool not installed")
    main([test_alert_reaches_alertmanager, test_outbox_survives_outage_and_restart,
          test_endsat_outlives_resend_interval, test_endsat_scaled_short_interval,
          test_configured_labels])
