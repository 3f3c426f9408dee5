#!/usr/bin/env bash
# bench/gpu/lazy-crypto-check.sh BUILD OUT — on a real GPU: an idle vigild maps neither libcrypto
# nor libjwt; an audited mutation (backup create over the unix socket) loads libcrypto and the
# audit chain verifies; with JWT authentication both load at start and a token is accepted.
# Read-only NVML (SIM=1: simulated GPUs, to try it without one). Debian runtime libraries from .devlibs/root when present.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
B=${1:?usage: lazy-crypto-check.sh BUILD OUT}
OUT=${2:?usage: lazy-crypto-check.sh BUILD OUT}
mkdir -p "$OUT"
LIBS=$PWD/.devlibs/root/usr/lib/x86_64-linux-gnu
[ -d "$LIBS" ] && export LD_LIBRARY_PATH=$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
D=$(mktemp -d)
maps() { grep -oE 'lib(crypto|jwt)\.so[^ ]*' "/proc/$1/maps" | sort -u | tr '\n' ' '; echo; }
"$B/bin/vigild" ${SIM:+--simulate} --listen 127.0.0.1:5599 --data-dir "$D" --socket "$D/s.sock" >"$OUT/vigild-1.log" 2>&1 &
P=$!
for _ in $(seq 50); do curl -sf 127.0.0.1:5599/readyz >/dev/null && break; sleep 0.2; done
curl -sf 127.0.0.1:5599/metrics | grep -c '^vigil_gpu_temperature_celsius' | sed 's/^/temperature series: /'
echo "idle, after a scrape: [$(maps $P)]"
"$B/bin/vigil" --socket "$D/s.sock" backup create >/dev/null && echo "backup create: ok"
echo "after an audited mutation: [$(maps $P)]"
"$B/bin/vigil" --socket "$D/s.sock" --json audit verify
kill $P; wait $P
S=lazy-crypto-check-secret-0123456789abcdef
printf 'security:\n  authentication: {enabled: true, method: jwt, jwt_secret: "%s"}\n  authorization: {enabled: true}\n' "$S" >"$D/auth.yaml"
"$B/bin/vigild" ${SIM:+--simulate} --config "$D/auth.yaml" --listen 127.0.0.1:5599 --data-dir "$D" --socket "$D/s.sock" >"$OUT/vigild-2.log" 2>&1 &
P=$!
for _ in $(seq 50); do curl -sf 127.0.0.1:5599/readyz >/dev/null && break; sleep 0.2; done
echo "JWT configured, at start: [$(maps $P)]"
T=$(python3 - "$S" <<'PY'
import base64, hashlib, hmac, json, sys, time
b = lambda x: base64.urlsafe_b64encode(x).rstrip(b"=").decode()
h = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
n = int(time.time())
c = b(json.dumps({"sub": "ops", "role": "viewer", "iat": n, "exp": n + 60}).encode())
print(h + "." + c + "." + b(hmac.new(sys.argv[1].encode(), (h + "." + c).encode(), hashlib.sha256).digest()))
PY
)
echo "token: HTTP $(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $T" 127.0.0.1:5599/api/v1/gpus)"
echo "bad signature: HTTP $(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${T%??}AA" 127.0.0.1:5599/api/v1/gpus)"
kill $P; wait $P
rm -rf "$D"
