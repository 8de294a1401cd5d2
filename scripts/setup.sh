#!/usr/bin/env bash
# Create .venv in the repository root (if missing) and install seqformer editable with test extras.
# Torch is pinned to the build this machine kind serves from its local wheel cache; on other machines
# set TORCH_SPEC / TORCHVISION_SPEC (e.g. TORCH_SPEC="torch>=2.4") before running.
# pip's output (including warnings from the machine's pip configuration) goes to a temporary log that is
# shown only when a step fails; SETUP_VERBOSE=1 shows it as it happens.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.14.1}"
TORCHVISION_SPEC="${TORCHVISION_SPEC:-torchvision==0.29.1}"
LOG="$(mktemp "${TMPDIR:-/tmp}/seqformer-setup.XXXXXX.log")"
trap 'rm -f "$LOG"' EXIT

step() {  # step "what" command...: run quietly, print pip's output and fail if the command fails
  local what="$1"; shift
  echo "setup: $what"
  if [ "${SETUP_VERBOSE:-0}" = "1" ]; then
    "$@"
  elif ! "$@" >"$LOG" 2>&1; then
    echo "setup: '$what' failed; its output:" >&2
    cat "$LOG" >&2
    exit 1
  fi
}

if [ ! -x .venv/bin/python ]; then
  step "creating .venv" "$PY" -m venv .venv
fi
step "upgrading pip" .venv/bin/python -m pip install --quiet --upgrade pip
if ! .venv/bin/python -c "import torch, torchvision" >/dev/null 2>&1; then
  step "installing $TORCH_SPEC $TORCHVISION_SPEC" .venv/bin/python -m pip install --quiet "$TORCH_SPEC" "$TORCHVISION_SPEC"
fi
step "installing seqformer (editable, with test extras)" .venv/bin/python -m pip install --quiet -e ".[test]"
.venv/bin/python -c "import seqformer, torch; print('seqformer', seqformer.__version__, '| torch', torch.__version__)"
