#!/usr/bin/env bash
# Create .venv in the repository root (if missing) and install seqformer editable with test extras.
# Torch is pinned to the build this machine kind serves from its local wheel cache; on other machines
# set TORCH_SPEC / TORCHVISION_SPEC (e.g. TORCH_SPEC="torch>=2.4") before running.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.14.1}"
TORCHVISION_SPEC="${TORCHVISION_SPEC:-torchvision==0.29.1}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
if ! .venv/bin/python -c "import torch, torchvision" >/dev/null 2>&1; then
  .venv/bin/python -m pip install --quiet "$TORCH_SPEC" "$TORCHVISION_SPEC"
fi
.venv/bin/python -m pip install --quiet -e ".[test]"
.venv/bin/python -c "import seqformer, torch; print('seqformer', seqformer.__version__, '| torch', torch.__version__)"
