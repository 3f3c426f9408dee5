"""test_webconfig_parity.py — exporter-toolkit's web-config as upstream reads it, with real TLS
handshakes (python ssl): upstream's own test files (tests/data/exporter-toolkit, from its
web/testdata) served by vigild with upstream's client certificates — client_ca_file optional where
Go allows it, client_allowed_sans, inline cert/key/client_ca, rate_limit; a certificate GnuTLS
cannot serve with (RSA, keyUsage keyEncipherment only: upstream's own server.crt and one made here
by openssl) refused at start and on reload with a message that says so; TLS settings changed in
the file (certificate, client CA, min_version) applied to new connections on POST
/api/v1/config/reload and SIGHUP, all or nothing; and basic auth with a high bcrypt cost: an
unknown user costs what a known one costs, and slow verifications never hold every HTTP thread."""
import base64
import http.client
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
from test_webconfig import NODE_EXPORTER, NodeExporter, bcrypt

UPSTREAM = os.path.join(os.environ.get("VIGIL_SOURCE_DIR",
                                       os.path.join(os.path.dirname(__file__), "..", "..")),
                        "tests", "data", "exporter-toolkit")


def sh(*args):
    subprocess.run(args, check=True, capture_output=True)


def self_signed(d, name, key="ec", ext=None, cn="localhost"):
    """A self-signed server certificate for 127.0.0.1 (d/name.crt, d/name.key)."""
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if key == "ec" else \
        ["-newkey", "rsa:2048"]
    exts = ["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"]
    for e in ext or []:
        exts += ["-addext", e]
    sh("openssl", "req", "-x509", *newkey, "-nodes", "-keyout", f"{d}/{name}.key", "-out",
       f"{d}/{name}.crt", "-days", "2", "-subj", f"/CN={cn}", *exts)


def tmpdir_with_upstream():
    """A scratch directory holding upstream's files, with server.crt/server.key replaced by a
    pair GnuTLS can serve (upstream's is RSA keyEncipherment-only: see test_keyusage_refused)."""
    d = tempfile.mkdtemp(prefix="vigil-wcparity-")
    for f in os.listdir(UPSTREAM):
        shutil.copy(os.path.join(UPSTREAM, f), d)
    self_signed(d, "server")
    return d


def fetch(url, path="/api/v1/gpus", cafile=None, cert=None, user=None, password=None,
          maxver=None):
    """(status, serial of the server's certificate) or ("refused", error) when the handshake, or
    the first read after it (TLS 1.3 sends a refusal of the client certificate then), fails."""
    host, port = url.split("//")[1].rsplit(":", 1)
    hdrs = {"Connection": "close"}
    if user is not None:
        hdrs["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    try:
        serial = None
        if url.startswith("https"):
            ctx = ssl.create_default_context(cafile=cafile)
            if cert:
                ctx.load_cert_chain(f"{cert}.pem" if os.path.exists(f"{cert}.pem") else f"{cert}.crt",
                                    f"{cert}.key")
            if maxver:
                ctx.maximum_version = maxver
            c = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=30)
        else:
            c = http.client.HTTPConnection(host, int(port), timeout=30)
        c.request("GET", path, headers=hdrs)
        if url.startswith("https"):
            serial = c.sock.getpeercert()["serialNumber"]
        r = c.getresponse()
        r.read()
        c.close()
        return r.status, serial
    except (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected, OSError) as e:
        return "refused", repr(e)


def serial_of(crt):
    out = subprocess.run(["openssl", "x509", "-in", crt, "-noout", "-serial"], capture_output=True,
                         text=True, check=True).stdout
    return out.strip().split("=", 1)[1].upper()


def refused_start(web, tmp):
    p = subprocess.run([VIGILD, "--simulate", "--listen", "127.0.0.1:0", "--socket", "",
                        "--data-dir", tmp, "--web-config-file", web],
                       capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout + p.stderr


def reload_over_socket(d):
    p = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "-X", "POST", "--unix-socket", d.sock,
                        "-H", "Content-Type: application/json", "-d", "{}",
                        "http://localhost/api/v1/config/reload"],
                       capture_output=True, text=True, timeout=90)
    out, code = p.stdout.rsplit("\n", 1)
    return int(code), json.loads(out) if out.strip() else {}


def test_upstream_files_served():
    d = tmpdir_with_upstream()
    ca = f"{d}/server.crt"
    try:
        # RequireAnyClientCert, no client_ca_file: any certificate, none verified (Go's rule)
        with Vigild(args=["--web-config-file", f"{d}/tls_config_noAuth.requireanyclientcert.good.yml"]) as v:
            check(v.url.startswith("https://"), v.url)
            st = fetch(v.url, cafile=ca, cert=f"{d}/client_selfsigned")
            check(st[0] == 200, "RequireAnyClientCert, a self-signed client certificate: %r" % (st,))
            st = fetch(v.url, cafile=ca)
            check(st[0] == "refused", "RequireAnyClientCert, no client certificate: %r" % (st,))
        # RequireAndVerifyClientCert against client_selfsigned.pem: that certificate passes,
        # another one does not
        with Vigild(args=["--web-config-file",
                          f"{d}/tls_config_noAuth.requireandverifyclientcert.good.yml"]) as v:
            st = fetch(v.url, cafile=ca, cert=f"{d}/client_selfsigned")
            check(st[0] == 200, "RequireAndVerifyClientCert, the CA's certificate: %r" % (st,))
            st = fetch(v.url, cafile=ca, cert=f"{d}/client2_selfsigned")
            check(st[0] == "refused", "RequireAndVerifyClientCert, a foreign certificate: %r" % (st,))
        # client_allowed_sans: client2 carries DNS:test3, listed in .good, not in .bad
        with Vigild(args=["--web-config-file", f"{d}/web_config_auth_client_san.good.yaml"]) as v:
            st = fetch(v.url, cafile=ca, cert=f"{d}/client2_selfsigned")
            check(st[0] == 200, "client_allowed_sans with test3: %r" % (st,))
        with Vigild(args=["--web-config-file", f"{d}/web_config_auth_client_san.bad.yaml"]) as v:
            st = fetch(v.url, cafile=ca, cert=f"{d}/client2_selfsigned")
            check(st[0] == "refused", "client_allowed_sans without test3: %r" % (st,))
            check(fetch(v.url, cafile=ca)[0] == "refused", "no certificate accepted")
        # VerifyClientCertIfGiven without client_ca_file (upstream's web_config_noAuth.good.yml):
        # a client without a certificate is served; one with a certificate no system CA signed
        # is not (Go verifies against the system's roots)
        with Vigild(args=["--web-config-file", f"{d}/web_config_noAuth.good.yml"]) as v:
            st = fetch(v.url, cafile=ca)
            check(st[0] == 200, "VerifyClientCertIfGiven, no certificate: %r" % (st,))
            st = fetch(v.url, cafile=ca, cert=f"{d}/client_selfsigned")
            check(st[0] == "refused", "VerifyClientCertIfGiven, unverifiable: %r" % (st,))
        # Debian's node_exporter (exporter-toolkit of its day: no SANs, inline PEM or
        # rate_limit yet) as the oracle for the files it reads: the same outcome per client
        if os.access(NODE_EXPORTER, os.X_OK):
            for f in ("tls_config_noAuth.requireanyclientcert.good.yml",
                      "tls_config_noAuth.requireandverifyclientcert.good.yml",
                      "web_config_noAuth.good.yml"):
                ne = NodeExporter(f"{d}/{f}")
                try:
                    with Vigild(args=["--web-config-file", f"{d}/{f}"]) as v:
                        for cert in (None, "client_selfsigned", "client2_selfsigned"):
                            c = f"{d}/{cert}" if cert else None
                            got = fetch(v.url, "/metrics", cafile=ca, cert=c)[0]
                            want = fetch(f"https://127.0.0.1:{ne.port}", "/metrics", cafile=ca,
                                         cert=c)[0]
                            check(got == want, "%s, client %s: vigild %r, node_exporter %r"
                                  % (f, cert, got, want))
                finally:
                    ne.stop()
        else:
            print("# node_exporter not installed: no oracle for the client-certificate cases")
        # rate_limit {interval: 1s, burst: 0}: Go's limiter then allows nothing
        with Vigild(args=["--web-config-file", f"{d}/web_config_rate_limiter_one_second.yaml"]) as v:
            st, hdr, body = v.request("GET", "/metrics")
            check(st == 429 and b"Too Many Requests" in body, "rate_limit burst 0: %r %r" % (st, body))
            check(v.get("/healthz")[0] == 200, "probes are never rate limited")
        # rate_limit {interval: 0}: no limiter
        with Vigild(args=["--web-config-file", f"{d}/web_config_rate_limiter_nonblocking.yaml"]) as v:
            check(all(v.get("/metrics")[0] == 200 for _ in range(10)), "interval 0 limited")
        # rate_limit {interval: 1h, burst: 3}: three requests, then 429 with Retry-After
        with open(f"{d}/rl3.yml", "w") as f:
            f.write("rate_limit:\n  interval: 1h\n  burst: 3\n")
        with Vigild(args=["--web-config-file", f"{d}/rl3.yml"]) as v:
            got = [v.get("/api/v1/gpus")[0] for _ in range(4)]
            check(got == [200, 200, 200, 429], "burst 3: %r" % got)
            check("rate_limit 3 per 3600000 ms" in v.logs(), "start log: " + v.logs())
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_inline_pem():
    """cert, key and client_ca as PEM text in the file, as upstream's *Inline*.good.yml do."""
    d = tmpdir_with_upstream()
    try:
        def block(path):
            with open(path) as f:
                return "".join("    " + line for line in f)
        web = f"{d}/inline.yml"
        with open(web, "w") as f:
            f.write("tls_server_config:\n  cert: |\n" + block(f"{d}/server.crt") +
                    "  key: |\n" + block(f"{d}/server.key") +
                    "  client_ca: |\n" + block(f"{d}/client_selfsigned.pem") +
                    "  client_auth_type: RequireAndVerifyClientCert\n")
        with Vigild(args=["--web-config-file", web]) as v:
            st = fetch(v.url, cafile=f"{d}/server.crt", cert=f"{d}/client_selfsigned")
            check(st[0] == 200, "inline pair and CA: %r" % (st,))
            check(st[1] == serial_of(f"{d}/server.crt"), "served %r" % (st,))
            st = fetch(v.url, cafile=f"{d}/server.crt", cert=f"{d}/client2_selfsigned")
            check(st[0] == "refused", "inline client_ca let a foreign certificate in: %r" % (st,))
        # cert from a file, key inline (upstream's requireanyclientcertkeyinline, with our pair)
        with open(f"{d}/mixed.yml", "w") as f:
            f.write("tls_server_config:\n  cert_file: server.crt\n  key: |\n" +
                    block(f"{d}/server.key") + "  client_auth_type: RequireAnyClientCert\n")
        with Vigild(args=["--web-config-file", f"{d}/mixed.yml"]) as v:
            st = fetch(v.url, cafile=f"{d}/server.crt", cert=f"{d}/client2_selfsigned")
            check(st[0] == 200, "cert_file with inline key: %r" % (st,))
        # both forms of one setting: refused, naming them
        with open(f"{d}/both.yml", "w") as f:
            f.write("tls_server_config:\n  cert_file: server.crt\n  cert: |\n" +
                    block(f"{d}/server.crt") + "  key_file: server.key\n")
        rc, out = refused_start(f"{d}/both.yml", d)
        check(rc != 0 and "both cert_file and cert are given" in out, out)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_keyusage_refused():
    """An RSA certificate with keyUsage keyEncipherment only: refused at start (upstream's own
    server.crt is one, inline and as a file) and on reload, the running certificate kept."""
    d = tmpdir_with_upstream()
    try:
        self_signed(d, "enc", key="rsa", ext=["keyUsage=critical,keyEncipherment"])
        rc, out = refused_start(f"{UPSTREAM}/web_config_noAuth_tlsInline.good.yml", d)
        check(rc != 0 and "keyEncipherment without digitalSignature" in out,
              "upstream's inline keyEncipherment-only certificate: rc %d\n%s" % (rc, out))
        check("(inline cert)" in out, out)
        web = f"{d}/web.yml"
        with open(web, "w") as f:
            f.write("tls_server_config:\n  cert_file: enc.crt\n  key_file: enc.key\n")
        rc, out = refused_start(web, d)
        check(rc != 0 and "enc.crt' has keyUsage keyEncipherment without digitalSignature" in out
              and "reissue it with keyUsage digitalSignature" in out, "rc %d\n%s" % (rc, out))
        # the same pair with digitalSignature is served
        self_signed(d, "sig", key="rsa", ext=["keyUsage=critical,digitalSignature,keyEncipherment"])
        with open(web, "w") as f:
            f.write("tls_server_config:\n  cert_file: sig.crt\n  key_file: sig.key\n")
        with Vigild(args=["--web-config-file", web]) as v:
            st = fetch(v.url, cafile=f"{d}/sig.crt")
            check(st[0] == 200, "RSA digitalSignature certificate: %r" % (st,))
            with open(web, "w") as f:
                f.write("tls_server_config:\n  cert_file: enc.crt\n  key_file: enc.key\n")
            code, res = reload_over_socket(v)
            check(code == 400 and not res.get("reloaded"), "reload with enc.crt: %d %r" % (code, res))
            check("keyEncipherment without digitalSignature" in res["error"]["message"], res)
            st = fetch(v.url, cafile=f"{d}/sig.crt")
            check(st[0] == 200 and st[1] == serial_of(f"{d}/sig.crt"), "old pair kept: %r" % (st,))
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_reload_applies_tls():
    """Certificate, client CA and min_version changed in the file reach new connections after
    POST /api/v1/config/reload and SIGHUP; a broken file changes nothing and the answer says so."""
    d = tmpdir_with_upstream()
    try:
        self_signed(d, "a")
        self_signed(d, "b")
        with open(f"{d}/both.crt", "w") as f:
            f.write(open(f"{d}/a.crt").read() + open(f"{d}/b.crt").read())
        trust = f"{d}/both.crt"
        web = f"{d}/web.yml"

        def write(cert, ca, minv):
            with open(web + ".new", "w") as f:
                f.write(f"tls_server_config:\n  cert_file: {cert}.crt\n  key_file: {cert}.key\n"
                        f"  client_ca_file: {ca}\n  client_auth_type: RequireAndVerifyClientCert\n"
                        f"  min_version: {minv}\n")
            os.replace(web + ".new", web)

        write("a", "client_selfsigned.pem", "TLS12")
        c1, c2 = f"{d}/client_selfsigned", f"{d}/client2_selfsigned"
        with Vigild(args=["--web-config-file", web]) as v:
            st = fetch(v.url, cafile=trust, cert=c1, maxver=ssl.TLSVersion.TLSv1_2)
            check(st == (200, serial_of(f"{d}/a.crt")), "start, TLS 1.2: %r" % (st,))
            check(fetch(v.url, cafile=trust, cert=c2)[0] == "refused", "client2 before the change")
            # certificate b, CA client2, TLS 1.3 only: POST /api/v1/config/reload
            write("b", "client2_selfsigned.pem", "TLS13")
            code, res = reload_over_socket(v)
            check(code == 200 and res.get("reloaded"), "reload: %d %r" % (code, res))
            check(res.get("pending_restart") == [], "TLS settings left pending: %r" % res)
            st = fetch(v.url, cafile=trust, cert=c2)
            check(st == (200, serial_of(f"{d}/b.crt")), "after reload, client2: %r" % (st,))
            check(fetch(v.url, cafile=trust, cert=c1)[0] == "refused", "old client CA still trusted")
            st = fetch(v.url, cafile=trust, cert=c2, maxver=ssl.TLSVersion.TLSv1_2)
            check(st[0] == "refused", "TLS 1.2 after min_version TLS13: %r" % (st,))
            # a broken file (key missing): refused, all of it; b, client2, TLS13 keep running
            with open(web, "w") as f:
                f.write("tls_server_config:\n  cert_file: a.crt\n  client_auth_type: RequireAnyClientCert\n")
            code, res = reload_over_socket(v)
            check(code == 400 and res.get("reloaded") is False, "broken file: %d %r" % (code, res))
            check("missing one of key or key_file" in res["error"]["message"], res)
            st = fetch(v.url, cafile=trust, cert=c2)
            check(st == (200, serial_of(f"{d}/b.crt")), "after a refused reload: %r" % (st,))
            check(fetch(v.url, cafile=trust, cert=c1)[0] == "refused", "refused reload half-applied")
            # back to a, client_selfsigned, TLS12 by SIGHUP
            write("a", "client_selfsigned.pem", "TLS12")
            v.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: fetch(v.url, cafile=trust, cert=c1, maxver=ssl.TLSVersion.TLSv1_2)
                     == (200, serial_of(f"{d}/a.crt")), 10, "SIGHUP to apply a, client1, TLS 1.2")
            check(fetch(v.url, cafile=trust, cert=c2)[0] == "refused", "client2 after SIGHUP")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def timed(url, user, password, path="/api/v1/gpus"):
    t = time.monotonic()
    st = fetch(url, path, user=user, password=password)[0]
    return st, time.monotonic() - t


def test_bcrypt_cost_and_threads():
    """alice and bob have bcrypt cost 14 (about a second here). An unknown user must cost what
    a known user costs: the ratio of their response times is what tells a name that exists from
    one that does not, so it is checked as a correctness property, with a generous bound (0.3x:
    each case is one bcrypt of the same cost, against nothing for a lookup that short-cuts) that
    a loaded machine cannot break, not as a latency target. Then several slow verifications at
    once: with http.threads 4, at most 3 run bcrypt; the rest answer 503 at once, and bob (cached)
    and /healthz are served while they run (tests/unit/test_webconfig.c checks the slots
    deterministically)."""
    tmp = tempfile.mkdtemp(prefix="vigil-wcparity-")
    try:
        web = f"{tmp}/web.yml"
        with open(web, "w") as f:
            f.write(f"basic_auth_users:\n  alice: {bcrypt('alice-pw', 14)}\n  bob: {bcrypt('bob-pw', 14)}\n")
        cfg = f"http:\n  threads: 4\nsecurity:\n  web_config_file: {web}\n"
        with Vigild(config=cfg) as v:
            known, unknown = [], []
            for _ in range(2):
                st, t = timed(v.url, "alice", "wrong")
                check(st == 401, "alice, wrong password: %r" % st)
                known.append(t)
                st, t = timed(v.url, "mallory", "wrong")
                check(st == 401, "unknown user: %r" % st)
                unknown.append(t)
            print("# cost-14 user %.3fs %.3fs, unknown user %.3fs %.3fs" % (*known, *unknown))
            check(min(unknown) >= 0.3 * max(known),
                  "an unknown user is told apart by timing: %r vs %r" % (unknown, known))
            check(min(known) >= 0.3 * max(unknown),
                  "a known user is told apart by timing: %r vs %r" % (known, unknown))
            check(timed(v.url, "bob", "bob-pw")[0] == 200, "bob")  # now cached
            check(timed(v.url, "bob", "bob-pw")[1] < min(known), "bob's success not cached")

            # libmicrohttpd hands connections to its threads unevenly (a thread may take
            # several at once), so the slots fill only when 4 threads got one each: a few rounds
            # of 8 until one answers 503; bob and /healthz must be served in every round
            seen = []
            for _ in range(4):
                results, done = [], threading.Event()

                def slow():
                    results.append(timed(v.url, "alice", "still wrong")[0])
                    if len(results) == 8:
                        done.set()
                threads = [threading.Thread(target=slow) for _ in range(8)]
                for t in threads:
                    t.start()
                wait_for(lambda: results or done.is_set(), 30, "a first answer")
                during = [fetch(v.url, "/metrics", user="bob", password="bob-pw")[0],
                          fetch(v.url, "/healthz")[0]]
                served_during = not done.is_set()
                for t in threads:
                    t.join(60)
                check(during == [200, 200], "bob's /metrics and /healthz while bcrypt ran: %r" % during)
                check(served_during, "the slow verifications ended before bob was served")
                check(set(results) <= {401, 503} and 401 in results, "slow checks: %r" % results)
                seen += results
                if 503 in results:
                    break
            check(503 in seen, "never more verifications than bcrypt slots: %r" % seen)
            check("auth_busy" in v.logs(), "503 not logged")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main([test_upstream_files_served, test_inline_pem, test_keyusage_refused,
          test_reload_applies_tls, test_bcrypt_cost_and_threads])
