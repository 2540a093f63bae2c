#!/usr/bin/env bash
# Installs the project, makes sure PostgreSQL runs on 127.0.0.1:5432, runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/ensure-postgres.sh
exec .venv/bin/python -m pytest hg_pipeline_tests "$@"
