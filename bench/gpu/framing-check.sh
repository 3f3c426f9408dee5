#!/usr/bin/env bash
# bench/gpu/framing-check.sh BUILD OUT — the request framer (src/api/framer.c) on the GPU machine,
# whose glibc and GnuTLS are Ubuntu's, not Debian's: libmicrohttpd's recv and gnutls_record_recv
# must still bind to vigild's own (else its HTML refusals come back). Runs
# tests/integ/test_framing.py on simulated GPUs (plain, unix socket, TLS), then a vigild on the
# real GPU (read-only NVML; SIM=1 simulates it) and, on one keep-alive connection: a scrape, then
# a bad request line (JSON 400, connection closed); and a pipelined good request with a malformed
# chunked body behind it. Debian runtime libraries from .devlibs/root when present.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
B=${1:?usage: framing-check.sh BUILD OUT}
OUT=${2:?usage: framing-check.sh BUILD OUT}
mkdir -p "$OUT"
LIBS=$PWD/.devlibs/root/usr/lib/x86_64-linux-gnu
[ -d "$LIBS" ] && export LD_LIBRARY_PATH=$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
B=$(cd "$B" && pwd)
echo "== libraries vigild resolves"
ldd "$B/bin/vigild" | grep -E 'microhttpd|gnutls|libc\.so' | sed 's/ (0x.*//'
nm -D "$B/bin/vigild" | grep -E ' T (recv|gnutls_record_recv|gnutls_record_check_pending)$'
echo "== tests/integ/test_framing.py (simulated GPUs)"
VIGIL_BUILD_DIR=$B PYTHONDONTWRITEBYTECODE=1 python3 tests/integ/test_framing.py 2>&1 | grep -E '^(ok|not ok)'
if [ -n "${SIM:-}" ]; then echo "== a vigild on simulated GPUs"; else echo "== a vigild on the real GPU"; fi
D=$(mktemp -d)
"$B/bin/vigild" ${SIM:+--simulate} --listen 127.0.0.1:5598 --data-dir "$D" --socket "$D/s.sock" >"$OUT/vigild.log" 2>&1 &
P=$!
for _ in $(seq 50); do curl -sf 127.0.0.1:5598/readyz >/dev/null && break; sleep 0.2; done
python3 - <<'PY'
import re
import socket
def talk(data, reads=3):
    s = socket.create_connection(("127.0.0.1", 5598), timeout=5)
    s.sendall(data)
    out = b""
    try:
        while True:
            c = s.recv(1 << 20)
            if not c:
                out += b"<closed>"
                break
            out += c
    except socket.timeout:
        out += b"<open>"
    s.close()
    return out
def statuses(out):
    return [m.decode() for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", out)]
o = talk(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n")
print("keep-alive scrape then a bad request line:", statuses(o), "JSON" if b'{"error":{"code":400' in o else "NOT JSON",
      "temperature series:", o.count(b"\nvigil_gpu_temperature_celsius{"), o[-8:].decode("latin1"))
o = talk(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nPOST /api/v1/inject HTTP/1.1\r\nHost: x\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\nzz\r\n\r\n")
print("pipelined good request, then a malformed chunked body:", statuses(o),
      "JSON" if b'{"error":{"code":400' in o else "NOT JSON", o[-8:].decode("latin1"))
PY
kill $P; wait $P
grep -ciE 'error|warn' "$OUT/vigild.log" | sed 's/^/vigild log warnings\/errors: /'
rm -rf "$D"
