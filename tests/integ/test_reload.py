#!/usr/bin/env python3
"""Reloads that tell the truth: every reloadable key changed through SIGHUP or
POST /api/v1/config/reload takes effect in the running daemon (seen through the API, metrics and
behaviour), a restart-only key is reported as pending and keeps its running value, and a refused
reload (a TLS key file that does not exist) changes nothing and is audited. The keys that
reconfigure running threads are each changed and seen at work: policies (a new one runs; a slow
hook on the policy worker holds neither evaluations nor a reload), Alertmanager and webhook
targets (a local receiver gets the next alert), the counters CSV (families appear and disappear
on /metrics; a bad CSV refuses the reload), and TLS (a new certificate is served, a client-auth
change is enforced)."""
import base64
import hashlib
import hmac
import http.server
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time

from harness import VIGILD, Vigild, check, main, wait_for

# Every key a reload applies (docs/configuration.md marks them "reload"), but
# security.authentication.method (one value only), .public_key_file and security.web_config_file
# (they change what the other tests here use to talk to the daemon; test_webconfig covers it).
RELOADABLE = {
    "logging.level", "logging.format", "logging.file.path", "logging.file.max_size",
    "logging.file.max_files", "logging.syslog.enabled", "logging.syslog.facility",
    "logging.rate_limit.burst", "logging.rate_limit.interval",
    "security.authentication.enabled", "security.authentication.jwt_secret",
    "security.authentication.token_expiry", "security.authentication.issuer",
    "security.authentication.audience", "security.authentication.leeway",
    "security.authorization.enabled", "security.authorization.roles.admin",
    "security.authorization.roles.operator", "security.authorization.roles.viewer",
    "security.authorization.unix_admin_group", "security.network.allowed_ips",
    "security.network.trusted_proxies", "security.network.rate_limiting.enabled",
    "security.network.rate_limiting.requests_per_minute", "security.network.rate_limiting.burst",
    "security.audit.enabled", "security.audit.retention_days",
    "security.audit.include_sensitive_data", "security.metrics_public",
    "security.web_config_role", "health.enabled", "health.expected_gpus",
    "health.temperature.warning", "health.temperature.critical", "health.temperature.hysteresis",
    "health.resolve_after", "health.xid_hold", "health.nvml_call_timeout",
    "health.collection_stretched_after", "health.throttle_sustain", "health.max_rss",
    "health.disk_warning", "health.disk_critical", "health.systems.pcie", "health.systems.nvlink",
    "health.systems.memory", "health.systems.inforom", "health.systems.thermal",
    "health.systems.power", "health.systems.driver", "health.systems.gpu",
    "health.systems.clocks", "health.systems.host",
    # applied by their own tests below (test_alerting_and_policies, test_counters_csv, test_tls)
    "policies", "alerting.alertmanagers", "alerting.webhooks", "alerting.resend_interval",
    "alerting.timeout", "metrics.counters_csv", "metrics.naming", "metrics.extra_labels",
    "security.tls.cert_file", "security.tls.key_file", "security.tls.ca_file",
    "security.tls.client_auth",
}
# the keys above whose own tests below change them and check their effect
APPLIED_ELSEWHERE = {
    "policies", "alerting.alertmanagers", "alerting.webhooks", "alerting.resend_interval",
    "alerting.timeout", "metrics.counters_csv", "metrics.naming", "metrics.extra_labels",
    "security.tls.cert_file", "security.tls.key_file", "security.tls.ca_file",
    "security.tls.client_auth",
}

SECRET = "0123456789abcdef0123456789abcdef-reload"

# Phase 1: most keys changed, health still on so its new thresholds can be seen at work.
PHASE1 = """
logging:
  level: debug
  format: json
  file: {path: %(log)s, max_size: 1MB, max_files: 2}
  syslog: {enabled: true, facility: local3}
  rate_limit: {burst: 50, interval: 5s}
security:
  authentication:
    jwt_secret: "%(secret)s"
    token_expiry: 2h
    issuer: vigil-test
    audience: vigil-api
    leeway: 30s
  authorization:
    roles: {admin: ["*"], operator: [read, write], viewer: [read, write]}
    unix_admin_group: root
  network:
    allowed_ips: [127.0.0.0/8]
    trusted_proxies: [10.0.0.0/8]
    rate_limiting: {enabled: true, requests_per_minute: 60, burst: 500}
  audit: {retention_days: 30, include_sensitive_data: true}
  web_config_role: operator
health:
  expected_gpus: 2
  temperature: {warning: 20, critical: 95, hysteresis: 5}
  resolve_after: 30s
  xid_hold: 5m
  nvml_call_timeout: 3s
  collection_stretched_after: 2m
  throttle_sustain: 20s
  max_rss: 1GB
  disk_warning: 95
  disk_critical: 99
"""

# Phase 2 (phase2_text): the switches (health off, every system off, audit and authorization
# off, metrics private) and the rate limit made small enough to be hit.


def phase2_text(log):
    t = PHASE1 % {"log": log, "secret": SECRET}
    t = t.replace("rate_limiting: {enabled: true, requests_per_minute: 60, burst: 500}",
                  "rate_limiting: {enabled: true, requests_per_minute: 1, burst: 3}")
    t = t.replace("  audit: {retention_days: 30, include_sensitive_data: true}",
                  "  audit: {enabled: false, retention_days: 30, include_sensitive_data: true}\n"
                  "  metrics_public: false")
    t = t.replace("  authorization:\n", "  authorization:\n    enabled: false\n")
    t = t.replace("security:\n  authentication:\n",
                  "security:\n  authentication:\n    enabled: true\n")
    t = t.replace('roles: {admin: ["*"]', "roles: {admin: [read, write, execute, admin]")
    t = t.replace("health:\n", "health:\n  enabled: false\n  systems: {pcie: false, nvlink: false, "
                  "memory: false, inforom: false, thermal: false, power: false, driver: false, "
                  "gpu: false, clocks: false, host: false}\n")
    return t


def mint(claims):
    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    h = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    p = b64(json.dumps(claims).encode())
    sig = b64(hmac.new(SECRET.encode(), (h + "." + p).encode(), hashlib.sha256).digest())
    return h + "." + p + "." + sig


def cfg_get(cfg, path):
    for p in path.split("."):
        cfg = cfg[p]
    return cfg


def write(v, text):
    with open(os.path.join(v.data, "vigil.yaml"), "w") as f:
        f.write(text)


def unix(v, method, path):
    """Over the unix socket: config and reload are admin routes, and TCP is read-only here."""
    p = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "-X", method, "--unix-socket", v.sock,
                        "http://localhost" + path], capture_output=True, text=True, timeout=70)
    out, code = p.stdout.rsplit("\n", 1)
    return int(code), out


def reload_api(v, expect=200):
    st, body = unix(v, "POST", "/api/v1/config/reload")
    check(st == expect, "reload answered %d, expected %d: %s" % (st, expect, body[:400]))
    return json.loads(body)


def config(v):
    st, body = unix(v, "GET", "/api/v1/config")
    check(st == 200, "GET /api/v1/config: %d %s" % (st, body[:300]))
    return json.loads(body)


def test_every_reloadable_key():
    with Vigild(config="logging: {level: info}\n") as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        log = os.path.join(v.data, "reloaded.log")
        check(v.get_json("/api/v1/health")["status"] == "PASS", "healthy before")
        write(v, PHASE1 % {"log": log, "secret": SECRET})
        r1 = reload_api(v)
        check(r1["reloaded"] is True and r1["pending_restart"] == [], "phase 1: %s" % r1)
        cfg = config(v)
        check(cfg_get(cfg, "logging.level") == "debug", "level %s" % cfg["logging"])
        check(cfg_get(cfg, "health.max_rss") == "1GB", "max_rss %s" % cfg["health"]["max_rss"])
        check("pending_restart" not in cfg, "nothing pending: %s" % cfg.get("pending_restart"))
        # health thresholds: 20 C is below every simulated GPU, so thermal warns now
        wait_for(lambda: v.get_json("/api/v1/health")["status"] != "PASS", 10,
                 "the new temperature warning threshold at work")
        # logging: the new file sink, in the new format
        wait_for(lambda: os.path.exists(log) and os.path.getsize(log) > 0, 5, "the new log file")
        first = open(log).readline()
        check(json.loads(first).get("msg") is not None or json.loads(first), "JSON lines: %r" % first)

        # Phase 2 through SIGHUP: the switches.
        write(v, phase2_text(log))
        v.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: cfg_get(config(v), "health.enabled") is False, 10, "phase 2 applied")
        # authentication is on with the new secret, issuer and audience; /metrics is private
        check(v.get("/metrics")[0] == 401, "/metrics public after metrics_public: false")
        token = mint({"sub": "alice", "role": "viewer", "iss": "vigil-test", "aud": "vigil-api",
                      "iat": int(time.time()), "exp": int(time.time()) + 600})
        st = v.request("GET", "/api/v1/gpus", headers={"Authorization": "Bearer " + token})[0]
        check(st == 200, "a token for the new issuer/audience/secret: %d" % st)
        # the rate limit (3 requests, then 429) is in force
        codes = [v.get("/api/v1/gpus")[0] for _ in range(8)]
        check(429 in codes, "rate limit not applied: %s" % codes)
        # health off: no rule evaluates; every system off
        code, out = unix(v, "GET", "/api/v1/config")
        check(code == 200, "config over the socket: %d" % code)
        cfg = json.loads(out)
        for k in ("health.systems.thermal", "health.systems.host", "security.audit.enabled",
                  "security.authorization.enabled"):
            check(cfg_get(cfg, k) is False, "%s still on" % k)
        applied = set(r1["applied"])
        # what phase 2 changed against phase 1, as the log says it
        wait_for(lambda: "applied:" in v.logs(), 5, "applied keys logged")
        # Phase 3 back to defaults through the API over the socket: everything reverts
        write(v, "")
        code, out = unix(v, "POST", "/api/v1/config/reload")
        check(code == 200, "reload over the socket: %d %s" % (code, out))
        r3 = json.loads(out)
        applied |= set(r3["applied"])
        missing = RELOADABLE - applied - APPLIED_ELSEWHERE
        check(not missing, "reloadable keys never applied: %s" % sorted(missing))
        check(r3["pending_restart"] == [], "pending after a revert: %s" % r3)
        cfg = json.loads(unix(v, "GET", "/api/v1/config")[1])
        check(cfg_get(cfg, "health.enabled") is True and cfg_get(cfg, "logging.level") == "info",
              "defaults back: %s" % cfg["health"])


def test_allowed_ips_applied():
    with Vigild(config="") as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        write(v, "security:\n  network: {allowed_ips: [10.0.0.0/8]}\n")
        v.proc.send_signal(signal.SIGHUP)

        def refused():
            try:
                return v.get("/healthz")[0] != 200
            except Exception:
                return True
        wait_for(refused, 10, "127.0.0.1 refused once allowed_ips excludes it")
        write(v, "")
        v.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: v.get("/healthz")[0] == 200, 10, "allowed again")


def test_restart_key_pending():
    with Vigild(config="collection:\n  tiers: {fast: 1s}\n") as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        write(v, "collection:\n  tiers: {fast: 2s}\nlogging: {level: debug}\n")
        r = reload_api(v)
        check(r["reloaded"] is True, r)
        check(r["pending_restart"] == ["collection.tiers.fast"], "pending: %s" % r)
        check(r["applied"] == ["logging.level"], "applied: %s" % r)
        cfg = config(v)
        check(cfg["collection"]["tiers"]["fast"] == "1s", "shows the running value: %s" %
              cfg["collection"])
        check(cfg["pending_restart"] == {"collection.tiers.fast": "2s"}, cfg.get("pending_restart"))
        fields = {f["name"]: f for f in v.get_json("/api/v1/fields")["fields"]}
        check(fields["GPU_TEMP"]["interval_us"] == 1000000, "the old interval keeps running")
        check("pending until restart" in v.logs() and "collection.tiers.fast" in v.logs(),
              "pending keys logged")


def test_refused_reload_changes_nothing():
    with Vigild(config="logging: {level: info}\n") as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        before = config(v)
        missing = os.path.join(v.data, "no-such.key")
        write(v, "logging: {level: error}\nhealth:\n  temperature: {warning: 20}\n"
                 "security:\n  tls: {enabled: true, cert_file: %s, key_file: %s}\n"
                 % (missing, missing))
        r = reload_api(v, expect=400)
        check(r["reloaded"] is False and missing in r["error"]["message"], "refusal: %s" % r)
        after = config(v)
        check(after == before, "a refused reload changed the config:\n%s\n%s" % (before, after))
        check(v.get_json("/api/v1/health")["status"] == "PASS", "a refused threshold applied")
        check("keeping the running one" in v.logs(), "refusal not logged")
        code, out = unix(v, "GET", "/api/v1/audit?limit=1000")
        check(code == 200, "audit: %d %s" % (code, out))
        rows = [x for x in json.loads(out)["records"] if x["event"] == "config_reload"]
        check(any(x["status"] == 400 and missing in json.dumps(x) for x in rows),
              "refusal not audited: %s" % rows)
        # SIGHUP refuses the same way
        v.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: v.logs().count("keeping the running one") >= 2, 5, "SIGHUP refusal")
        check(config(v) == before, "SIGHUP refusal changed the config")


def test_check_config_refuses_what_start_refuses():
    """--check-config runs the start's validation: each of these is refused by both, with the
    same message."""
    with tempfile.TemporaryDirectory() as d:
        missing = os.path.join(d, "missing")
        bad_csv = os.path.join(d, "bad.csv")
        open(bad_csv, "w").write("DCGM_FI_DEV_GPU_TEMP, gaug, unknown type\n")
        cases = [
            ("security:\n  tls: {enabled: true, cert_file: %s.pem, key_file: %s.key}\n"
             % (missing, missing), missing + ".pem"),
            ("security:\n  tls: {enabled: true, cert_file: %s, key_file: %s}\n"
             % (bad_csv, bad_csv), "is not a PEM"),
            ("security:\n  web_config_file: %s.yml\n" % missing, missing + ".yml"),
            ("metrics:\n  counters_csv: %s\n" % bad_csv, "counters CSV"),
            ("logging:\n  file: {path: %s/dir/vigild.log}\n" % missing, "does not exist"),
            ("collection:\n  fields: {NO_SUCH_FIELD: 1s}\n", "NO_SUCH_FIELD"),
            ("security:\n  authentication: {enabled: true, public_key_file: %s.pem}\n" % missing,
             missing + ".pem"),
        ]
        for text, needle in cases:
            path = os.path.join(d, "c.yaml")
            open(path, "w").write(text)
            p = subprocess.run([VIGILD, "--check-config", path], capture_output=True, text=True,
                               timeout=30)
            check(p.returncode == 1, "--check-config accepted %r: %s" % (text, p.stdout))
            check(needle in p.stderr, "--check-config %r: %s" % (text, p.stderr))
            data = os.path.join(d, "data")
            s = subprocess.run([VIGILD, "--simulate", "--listen", "127.0.0.1:0", "--socket", "",
                                "--data-dir", data, "--config", path], capture_output=True,
                               text=True, timeout=30)
            check(s.returncode != 0, "start accepted %r" % text)
            msg = p.stderr.strip().splitlines()[-1]
            check(msg in s.stderr, "start said something else for %r:\n%s\nvs\n%s"
                  % (text, msg, s.stderr))
            check(not os.path.exists(data), "a refused start touched the data dir")


class Receiver:
    """A local HTTP receiver: records every POST (path, body) it is sent and answers 200."""

    def __init__(self):
        self.posts = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                outer.posts.append((self.path, self.rfile.read(n).decode()))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def paths(self):
        return [p for p, _ in self.posts]

    def close(self):
        self.srv.shutdown()


def test_alerting_and_policies():
    """No targets and no policies at start; one reload adds an Alertmanager, a webhook and a
    policy, and the incident that the same reload's lower threshold opens reaches both targets
    and runs the policy. A second reload swaps the targets: the next alert goes to the new ones
    only."""
    a, b = Receiver(), Receiver()
    try:
        with Vigild(config="health: {resolve_after: 1s}\n") as v:
            wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
            mark = os.path.join(v.data, "policy-ran")
            write(v, "health: {resolve_after: 1s, temperature: {warning: 20}}\n"
                     "policies:\n  - {condition: temperature, actions: [log, exec], "
                     "exec: 'touch %s', rate_limit: 60/1m}\n"
                     "alerting:\n  alertmanagers: ['%s']\n  webhooks: [{url: '%s/hook'}]\n"
                     "  resend_interval: 2s\n  timeout: 2s\n" % (mark, a.url, a.url))
            r = reload_api(v)
            for k in ("policies", "alerting.alertmanagers", "alerting.webhooks",
                      "alerting.resend_interval", "alerting.timeout"):
                check(k in r["applied"], "%s not applied: %s" % (k, r))
            wait_for(lambda: "/api/v2/alerts" in a.paths() and "/hook" in a.paths(), 15,
                     "the new Alertmanager and webhook receive the alert")
            wait_for(lambda: os.path.exists(mark), 10, "the new policy ran")
            # swap the targets: b only, through SIGHUP
            write(v, "health: {resolve_after: 1s, temperature: {warning: 20}}\n"
                     "alerting:\n  alertmanagers: ['%s']\n  resend_interval: 1s\n" % b.url)
            v.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "/api/v2/alerts" in b.paths(), 15, "the next alert at the new target")
            n = len(a.posts)
            time.sleep(2.5)  # two resend intervals
            check(len(a.posts) <= n + 1, "the removed target still receives: %d -> %d"
                  % (n, len(a.posts)))
    finally:
        a.close()
        b.close()


def test_slow_policy_action():
    """A hook that sleeps 6 s runs on the policy worker: evaluations go on and a reload answers
    at once meanwhile."""
    with Vigild(config="health: {resolve_after: 1s}\n") as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        done = os.path.join(v.data, "slow-done")
        started = os.path.join(v.data, "slow-started")
        write(v, "health: {temperature: {warning: 20}}\npolicies:\n"
                 "  - {condition: temperature, actions: [exec], exec: 'touch %s; sleep 6; touch %s',"
                 " exec_timeout: 20s, rate_limit: 60/1m}\n" % (started, done))
        reload_api(v)
        wait_for(lambda: os.path.exists(started), 10, "the slow hook started")
        e0 = v.get_json("/api/v1/health").get("evaluations", 0)
        t0 = time.monotonic()
        write(v, "health: {temperature: {warning: 20}}\nlogging: {level: debug}\npolicies:\n"
                 "  - {condition: temperature, actions: [exec], exec: 'touch %s; sleep 6; touch %s',"
                 " exec_timeout: 20s, rate_limit: 60/1m}\n" % (started, done))
        r = reload_api(v)
        dt = time.monotonic() - t0
        check(r["reloaded"] is True and dt < 2.0, "reload took %.1fs during a slow hook" % dt)
        time.sleep(2.5)
        check(not os.path.exists(done), "the hook ended early: the test proves nothing")
        e1 = v.get_json("/api/v1/health").get("evaluations", 0)
        check(e1 >= e0 + 2, "evaluations stalled behind the hook: %d -> %d" % (e0, e1))
        wait_for(lambda: os.path.exists(done), 15, "the slow hook finished")


CSV_TEMP = "DCGM_FI_DEV_GPU_TEMP, gauge, GPU temperature (in C).\n"
CSV_POWER = "DCGM_FI_DEV_POWER_USAGE, gauge, Power draw (in W).\n"


def test_counters_csv():
    with tempfile.TemporaryDirectory() as d:
        a, b, bad = (os.path.join(d, x) for x in ("a.csv", "b.csv", "bad.csv"))
        open(a, "w").write(CSV_TEMP)
        open(b, "w").write(CSV_POWER)
        open(bad, "w").write("DCGM_FI_DEV_GPU_TEMP, gaug, unknown type\n")
        with Vigild(config="metrics: {counters_csv: %s}\n" % a) as v:
            wait_for(lambda: "DCGM_FI_DEV_GPU_TEMP{" in v.metrics(), 10, "the first CSV")
            check("DCGM_FI_DEV_POWER_USAGE" not in v.metrics(), "power before the swap")
            write(v, "metrics: {counters_csv: %s, extra_labels: {cluster: c1}}\n" % b)
            r = reload_api(v)
            check("metrics.counters_csv" in r["applied"] and
                  "metrics.extra_labels" in r["applied"], "applied: %s" % r)
            m = v.metrics()
            check("DCGM_FI_DEV_POWER_USAGE{" in m and 'cluster="c1"' in m,
                  "the new CSV's family and label: %s" % m[:500])
            check("DCGM_FI_DEV_GPU_TEMP" not in m, "the removed family is still exported")
            # a bad CSV refuses the whole reload
            write(v, "metrics: {counters_csv: %s}\nlogging: {level: debug}\n" % bad)
            r = reload_api(v, expect=400)
            check("counters CSV" in r["error"]["message"], "refusal: %s" % r)
            check("DCGM_FI_DEV_POWER_USAGE{" in v.metrics(), "a refused CSV changed /metrics")
            # back to native names
            write(v, "metrics: {naming: vigil}\n")
            r = reload_api(v)
            wait_for(lambda: "vigil_gpu_temperature_celsius{" in v.metrics(), 5, "native names")
            m = v.metrics()
            check("DCGM_FI_" not in m, "dcgm families after the switch back")
            # the native exposition's sampler self-metrics (no clock step, no refused sample)
            for fam in ("vigil_sampler_clock_steps_total", "vigil_sampler_push_errors_total"):
                check("\n%s 0\n" % fam in m, "%s missing or not 0" % fam)


def _pki(d):
    def sh(*args):
        subprocess.run(args, check=True, capture_output=True)

    def ca(name):
        sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
           "-nodes", "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.pem", "-days", "2",
           "-subj", f"/CN={name}")

    def leaf(name, issuer, ext):
        sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr", "-subj", f"/CN={name}")
        with open(f"{d}/{name}.ext", "w") as f:
            f.write(ext)
        sh("openssl", "x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/{issuer}.pem",
           "-CAkey", f"{d}/{issuer}.key", "-CAcreateserial", "-out", f"{d}/{name}.pem", "-days",
           "2", "-extfile", f"{d}/{name}.ext")

    ca("ca")
    for n in ("s1", "s2"):
        leaf(n, "ca", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    leaf("client", "ca", "extendedKeyUsage=clientAuth\n")


def tls_get(url, pki, cert=None):
    """(status or None when the handshake or request was refused, SHA-256 of the peer cert)"""
    host, port = url.split("//")[1].rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=f"{pki}/ca.pem")
    if cert:
        ctx.load_cert_chain(f"{pki}/{cert}.pem", f"{pki}/{cert}.key")
    try:
        with socket.create_connection((host, int(port)), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname=host) as t:
                fp = hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest()
                t.sendall(b"GET /api/v1/gpus HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    c = t.recv(65536)
                    if not c:
                        break
                    data += c
        return int(data.split(b" ", 2)[1]), fp
    except (ssl.SSLError, OSError, IndexError, ValueError):
        return None, None


def der_fp(pem):
    der = ssl.PEM_cert_to_DER_cert(open(pem).read())
    return hashlib.sha256(der).hexdigest()


def test_tls():
    pki = tempfile.mkdtemp(prefix="vigil-pki-")
    try:
        _pki(pki)
        tls = "security:\n  tls: {enabled: true, cert_file: %s/%s.pem, key_file: %s/%s.key%s}\n"
        with Vigild(config=tls % (pki, "s1", pki, "s1", "")) as v:
            st, fp = tls_get(v.url, pki)
            check(st == 200 and fp == der_fp(f"{pki}/s1.pem"), "first certificate: %s" % st)
            # a new certificate and a client-auth policy, through SIGHUP
            write(v, tls % (pki, "s2", pki, "s2", ", ca_file: %s/ca.pem, client_auth: require"
                            % pki))
            v.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: tls_get(v.url, pki, "client")[1] == der_fp(f"{pki}/s2.pem"), 10,
                     "the new certificate served")
            check(tls_get(v.url, pki, "client")[0] == 200, "a client certificate accepted")
            check(tls_get(v.url, pki)[0] in (None, 403), "client_auth: require not enforced")
            # a bad key refuses the reload; the old settings stay
            write(v, tls % (pki, "s1", pki, "s2", ""))
            r = reload_api(v, expect=400)
            check("does not match" in r["error"]["message"], "refusal: %s" % r)
            st, fp = tls_get(v.url, pki, "client")
            check(st == 200 and fp == der_fp(f"{pki}/s2.pem"), "a refused reload changed TLS")
            check(tls_get(v.url, pki)[0] in (None, 403), "a refused reload changed client_auth")
            # client_auth back to none, the first certificate again
            write(v, tls % (pki, "s1", pki, "s1", ""))
            r = reload_api(v)
            check(r["pending_restart"] == [], "TLS settings pending: %s" % r)
            st, fp = tls_get(v.url, pki)
            check(st == 200 and fp == der_fp(f"{pki}/s1.pem"), "client_auth none: %s" % st)
            # switching TLS off waits for a restart
            write(v, "")
            r = reload_api(v)
            check("security.tls.enabled" in r["pending_restart"], "TLS off: %s" % r)
    finally:
        shutil.rmtree(pki, ignore_errors=True)


def tls12_refused(url, pki):
    host, port = url.split("//")[1].rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=f"{pki}/ca.pem")
    ctx.load_cert_chain(f"{pki}/client.pem", f"{pki}/client.key")
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        with socket.create_connection((host, int(port)), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname=host):
                return False
    except (ssl.SSLError, OSError):
        return True


def test_webconfig_tls():
    """The web-config file's TLS settings (certificate, client CA, client_auth_type,
    min_version) change with the file and a SIGHUP, as node_exporter re-reads its web config."""
    pki = tempfile.mkdtemp(prefix="vigil-pki-")
    try:
        _pki(pki)
        web = os.path.join(pki, "web.yml")
        first = "tls_server_config:\n  cert_file: s1.pem\n  key_file: s1.key\n"
        open(web, "w").write(first)
        with Vigild(config="security: {web_config_file: %s}\n" % web) as v:
            st, fp = tls_get(v.url, pki)
            check(st == 200 and fp == der_fp(f"{pki}/s1.pem"), "first: %s" % st)
            check(not tls12_refused(v.url, pki), "TLS 1.2 refused before min_version")
            open(web, "w").write("tls_server_config:\n  cert_file: s2.pem\n  key_file: s2.key\n"
                                 "  client_ca_file: ca.pem\n"
                                 "  client_auth_type: RequireAndVerifyClientCert\n"
                                 "  min_version: TLS13\n")
            r = reload_api(v)
            check(r["pending_restart"] == [], "web-config TLS pending: %s" % r)
            st, fp = tls_get(v.url, pki, "client")
            check(st == 200 and fp == der_fp(f"{pki}/s2.pem"), "new web-config cert: %s" % st)
            check(tls_get(v.url, pki)[0] is None, "no client cert accepted after the reload")
            check(tls12_refused(v.url, pki), "TLS 1.2 accepted after min_version TLS13")
            # a broken CA file refuses the reload; the running settings stay
            open(f"{pki}/badca.pem", "w").write("not a certificate\n")
            open(web, "w").write("tls_server_config:\n  cert_file: s1.pem\n  key_file: s1.key\n"
                                 "  client_ca_file: badca.pem\n"
                                 "  client_auth_type: RequireAndVerifyClientCert\n")
            r = reload_api(v, expect=400)
            check("badca.pem" in r["error"]["message"], "refusal: %s" % r)
            check(tls_get(v.url, pki, "client")[1] == der_fp(f"{pki}/s2.pem"), "refusal applied")
            open(web, "w").write(first)
            v.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: tls_get(v.url, pki)[0] == 200, 10, "client auth off again")
    finally:
        shutil.rmtree(pki, ignore_errors=True)


if __name__ == "__main__":
    main([test_check_config_refuses_what_start_refuses, test_restart_key_pending,
          test_refused_reload_changes_nothing, test_allowed_ips_applied, test_alerting_and_policies,
          test_slow_policy_action, test_counters_csv, test_tls, test_webconfig_tls, test_every_reloadable_key])
