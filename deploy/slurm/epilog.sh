#!/bin/sh
# epilog.sh — Slurm Epilog: end the job registered by prolog.sh (`vigil job stop`, like
# `dcgmi stats --jstop`) and append its statistics (`vigil job show`) to the job's output file.
# See README.md.
#
# Environment: as prolog.sh, plus
#   VIGIL_JOB_OUTPUT   the file to append to; default: the job's StdOut from
#                      `scontrol show job $SLURM_JOB_ID`; "none" = do not append
#   VIGIL_WAIT         seconds to wait for the job's final figures (default 30)
#
# An epilog that fails drains the node, so this never fails: problems are warnings on stderr
# and exit 0.
set -u

vigil=${VIGIL:-vigil}
id="${VIGIL_JOB_PREFIX-slurm-}${SLURM_JOB_ID:-}"

if [ -z "${SLURM_JOB_ID:-}" ]; then
        echo "vigil epilog: SLURM_JOB_ID is not set" >&2
        exit 0
fi

# shellcheck disable=SC2086 # VIGIL_ARGS is a list of options
if ! out=$("$vigil" ${VIGIL_ARGS:-} job stop "$id" 2>&1); then
        echo "vigil epilog: cannot stop job '$id': $out" >&2
fi

dest=${VIGIL_JOB_OUTPUT:-}
if [ -z "$dest" ] && command -v scontrol >/dev/null 2>&1; then
        dest=$(scontrol show job "$SLURM_JOB_ID" 2>/dev/null |
                sed -n 's/^[[:space:]]*StdOut=\(.*\)$/\1/p' | head -n 1)
fi
if [ -z "$dest" ] || [ "$dest" = none ]; then
        exit 0
fi
if [ ! -f "$dest" ]; then
        echo "vigil epilog: the job's output '$dest' is not a file; not appending" >&2
        exit 0
fi

# shellcheck disable=SC2086
if summary=$("$vigil" ${VIGIL_ARGS:-} job show "$id" --wait "${VIGIL_WAIT:-30}" 2>&1); then
        printf '\n==== GPU statistics (vigil job show %s) ====\n%s\n' "$id" "$summary" >>"$dest" ||
                echo "vigil epilog: cannot append to '$dest'" >&2
else
        echo "vigil epilog: cannot show job '$id': $summary" >&2
fi
exit 0
