#!/usr/bin/env bash
# install-deps.sh — install the Debian 12 packages that building, running and testing Vigil need.
# Idempotent: only missing packages are installed. Needs root (or sudo).
#   install-deps.sh              build + run + test (what `make test` needs; CI runs this)
#   install-deps.sh --run        build + run only (what `make run` needs: compilers and the
#                                libraries vigild and vigil link; no Prometheus, Alertmanager,
#                                HAProxy or other test tools). --build-only is the same set.
#   install-deps.sh --fuzz       also clang for `make fuzz` (libFuzzer)
# Every tool a test looks for is in TEST: under VIGIL_CI=1 a test that cannot find one fails
# instead of skipping (tests/integ/harness.py skip(), scripts/ci-skip.sh).
set -euo pipefail

# Building and running: the -dev packages pull in the run-time libraries. libcmocka-dev is here
# because configuring the build requires it (CMakeLists.txt: pkg_check_modules(CMOCKA REQUIRED)),
# even when only vigild and vigil are built.
BUILD=(build-essential cmake pkg-config
       libmicrohttpd-dev libjansson-dev libyaml-dev libssl-dev libcurl4-openssl-dev
       libsqlite3-dev libsystemd-dev libjwt-dev libarchive-dev libcrypt-dev
       libgnutls28-dev libcmocka-dev zlib1g-dev
       libgrpc-dev libprotobuf-c-dev protobuf-c-compiler)
# tool -> package: promtool prometheus; amtool, prometheus-alertmanager prometheus-alertmanager;
# prometheus-node-exporter; haproxy; ip iproute2; systemd-analyze systemd; sslscan; testssl
# testssl.sh; openssl; curl; jq; sqlite3; wrk (bench); dpkg-query/apt-cache (Debian base);
# node (nodejs) for s3rver, the S3-compatible server of tests/integ/test_backup_s3.py, which npm
# installs below (S3RVER_VERSION); podman, mmdebstrap, runc (tests/integ/test_container.py builds
# and runs the image); shellcheck (deploy/slurm, test_jobs.py).
TEST=(clang-format curl jq python3 python3-yaml prometheus wrk prometheus-node-exporter
      haproxy iproute2 systemd
      sslscan testssl.sh openssl prometheus-alertmanager sqlite3 nodejs podman mmdebstrap runc
      python3-grpcio shellcheck)
S3RVER_VERSION=3.7.1
FUZZ=(clang)

want=("${BUILD[@]}")
case "${1:-}" in
--run | --build-only) ;;
--fuzz) want+=("${TEST[@]}" "${FUZZ[@]}") ;;
"") want+=("${TEST[@]}") ;;
*)
	echo "install-deps: unknown option '$1' (--run, --build-only, --fuzz)" >&2
	exit 2
	;;
esac

missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
SUDO=
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
fi

# s3rver from the npm registry (test set only): installed globally, so the test runs offline.
# npm comes with nodejs from some repositories (NodeSource); Debian's is the npm package.
install_s3rver() {
	case "${1:-}" in --run | --build-only) return 0 ;; esac
	if ! s3rver --version 2>/dev/null | grep -qx "$S3RVER_VERSION"; then
		command -v npm >/dev/null || { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends npm; }
		echo "install-deps: installing s3rver@$S3RVER_VERSION (npm)"
		$SUDO npm install -g --no-audit --no-fund "s3rver@$S3RVER_VERSION"
	fi
}

if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all ${#want[@]} packages are installed"
	install_s3rver "${1:-}"
	exit 0
fi

if [ -n "$SUDO" ]; then
	command -v sudo >/dev/null || { echo "install-deps: run as root (missing: ${missing[*]})" >&2; exit 1; }
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Debian's prometheus and node-exporter packages start system services; tests start their own.
# (Only the test set installs them: nothing to stop after --run.)
for svc in prometheus prometheus-node-exporter prometheus-alertmanager haproxy; do
	$SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
done
install_s3rver "${1:-}"
