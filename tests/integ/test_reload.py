#!/usr/bin/env python3
"""Reloads that tell the truth: every reloadable key changed through SIGHUP or
POST /api/v1/config/reload takes effect in the running daemon (seen through the API, metrics and
behaviour), a restart-only key is reported as pending and keeps its running value, and a refused
reload (a TLS key file that does not exist) changes nothing and is audited."""
import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import tempfile
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
        missing = RELOADABLE - applied
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
        open(bad_csv, "w").write("DCGM_FI_NO_SUCH_FIELD, gauge, nothing\n")
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


if __name__ == "__main__":
    main([test_check_config_refuses_what_start_refuses, test_restart_key_pending,
          test_refused_reload_changes_nothing, test_allowed_ips_applied,
          test_every_reloadable_key])
