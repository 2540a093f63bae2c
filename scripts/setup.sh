#!/usr/bin/env bash
# Installs the project into ./.venv (idempotent). Sourced by demo.sh and test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.hg-installed
if [ ! -f "$stamp" ] || [ setup.py -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[dev]'
  touch "$stamp"
fi
# Bytecode of the package's own modules, written now: where PYTHONDONTWRITEBYTECODE is set,
# every `hg-pipeline` would otherwise compile them from source again (about 0.1 s a command).
.venv/bin/python -m compileall -q hg_pipeline >/dev/null
# Dagster's own commands (dagster dev, dg dev, dg launch) read ./.env: same home as hg-pipeline.
.venv/bin/python -m hg_pipeline.orchestration.home . >/dev/null
