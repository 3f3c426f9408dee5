# shellcheck shell=bash
# gpu-lib.sh — what the scripts/gpu-*.sh share; sourced, not run. The caller sets LIBS (a
# directory of carried libraries, or empty) and OUT before using vrun/vexec/start_vigild.

# need_gpu NAME: exit 77 (skipped) unless nvidia-smi answers on this machine
need_gpu() {
	if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
		echo "$1: no NVIDIA GPU here (nvidia-smi fails): skipped"
		exit 77
	fi
}

# need_torch NAME: exit 1 unless python3 imports torch
need_torch() {
	if ! python3 -c 'import torch' 2>/dev/null; then
		echo "$1: python3 needs torch"
		exit 1
	fi
}

# vrun CMD...: CMD with the carried libraries first on LD_LIBRARY_PATH (Vigil's binaries only:
# python3 and torch keep their own)
vrun() {
	if [ -n "$LIBS" ]; then
		LD_LIBRARY_PATH="$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@"
	else
		"$@"
	fi
}

# vexec CMD... &: the same for a background job that is CMD itself (exec), so that $! is its PID
# and killing it stops it (a function run with & is a subshell, whose PID $! would be otherwise)
vexec() {
	[ -z "$LIBS" ] || export LD_LIBRARY_PATH="$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
	exec "$@"
}

# start_vigild NAME BUILD DATA ARGS...: vigild on the real NVML with data directory DATA, listening
# on 127.0.0.1:0 (log in OUT/vigild.log); sets VPID and URL once it listens, exits 1 when it does
# not. The caller stops it (kill "$VPID").
start_vigild() {
	local name=$1 build=$2 data=$3
	shift 3
	vexec "$build/bin/vigild" --listen 127.0.0.1:0 --data-dir "$data" "$@" >"$OUT/vigild.log" 2>&1 &
	VPID=$!
	for _ in $(seq 1 300); do
		[ -s "$data/vigild.addr" ] && break
		kill -0 "$VPID" 2>/dev/null || { echo "$name: vigild exited:"; tail -n 20 "$OUT/vigild.log"; exit 1; }
		sleep 0.1
	done
	URL=$(cat "$data/vigild.addr" 2>/dev/null)
	[ -n "$URL" ] || { echo "$name: vigild did not start listening"; exit 1; }
}
