#!/usr/bin/env bash
# Re-trains the two shipped weight files with the commands recorded in weights/README.md, into
# runs/ (logs there too). Stages (the run names are the ones the shipped files' metadata records):
#   kvasir:  kv1 = 160 epochs from scratch at 256 -> kv2 = 80 epochs at lr 1e-3 -> kv320 = 40
#            epochs at 320                                  -> weights/microaunet-kvasir
#   cvc:     joint = 60 epochs on CVC train + Kvasir train from kv1 at 256 -> joint320 = 40
#            epochs at 320                                  -> weights/microaunet-cvc
# About 3 hours on a 2-core machine (the two chains run side by side after kv1). Then:
#   cp runs/kv320.safetensors weights/microaunet-kvasir.safetensors
#   cp runs/joint320.safetensors weights/microaunet-cvc.safetensors
# and update the scores in weights/README.md (polypseg-eval prints them).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
D="${POLYPSEG_DATA:-../shared/datasets}"
mkdir -p runs
train() { # NAME ARGS...: one stage, logged to runs/NAME.{log,jsonl}
  local name=$1
  shift
  build/core/polypseg-train --arch microaunet --log "runs/$name.jsonl" --out "runs/$name.safetensors" "$@" \
    >"runs/$name.log" 2>&1
}
kvasir=(--data "$D/kvasir-seg/train" --val "$D/kvasir-seg/val" --dataset-name kvasir-seg/train)
joint=(--data "$D/cvc-clinicdb" --split "$D/cvc-clinicdb/splits/train.txt" --add-data "$D/kvasir-seg/train"
  --val "$D/cvc-clinicdb" --val-split "$D/cvc-clinicdb/splits/test.txt"
  --dataset-name "cvc-clinicdb splits/train.txt + kvasir-seg/train")

train kv1 "${kvasir[@]}" --epochs 160 --lr 4e-3 --seed 1
(
  train kv2 "${kvasir[@]}" --init runs/kv1.safetensors --epochs 80 --lr 1e-3 --seed 2
  train kv320 "${kvasir[@]}" --init runs/kv2.safetensors --size 320 --epochs 40 --lr 1e-3 --seed 3
) &
train joint "${joint[@]}" --init runs/kv1.safetensors --epochs 60 --lr 1e-3 --seed 1
train joint320 "${joint[@]}" --init runs/joint.safetensors --size 320 --epochs 40 --lr 1e-3 --seed 4
wait
python3 scripts/plot_training.py weights/training-loss.png runs/kv1.jsonl:kv1 runs/kv2.jsonl:kv2 \
  runs/kv320.jsonl:kv320 runs/joint.jsonl:joint runs/joint320.jsonl:joint320 \
  --title "MicroAUNet training loss (BCE + Dice)" --ymax 1.6
tail -n 2 runs/kv320.log runs/joint320.log
