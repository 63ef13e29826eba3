#!/usr/bin/env bash
# Side-by-side speed of the C core and our PyTorch implementation of the same model and weights:
# single-frame inference (p50 of 1000 frames for C, mean of 100 for PyTorch: each about 1-2 s, as
# 100 C frames, 0.1 s, gave medians from 0.71 to 1.67 ms on this host) and the training step (AdamW, BCE+Dice,
# batch 8 at 256x256), interleaved round by round in one run so both see the same machine load;
# then the medians and ratios (scripts/bench_ratio.py). Needs the build (scripts/setup.sh) and
# /usr/bin/python3 with python3-torch (scripts/setup.sh --torch).
# Usage: scripts/bench_train.sh [ARCH=microaunet] [ROUNDS=3] [WEIGHTS]
#   WEIGHTS defaults to weights/microaunet-kvasir.safetensors for microaunet; other
#   architectures without WEIGHTS run seeded random weights on both sides.
# Writes out/bench-train.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
arch="${1:-microaunet}"; rounds="${2:-3}"
weights="${3:-}"
[ -z "$weights" ] && [ "$arch" = microaunet ] && weights=weights/microaunet-kvasir.safetensors
if [ -n "$weights" ]; then c_model=(--weights "$weights"); torch_model=(--weights "$weights")
else c_model=(--arch "$arch"); torch_model=(--channels "$arch"); fi
mkdir -p out
log=out/bench-train.jsonl
: >"$log"
for ((i = 1; i <= rounds; i++)); do
  echo "round $i/$rounds" >&2
  build/core/polypseg-bench "${c_model[@]}" --threads 1,2 --steps 5 --frames 1000 --json - | grep '^{' | tee -a "$log"
  for t in 1 2; do
    /usr/bin/python3 scripts/bench_train_torch.py "${torch_model[@]}" --steps 5 --infer-runs 100 --threads $t | tee -a "$log"
  done
done
/usr/bin/python3 scripts/bench_ratio.py "$log"
