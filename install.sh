#!/usr/bin/env bash
# Installs slt (editable, with the test extra) into the active Python.
# torch: an existing install of any recent version is kept. With none, this pins torch==2.13.0, whose CPU
# wheel is cached on the project's machines (an unpinned torch would pull a multi-GB CUDA build there).
# Elsewhere, install the torch build you want first, or set SLT_TORCH (e.g. SLT_TORCH="torch>=2.1").
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python}
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  "$PY" -m pip install -q "${SLT_TORCH:-torch==2.13.0}"
fi
"$PY" -m pip install -q -e ".[dev]"
