#!/usr/bin/env bash
# One command for a newcomer: install, then a full sync of a simulated MSP into ./.hg/warehouse.db.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/hg-pipeline demo "$@"
