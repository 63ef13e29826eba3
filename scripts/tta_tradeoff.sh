#!/usr/bin/env bash
# Test-time augmentation's trade-off for the shipped MicroAUNet files: mean Dice on Kvasir-SEG
# val and the CVC-ClinicDB test split (polypseg-eval --tta N) against the p50 time per frame on
# two threads at each file's input size (polypseg-bench --weights FILE --tta N), for 1, 2, 4 and
# 8 views. The timings run ROUNDS times, every setting once per round
# (so a slow spell of the shared machine hits them all alike), and the median round counts.
# Writes out/tta-tradeoff.jsonl and the plot weights/tta-tradeoff.png.
# Usage: scripts/tta_tradeoff.sh [FRAMES=100] [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
frames="${1:-100}" rounds="${2:-3}"
[[ $frames =~ ^[1-9][0-9]*$ && $rounds =~ ^[1-9][0-9]*$ ]] ||
  { echo "tta_tradeoff: FRAMES and ROUNDS must be positive numbers" >&2; exit 2; }
D="${POLYPSEG_DATA:-../shared/datasets}"
[ -d "$D/kvasir-seg/val" ] || { echo "tta_tradeoff: no datasets in $D (set POLYPSEG_DATA)" >&2; exit 1; }
for tool in polypseg-eval polypseg-bench; do
  [ -x "build/core/$tool" ] || { echo "tta_tradeoff: build/core/$tool missing: build first (scripts/setup.sh)" >&2; exit 1; }
done
mkdir -p out
points=out/tta-tradeoff.jsonl
: >"$points"
input_size() { # the weights' recorded input side
  python3 -c 'import json, struct, sys
f = open(sys.argv[1], "rb"); n = struct.unpack("<Q", f.read(8))[0]
print(json.loads(f.read(n))["__metadata__"]["input_size"])' "$1"
}
declare -A times # "file views" -> the rounds' p50s
for ((round = 1; round <= rounds; round++)); do
  for file in microaunet-kvasir microaunet-cvc; do
    size=$(input_size weights/$file.safetensors)
    for views in 1 2 4 8; do
      times["$file $views"]+="$(build/core/polypseg-bench --weights weights/$file.safetensors --size "$size" --threads 2 \
        --frames "$frames" --steps 0 --tta "$views" --json - |
        python3 -c 'import json, sys; print(json.loads(sys.stdin.readlines()[-1])["infer_ms_p50"])') "
    done
  done
done
for file in microaunet-kvasir microaunet-cvc; do
  w=weights/$file.safetensors
  size=$(input_size "$w")
  for views in 1 2 4 8; do
    ms=$(python3 -c 'import statistics, sys; print(statistics.median(map(float, sys.argv[1:])))' ${times["$file $views"]})
    for set in kvasir cvc; do
      if [ $set = kvasir ]; then args=(--data "$D/kvasir-seg/val"); name="kvasir-seg/val"
      else args=(--data "$D/cvc-clinicdb" --split "$D/cvc-clinicdb/splits/test.txt"); name="cvc-clinicdb test"; fi
      build/core/polypseg-eval --weights "$w" "${args[@]}" --tta "$views" --json out/tta-eval.json >/dev/null
      python3 -c 'import json, sys
d = json.load(open("out/tta-eval.json"))
print(json.dumps({"series": sys.argv[1], "views": int(sys.argv[2]), "ms": float(sys.argv[3]), "dice": round(d["mean_dice"], 4)}))' \
        "$file ($size) on $name" "$views" "$ms" >>"$points"
    done
    echo "tta_tradeoff: $file, $views view(s): $ms ms per frame (median of: ${times["$file $views"]% })"
  done
done
python3 scripts/plot_tta.py weights/tta-tradeoff.png "$points" \
  --title "Test-time augmentation: accuracy against time per frame"
