#!/bin/sh
# prolog.sh — Slurm Prolog: register the job with vigild (`vigil job start`), like
# `dcgmi stats --jstart`, so `vigil job show` has explicit job boundaries. See README.md.
#
# Environment (set by slurmd, or in slurm.conf / a wrapper):
#   SLURM_JOB_ID          the job (required)
#   SLURM_JOB_GPUS        the job's GPU indices on this node, e.g. "0,1"; else
#   CUDA_VISIBLE_DEVICES  when it holds indices; else every GPU of the node
#   VIGIL                 the vigil CLI (default: vigil on PATH)
#   VIGIL_ARGS            extra global options, e.g. "--socket /run/vigil/vigild.sock"
#   VIGIL_JOB_PREFIX      prefix of the job id (default "slurm-": job 42 is "slurm-42")
#
# A prolog that fails drains the node, so this never fails the job: a problem is a warning on
# stderr (slurmd's log) and exit 0.
set -u

vigil=${VIGIL:-vigil}
id="${VIGIL_JOB_PREFIX-slurm-}${SLURM_JOB_ID:-}"

if [ -z "${SLURM_JOB_ID:-}" ]; then
        echo "vigil prolog: SLURM_JOB_ID is not set; not registering a job" >&2
        exit 0
fi

# Only plain index lists ("0,1,3") are passed on; UUIDs or MIG ids mean "every GPU".
gpus=${SLURM_JOB_GPUS:-${CUDA_VISIBLE_DEVICES:-}}
case $gpus in
*[!0-9,]* | "") gpus="" ;;
esac

# shellcheck disable=SC2086 # VIGIL_ARGS is a list of options
if [ -n "$gpus" ]; then
        out=$("$vigil" ${VIGIL_ARGS:-} job start "$id" -i "$gpus" 2>&1)
else
        out=$("$vigil" ${VIGIL_ARGS:-} job start "$id" 2>&1)
fi
rc=$?
if [ $rc -ne 0 ]; then
        echo "vigil prolog: cannot register job '$id' (exit $rc): $out" >&2
fi
exit 0
