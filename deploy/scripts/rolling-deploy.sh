#!/usr/bin/env bash
# rolling-deploy.sh — upgrade vigild node by node; stop and roll back at the first node that is
# worse after its upgrade than before it.
#
#   rolling-deploy.sh --hosts "gpu01 gpu02 gpu03" --install 'CMD' --rollback 'CMD' \
#                     [--port 5555] [--scheme http] [--targets FILE] [--health-timeout 60]
#                     [--expect-version 0.2.0]
#
# For each host, in order:
#   1. record its state now (`vigil health --check`: 0 healthy, 1 warning, 2 critical). A node
#      whose vigild does not answer is not touched and the rollout stops; a node that answers
#      with a GPU already failed (critical) is upgraded like the others: the gate is "no worse
#      than before", so a failed GPU neither blocks the fleet nor passes for a broken release;
#   2. drain: remove HOST:PORT from the Prometheus file_sd targets FILE (when --targets is given)
#      so no alert fires for the planned gap; the file is rewritten atomically;
#   3. install: run the --install command with HOST and URL in its environment (real life:
#      `scp vigild $HOST:/usr/bin/vigild.new && ssh $HOST 'install -m755 /usr/bin/vigild.new
#      /usr/bin/vigild && systemctl kill -s USR2 vigild'` — a zero-downtime takeover — or
#      `systemctl restart vigild`);
#   4. wait until vigild serves again with a state no worse than in step 1 (a warning counts as
#      healthy) within --health-timeout and, with --expect-version, reports
#      that version in /api/v1/status (an in-place takeover whose successor failed leaves the OLD
#      vigild serving and healthy: only the version tells);
#   5. put it back into the targets file.
# When step 4 fails: run the --rollback command for that host, wait for its step-1 state, put it back, and
# exit 1 without touching the remaining hosts. Exit 0 when every host was upgraded.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=deploy/scripts/lib.sh
. "$here/lib.sh"

hosts="" install="" rollback="" port=5555 scheme=http targets="" timeout=60 version=""
while [ $# -gt 0 ]; do
	case $1 in
	--hosts) hosts=$2; shift 2 ;;
	--install) install=$2; shift 2 ;;
	--rollback) rollback=$2; shift 2 ;;
	--port) port=$2; shift 2 ;;
	--scheme) scheme=$2; shift 2 ;;
	--targets) targets=$2; shift 2 ;;
	--health-timeout) timeout=$2; shift 2 ;;
	--expect-version) version=$2; shift 2 ;;
	-h | --help) sed -n '2,26p' "$0"; exit 0 ;;
	*) die "unknown option '$1'" ;;
	esac
done
[ -n "$hosts" ] || die "--hosts is required"
[ -n "$install" ] || die "--install is required"
[ -n "$rollback" ] || die "--rollback is required"

# targets_edit remove|add HOST:PORT — file_sd JSON: [{"targets": [...], "labels": {...}}]
targets_edit() {
	[ -n "$targets" ] || return 0
	python3 - "$targets" "$1" "$2" <<'PY'
import json, os, sys
path, op, target = sys.argv[1:]
groups = json.load(open(path)) if os.path.exists(path) else [{"targets": [], "labels": {}}]
if op == "remove":
    for g in groups:
        g["targets"] = [t for t in g["targets"] if t != target]
elif not any(target in g["targets"] for g in groups):
    groups[0]["targets"].append(target)
tmp = path + ".tmp"
with open(tmp, "w") as f:
    json.dump(groups, f, indent=2)
    f.write("\n")
os.replace(tmp, path)  # Prometheus never reads a half-written file
PY
}

# upgraded URL TIMEOUT WORST — serving, no worse than WORST and, with --expect-version, running
# that version
upgraded() {
	local start=$SECONDS
	while [ $((SECONDS - start)) -lt "$2" ]; do
		if [ "$(node_state "$1")" -le "$3" ] && { [ -z "$version" ] ||
			curl -fsS --max-time 2 "$1/api/v1/status" 2>/dev/null | grep -q "\"version\":\"$version\""; }; then
			return 0
		fi
		sleep 0.2
	done
	return 1
}

node_state_name() {
	local names=(healthy warning critical unreachable)
	echo "${names[$(node_state "$1")]}"
}

n=0
for host in $hosts; do
	n=$((n + 1))
	url="$scheme://$host:$port"
	log "[$n] $host: checking its state before the upgrade"
	before=$(node_state "$url")
	names=(healthy warning critical unreachable)
	[ "$before" -le 2 ] || die "$host: vigild does not answer before its upgrade: stopping the rollout (nothing changed on it)"
	# a warning is healthy enough; a critical node (a GPU already failed) must stay no worse
	worst=$((before > 1 ? before : 1))
	[ "$before" -le 1 ] || log "[$n] $host: already ${names[$before]} before the upgrade (a failed GPU): upgrading it anyway; the gate is 'no worse than before'"
	targets_edit remove "$host:$port"
	log "[$n] $host: drained; installing"
	if HOST=$host URL=$url sh -c "$install" && upgraded "$url" "$timeout" "$worst"; then
		targets_edit add "$host:$port"
		log "[$n] $host: upgraded, $(node_state_name "$url")"
		continue
	fi
	log "[$n] $host: worse after the upgrade than before (${names[$before]}): rolling it back"
	HOST=$host URL=$url sh -c "$rollback" || log "[$n] $host: the rollback command failed"
	if wait_state "$url" "$timeout" "$worst"; then
		targets_edit add "$host:$port"
		die "$host rolled back and healthy again; rollout stopped after $((n - 1)) upgraded hosts"
	fi
	die "$host rolled back but still NOT healthy (left drained); rollout stopped"
done
log "all $n hosts upgraded"
