#!/usr/bin/env bash
# Sets up, then segments a real Kvasir-SEG validation image with the shipped weights,
# writing out/mask.png and out/overlay.png. Pass an image path to segment your own.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
img="${1:-}"
if [[ -z "$img" ]]; then
  data="${POLYPSEG_DATA:-../shared/datasets}"
  img=$(ls "$data"/kvasir-seg/val/images/*.jpg 2>/dev/null | head -n 1 || true)
  [[ -n "$img" ]] || { echo "demo: no dataset at $data; run: scripts/demo.sh IMAGE.jpg" >&2; exit 1; }
fi
mkdir -p out
build/core/polypseg-infer --weights weights/microaunet-kvasir.safetensors --input "$img" \
  --mask out/mask.png --overlay out/overlay.png
