#!/usr/bin/env bash
# A benchmark-only environment with anomalib 2.7.0 on top of the project's .venv (which stays untouched):
# .venv-bench sees .venv's packages through a .pth file and gets only what anomalib adds, with every
# package the project pins held at its pinned version.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || { echo "run ./dev.sh test (or run) first to make .venv" >&2; exit 1; }
if [ ! -x .venv-bench/bin/python ]; then
  python3.11 -m venv .venv-bench
  site=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  bench=$(.venv-bench/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  echo "$site" > "$bench/_nnc_web_venv.pth"
fi
.venv-bench/bin/pip install -q -c constraints.txt -c requirements.lock anomalib==2.7.0
echo "ready: .venv-bench/bin/python benchmarks/anomaly_vs_anomalib.py"
