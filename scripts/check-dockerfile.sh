#!/usr/bin/env bash
# check-dockerfile.sh — static checks of deploy/docker/Dockerfile where no container engine runs
# (CI has none; hadolint is not packaged in Debian 12).
#   check-dockerfile.sh [BUILD_DIR]      (default: build)
# 1. lint: every FROM pinned to a versioned tag (no :latest, no bare image); the final stage sets a
#    non-root USER; no ADD from URLs; a HEALTHCHECK; EXPOSE 5555; VOLUMEs; apt-get installs use
#    --no-install-recommends and clean /var/lib/apt/lists; no -dev package in the final stage.
# 2. libraries: every shared library that BUILD_DIR's vigild, vigil and libvigil-fakenvml.so need
#    (ldd, and the sonames they dlopen at first use) belongs (dpkg -S) to a package that the final stage installs, directly or as a
#    dependency (apt-cache depends --recurse), or to the base image's required set.
# Exit 0 ok, 1 findings, 77 (skip) when the binaries or dpkg are missing (under VIGIL_CI=1 a skip
# fails: scripts/ci-skip.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/ci-skip.sh"
df=${DOCKERFILE:-$root/deploy/docker/Dockerfile}
build=${1:-$root/build}
fail=0
bad() { echo "check-dockerfile: $*" >&2; fail=1; }

# Join continuation lines so that each instruction is one line.
joined=$(sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta' "$df" | grep -v '^[[:space:]]*#' | sed 's/[[:space:]]\+/ /g')

# ---- 1. lint
while read -r _ image _; do
	case $image in
	*@sha256:*) ;;
	*:latest | *:stable) bad "FROM $image: pin a versioned tag" ;;
	*:*[0-9]*) ;;
	*) bad "FROM $image: no tag (pin a versioned tag, e.g. debian:12.8-slim)" ;;
	esac
done < <(grep -i '^FROM ' <<<"$joined")
nstages=$(grep -ci '^FROM ' <<<"$joined")
final=$(awk -v n="$nstages" 'toupper($1)=="FROM"{s++} s==n' <<<"$joined")
user=$(grep -i '^USER ' <<<"$final" | tail -1 | awk '{print $2}')
case ${user%%:*} in
"" ) bad "the final stage sets no USER (runs as root)" ;;
root | 0) bad "the final stage runs as root (USER $user)" ;;
esac
grep -Eiq '^ADD .*(https?|ftp)://' <<<"$joined" && bad "ADD from a URL: download in a RUN with a checksum instead"
grep -iq '^HEALTHCHECK ' <<<"$final" || bad "no HEALTHCHECK in the final stage"
grep -iq 'health --check' <<<"$final" || bad "HEALTHCHECK does not run 'vigil health --check'"
grep -Eiq '^EXPOSE .*\b5555\b' <<<"$final" || bad "EXPOSE 5555 missing"
grep -iq '^VOLUME .*/var/lib/vigil' <<<"$final" || bad "no VOLUME for the data dir /var/lib/vigil"
grep -iq '^VOLUME .*/etc/vigil' <<<"$final" || bad "no VOLUME for the config /etc/vigil"
while read -r line; do
	grep -q -- '--no-install-recommends' <<<"$line" || bad "apt-get install without --no-install-recommends"
	grep -q 'rm -rf /var/lib/apt/lists' <<<"$line" || bad "apt-get install without 'rm -rf /var/lib/apt/lists/*' in the same RUN"
done < <(grep -i '^RUN .*apt-get install' <<<"$joined")
runtime_pkgs=$(grep -i '^RUN .*apt-get install' <<<"$final" |
	sed 's/.*apt-get install//; s/&&.*//' | tr ' ' '\n' | grep -v '^-' | grep -v '^$' || true)
[ -n "$runtime_pkgs" ] || bad "the final stage installs no packages"
for p in $runtime_pkgs; do
	case $p in *-dev | build-essential | gcc* | cmake | pkg-config) bad "build package '$p' in the final stage" ;; esac
done
grep -Eiq -- '--privileged|cap-add|CAP_' <<<"$final" && bad "capabilities requested in the image"

# ---- 2. libraries
if ! command -v dpkg >/dev/null || ! command -v apt-cache >/dev/null; then
	[ $fail -eq 0 ] || exit 1
	ci_skip "check-dockerfile: library check: dpkg/apt-cache not available"
fi
bins=()
for b in bin/vigild bin/vigil lib/libvigil-fakenvml.so; do
	[ -e "$build/$b" ] && bins+=("$build/$b")
done
if [ ${#bins[@]} -eq 0 ]; then
	[ $fail -eq 0 ] || exit 1
	ci_skip "check-dockerfile: library check: no binaries under '$build' (build first)"
fi
if ldd "${bins[@]}" 2>/dev/null | grep -q 'libasan\|libubsan\|libtsan'; then
	echo "check-dockerfile: note: '$build' is a sanitizer build; its libasan/libubsan/libtsan are not checked"
fi
# shellcheck disable=SC2086
provided=$( (echo $runtime_pkgs | tr ' ' '\n'
	apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
		--no-replaces --no-enhances $runtime_pkgs 2>/dev/null | grep -v '^ ' | grep -v '^<'
	dpkg-query -W -f='${Package} ${Priority} ${Essential}\n' | awk '$2=="required" || $3=="yes" {print $1}'
	) | sed 's/:.*//' | sort -u)
missing=0 checked=0
while read -r lib path; do
	case $lib in libasan* | libubsan* | libtsan* | linux-vdso* | "") continue ;; esac
	[ -e "$path" ] || { bad "'$lib' is not found on this machine (ldd)"; continue; }
	real=$(readlink -f "$path")
	pkg=""
	for cand in "$path" "$real" "/usr$path" "/usr$real" "${path#/usr}" "${real#/usr}"; do
		pkg=$(dpkg -S "$cand" 2>/dev/null | head -1 | cut -d: -f1) && [ -n "$pkg" ] && break
	done
	[ -n "$pkg" ] || { bad "no Debian package owns '$path' ($lib)"; continue; }
	checked=$((checked + 1))
	if ! grep -qx "$pkg" <<<"$provided"; then
		bad "'$lib' comes from package '$pkg', which the final stage does not install"
		missing=$((missing + 1))
	fi
done < <({
	ldd "${bins[@]}" 2>/dev/null | awk '/=>/ {print $1, $3} /^[[:space:]]*\/.*ld-linux/ {print $1, $1}'
	# Libraries loaded with dlopen at first use (libcrypto, libjwt, libcurl, libarchive, libgrpc,
	# libsystemd): not in ldd's list, so found by the sonames the binaries hold. NVML and the CUDA
	# driver come from the host's driver, not from a package of the image.
	strings -a "${bins[@]}" 2>/dev/null | grep -xE 'lib[A-Za-z0-9_+-]+\.so\.[0-9]+' |
		grep -vE '^lib(nvidia-ml|cuda)\.' | sort -u | while read -r so; do
		p=$(ldconfig -p | awk -v so="$so" '$1 == so && /x86-64|x86_64/ && !p {p = $NF} END {print p}')
		echo "$so ${p:-/nonexistent/$so}"
	done
} | sort -u)
echo "check-dockerfile: $checked shared libraries of ${#bins[@]} binaries (linked or loaded at first use), $missing not provided by the final stage"
[ $fail -eq 0 ] && echo "check-dockerfile: ok"
exit $fail
