#!/usr/bin/env python3
"""test_lazy_libs.py — vigild maps libarchive and libcurl only when it uses them (RSS, bench item
2a): not at all with no backup and no alerting configured; libarchive after the first backup
(POST /api/v1/backup over the unix socket, through `vigil backup create`), and the archive still
verifies; libcurl as soon as the notifier starts with a webhook, and the alert is delivered;
libsystemd only when systemd asks for something (here NOTIFY_SOCKET), and READY=1 still arrives;
libcrypto not while idle with the default configuration (scrapes, sweeps), but at the first audited
mutation (the audit chain hashes it; the record verifies), and libjwt only with JWT authentication,
which then loads both at start and verifies a token."""
import base64
import hashlib
import hmac
import http.server
import json
import os
import socket
import threading
import time

from harness import BUILD, Vigild, check, main, run_cli, scratch_dir, skip_part, wait_for


def mapped(pid):
    """Sonames of the shared objects mapped by pid, e.g. {'libc.so.6', ...}."""
    libs = set()
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and ".so" in parts[5]:
                libs.add(os.path.basename(parts[5].strip()))
    return libs


def has(libs, prefix):
    return any(l.startswith(prefix) for l in libs)


def test_backup_maps_libarchive_at_first_use():
    with Vigild() as v:
        wait_for(lambda: "vigil_gpu_temperature_celsius" in v.metrics(), 10, "first sweep")
        libs = mapped(v.proc.pid)
        check(not has(libs, "libarchive"), "libarchive mapped before any backup: %s" % sorted(libs))
        check(not has(libs, "libcurl"), "libcurl mapped with no alerting configured: %s" % sorted(libs))
        check(not has(libs, "libxml2") and not has(libs, "libicu"),
              "libarchive's dependencies mapped before any backup: %s" % sorted(libs))
        p = run_cli("--socket", v.sock, "--json", "backup", "create")
        if p.returncode != 0 and "403" in p.stderr:
            skip_part("the backup half: the API refuses POST on the unix socket here: %s" % p.stderr.strip())
            return
        check(p.returncode == 0, "backup create: %s %s" % (p.stdout, p.stderr))
        res = json.loads(p.stdout)
        libs = mapped(v.proc.pid)
        check(has(libs, "libarchive.so.13"), "libarchive not mapped after a backup: %s" % sorted(libs))
        check(not has(libs, "libcurl"), "a backup mapped libcurl: %s" % sorted(libs))
        p = run_cli("backup", "verify", res["path"])
        check(p.returncode == 0, "verify of the daemon's archive: %s %s" % (p.stdout, p.stderr))
        # A second backup reuses the loaded table.
        run_cli("--socket", v.sock, "backup", "create", check_rc=0)


class Sink(http.server.BaseHTTPRequestHandler):
    bodies = []

    def do_POST(self):  # noqa: N802 — http.server's name
        n = int(self.headers.get("Content-Length", "0"))
        Sink.bodies.append(self.rfile.read(n))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a):
        pass


def test_alerting_maps_libcurl():
    srv = http.server.HTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/hook" % srv.server_address[1]
    cfg = "health: {resolve_after: 2s}\nalerting: {webhooks: [{url: '%s'}], timeout: 2s}\n" % url
    try:
        with Vigild(config=cfg) as v:
            wait_for(lambda: has(mapped(v.proc.pid), "libcurl.so.4"), 10,
                     "libcurl to be mapped once the notifier starts with a webhook")
            check(not has(mapped(v.proc.pid), "libarchive"), "alerting mapped libarchive")
            check("cannot load" not in v.logs(), v.logs()[-2000:])
            # an XID raised before the first sweep is done opens no incident (seen under TSan)
            wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
            v.inject(gpu=0, xid=79)
            wait_for(lambda: Sink.bodies, 20, "the webhook to receive the incident")
    finally:
        srv.shutdown()


def test_libsystemd_only_when_systemd_asks():
    # Whatever the environment the tests run in, this daemon is not under systemd.
    quiet = {"NOTIFY_SOCKET": "", "WATCHDOG_USEC": "", "JOURNAL_STREAM": ""}
    with Vigild(env=quiet) as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 15, "ready")
        libs = mapped(v.proc.pid)
        check(not has(libs, "libsystemd"), "libsystemd mapped outside systemd: %s" % sorted(libs))
        check(not has(libs, "libgcrypt") and not has(libs, "liblz4"),
              "libsystemd's dependencies mapped outside systemd: %s" % sorted(libs))
    with open(os.path.join(BUILD, "bin", "vigild"), "rb") as f:
        if b"libsystemd.so.0" not in f.read():
            skip_part("the NOTIFY_SOCKET half: vigild built without libsystemd")
            return
    d = scratch_dir("vigil-notify-")
    path = os.path.join(d.name, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    got = []

    def recv():
        try:
            got.append(sock.recv(4096).decode())
        except socket.timeout:
            pass
        return any("READY=1" in m for m in got)

    try:
        with Vigild(env=dict(quiet, NOTIFY_SOCKET=path)) as v:
            wait_for(recv, 15, "READY=1 on NOTIFY_SOCKET")
            libs = mapped(v.proc.pid)
            check(has(libs, "libsystemd.so.0"), "NOTIFY_SOCKET set but libsystemd not mapped: %s"
                  % sorted(libs))
    finally:
        sock.close()
        d.cleanup()


def test_libcrypto_and_libjwt_at_first_use():
    with Vigild() as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 15, "ready")
        for _ in range(3):
            v.metrics()
            v.get("/api/v1/gpus")
        libs = mapped(v.proc.pid)
        check(not has(libs, "libcrypto") and not has(libs, "libjwt"),
              "libcrypto/libjwt mapped by an idle, unauthenticated vigild: %s" % sorted(libs))
        # An audited mutation (the unix socket, no authentication) hashes the audit chain.
        run_cli("--socket", v.sock, "backup", "create", check_rc=0)
        libs = mapped(v.proc.pid)
        check(has(libs, "libcrypto.so.3"), "libcrypto not mapped after an audited mutation: %s"
              % sorted(libs))
        check(not has(libs, "libjwt"), "libjwt mapped without JWT authentication: %s" % sorted(libs))
        p = run_cli("--socket", v.sock, "--json", "audit", "verify", check_rc=0)
        res = json.loads(p.stdout)
        check(res.get("ok") is True and res.get("checked", 0) > 0,
              "the audit chain written through the lazily loaded libcrypto: %s" % p.stdout)
    secret = "lazy-libs-secret-0123456789-abcdefghijkl"
    cfg = ("security:\n  authentication: {enabled: true, method: jwt, jwt_secret: '%s'}\n"
           "  authorization: {enabled: true}\n" % secret)
    with Vigild(config=cfg) as v:
        libs = mapped(v.proc.pid)
        check(has(libs, "libjwt.so.0") and has(libs, "libcrypto.so.3"),
              "JWT authentication configured but libjwt/libcrypto not loaded at start: %s"
              % sorted(libs))

        def b64(b):
            return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

        now = int(time.time())
        h = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        c = b64(json.dumps({"sub": "ops", "role": "viewer", "iat": now, "exp": now + 60}).encode())
        sig = b64(hmac.new(secret.encode(), (h + "." + c).encode(), hashlib.sha256).digest())
        st, _, body = v.request("GET", "/api/v1/gpus",
                                headers={"Authorization": "Bearer " + h + "." + c + "." + sig})
        check(st == 200, "a valid token through the loaded libjwt: %d %s" % (st, body[:300]))
        st, _, _ = v.request("GET", "/api/v1/gpus",
                             headers={"Authorization": "Bearer " + h + "." + c + "." + sig[:-2] + "AA"})
        check(st == 401, "a bad signature accepted: %d" % st)


if __name__ == "__main__":
    main([test_backup_maps_libarchive_at_first_use, test_alerting_maps_libcurl,
          test_libsystemd_only_when_systemd_asks, test_libcrypto_and_libjwt_at_first_use])
