#!/usr/bin/env bash
# upgrade-in-place.sh — zero-downtime upgrade of the vigild on THIS node, after the new binary has
# been installed over the old one (package upgrade, or `install -m755 vigild /usr/bin/vigild`).
#
#   upgrade-in-place.sh [--url http://127.0.0.1:5555] [--unit vigild] [--timeout 60]
#
# Sends SIGUSR2 to the running vigild (through systemd when the unit is active: systemd then
# learns the new MAINPID from vigild). vigild starts the installed binary with --takeover, which
# receives the listening sockets over DATA_DIR/takeover.sock, samples until ready, serves, and
# only then tells the old one to drain and exit: no connection is refused or reset. A successor
# that fails to start or never becomes ready changes nothing: the old vigild keeps serving, and
# this script exits 1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=deploy/scripts/lib.sh
. "$here/lib.sh"

url=http://127.0.0.1:5555 unit=vigild timeout=60
while [ $# -gt 0 ]; do
	case $1 in
	--url) url=$2; shift 2 ;;
	--unit) unit=$2; shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	-h | --help) sed -n '2,13p' "$0"; exit 0 ;;
	*) die "unknown option '$1'" ;;
	esac
done

status_pid() { curl -fsS --max-time 2 "$url/api/v1/status" 2>/dev/null | sed -n 's/.*"pid":\([0-9]*\).*/\1/p'; }

old=$(status_pid)
[ -n "$old" ] || die "no vigild answers at $url"
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$unit" 2>/dev/null; then
	systemctl kill -s USR2 --kill-whom=main "$unit"
else
	kill -USR2 "$old"
fi
log "asked vigild pid $old to hand over to the installed binary"
start=$SECONDS
while [ $((SECONDS - start)) -lt "$timeout" ]; do
	new=$(status_pid)
	if [ -n "$new" ] && [ "$new" != "$old" ] && node_healthy "$url"; then
		log "pid $new serves $url now; pid $old drains and exits"
		exit 0
	fi
	sleep 0.2
done
die "no successor took over within ${timeout}s: pid $old still serves (nothing changed)"
