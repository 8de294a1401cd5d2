#!/usr/bin/env bash
# Distributed training with torchrun: one process per GPU, one or several nodes.
#
# Usage:
#   [GPUS=8] [NNODES=1] [NODE_RANK=0] [MASTER_ADDR=127.0.0.1] [MASTER_PORT=29501] \
#       scripts/dist_train.sh CONFIG [key=value ...] [--resume PATH] [--output-dir DIR] ...
#
#   GPUS         processes (GPUs) per node            (default: 8)
#   NNODES       number of nodes                      (default: 1)
#   NODE_RANK    index of this node, 0..NNODES-1      (default: 0)
#   MASTER_ADDR  address of node 0                    (default: 127.0.0.1)
#   MASTER_PORT  free TCP port on node 0              (default: 29501)
#   PYTHON       interpreter                          (default: python)
#
# Examples:
#   GPUS=8 scripts/dist_train.sh configs/ytvis/r50_seqformer.yaml
#   # two nodes with 8 GPUs each: run on both, NODE_RANK=0 on the node at MASTER_ADDR
#   GPUS=8 NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 scripts/dist_train.sh configs/ytvis/swin_seqformer.yaml
#   GPUS=8 NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 scripts/dist_train.sh configs/ytvis/swin_seqformer.yaml
#
# The global batch is GPUS * NNODES * optim.batch_size.  Every argument after CONFIG is passed to
# `seqformer train` unchanged (quoted arguments stay intact).
set -euo pipefail

if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
fi
if [[ $# -lt 1 ]]; then
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 1
fi
CONFIG=$1
shift

exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${MASTER_PORT:-29501}" \
    --nproc_per_node="${GPUS:-8}" \
    -m seqformer.cli train --config "$CONFIG" "$@"
