#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite with meson test.
# The data tests read ../shared/datasets or $POLYPSEG_DATA; in CI (CI=true) they fail if it is missing.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
scripts/setup.sh || exit 1
rm -f build/meson-logs/testlog.json
meson test -C build --print-errorlogs "$@"
rc=$?
[[ -f build/meson-logs/testlog.json ]] || { echo "no test results (meson test exited $rc)"; exit 1; }
# One plain summary line, counting the TAP subtests of every test program (a skipped data
# test inside an otherwise passing program still shows as skipped).
python3 - build/meson-logs/testlog.json <<'PY' || true
import json, re, sys
passed = failed = skipped = 0
for line in open(sys.argv[1]):
    if not line.strip():
        continue
    t = json.loads(line)
    subs = re.findall(r"^(ok|not ok) \d+[^\n]*", t.get("stdout") or "", re.M)
    if not subs:  # crashed before reporting any subtest
        failed += t["result"] not in ("OK", "SKIP")
        skipped += t["result"] == "SKIP"
        continue
    for s in subs:
        if "# SKIP" in s:
            skipped += 1
        elif s.startswith("ok"):
            passed += 1
        else:
            failed += 1
    # a program that died after some subtests still failed
    failed += t["result"] not in ("OK", "SKIP") and all(not s.startswith("not ok") for s in subs)
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
exit $rc
