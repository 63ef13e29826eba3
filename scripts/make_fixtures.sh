#!/bin/sh
# Regenerate every test fixture under tests/fixtures/ (deterministic: same bytes each run).
# Uses Debian's python3-torch, hence /usr/bin/python3 rather than whatever python3 is on PATH.
set -eu
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
if [ -f scripts/make_op_fixtures.py ]; then
    "$PY" scripts/make_op_fixtures.py
fi
"$PY" scripts/make_model_fixtures.py
