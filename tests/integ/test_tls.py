"""test_tls.py — HTTPS: TLS 1.2/1.3 only, mTLS enforced per request (no cert / foreign CA / good
cert), certificate hot reload on SIGHUP (a bad new certificate keeps the old one), and sslscan /
testssl.sh when installed. Test keys are generated here with the openssl CLI, never committed."""
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import warnings

from harness import Vigild, check, main, skip_part, wait_for


def sh(*args):
    subprocess.run(args, check=True, capture_output=True)


def make_pki(d):
    def ca(name):
        sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.pem", "-days", "2", "-subj", f"/CN={name}")

    def leaf(name, issuer, ext):
        sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr", "-subj", f"/CN={name}")
        with open(f"{d}/{name}.ext", "w") as f:
            f.write(ext)
        sh("openssl", "x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/{issuer}.pem", "-CAkey",
           f"{d}/{issuer}.key", "-CAcreateserial", "-out", f"{d}/{name}.pem", "-days", "2",
           "-extfile", f"{d}/{name}.ext")

    ca("ca")
    ca("evil")
    leaf("server", "ca", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    leaf("server2", "ca", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    leaf("client", "ca", "extendedKeyUsage=clientAuth\n")
    leaf("intruder", "evil", "extendedKeyUsage=clientAuth\n")


def get(url, pki, cert=None, path="/api/v1/gpus", maxver=None):
    host, port = url.split("//")[1].rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=f"{pki}/ca.pem")
    if cert:
        ctx.load_cert_chain(f"{pki}/{cert}.pem", f"{pki}/{cert}.key")
    if maxver:
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = maxver
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname=host) as t:
            t.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while True:
                c = t.recv(65536)
                if not c:
                    break
                data += c
            serial = t.getpeercert()["serialNumber"]
    return int(data.split(b" ", 2)[1]), serial, data


def test_mtls_and_reload():
    warnings.simplefilter("ignore", DeprecationWarning)  # we ask for TLS 1.0/1.1 on purpose
    pki = tempfile.mkdtemp(prefix="vigil-pki-")
    try:
        make_pki(pki)
        shutil.copy(f"{pki}/server.pem", f"{pki}/live.pem")
        shutil.copy(f"{pki}/server.key", f"{pki}/live.key")
        cfg = f"""
security:
  tls: {{enabled: true, cert_file: {pki}/live.pem, key_file: {pki}/live.key, ca_file: {pki}/ca.pem, client_auth: require}}
"""
        with Vigild(config=cfg) as d:
            check(d.url.startswith("https://"), "url " + d.url)
            st, serial1, _ = get(d.url, pki, "client")
            check(st == 200, "good client cert: %d" % st)
            st, _, _ = get(d.url, pki, None)
            check(st == 403, "no client cert: %d" % st)
            try:
                st = get(d.url, pki, "intruder")[0]
            except (ssl.SSLError, OSError):
                st = "handshake refused"
            check(st in (403, "handshake refused"), "foreign CA: %r" % st)
            for ver in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
                try:
                    st = get(d.url, pki, "client", maxver=ver)[0]
                except (ssl.SSLError, OSError):
                    st = None
                check(st is None, "%s accepted" % ver)
            # hot reload: a new certificate is served without a restart
            shutil.copy(f"{pki}/server2.pem", f"{pki}/live.pem")
            shutil.copy(f"{pki}/server2.key", f"{pki}/live.key")
            d.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: get(d.url, pki, "client")[1] != serial1, 5, "the new certificate")
            serial2 = get(d.url, pki, "client")[1]
            # a bad certificate keeps the old one
            with open(f"{pki}/live.pem", "w") as f:
                f.write("not a certificate\n")
            d.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "keeping the old one" in d.logs(), 5, "the reload error")
            st, serial3, _ = get(d.url, pki, "client")
            check(st == 200 and serial3 == serial2, "bad cert replaced the good one")
            if shutil.which("sslscan"):
                host, port = d.url.split("//")[1].rsplit(":", 1)
                out = subprocess.run(["sslscan", "--no-colour", f"{host}:{port}"], capture_output=True,
                                     text=True, timeout=60).stdout
                for proto in ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1"):
                    line = [l for l in out.splitlines() if l.startswith(proto)]
                    check(not line or "disabled" in line[0], "sslscan: %s" % line)
                for weak in ("RC4", "CBC", "3DES", "NULL", "EXP"):
                    check(not any(("Accepted" in l or "Preferred" in l) and weak in l
                                  for l in out.splitlines()), "sslscan: weak cipher " + weak)
            else:
                skip_part("sslscan not installed (scripts/install-deps.sh TEST list)")
            ts = shutil.which("testssl") or shutil.which("testssl.sh")
            if ts:
                p = subprocess.run([ts, "--quiet", "--color", "0", "--nodns", "min", "--warnings", "off",
                                    "-p", "--ip", "one", "--mode", "serial", d.url.split("//")[1]],
                                   capture_output=True, text=True, timeout=120)
                for proto in ("SSLv2", "SSLv3", "TLS 1 ", "TLS 1.1"):
                    bad = [l for l in p.stdout.splitlines() if l.strip().startswith(proto) and "offered" in l
                           and "not offered" not in l]
                    check(not bad, "testssl: %r" % bad)
            else:
                skip_part("testssl.sh not installed (scripts/install-deps.sh TEST list)")
    finally:
        shutil.rmtree(pki, ignore_errors=True)


def test_plain_http_to_tls_port():
    """Plain HTTP sent to the TLS port is answered as Go's server (dcgm-exporter) answers it: 400
    with "Client sent an HTTP request to an HTTPS server.", not a silently closed connection;
    TLS clients on the same port are unaffected."""
    pki = tempfile.mkdtemp(prefix="vigil-pki-")
    try:
        make_pki(pki)
        cfg = f"""
security:
  tls: {{enabled: true, cert_file: {pki}/server.pem, key_file: {pki}/server.key}}
"""
        with Vigild(config=cfg) as d:
            host, port = d.url.split("//")[1].rsplit(":", 1)
            for _ in range(5):
                with socket.create_connection((host, int(port)), timeout=5) as s:
                    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                    data = b""
                    while True:
                        try:
                            c = s.recv(4096)
                        except ConnectionResetError:
                            break
                        if not c:
                            break
                        data += c
                check(data.startswith(b"HTTP/1.0 400 Bad Request\r\n")
                      and b"Client sent an HTTP request to an HTTPS server." in data,
                      "plain HTTP on the TLS port got %r" % data[:200])
            st, _, _ = get(d.url, pki, None, path="/healthz")
            check(st == 200, "TLS after plain attempts: %d" % st)
    finally:
        shutil.rmtree(pki, ignore_errors=True)


if __name__ == "__main__":
    main([test_mtls_and_reload, test_plain_http_to_tls_port])
