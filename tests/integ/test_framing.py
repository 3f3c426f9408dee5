#!/usr/bin/env python3
"""test_framing.py — every request head is judged before libmicrohttpd parses it, not only the
first of a plain connection (docs/api.md, "Requests refused before routing"): a later request on a
keep-alive connection, pipelined requests, requests after Content-Length and chunked bodies, heads
that come in slow pieces, the unix socket and TLS; and the lines of a chunked body. A refused
request gets the JSON error with the right status after the answers to the requests before it,
Connection: close, and the connection closes; good requests around it are untouched."""
import json
import random
import re
import shutil
import socket
import ssl
import tempfile
import time

from harness import Vigild, check, main
from test_tls import make_pki

CHUNKED = b"POST /api/v1/inject HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
BAD = [
    ("bad request line", b"GARBAGE\r\n\r\n", 400),
    ("HTTP/0.9 line", b"GET /healthz\r\n\r\n", 400),
    ("HTTP/2.0", b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ("h2 prior knowledge", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    ("NUL in a header value", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
    ("header line without colon", b"GET /healthz HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", 400),
    ("bad Content-Length", b"POST /api/v1/inject HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n", 400),
    ("huge header", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 40000 + b"\r\n\r\n", 431),
    ("huge URL", b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    # more than libmicrohttpd's 32 KiB pool holds: its HTML 431, or no answer at all (arguments)
    ("101 header fields", b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"a%d:b\r\n" % i for i in range(100))
     + b"\r\n", 431),
    ("101 cookies", b"GET /healthz HTTP/1.1\r\nHost: x\r\nCookie: " + b"; ".join(b"c%d=v" % i for i in range(100))
     + b"\r\n\r\n", 431),
    ("101 query arguments", b"GET /healthz?" + b"&".join(b"a=b" for _ in range(101)) + b" HTTP/1.1\r\nHost: x\r\n\r\n",
     414),
    # chunked bodies libmicrohttpd would refuse with its HTML page
    ("chunk size not hex", CHUNKED + b"5\r\nabcde\r\nzz\r\n\r\n", 400),
    ("chunk data without a line end", CHUNKED + b"3\r\nabcX0\r\n\r\n", 400),
    ("trailer line without colon", CHUNKED + b"1\r\na\r\n0\r\nNoColon\r\n\r\n", 400),
    ("chunk size over 64 bits", CHUNKED + b"10000000000000000\r\n", 413),
]
GOOD = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


class Conn:
    """One connection, read response by response (every Vigil answer has a Content-Length)."""

    def __init__(self, sock):
        self.s, self.buf = sock, b""

    def send(self, data, pieces=1, pause=0.0):
        step = max(1, len(data) // pieces)
        for i in range(0, len(data), step):
            try:
                self.s.sendall(data[i:i + step])
            except (BrokenPipeError, ConnectionResetError, ssl.SSLEOFError):
                return  # refused and closed before all of it was sent: the answer is read next
            if pause:
                time.sleep(pause)

    def _more(self):
        try:
            c = self.s.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            c = b""
        if not c:
            raise EOFError
        self.buf += c

    def response(self):
        try:
            while b"\r\n\r\n" not in self.buf:
                self._more()
        except EOFError:
            check(False, "connection closed before an answer; got %r" % self.buf[:200])
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin1").split("\r\n")
        check(lines[0].startswith("HTTP/1.1 "), "not an HTTP/1.1 answer: %r" % head[:200])
        hdrs = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        n = int(hdrs.get("content-length", "-1"))
        check(n >= 0, "answer without Content-Length: %r" % head)
        self.buf = rest
        while len(self.buf) < n:
            try:
                self._more()
            except EOFError:
                check(False, "connection closed inside a body")
        body, self.buf = self.buf[:n], self.buf[n:]
        return int(lines[0].split(" ")[1]), hdrs, body

    def closed(self):
        """True when the server ends the connection (nothing more after what was read)."""
        try:
            self._more()
        except EOFError:
            return not self.buf
        except socket.timeout:
            return False
        return False

    def close(self):
        self.s.close()


def expect_ok(conn, what):
    st, hdrs, body = conn.response()
    check(st == 200 and hdrs.get("connection", "") != "close", "%s: %d %r %r" % (what, st, hdrs, body[:100]))


def expect_refusal(conn, want, what):
    st, hdrs, body = conn.response()
    check(st == want, "%s: status %d, want %d: %r" % (what, st, want, body[:200]))
    check(hdrs.get("content-type") == "application/json", "%s: content type %r" % (what, hdrs))
    check(len(hdrs.get("x-request-id", "")) == 32, "%s: no X-Request-Id: %r" % (what, hdrs))
    err = json.loads(body)["error"]
    check(err["code"] == want and err["message"], "%s: body %r" % (what, body))
    check(hdrs.get("connection") == "close", "%s: no Connection: close" % what)
    check(conn.closed(), "%s: connection left open after the refusal" % what)
    return err["message"]


def run_cases(connect, label):
    for name, raw, want in BAD:
        what = "%s, %s" % (label, name)
        # a later request of a keep-alive connection
        c = connect()
        try:
            c.send(GOOD)
            expect_ok(c, what + ": the good request before")
            c.send(raw)
            expect_refusal(c, want, what + " (second request)")
        finally:
            c.close()
        # pipelined behind two good ones, in one write: answered in order
        c = connect()
        try:
            c.send(GOOD + GOOD + raw + GOOD)
            expect_ok(c, what + ": first pipelined")
            expect_ok(c, what + ": second pipelined")
            expect_refusal(c, want, what + " (pipelined)")
        finally:
            c.close()


def test_plain_keepalive_and_pipelined():
    with Vigild(config="http: {max_request_body: 1024, connection_timeout: 2s}\n") as d:
        host, port = d.url.split("//")[1].rsplit(":", 1)

        def tcp():
            return Conn(socket.create_connection((host, int(port)), timeout=5))

        def unix():
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(5)
            s.connect(d.sock)
            return Conn(s)

        run_cases(tcp, "tcp")
        c = unix()
        try:
            c.send(GOOD)
            expect_ok(c, "unix: the good request before")
            c.send(b"GARBAGE\r\n\r\n")
            expect_refusal(c, 400, "unix, bad request line (second request)")
        finally:
            c.close()

        # bodies are skipped, never judged as heads: a Content-Length body and a chunked body
        # that hold what would be refused as a head, then a good and a bad request
        c = tcp()
        try:
            body = b"GARBAGE\r\n\r\n"
            c.send(b"POST /api/v1/inject HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(body) + body)
            st, _, _ = c.response()
            check(st == 400, "inject with a non-JSON body: %d (the body reached the handler)" % st)
            c.send(b"POST /api/v1/inject HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5;ext=1\r\nGARBA\r\n6\r\nGE\r\n\r\n\r\n0\r\nX-Trailer: 1\r\n\r\n")
            st, _, _ = c.response()
            check(st == 400, "chunked inject: %d" % st)
            c.send(GOOD)
            expect_ok(c, "after the bodies")
            c.send(b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n")
            expect_refusal(c, 505, "after the bodies")
        finally:
            c.close()

        # the most a head may hold: 100 fields (with cookies) and 100 query arguments in 16 KiB
        c = tcp()
        try:
            fields = b"".join(b"h%02d: %s\r\n" % (i, b"v" * 100) for i in range(97))
            head = (b"GET /healthz?" + b"&".join(b"a%d=b" % i for i in range(100)) + b" HTTP/1.1\r\nHost: x\r\n"
                    + b"Cookie: c=1\r\n" + fields)
            head += b"X-Pad: " + b"p" * (16384 - len(head) - 11) + b"\r\n\r\n"
            check(len(head) == 16384, "the head is %d bytes" % len(head))
            c.send(head)
            expect_ok(c, "a head at every limit")
            c.send(GOOD)
            expect_ok(c, "after a head at every limit")
        finally:
            c.close()

        # a Content-Length over http.max_request_body is refused when the head comes, not after an
        # upload of the whole body (before, a client that never sent it waited for the timeout)
        c = tcp()
        try:
            c.send(GOOD)
            expect_ok(c, "before a huge Content-Length")
            t0 = time.monotonic()
            c.send(b"POST /api/v1/inject HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n{\"gpu\"")
            msg = expect_refusal(c, 413, "a huge Content-Length")
            check(time.monotonic() - t0 < 1.5 and "1024" in msg, "413 after %.1f s: %s" % (time.monotonic() - t0, msg))
        finally:
            c.close()

        # a head in slow pieces (pauses far longer than a client would make) is judged whole
        c = tcp()
        try:
            c.send(GOOD, pieces=6, pause=0.05)
            expect_ok(c, "a good head in pieces")
            c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Name\r\n\r\n", pieces=5, pause=0.05)
            expect_refusal(c, 400, "a bad head in pieces")
        finally:
            c.close()
        # a head trickling in a byte at a time is held, so the trickle does not count as activity:
        # the connection closes at http.connection_timeout (2 s here), not when the client stops
        c = tcp()
        try:
            t0, gone = time.monotonic(), False
            for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
                try:
                    c.s.sendall(bytes([b]))
                except OSError:
                    gone = True
                    break
                c.s.settimeout(0.2)
                if c.closed():
                    gone = True
                    break
                if time.monotonic() - t0 > 8:
                    break
            check(gone and time.monotonic() - t0 < 6,
                  "a trickled head kept the connection %.1f s" % (time.monotonic() - t0))
        finally:
            c.close()
        # the daemon answers normally afterwards
        st, _, _ = d.get("/healthz")
        check(st == 200, "healthz afterwards: %d" % st)


def test_tls():
    pki = tempfile.mkdtemp(prefix="vigil-pki-")
    try:
        make_pki(pki)
        cfg = f"""
security:
  tls: {{enabled: true, cert_file: {pki}/server.pem, key_file: {pki}/server.key}}
http: {{max_request_body: 1024}}
"""
        with Vigild(config=cfg) as d:
            host, port = d.url.split("//")[1].rsplit(":", 1)
            ctx = ssl.create_default_context(cafile=f"{pki}/ca.pem")

            def tls():
                s = socket.create_connection((host, int(port)), timeout=5)
                return Conn(ctx.wrap_socket(s, server_hostname=host))

            # the first request of a TLS connection
            for name, raw, want in BAD:
                c = tls()
                try:
                    c.send(raw)
                    expect_refusal(c, want, "tls, %s (first request)" % name)
                finally:
                    c.close()
            run_cases(tls, "tls")
            c = tls()
            try:
                c.send(GOOD, pieces=4, pause=0.05)
                expect_ok(c, "tls: a good head in pieces")
            finally:
                c.close()
    finally:
        shutil.rmtree(pki, ignore_errors=True)


MUTATE_BASE = [
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n",
    b"POST /api/v1/inject HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\n\r\n{\"gpu\": 0.5}\n",
    b"POST /api/v1/inject HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"4\r\n{\"a\"\r\n1;x=y\r\n}\r\n0\r\nT: 1\r\n\r\n",
    b"GET /api/v1/gpus?fields=GPU_TEMP&x=1 HTTP/1.0\r\nCookie: a=b; c=d\r\n\r\n",
]
MUTATE_TOKENS = [b"\r\n", b"\n", b" ", b":", b"\x00", b"\x7f", b"%00", b"%zz", b"HTTP/1.1", b"HTTP/2.0",
                 b"\t", b";", b"&", b"0", b"ffffffffffffffffff", b"\r"]


def test_mutated_requests():
    """A good request, a mutated one, a good one, on one connection (sometimes half-closed after
    them): whatever the mutation, every answer is one of Vigil's (JSON, or the exposition text),
    never libmicrohttpd's HTML, and the connection never ends without an answer to the first."""
    rng = random.Random(20261206)

    def mutate(b):
        b = bytearray(b)
        for _ in range(rng.randint(1, 8)):
            op, i = rng.randint(0, 3), rng.randint(0, len(b))
            if op == 0 and len(b) > 1:
                del b[i % len(b)]
            elif op == 1:
                b[i:i] = rng.choice(MUTATE_TOKENS)
            elif op == 2 and b:
                b[i % len(b)] = rng.randint(0, 255)
            else:
                b[i:i] = bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 5)))
        return bytes(b)

    with Vigild() as d:
        host, port = d.url.split("//")[1].rsplit(":", 1)
        for n in range(300):
            data = rng.choice(MUTATE_BASE) + mutate(rng.choice(MUTATE_BASE)) + rng.choice(MUTATE_BASE)
            s = socket.create_connection((host, int(port)), timeout=2)
            out = b""
            try:
                s.sendall(data)
                if rng.random() < 0.3:
                    s.shutdown(socket.SHUT_WR)
                while True:
                    c = s.recv(65536)
                    if not c:
                        break
                    out += c
            except (socket.timeout, ConnectionResetError, BrokenPipeError):
                pass
            finally:
                s.close()
            check(out.startswith(b"HTTP/1.1 "), "case %d: no answer to the good first request: %r for %r"
                  % (n, out[:120], data[:200]))
            check(b"<html" not in out.lower(), "case %d: an HTML answer to %r: %r" % (n, data[:200], out[:400]))
            for st, ctype in re.findall(rb"HTTP/1\.1 (\d{3}) [^\r]*\r\n(?:[^\r]+\r\n)*?Content-Type: ([^\r]+)", out):
                check(ctype.startswith(b"application/json") or ctype.startswith(b"text/plain"),
                      "case %d: a %s answer of type %r to %r" % (n, st.decode(), ctype, data[:200]))
        st, _, _ = d.get("/healthz")
        check(st == 200, "healthz afterwards: %d" % st)


if __name__ == "__main__":
    main([test_plain_keepalive_and_pipelined, test_tls, test_mutated_requests])
