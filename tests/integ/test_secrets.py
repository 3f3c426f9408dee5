"""test_secrets.py — no secret of the configuration reaches anyone. A marker goes into each kind
of secret (JWT secret, encryption key, webhook HMAC secret, a token in a webhook URL's query,
userinfo in an Alertmanager URL, credentials in policy exec command lines); an incident makes
the notifier fail against both targets and the policies run; then every GET route is read as
anonymous, viewer and admin (TCP and the unix socket), the log (text and JSON, stderr and the
log file), the audit records and the whole store are searched for the markers. The configuration
itself is still there for admins (GET /api/v1/config), with "<redacted>" in place of each
secret; GET /api/v1/status carries no configuration."""
import json
import os
import sqlite3
import subprocess
import time

from harness import Vigild, check, free_port, main, wait_for
from test_security import claims, mint

JWT = "MKJWT-0123456789-abcdefghijklmnopqrstuvwxyz"
MARKERS = {
    "jwt_secret": JWT,
    "encryption_key": "MKENCKEY-passphrase-0123456789",
    "webhook_secret": "MKHOOKSECRET",
    "webhook_url_token": "MKURLTOKEN",
    "alertmanager_userinfo": "MKAMPASSWORD",
    "exec_token_option": "MKEXECTOKEN",
    "exec_password_eq": "MKEXECPASSWD",
    "exec_env": "MKEXECENVKEY",
    "exec_bearer": "MKEXECBEARER",
}


def config(auth, fmt, logfile):
    dead1, dead2 = free_port(), free_port()  # nothing listens: every send fails and is logged
    return """
logging: {level: debug, format: %(fmt)s, file: {path: "%(logfile)s"}}
security:
  authentication: {enabled: %(auth)s, method: jwt, jwt_secret: "%(jwt)s", issuer: vigil-test, audience: vigild}
  encryption: {data_at_rest: true, encryption_key: "%(enc)s"}
health: {resolve_after: 60s}
alerting:
  alertmanagers: ["http://vigil:%(am)s@127.0.0.1:%(p1)d"]
  webhooks: [{url: "http://127.0.0.1:%(p2)d/hook?token=%(tok)s&x=1", secret: "%(hs)s"}]
  resend_interval: 1s
  timeout: 1s
policies:
  - {condition: "*", actions: [log, exec], exec: "/bin/true --token %(et)s --gpu 1", rate_limit: 64/1m}
  - {condition: "*", actions: [exec], exec: "/bin/true --password=%(ep)s", dry_run: true}
  - {condition: "*", actions: [exec], exec: "API_KEY=%(ee)s /bin/true", dry_run: true}
  - {condition: "*", actions: [exec], exec: "curl -H 'Authorization: Bearer %(eb)s' http://127.0.0.1:%(p1)d/", dry_run: true}
""" % dict(fmt=fmt, logfile=logfile, auth="true" if auth else "false", jwt=JWT,
           enc=MARKERS["encryption_key"], am=MARKERS["alertmanager_userinfo"], p1=dead1, p2=dead2,
           tok=MARKERS["webhook_url_token"], hs=MARKERS["webhook_secret"],
           et=MARKERS["exec_token_option"], ep=MARKERS["exec_password_eq"],
           ee=MARKERS["exec_env"], eb=MARKERS["exec_bearer"])


GET_ROUTES = ["/metrics", "/healthz", "/readyz", "/api/v1/status", "/api/v1/gpus", "/api/v1/gpus/0",
              "/api/v1/gpus/0/history?field=GPU_TEMP&since=60", "/api/v1/fields",
              "/api/v1/anomalies", "/api/v1/backups", "/api/v1/keys", "/api/v1/health",
              "/api/v1/incidents", "/api/v1/audit?limit=10000", "/api/v1/audit/verify",
              "/api/v1/config"]


def leaks(text):
    return [k for k, m in MARKERS.items() if m in text]


def unix_get(d, path):
    p = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "--unix-socket", d.sock,
                        "http://localhost" + path], capture_output=True, text=True, timeout=10)
    out, code = p.stdout.rsplit("\n", 1)
    return int(code), out


def exercise(d):
    """An incident: both targets fail (logged), the policies run (recorded)."""
    wait_for(lambda: d.get("/readyz")[0] == 200, 15, "ready")
    code, out = unix_get(d, "/api/v1/status")
    check(code == 200, "status over the socket: %d %s" % (code, out))
    p = subprocess.run(["curl", "-s", "--unix-socket", d.sock, "-X", "POST", "-d",
                        json.dumps({"gpu": 0, "xid": 79}), "http://localhost/api/v1/inject"],
                       capture_output=True, text=True, timeout=10)
    check('"injected"' in p.stdout, "inject: %s" % p.stdout)
    wait_for(lambda: "failed to send incident" in d.logs(), 15, "a failed alert send in the log")
    wait_for(lambda: d.logs().count("dry run: exec") >= 3, 15, "the policies recorded")
    time.sleep(1.5)  # a resend or two


def check_everywhere(d, tokens, logfile):
    for who, tok in tokens.items():
        for path in GET_ROUTES:
            h = {"Authorization": "Bearer " + tok} if tok else {}
            st, _, body = d.request("GET", path, None, h)
            text = body.decode(errors="replace")
            check(not leaks(text), "%s GET %s (%d) shows %s" % (who, path, st, leaks(text)))
            if path == "/api/v1/status" and st == 200:
                check("config" not in json.loads(text),
                      "%s GET /api/v1/status carries the configuration" % who)
    for path in GET_ROUTES:  # the unix socket: admin
        st, text = unix_get(d, path)
        check(not leaks(text), "socket GET %s (%d) shows %s" % (path, st, leaks(text)))
    st, text = unix_get(d, "/api/v1/config")
    check(st == 200, "config over the socket: %d" % st)
    cfg = json.loads(text)
    check(cfg["security"]["authentication"]["jwt_secret"] == "<redacted>", "jwt_secret shown")
    check(cfg["alerting"]["webhooks"][0]["url"].endswith("/hook?<redacted>"),
          "webhook url: %r" % cfg["alerting"]["webhooks"][0]["url"])
    check(cfg["alerting"]["alertmanagers"][0].startswith("http://<redacted>@127.0.0.1:"),
          "alertmanager url: %r" % cfg["alerting"]["alertmanagers"])
    check(cfg["policies"][0]["exec"] == "/bin/true --token <redacted> --gpu 1",
          "exec: %r" % cfg["policies"][0]["exec"])
    st, text = unix_get(d, "/api/v1/audit?limit=10000")
    check(st == 200 and json.loads(text)["records"], "audit records: %d" % st)
    logs = d.logs()
    check(not leaks(logs), "stderr log shows %s" % leaks(logs))
    with open(logfile) as f:
        text = f.read()
    check(text.strip(), "the log file is empty")
    check(not leaks(text), "log file shows %s" % leaks(text))
    db = [os.path.join(d.data, n) for n in os.listdir(d.data) if n.endswith(".db")]
    for path in db:
        con = sqlite3.connect(path)
        # Every record a person may be shown (audit, policy actions, incidents, ...); the alert
        # outbox keeps each target's URL to find it again after a restart (mode 0600 store).
        dump = "\n".join(l for l in con.iterdump() if "health_outbox" not in l)
        con.close()
        check(not leaks(dump), "store %s holds %s" % (os.path.basename(path), leaks(dump)))


def run(auth, fmt):
    logdir = os.path.join(os.environ.get("TMPDIR", "/tmp"), "vigil-secrets-%d" % os.getpid())
    os.makedirs(logdir, exist_ok=True)
    logfile = os.path.join(logdir, "vigild-%s.log" % fmt)
    with Vigild(scenario="constant-2gpu.yaml", config=config(auth, fmt, logfile)) as d:
        exercise(d)
        tokens = {"anonymous": None}
        if auth:
            tokens["viewer"] = mint(claims(role="viewer", sub="val"), key=JWT.encode())
            tokens["admin"] = mint(claims(role="admin", sub="ada"), key=JWT.encode())
        check_everywhere(d, tokens, logfile)


def test_no_secret_with_auth_json_log():
    run(True, "json")


def test_no_secret_without_auth_text_log():
    run(False, "text")


if __name__ == "__main__":
    main([test_no_secret_with_auth_json_log, test_no_secret_without_auth_text_log])
