#!/usr/bin/env bash
# bench/gpu/stage.sh BUILD_DIR DEST — copy what the GPU scripts run out of a build directory
# (bin/vigild, bin/vigil, bin/vigil-diag, the fake libraries, the backend contract test and the
# bare-NVML floor program) into DEST, a folder small enough to carry to the GPU machine (the
# `run` tool's carry limit is 64 MiB; a whole build directory is far larger). Binaries built on
# Debian 12 also need the Debian runtime libraries the GPU machine lacks: `apt-get download` them
# into .devlibs/deb and `dpkg -x` each into .devlibs/root (bench/gpu/run.sh and
# bench/gpu/session.sh put .devlibs/root/usr/lib/x86_64-linux-gnu on LD_LIBRARY_PATH).
set -euo pipefail
B=${1:?usage: bench/gpu/stage.sh BUILD_DIR DEST}
D=${2:?usage: bench/gpu/stage.sh BUILD_DIR DEST}
rm -rf "$D"
mkdir -p "$D/bin" "$D/lib" "$D/tests" "$D/bench"
for f in vigild vigil vigil-diag; do
	[ -x "$B/bin/$f" ] && cp "$B/bin/$f" "$D/bin/"
done
cp "$B"/lib/*.so "$D/lib/" 2>/dev/null || true
[ -x "$B/tests/test_backend_contract" ] && cp "$B/tests/test_backend_contract" "$D/tests/"
[ -x "$B/bench/nvml_floor" ] && cp "$B/bench/nvml_floor" "$D/bench/"
strip --strip-debug "$D"/bin/* "$D"/lib/*.so "$D"/tests/* "$D"/bench/* 2>/dev/null || true
git -C "$(dirname "$0")" rev-parse HEAD >"$D/COMMIT" 2>/dev/null || true
du -sh "$D"
