#!/usr/bin/env python3
"""HTTP edges, over raw sockets: a request Vigil refuses gets the documented JSON error with the
right status (docs/api.md), and the connection is closed when the request cannot be framed or is
refused; nothing hangs. Also the injection route's range checks."""
import json
import re
import socket
import time

from harness import Vigild, check, main


def exchange(v, raw, timeout=5):
    """Send raw bytes; return (status, headers, body, closed) where closed says the server ended
    the connection after its answer (no wait for our timeout)."""
    host, port = v.url.split("//")[1].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    data, closed = b"", False
    t0 = time.monotonic()
    try:
        s.sendall(raw)
        while True:
            try:
                c = s.recv(65536)
            except ConnectionResetError:
                closed = True
                break
            if not c:
                closed = True
                break
            data += c
    except socket.timeout:
        pass
    finally:
        s.close()
    check(time.monotonic() - t0 < timeout - 0.5 or closed, "server held the connection: %r" % data[:200])
    check(data.startswith(b"HTTP/1.1 "), "no HTTP answer to %r: %r" % (raw[:80], data[:200]))
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    hdrs = {}
    for l in lines[1:]:
        k, _, val = l.partition(":")
        hdrs[k.strip().lower()] = val.strip()
    check(len(re.findall(rb"(?:^|\n)HTTP/1\.[01] \d{3} ", data)) == 1, "status line twice: %r" % data[:400])
    return status, hdrs, body, closed


def check_error(v, raw, status, what):
    st, hdrs, body, closed = exchange(v, raw)
    check(st == status, "%s: status %d, want %d: %r" % (what, st, status, body[:200]))
    check(hdrs.get("content-type") == "application/json", "%s: content type %r" % (what, hdrs))
    err = json.loads(body)["error"]
    check(err["code"] == status and err["message"], "%s: body %r" % (what, body))
    check(closed and hdrs.get("connection") == "close", "%s: connection left open" % what)
    return err["message"]


def test_refusals_are_json_and_close():
    with Vigild() as v:
        msg = check_error(v, b"GET /healthz HTTP/1.1\r\n\r\n", 400, "HTTP/1.1 without Host")
        check("Host" in msg, "message does not name Host: %s" % msg)
        st, _, _, _ = exchange(v, b"GET /healthz HTTP/1.0\r\n\r\n")
        check(st == 200, "HTTP/1.0 needs no Host: %d" % st)
        check_error(v, b"GET /healthz%00/x HTTP/1.1\r\nHost: x\r\n\r\n", 400, "%00 in path")
        check_error(v, b"GET /api/v1/gpus/0%00 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "%00 at the end")
        check_error(v, b"GET /health%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid escape")
        check_error(v, b"GET /healthz%4 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "short escape")
        msg = check_error(v, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n", 400,
                          "space in a header name")
        check("X A" in msg, "message does not quote the header: %s" % msg)
        msg = check_error(v, b"POST /api/v1/inject HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip"
                          b"\r\n\r\nabc", 501, "Transfer-Encoding: gzip")
        check("gzip" in msg, "message does not say the encoding: %s" % msg)
        # a valid escape still routes
        st, _, body, _ = exchange(v, b"GET /healthz%7a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        check(st == 404, "%%7a escape: %d %r" % (st, body))
        st, _, body, _ = exchange(v, b"GET /health%7a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        check(st == 200, "/health%%7a is /healthz: %d %r" % (st, body))


def test_inject_ranges():
    with Vigild() as v:
        st, _, body = v.request("POST", "/api/v1/inject", {"gpu": 0, "field": 4294967446, "value": 99})
        check(st == 400, "field id 4294967446 accepted as %r (%d)" % (body, st))
        st, _, body = v.request("POST", "/api/v1/inject", {"gpu": 0, "field": -106, "value": 99})
        check(st == 400, "negative field id accepted (%d)" % st)
        st, _, body = v.request("POST", "/api/v1/inject", {"gpu": 0, "ecc_dbe": 2 ** 62})
        check(st == 400, "ecc count 2^62 accepted (%d)" % st)
        # "*" sets the global scale in percent (docs/simulation.md)
        st, _, body = v.request("POST", "/api/v1/inject", {"call": "*", "cost_us": 200})
        check(st == 200, "scale 200%% refused: %d %r" % (st, body))
        st, _, body = v.request("POST", "/api/v1/inject", {"call": "*", "cost_us": 100001})
        check(st == 400, "scale over 100000%% accepted: %d" % st)
        st, _, body = v.request("POST", "/api/v1/inject", {"call": "*", "cost_us": 100})
        check(st == 200, "scale back to 100%%: %d %r" % (st, body))


if __name__ == "__main__":
    main([test_refusals_are_json_and_close, test_inject_ranges])
