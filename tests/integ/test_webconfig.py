"""test_webconfig.py — `vigild --web-config-file`: one exporter-toolkit web-config.yml served by
vigild and by Debian's node_exporter (the reference oracle, when installed) side by side, with the
same answers for no credentials, a wrong password, the right password and an unknown user (status
and WWW-Authenticate), the same handshake refusal without a client certificate under
RequireAndVerifyClientCert, the allowed headers, the basic-auth role and audit records; a bad file
refused with FILE:LINE; and security.audit.include_sensitive_data (scrubbed bodies when true,
none when false)."""
import base64
import ctypes
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

from harness import Vigild, VIGILD, check, main, wait_for
from test_security import audit_rows, unix
from test_tls import make_pki

NODE_EXPORTER = shutil.which("prometheus-node-exporter") or "/usr/bin/prometheus-node-exporter"
PASSWORD = "correct horse"


def bcrypt(password, cost=5):
    """A $2y$ hash through libcrypt, as `htpasswd -nBC` writes it."""
    lib = ctypes.CDLL("libcrypt.so.1")
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    salt = lib.crypt_gensalt(b"$2y$", cost, None, 0)
    h = lib.crypt(password.encode(), salt).decode()
    check(h.startswith("$2y$"), "libcrypt bcrypt: %r" % h)
    return h


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(base, path, pki=None, cert=None, user=None, password=None, method="GET", body=None):
    """(status, headers) or ("refused", error) when the TLS handshake or the connection fails."""
    host, port = base.split("//")[1].rsplit(":", 1)
    hdrs = {"Connection": "close"}
    if user is not None:
        hdrs["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    try:
        if base.startswith("https"):
            ctx = ssl.create_default_context(cafile=f"{pki}/ca.pem")
            if cert:
                ctx.load_cert_chain(f"{pki}/{cert}.pem", f"{pki}/{cert}.key")
            c = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
        else:
            c = http.client.HTTPConnection(host, int(port), timeout=10)
        c.request(method, path, body=body, headers=hdrs)
        r = c.getresponse()
        r.read()
        c.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}
    except (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected, OSError) as e:
        return "refused", repr(e)


class NodeExporter:
    def __init__(self, web_config):
        self.port = free_port()
        self.url = None
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{self.port}",
             f"--web.config.file={web_config}", "--collector.disable-defaults",
             "--collector.loadavg"], stdout=self.log, stderr=subprocess.STDOUT)

        def up():
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        wait_for(up, 10, "node_exporter to listen")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


CASES = [  # name, user, password
    ("no credentials", None, None),
    ("wrong password", "alice", "wrong"),
    ("right password", "alice", PASSWORD),
    ("unknown user", "mallory", PASSWORD),
]


def compare(vig_url, ne_url, pki, cert, path="/metrics"):
    got = {}
    for name, user, pw in CASES:
        v = fetch(vig_url, path, pki, cert, user, pw)
        n = fetch(ne_url, path, pki, cert, user, pw) if ne_url else None
        got[name] = v
        if n is not None:
            check(v[0] == n[0], "%s: vigild %r, node_exporter %r" % (name, v, n))
            if v[0] == 401:
                check(v[1].get("www-authenticate") == n[1].get("www-authenticate"),
                      "%s: WWW-Authenticate vigild %r, node_exporter %r" % (name, v[1], n[1]))
    return got


def test_matches_node_exporter():
    pki = tempfile.mkdtemp(prefix="vigil-webcfg-")
    try:
        make_pki(pki)
        web = os.path.join(pki, "web.yml")
        with open(web, "w") as f:
            # relative paths: resolved against the file's directory, as exporter-toolkit does
            f.write(f"""tls_server_config:
  cert_file: server.pem
  key_file: server.key
  client_ca_file: ca.pem
  client_auth_type: RequireAndVerifyClientCert
  min_version: TLS13
http_server_config:
  http2: true
  headers:
    X-Frame-Options: deny
    Content-Security-Policy: "default-src 'none'"
basic_auth_users:
  alice: {bcrypt(PASSWORD)}
""")
        ne = NodeExporter(web) if os.access(NODE_EXPORTER, os.X_OK) else None
        if not ne:
            print("# node_exporter not installed: vigild checked alone")
        try:
            with Vigild(args=["--web-config-file", web]) as d:
                check(d.url.startswith("https://"), d.url)
                ne_url = f"https://127.0.0.1:{ne.port}" if ne else None
                got = compare(d.url, ne_url, pki, "client")
                check(got["no credentials"][0] == 401, "no credentials: %r" % (got["no credentials"],))
                check(got["no credentials"][1].get("www-authenticate") == "Basic", got["no credentials"])
                check(got["wrong password"][0] == 401 and got["unknown user"][0] == 401, got)
                check(got["right password"][0] == 200, got)
                # headers from the file, on answers and refusals alike
                for name in ("no credentials", "right password"):
                    h = got[name][1]
                    check(h.get("x-frame-options") == "deny", "%s: %r" % (name, h))
                    check(h.get("content-security-policy") == "default-src 'none'", h)
                # no client certificate / a foreign CA: refused in the handshake, by both
                for cert in (None, "intruder"):
                    v = fetch(d.url, "/metrics", pki, cert, "alice", PASSWORD)
                    check(v[0] == "refused", "vigild, cert %s: %r" % (cert, v))
                    if ne:
                        n = fetch(ne_url, "/metrics", pki, cert, "alice", PASSWORD)
                        check(n[0] == "refused", "node_exporter, cert %s: %r" % (cert, n))
                # TLS 1.2 client against min_version TLS13: refused
                ctx = ssl.create_default_context(cafile=f"{pki}/ca.pem")
                ctx.load_cert_chain(f"{pki}/client.pem", f"{pki}/client.key")
                ctx.maximum_version = ssl.TLSVersion.TLSv1_2
                host, port = d.url.split("//")[1].rsplit(":", 1)
                try:
                    with socket.create_connection((host, int(port)), timeout=5) as s:
                        with ctx.wrap_socket(s, server_hostname=host):
                            pass
                    check(False, "TLS 1.2 accepted with min_version TLS13")
                except (ssl.SSLError, OSError):
                    pass
                # vigild specifics: the probes stay open; the role (viewer) decides the rest
                check(fetch(d.url, "/healthz", pki, "client")[0] == 200, "probe needs credentials")
                check(fetch(d.url, "/api/v1/gpus", pki, "client", "alice", PASSWORD)[0] == 200,
                      "viewer read")
                st = fetch(d.url, "/api/v1/config/reload", pki, "client", "alice", PASSWORD,
                           method="POST", body="{}")[0]
                check(st == 403, "viewer may not reload: %r" % st)
                rows = audit_rows(d)
                events = {(r["principal"], r["event"]) for r in rows}
                check(("anonymous", "auth_failure:bad_password") in events, events)
                check(("anonymous", "auth_failure:unknown_user") in events, events)
                check(("basic:alice", "forbidden") in events, events)
                check(not any(PASSWORD in json.dumps(r) for r in rows), "password in the audit trail")
                check(PASSWORD not in d.logs(), "password in the log")
        finally:
            if ne:
                ne.stop()
    finally:
        shutil.rmtree(pki, ignore_errors=True)


def test_plain_http_and_role():
    """Basic auth without TLS (the file has no tls_server_config), config key instead of the
    flag, web_config_role admin, and node_exporter again for the answers."""
    tmp = tempfile.mkdtemp(prefix="vigil-webcfg-")
    try:
        web = os.path.join(tmp, "web.yml")
        with open(web, "w") as f:
            f.write(f"basic_auth_users:\n  alice: {bcrypt(PASSWORD)}\n")
        ne = NodeExporter(web) if os.access(NODE_EXPORTER, os.X_OK) else None
        try:
            cfg = f"security:\n  web_config_file: {web}\n  web_config_role: admin\n"
            with Vigild(config=cfg) as d:
                got = compare(d.url, f"http://127.0.0.1:{ne.port}" if ne else None, None, None)
                check([got[n][0] for n, _, _ in CASES] == [401, 401, 200, 401], got)
                st = fetch(d.url, "/api/v1/config/reload", user="alice", password=PASSWORD,
                           method="POST", body="{}")[0]
                check(st in (200, 202), "admin basic user reload: %r" % st)
                check("web-config user authentication" in d.logs(), d.logs())
        finally:
            if ne:
                ne.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_bad_file_refused():
    tmp = tempfile.mkdtemp(prefix="vigil-webcfg-")
    try:
        web = os.path.join(tmp, "web.yml")
        with open(web, "w") as f:
            f.write("basic_auth_users:\n  alice: $2y$05$abc\nhttp_server_config:\n  bogus: 1\n")
        p = subprocess.run([VIGILD, "--simulate", "--listen", "127.0.0.1:0", "--socket", "",
                            "--data-dir", tmp, "--web-config-file", web],
                           capture_output=True, text=True, timeout=30)
        check(p.returncode != 0, "bad web config accepted")
        check(f"{web}:2:" in p.stdout + p.stderr, "no FILE:LINE: " + p.stdout + p.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_audit_bodies():
    body = {"gpu": 0, "xid": 79, "password": "hunter2", "nested": {"api_token": "t0k3n"}}
    for sensitive in (True, False):
        cfg = f"security:\n  audit: {{enabled: true, include_sensitive_data: {str(sensitive).lower()}}}\n"
        with Vigild(config=cfg) as d:
            code, out = unix(d, "POST", "/api/v1/inject", body)
            check(code in (200, 400), "inject: %d %s" % (code, out))
            rows = [r for r in audit_rows(d) if r["route"] == "/api/v1/inject"]
            check(rows, "no audit record for the inject")
            detail = rows[-1]["detail"]
            check("hunter2" not in detail and "t0k3n" not in detail, "secret recorded: " + detail)
            if sensitive:
                check('"xid":79' in detail and detail.count("<redacted>") == 2,
                      "body not recorded/scrubbed: %r" % detail)
            else:
                check("body=" not in detail and "xid" not in detail, "body recorded: %r" % detail)


if __name__ == "__main__":
    main([test_matches_node_exporter, test_plain_http_and_role, test_bad_file_refused,
          test_audit_bodies])
