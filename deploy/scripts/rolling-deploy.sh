#!/usr/bin/env bash
# rolling-deploy.sh — upgrade vigild node by node; stop and roll back at the first node that is not
# healthy after its upgrade.
#
#   rolling-deploy.sh --hosts "gpu01 gpu02 gpu03" --install 'CMD' --rollback 'CMD' \
#                     [--port 5555] [--scheme http] [--targets FILE] [--health-timeout 60]
#                     [--expect-version 0.2.0]
#
# For each host, in order:
#   1. check that it is healthy now (an unhealthy node is not touched: the rollout stops);
#   2. drain: remove HOST:PORT from the Prometheus file_sd targets FILE (when --targets is given)
#      so no alert fires for the planned gap; the file is rewritten atomically;
#   3. install: run the --install command with HOST and URL in its environment (real life:
#      `scp vigild $HOST:/usr/bin/vigild.new && ssh $HOST 'install -m755 /usr/bin/vigild.new
#      /usr/bin/vigild && systemctl kill -s USR2 vigild'` — a zero-downtime takeover — or
#      `systemctl restart vigild`);
#   4. wait until the node is healthy again (--health-timeout) and, with --expect-version, reports
#      that version in /api/v1/status (an in-place takeover whose successor failed leaves the OLD
#      vigild serving and healthy: only the version tells);
#   5. put it back into the targets file.
# When step 4 fails: run the --rollback command for that host, wait for health, put it back, and
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

# upgraded URL TIMEOUT — healthy and, with --expect-version, running that version
upgraded() {
	local start=$SECONDS
	while [ $((SECONDS - start)) -lt "$2" ]; do
		if node_healthy "$1" && { [ -z "$version" ] ||
			curl -fsS --max-time 2 "$1/api/v1/status" 2>/dev/null | grep -q "\"version\":\"$version\""; }; then
			return 0
		fi
		sleep 0.2
	done
	return 1
}

n=0
for host in $hosts; do
	n=$((n + 1))
	url="$scheme://$host:$port"
	log "[$n] $host: checking health before the upgrade"
	node_healthy "$url" || die "$host is not healthy before its upgrade: stopping the rollout (nothing changed on it)"
	targets_edit remove "$host:$port"
	log "[$n] $host: drained; installing"
	if HOST=$host URL=$url sh -c "$install" && upgraded "$url" "$timeout"; then
		targets_edit add "$host:$port"
		log "[$n] $host: upgraded and healthy"
		continue
	fi
	log "[$n] $host: NOT healthy after the upgrade: rolling it back"
	HOST=$host URL=$url sh -c "$rollback" || log "[$n] $host: the rollback command failed"
	if wait_healthy "$url" "$timeout"; then
		targets_edit add "$host:$port"
		die "$host rolled back and healthy again; rollout stopped after $((n - 1)) upgraded hosts"
	fi
	die "$host rolled back but still NOT healthy (left drained); rollout stopped"
done
log "all $n hosts upgraded"
