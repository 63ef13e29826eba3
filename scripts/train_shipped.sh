#!/usr/bin/env bash
# Re-trains the two shipped weight files with the exact commands recorded in weights/README.md,
# into runs/ (logs there too): Kvasir-SEG from scratch, then CVC-ClinicDB fine-tuned from it.
# About 75 minutes on a 2-core machine. Then: cp runs/microaunet-*.safetensors weights/ and
# update the scores in weights/README.md (polypseg-eval prints them).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
D="${POLYPSEG_DATA:-../shared/datasets}"
mkdir -p runs
build/core/polypseg-train --arch microaunet --data $D/kvasir-seg/train --val $D/kvasir-seg/val \
  --dataset-name kvasir-seg/train --epochs 160 --lr 4e-3 --seed 1 --log runs/kvasir.jsonl \
  --out runs/microaunet-kvasir.safetensors > runs/kvasir.log 2>&1
build/core/polypseg-train --arch microaunet --init runs/microaunet-kvasir.safetensors \
  --data $D/cvc-clinicdb --split $D/cvc-clinicdb/splits/train.txt \
  --val $D/cvc-clinicdb --val-split $D/cvc-clinicdb/splits/test.txt \
  --dataset-name "cvc-clinicdb splits/train.txt" --epochs 60 --lr 1e-3 --seed 1 --log runs/cvc.jsonl \
  --out runs/microaunet-cvc.safetensors > runs/cvc.log 2>&1
python3 scripts/plot_training.py weights/training-loss.png runs/kvasir.jsonl:kvasir-seg \
  runs/cvc.jsonl:cvc-clinicdb-finetune --title "MicroAUNet training loss (BCE + Dice)" --ymax 1.6
tail -n 2 runs/kvasir.log runs/cvc.log
