#!/usr/bin/env bash
# The GPU check of issue 14 in one script (<= 8 minutes on an H200): CUDA tests, the deformable-attention
# kernels, r50 training step / inference / predict vis, and one torchrun + NCCL training step.
#
# Usage:  bash benchmarks/gpu/run.sh [OUT_DIR]        (default: $OUT, else outputs/gpu_bench)
#
# Writes OUT_DIR/results.json (every part's numbers), OUT_DIR/results.md (tables, goals marked) and
# OUT_DIR/run.log.  Without a CUDA GPU every GPU part is skipped with a message (a dry run).
#
# Optional things to bring (the GPU machine may have no package index): put them in
# benchmarks/gpu/carry/ (git-ignored; pass it as a carried folder to the machine):
#   * torch_ms_deform_attn-0.1.1.tar.gz  the original's kernel as an sdist, built here for sm_90:
#       pip download --no-deps --no-binary :all: --no-build-isolation torch-ms-deform-attn==0.1.1 -d benchmarks/gpu/carry
#   * *.whl  wheels of missing Python packages (e.g. pycocotools for predict vis), installed with --no-index:
#       pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#           --platform manylinux_2_17_x86_64 pycocotools -d benchmarks/gpu/carry
# Time limits per part (seconds) keep the whole run under 8 minutes; a part that runs out is recorded as such.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT_DIR=${1:-${OUT:-outputs/gpu_bench}}
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
PARTS=$(mktemp -d)
PY=${PYTHON:-python3}
CARRY=benchmarks/gpu/carry
SITE=$(mktemp -d)
export PYTHONPATH="$PWD/src:$PWD/benchmarks/gpu:$SITE:${PYTHONPATH:-}"
export PYTHONUNBUFFERED=1
exec > >(tee "$OUT_DIR/run.log") 2>&1
START=$(date +%s)
DEADLINE=${DEADLINE_S:-470}  # whole script, seconds
stamp() { echo "=== [$(( $(date +%s) - START )) s] $*"; }
left() {  # left WANT [RESERVE]: seconds a part may take (its own limit, or what the deadline leaves)
    local rest=$(( DEADLINE - ($(date +%s) - START) - ${2:-15} ))
    (( rest < $1 )) && echo $(( rest > 0 ? rest : 1 )) || echo "$1"
}
record() {  # record NAME STATUS REASON: a part that produced no JSON of its own
    "$PY" -c "import json,sys; json.dump({'part':sys.argv[1],'status':sys.argv[2],'reason':sys.argv[3]}, open(sys.argv[4],'w'))" \
        "$1" "$2" "$3" "$PARTS/$1.json"
}
HAVE_GPU=$("$PY" -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null || echo 0)
[[ "${BENCH_DEVICE:-cuda}" == cpu ]] && HAVE_GPU=smoke  # CPU smoke run of the scripts (tiny sizes)
stamp "python $("$PY" -c 'import sys; print(sys.version.split()[0])'), GPU visible: $HAVE_GPU, parts in $PARTS"
[[ "$HAVE_GPU" == 1 ]] && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

# 0. carried wheels (never from an index)
if compgen -G "$CARRY/*.whl" > /dev/null; then
    stamp "installing carried wheels into $SITE"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$CARRY"/*.whl || echo "wheel install failed"
fi
"$PY" -c "import pycocotools" 2>/dev/null || echo "note: pycocotools missing: predict vis and the torchrun step will fail (carry its wheel)"

# 1. CUDA subset of the tests (skipped without a GPU)
stamp "1/5 CUDA tests"
timeout "$(left 150 300)" "$PY" -m pytest -q -p no:cacheprovider -m cuda tests/ops/test_msda_triton.py tests/engine/test_cuda_paths.py \
    --junitxml "$PARTS/tests.xml"
rc=$?
"$PY" - "$PARTS" "$rc" "$HAVE_GPU" <<'EOF'
import json, sys, xml.etree.ElementTree as ET
parts, rc, gpu = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
try:
    root = ET.parse(f"{parts}/tests.xml").getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
except (OSError, ET.ParseError):
    counts = {}
status = ("ok" if rc == 0 else "failed") if gpu else "skipped"
reason = f"pytest -m cuda: {counts}, exit code {rc}" + ("" if gpu else " (no GPU: every CUDA test skips)")
json.dump({"part": "tests", "status": status, "reason": reason, **counts}, open(f"{parts}/tests.json", "w"))
print(reason)
EOF

# 2. torch-ms-deform-attn from its sdist, for sm_90 only (the slow part of a full build is every architecture)
stamp "2/5 torch-ms-deform-attn build"
SDIST=$(ls "$CARRY"/torch_ms_deform_attn-*.tar.gz 2>/dev/null | head -1)
if [[ "$HAVE_GPU" != 1 ]]; then
    record cuda_op_build skipped "no CUDA GPU visible (dry run)"
elif [[ -z "$SDIST" ]]; then
    record cuda_op_build skipped "no sdist in $CARRY (see the header of this script); the cuda-op column stays empty"
else
    BUILD=$(mktemp -d)
    tar xzf "$SDIST" -C "$BUILD"
    if (cd "$BUILD"/torch_ms_deform_attn-* && FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 \
            timeout "$(left 240 240)" "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --target "$SITE" .); then
        record cuda_op_build ok "built $(basename "$SDIST") for sm_90 in $(( $(date +%s) - START )) s since start"
    else
        record cuda_op_build failed "pip build of $(basename "$SDIST") failed (see run.log)"
    fi
fi

# 3. kernels
stamp "3/5 kernels"
timeout "$(left 120 200)" "$PY" benchmarks/gpu/bench_kernel.py "$PARTS" || [[ -f "$PARTS/kernel.json" ]] || record kernel failed "timed out or crashed (run.log)"

# 4. r50 training step, inference, predict vis
stamp "4/5 r50 model"
for part in train infer predict; do
    case $part in train) limit=$(left 100 160) ;; infer) limit=$(left 90 120) ;; *) limit=$(left 150 60) ;; esac
    timeout "$limit" "$PY" benchmarks/gpu/bench_model.py "$PARTS" $part || [[ -f "$PARTS/model_$part.json" ]] \
        || record "model_$part" failed "timed out after $limit s or crashed (run.log)"
done

# 5. torchrun, NCCL, world size 1, pinned memory
stamp "5/5 torchrun step"
if [[ "$HAVE_GPU" != 0 ]]; then
    timeout "$(left 90 5)" "$PY" -m torch.distributed.run --standalone --nproc_per_node=1 benchmarks/gpu/ddp_step.py "$PARTS" \
        || [[ -f "$PARTS/ddp_step.json" ]] || record ddp_step failed "torchrun failed or timed out (run.log)"
else
    "$PY" benchmarks/gpu/ddp_step.py "$PARTS"
fi

stamp "report"
"$PY" benchmarks/gpu/report.py "$PARTS" "$OUT_DIR"
stamp "done: $OUT_DIR/results.md"
