#!/usr/bin/env bash
# Create .venv and install vaelab (editable) with its test tools.
# PyTorch: an already installed torch is kept; otherwise $VAELAB_TORCH is installed first
# (default torch==2.13.0).  Choose another build by setting it, e.g. VAELAB_TORCH="torch==2.5.1".
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    "${PIP[@]}" install "${VAELAB_TORCH:-torch==2.13.0}"
fi
"${PIP[@]}" install -e ".[test]"
.venv/bin/python -c "import torch, vaelab; print(f'vaelab {vaelab.__version__} with torch {torch.__version__} in .venv')"
