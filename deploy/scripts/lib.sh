# shellcheck shell=bash
# lib.sh — shared by the deployment scripts: logging and the health gate.
# Health: `vigil --host URL health --check` (0 healthy, 1 warning, 2 critical, 3 unreachable) when
# the installed CLI has the command, else GET /readyz (200 once the first sweep is done).

log() { printf '%s %s: %s\n' "$(date -u +%H:%M:%S)" "${0##*/}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

VIGIL_CLI=${VIGIL_CLI:-vigil}

# node_healthy URL — one probe, no retries. A warning (exit 1) is healthy enough to serve.
node_healthy() {
	local url=$1 rc
	if command -v "$VIGIL_CLI" >/dev/null 2>&1 && "$VIGIL_CLI" health --help >/dev/null 2>&1; then
		rc=0
		"$VIGIL_CLI" --host "$url" health --check >/dev/null 2>&1 || rc=$?
		[ "$rc" -le 1 ]
	else
		curl -fsS --max-time 2 -o /dev/null "$url/readyz" 2>/dev/null
	fi
}

# node_state URL — one probe; prints 0 healthy, 1 warning, 2 critical (vigild serves, a GPU or
# the node is failed) or 3 (vigild unreachable or not ready). Without the CLI: 0 or 3 (/readyz).
node_state() {
	local url=$1 rc=0
	if command -v "$VIGIL_CLI" >/dev/null 2>&1 && "$VIGIL_CLI" health --help >/dev/null 2>&1; then
		"$VIGIL_CLI" --host "$url" health --check >/dev/null 2>&1 || rc=$?
		[ "$rc" -le 3 ] || rc=3
	else
		curl -fsS --max-time 2 -o /dev/null "$url/readyz" 2>/dev/null || rc=3
	fi
	echo "$rc"
}

# wait_state URL TIMEOUT_S WORST — 0 once vigild serves with a state no worse than WORST (0..2).
wait_state() {
	local url=$1 timeout=$2 worst=$3 start=$SECONDS s
	while [ $((SECONDS - start)) -lt "$timeout" ]; do
		s=$(node_state "$url")
		[ "$s" -le "$worst" ] && return 0
		sleep 0.2
	done
	return 1
}

# wait_healthy URL TIMEOUT_S — 0 once healthy, 1 after TIMEOUT_S.
wait_healthy() {
	local url=$1 timeout=$2 start=$SECONDS
	while [ $((SECONDS - start)) -lt "$timeout" ]; do
		node_healthy "$url" && return 0
		sleep 0.2
	done
	return 1
}
