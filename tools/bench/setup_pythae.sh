#!/usr/bin/env bash
# A separate environment for the training benchmark's pythae contender: .venv-bench sees
# .venv's packages (torch, vaelab) and adds pythae, which is never a dependency of vaelab.
#   bash tools/bench/setup_pythae.sh && .venv-bench/bin/python -m tools.bench.train_speed
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
python3 -m venv .venv-bench
site=$(.venv/bin/python -c "import site; print(site.getsitepackages()[0])")
bench_site=$(.venv-bench/bin/python -c "import site; print(site.getsitepackages()[0])")
echo "import site; site.addsitedir('$site')" > "$bench_site/vaelab-venv.pth"
.venv-bench/bin/pip install --quiet "pythae==0.1.2"
.venv-bench/bin/python -c "import pythae, vaelab; print('pythae', pythae.__version__ if hasattr(pythae, '__version__') else '0.1.2', 'ready in .venv-bench')"
