#!/usr/bin/env bash
# Distributed training on a SLURM cluster: srun starts one task per GPU; every task reads its rank
# from SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID and MASTER_ADDR from the first host of the job.
#
# Usage:
#   [GPUS=8] [GPUS_PER_NODE=min(GPUS,8)] [CPUS_PER_TASK=4] [MASTER_PORT=29500] [SRUN_ARGS=...] \
#       scripts/slurm_train.sh PARTITION JOB_NAME CONFIG [key=value ...] [--resume PATH] ...
#
#   GPUS           total number of GPUs (= tasks)     (default: 8)
#   GPUS_PER_NODE  GPUs per node                      (default: min(GPUS, 8))
#   CPUS_PER_TASK  CPU cores per task (data workers)  (default: 4)
#   MASTER_PORT    TCP port for the process group     (default: 29500)
#   SRUN_ARGS      extra srun options, e.g. "--time=48:00:00 --qos=high"
#   PYTHON         interpreter                        (default: python)
#
# Example (16 GPUs on 2 nodes):
#   GPUS=16 scripts/slurm_train.sh gpu seqformer_r50 configs/ytvis/r50_seqformer.yaml train.output_dir=outputs/r50
set -euo pipefail

if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
fi
if [[ $# -lt 3 ]]; then
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 1
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
shift 3

GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-$(( GPUS < 8 ? GPUS : 8 ))}
export MASTER_PORT=${MASTER_PORT:-29500}

# shellcheck disable=SC2086  # SRUN_ARGS is a list of options
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="${CPUS_PER_TASK:-4}" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS:-} \
    "${PYTHON:-python}" -u -m seqformer.cli train --config "$CONFIG" "$@"
