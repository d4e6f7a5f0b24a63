#!/usr/bin/env bash
# The test command: prepares the machine (scripts/setup.sh) and runs the whole suite.
# Nothing is skipped for a missing dependency: setup installs it or the run fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
