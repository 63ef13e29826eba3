#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite with meson test.
# The data tests read ../shared/datasets or $POLYPSEG_DATA; in CI (CI=true) they fail if it is missing.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh || exit 1
meson test -C build --print-errorlogs "$@"
rc=$?
# One plain summary line that any CI reader understands.
/usr/bin/env python3 - build/meson-logs/testlog.json <<'PY' || true
import json, sys
res = [json.loads(l)["result"] for l in open(sys.argv[1]) if l.strip()]
ok = sum(r in ("OK", "EXPECTEDFAIL") for r in res)
skip = sum(r == "SKIP" for r in res)
print(f"{ok} passed, {len(res) - ok - skip} failed, {skip} skipped")
PY
exit $rc
