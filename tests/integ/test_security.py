"""test_security.py — the secure API end to end: secure defaults, JWT negatives (each → 401, an
audit record, nothing leaked), roles, revocation, rate limits, the IP allowlist, the audit chain
(online and offline verify, tamper detection), malformed HTTP on raw sockets, and the one error
shape: every error status the server answers carries {"error": {"code": N, "message": "..."}}."""
import base64
import hashlib
import hmac
import json
import os
import re
import socket
import sqlite3
import subprocess
import time

from harness import Vigild, check, main, run_cli, VIGIL, wait_for

SECRET = "integ-secret-0123456789-abcdefghijklmnop"
AUTH = """
security:
  authentication: {enabled: true, method: jwt, jwt_secret: "${VIGIL_JWT_SECRET}", issuer: vigil-test, audience: vigild, leeway: 60s}
  authorization: {enabled: true}
  audit: {enabled: true, retention_days: 365}
"""


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def mint(claims, header=None, key=SECRET.encode()):
    h = b64(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    p = b64(json.dumps(claims).encode())
    sig = b64(hmac.new(key, (h + "." + p).encode(), hashlib.sha256).digest())
    return h + "." + p + "." + sig


def claims(**kw):
    now = int(time.time())
    c = {"sub": "alice", "role": "admin", "iss": "vigil-test", "aud": "vigild", "iat": now,
         "exp": now + 600, "jti": "j-" + str(time.monotonic_ns())}
    c.update(kw)
    return {k: v for k, v in c.items() if v is not None}


def req(d, method, path, token=None, body=None, headers=None):
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = "Bearer " + token
    return d.request(method, path, body, h)


def unix(d, method, path, body=None):
    p = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "-X", method, "--unix-socket", d.sock,
                        "http://localhost" + path] + (["-d", json.dumps(body)] if body else []),
                       capture_output=True, text=True, timeout=10)
    out, code = p.stdout.rsplit("\n", 1)
    return int(code), out


def audit_rows(d):
    code, out = unix(d, "GET", "/api/v1/audit?limit=10000")
    check(code == 200, "audit over the socket: %d %s" % (code, out))
    return json.loads(out)["records"]


def test_secure_defaults():
    with Vigild() as d:
        check("read-only without authentication" in d.logs(), "startup line missing:\n" + d.logs())
        st, hdr, _ = d.get("/api/v1/gpus")
        check(st == 200 and len(hdr.get("X-Request-Id", "")) == 32, "GET: %d %r" % (st, hdr))
        for path in ("/api/v1/config/reload", "/api/v1/tokens/revoke"):
            st, _, body = d.request("POST", path, {})
            check(st == 403, "POST %s over TCP without auth: %d" % (path, st))
        st, _, _ = d.get("/api/v1/audit")
        check(st == 403, "audit over TCP without auth: %d" % st)
        d.inject(gpu=0, xid=79)  # the --simulate exception
        code, out = unix(d, "GET", "/api/v1/config")
        check(code == 200 and json.loads(out)["security"]["metrics_public"] is True, out[:200])
        rows = audit_rows(d)
        check(any(r["status"] == 403 and r["route"] == "/api/v1/config/reload" for r in rows),
              "denial not audited: %r" % rows)
        check(any(r["route"] == "/api/v1/inject" and r["status"] == 200 for r in rows),
              "mutation not audited")


def test_jwt_negatives():
    env = {"VIGIL_JWT_SECRET": SECRET}
    with Vigild(config=AUTH, env=env) as d:
        now = int(time.time())
        good = mint(claims())
        st, _, _ = req(d, "GET", "/api/v1/config", good)
        check(st == 200, "valid admin token: %d" % st)
        rsa = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
                             capture_output=True).stdout
        pub = subprocess.run(["openssl", "pkey", "-pubout"], input=rsa, capture_output=True).stdout
        revoked = mint(claims(jti="to-revoke"))
        cases = {
            "expired": mint(claims(exp=now - 120, iat=now - 600)),
            "not_yet_valid": mint(claims(nbf=now + 600)),
            "iat_in_future": mint(claims(iat=now + 600)),
            "bad_issuer": mint(claims(iss="evil")),
            "bad_audience": mint(claims(aud="other")),
            "alg_none": mint(claims(), {"alg": "none", "typ": "JWT"})[:-10] ,
            "alg_mismatch": mint(claims(), {"alg": "RS256", "typ": "JWT"}, pub),
            "bad_signature": mint(claims(), key=b"x" * 40),
            "truncated": good[:-6],
            "garbage": "%%%%.%%%%.%%%%",
            "huge": "a" * 9000,
            "missing_role": mint(claims(role=None)),
            "unknown_role": mint(claims(role="root")),
            "revoked": revoked,
        }
        code, out = unix(d, "POST", "/api/v1/tokens/revoke", {"jti": "to-revoke"})
        check(code == 200, "revoke: %d %s" % (code, out))
        for name, tok in cases.items():
            st, hdr, body = req(d, "GET", "/api/v1/gpus", tok)
            check(st == 401, "%s: expected 401, got %d %s" % (name, st, body[:200]))
            check(tok.encode()[:40] not in body, "%s: token echoed" % name)
        rows = audit_rows(d)
        fails = [r for r in rows if r["event"].startswith("auth_failure")]
        check(len(fails) >= len(cases), "expected %d auth_failure records, got %d" % (len(cases), len(fails)))
        # roles
        viewer = mint(claims(role="viewer"))
        check(req(d, "GET", "/api/v1/gpus", viewer)[0] == 200, "viewer read")
        check(req(d, "POST", "/api/v1/inject", viewer, {"gpu": 0, "xid": 79})[0] == 403, "viewer inject")
        check(req(d, "POST", "/api/v1/inject", None, {"gpu": 0, "xid": 79})[0] == 401, "anon inject")
        op = mint(claims(role="operator"))
        check(req(d, "GET", "/api/v1/audit", op)[0] == 403, "operator audit")
        check(req(d, "GET", "/metrics")[0] == 200, "metrics public")
        check(req(d, "GET", "/healthz")[0] == 200, "healthz open")
        st, _, body = req(d, "GET", "/api/v1/config", good)
        check(SECRET.encode() not in body and b"<redacted>" in body, "config not redacted")
        # a CLI-minted token works
        p = subprocess.run([VIGIL, "token", "create", "--role", "viewer", "--ttl", "1h",
                            "--issuer", "vigil-test", "--audience", "vigild"],
                           capture_output=True, text=True, env=dict(os.environ, **env))
        check(p.returncode == 0, p.stderr)
        check(req(d, "GET", "/api/v1/gpus", p.stdout.strip())[0] == 200, "cli token")
        db = os.path.join(d.data, "vigil.db")
        d.stop()
        # nothing leaked: not the secret, not any token, in the log or the database files
        blobs = d.logs().encode()
        for f in os.listdir(d.data):
            if f.startswith("vigil.db"):
                blobs += open(os.path.join(d.data, f), "rb").read()
        check(SECRET.encode() not in blobs, "secret leaked")
        for tok in [good, viewer, op] + list(cases.values()):
            if len(tok) > 30:
                check(tok.encode()[-30:] not in blobs, "token leaked")
        r = run_cli("audit", "verify", "--db", db)
        check(r.returncode == 0 and "intact" in r.stdout, r.stdout + r.stderr)
        con = sqlite3.connect(db)
        con.execute("UPDATE audit_log SET status = 200 WHERE seq = 2")
        con.commit()
        con.close()
        r = run_cli("audit", "verify", "--db", db)
        check(r.returncode == 1 and "BROKEN" in r.stdout, "tamper not detected: " + r.stdout)


def test_rate_limit_and_allowlist():
    cfg = """
security:
  network: {rate_limiting: {enabled: true, requests_per_minute: 60, burst: 5}}
"""
    with Vigild(config=cfg) as d:
        codes = [d.get("/api/v1/gpus")[0] for _ in range(8)]
        check(codes[:5] == [200] * 5 and codes[5:] == [429] * 3, "codes %r" % codes)
        st, hdr, _ = d.get("/api/v1/gpus")
        check(st == 429 and int(hdr.get("Retry-After", "0")) >= 1, "Retry-After %r" % hdr)
        check(d.get("/healthz")[0] == 200, "healthz is never limited")
    cfg = """
security:
  network: {allowed_ips: ["10.0.0.0/8"]}
"""
    with Vigild(config=cfg) as d:
        try:
            st = d.get("/healthz")[0]
        except OSError:
            st = None
        check(st is None, "127.0.0.1 not in the allowlist but got %r" % st)
        check("not in allowed_ips" in d.logs(), "refusal not logged")
        check(unix(d, "GET", "/healthz")[0] == 200, "unix socket unaffected")


def raw(d, data, read=4096):
    host, port = d.url.split("//")[1].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(read)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out:
                break
        return out
    finally:
        s.close()


def status_of(resp):
    try:
        return int(resp.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def raw_all(d, data, unix_path=None):
    """Send data, read until the server closes (or 5 s): the whole answer."""
    if unix_path:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(unix_path)
    else:
        host, port = d.url.split("//")[1].rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=5)
    out, closed = b"", False
    try:
        s.sendall(data)
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            out += chunk
    finally:
        s.close()
    return out, closed


def test_malformed_http():
    """What libmicrohttpd would refuse with its own HTML page or a silent close is the JSON error
    with the right status, Connection: close, and the connection closed (docs/api.md)."""
    with Vigild(config="http: {max_request_body: 1024}\n") as d:
        cases = [
            ("no Host on HTTP/1.1", b"GET /healthz HTTP/1.1\r\n\r\n", 400),
            ("bad request line", b"GARBAGE\r\n\r\n", 400),
            ("HTTP/0.9 line", b"GET /healthz\r\n\r\n", 400),
            ("HTTP/2.0", b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505),
            ("h2 prior knowledge", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
            ("NUL in a header value", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
            ("bad Content-Length", b"POST /api/v1/inject HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n", 400),
            ("two Content-Lengths", b"POST /api/v1/inject HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
             b"Content-Length: 3\r\n\r\n{}", 400),
            ("huge header", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 100000 + b"\r\n\r\n", 431),
            ("huge URL", b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
            ("body too big", b"POST /api/v1/inject HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"{" * 5000, 413),
        ]
        for name, data, want in cases:
            out, closed = raw_all(d, data)
            head, _, body = out.partition(b"\r\n\r\n")
            got = status_of(out)
            check(got == want, "%s: expected %d, got %r: %r" % (name, want, got, out[:200]))
            try:
                j = json.loads(body)
            except ValueError:
                j = None
            check(isinstance(j, dict) and j.get("error", {}).get("code") == want
                  and j["error"].get("message"), "%s: not the JSON error: %r" % (name, body[:200]))
            check(b"application/json" in head, "%s: Content-Type: %r" % (name, head))
            check(re.search(rb"X-Request-Id: [0-9a-f]{32}\r\n", head + b"\r\n") is not None,
                  "%s: no X-Request-Id in %r" % (name, head))
            if want != 413:  # refused before framing: the connection cannot go on
                check(b"Connection: close" in head and closed, "%s: connection not closed" % name)
        # the unix socket is a plain listener too
        out, closed = raw_all(d, b"GARBAGE\r\n\r\n", unix_path=d.sock)
        check(status_of(out) == 400 and b'"code":400' in out and closed,
              "unix socket: %r" % out[:200])
        # a good request on the same listener still works, also sent in pieces
        host, port = d.url.split("//")[1].rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=5)
        try:
            for part in (b"GET /hea", b"lthz HTTP/1.1\r\nHo", b"st: x\r\nConnection: close\r\n\r\n"):
                s.sendall(part)
                time.sleep(0.02)
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        finally:
            s.close()
        check(status_of(out) == 200 and b'"ok"' in out, "request in pieces: %r" % out[:200])


def check_error_shape(name, st, hdr, body, want):
    check(st == want, "%s: expected %d, got %d %s" % (name, want, st, body[:200]))
    check(hdr.get("Content-Type", "").startswith("application/json"),
          "%s: Content-Type %r" % (name, hdr.get("Content-Type")))
    check(len(hdr.get("X-Request-Id", "")) == 32, "%s: no X-Request-Id" % name)
    try:
        j = json.loads(body)
    except ValueError:
        j = None
    ok = (isinstance(j, dict) and list(j) == ["error"] and isinstance(j["error"], dict)
          and sorted(j["error"]) == ["code", "message"] and j["error"]["code"] == want
          and isinstance(j["error"]["message"], str) and j["error"]["message"])
    check(ok, "%s: body is not the error shape: %r" % (name, body[:300]))


def test_error_shape():
    """Each error status of docs/api.md, produced for real, answers the one JSON error shape."""
    cfg = AUTH + """  network: {rate_limiting: {enabled: true, requests_per_minute: 60, burst: 10}}
http: {max_request_body: 1024}
"""
    with Vigild(config=cfg, env={"VIGIL_JWT_SECRET": SECRET}) as d:
        admin = mint(claims())
        viewer = mint(claims(sub="bob", role="viewer"))
        cases = [
            ("400 bad query", "GET", "/api/v1/gpus?fields=NO_SUCH_FIELD", admin, None, 400),
            ("401 no token", "GET", "/api/v1/gpus", None, None, 401),
            ("403 viewer reload", "POST", "/api/v1/config/reload", viewer, {}, 403),
            ("404 no endpoint", "GET", "/nope", None, None, 404),
            ("404 no GPU", "GET", "/api/v1/gpus/99", admin, None, 404),
            ("405 method", "DELETE", "/api/v1/gpus", admin, None, 405),
            ("413 body", "POST", "/api/v1/inject", admin, "{" * 2000, 413),
            ("414 path", "GET", "/" + "a" * 1100, None, None, 414),
        ]
        for name, method, path, tok, body, want in cases:
            st, hdr, out = req(d, method, path, tok, body)
            check_error_shape(name, st, hdr, out, want)
            if want == 405:
                check("GET" in hdr.get("Allow", ""), "405 without Allow: %r" % hdr)
            if want == 401:
                check("WWW-Authenticate" not in hdr, "JWT 401 must not ask for Basic")
        for _ in range(20):
            st, hdr, out = req(d, "GET", "/api/v1/fields", admin)
            if st != 200:
                break
        check_error_shape("429 rate limited", st, hdr, out, 429)
        check(int(hdr.get("Retry-After", "0")) >= 1, "429 without Retry-After: %r" % hdr)


if __name__ == "__main__":
    main([test_secure_defaults, test_jwt_negatives, test_rate_limit_and_allowlist, test_malformed_http,
          test_error_shape])
