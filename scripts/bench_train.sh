#!/usr/bin/env bash
# Side-by-side speed of the C core and our PyTorch implementation of the same training step
# (AdamW, BCE+Dice, batch 8 at 256x256) and of single-frame inference, interleaved in one run
# so both see the same machine load. Needs the build (scripts/setup.sh) and /usr/bin/python3
# with python3-torch (scripts/setup.sh --torch).
# Usage: scripts/bench_train.sh [ARCH=microaunet] [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
arch="${1:-microaunet}"; rounds="${2:-3}"
for ((i = 1; i <= rounds; i++)); do
  build/core/polypseg-bench --arch "$arch" --threads 1,2 --steps 5 --frames 100 --json -
  /usr/bin/python3 scripts/bench_train_torch.py --channels "$arch" --steps 5 --threads 1
  /usr/bin/python3 scripts/bench_train_torch.py --channels "$arch" --steps 5 --threads 2
done
