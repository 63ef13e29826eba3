#!/usr/bin/env bash
# Re-trains the shipped weight files with the commands recorded in weights/README.md, into
# runs/ (logs there too). Stages (the run names are the ones the shipped files' metadata records):
#   students: kv1 = 160 epochs on Kvasir train from scratch at 256 -> kv2 = 80 epochs at lr 1e-3
#   -> kv320 = 40 epochs at 320 -> jointk = 36 epochs on CVC train + Kvasir train at 320;
#   teachers (MALUNet, at 256): mal-kv = 90 epochs on Kvasir train, mal-joint = 60 epochs on CVC
#   train + Kvasir train; they teach every student below. The shipped teacher files are their
#   whole-image fine-tunes at a larger side: malunet-kvasir = mal-kv384, malunet-cvc = mal-joint320;
#   distilled students (at 320): kvkd = kv320 + 80 epochs taught by mal-kv, jointkd = jointk +
#   50 epochs taught by mal-joint.
#   ablation runs: kvkd-s1 / jointkd-s1 (stage 1 only), kvctl / jointctl (no teacher);
#   soup-all = the mean of the weights of the seven fine-tunes of kv320's line;
#   sl2-kv384 (microaunet-kvasir until the fourteenth session): kvkd taught again at 384 (kv384-61,
#   -62), each then fine-tuned on whole images with the structure loss at weight 2 (sl2-kv384-81,
#   -82), and the two averaged; microaunet-kvasir = kd90-sl2: sl2-kv384 taught 90 epochs more at
#   384 by mal-kv384 (kd90-141, -142), each then the same whole-image stage (kd90-sl2-161, -162),
#   and the two averaged;
#   microaunet-cvc = tv7-cvc, the mean of two 10-epoch fine-tunes of soup-all on whole frames
#   (--crop-scale 1,1: no random crops, as the model sees frames at inference) with the
#   recall-leaning Tversky loss (--fn-weight 0.7); microaunet-cvc-256 = cvc256cw-134, tv7-cvc
#   trained on at 256 (20 epochs with crops, cvc256c-133, then 10 on whole frames).
# With --ablation also the CVC-only model of the reverse cross-dataset figure.
# Each stage took 5-95 min on a 2-core machine with one or two runs beside it; the whole script
# runs one stage at a time (about 14.5 hours in all by the logged stage times). Then copy the files
# weights/README.md names into weights/ and update its scores (polypseg-eval prints them).
set -euo pipefail
case "${1:-}" in
  "" | --ablation) [ $# -le 1 ] || { echo "train_shipped: one option at most (--ablation)" >&2; exit 2; } ;;
  -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;; # the header
  *) echo "train_shipped: unknown argument '$1' (the options are --ablation and --help)" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
scripts/setup.sh
D="${POLYPSEG_DATA:-../shared/datasets}"
mkdir -p runs
train() { # NAME ARGS...: one stage, logged to runs/NAME.{log,jsonl}; ARCH= picks the model
  local name=$1
  shift
  build/core/polypseg-train --arch "${ARCH:-microaunet}" --log "runs/$name.jsonl" --out "runs/$name.safetensors" "$@" \
    >"runs/$name.log" 2>&1 || { echo "stage $name failed:" >&2; tail -n 20 "runs/$name.log" >&2; return 1; }
}
kvasir=(--data "$D/kvasir-seg/train" --val "$D/kvasir-seg/val" --dataset-name kvasir-seg/train)
joint=(--data "$D/cvc-clinicdb" --split "$D/cvc-clinicdb/splits/train.txt" --add-data "$D/kvasir-seg/train"
  --val "$D/cvc-clinicdb" --val-split "$D/cvc-clinicdb/splits/test.txt"
  --dataset-name "cvc-clinicdb splits/train.txt + kvasir-seg/train")

train kv1 "${kvasir[@]}" --epochs 160 --lr 4e-3 --seed 1
train kv2 "${kvasir[@]}" --init runs/kv1.safetensors --epochs 80 --lr 1e-3 --seed 2
train kv320 "${kvasir[@]}" --init runs/kv2.safetensors --size 320 --epochs 40 --lr 1e-3 --seed 3
train jointk "${joint[@]}" --init runs/kv320.safetensors --size 320 --epochs 36 --lr 1e-3 --seed 8
ARCH=malunet train mal-kv "${kvasir[@]}" --epochs 90 --lr 3e-3 --warmup-epochs 2 --seed 12
ARCH=malunet train mal-joint "${joint[@]}" --epochs 60 --lr 3e-3 --warmup-epochs 2 --seed 11
ARCH=malunet train mal-kv384 "${kvasir[@]}" --init runs/mal-kv.safetensors --size 384 --crop-scale 1,1 --epochs 10 \
  --lr 3e-4 --seed 86
ARCH=malunet train mal-joint320 "${joint[@]}" --init runs/mal-joint.safetensors --size 320 --crop-scale 1,1 \
  --epochs 10 --lr 3e-4 --seed 76
train kvkd "${kvasir[@]}" --init runs/kv320.safetensors --teacher runs/mal-kv.safetensors --size 320 \
  --epochs 80 --lr 1e-3 --seed 13
train jointkd "${joint[@]}" --init runs/jointk.safetensors --teacher runs/mal-joint.safetensors --size 320 \
  --epochs 50 --lr 1e-3 --seed 14
# the ablation runs (stage 1 only; the same epochs without a teacher), which microaunet-cvc averages
train kvkd-s1 "${kvasir[@]}" --init runs/kv320.safetensors --teacher runs/mal-kv.safetensors --size 320 \
  --epochs 80 --stage1-epochs 80 --lr 1e-3 --seed 13
train kvctl "${kvasir[@]}" --init runs/kv320.safetensors --size 320 --epochs 80 --lr 1e-3 --seed 13
train jointkd-s1 "${joint[@]}" --init runs/jointk.safetensors --teacher runs/mal-joint.safetensors --size 320 \
  --epochs 50 --stage1-epochs 50 --lr 1e-3 --seed 14
train jointctl "${joint[@]}" --init runs/jointk.safetensors --size 320 --epochs 50 --lr 1e-3 --seed 14
build/core/polypseg-average -o runs/soup-all.safetensors --val "$D/cvc-clinicdb" \
  --val-split "$D/cvc-clinicdb/splits/test.txt" runs/{kvkd,kvkd-s1,kvctl,jointk,jointkd,jointkd-s1,jointctl}.safetensors
for seed in 71 72; do # whole-frame fine-tunes with the Tversky loss (about 5-6 min each)
  train tv7-cvc-$seed "${joint[@]}" --init runs/soup-all.safetensors --size 320 --crop-scale 1,1 --epochs 10 \
    --lr 3e-4 --fn-weight 0.7 --seed $seed --threads 1
done
build/core/polypseg-average -o runs/tv7-cvc.safetensors --val "$D/cvc-clinicdb" \
  --val-split "$D/cvc-clinicdb/splits/test.txt" runs/tv7-cvc-71.safetensors runs/tv7-cvc-72.safetensors
for seed in 61 62; do # microaunet-kvasir: kvkd at 384, taught at 384 (about 13 min each), then whole images
  train kv384-$seed "${kvasir[@]}" --init runs/kvkd.safetensors --teacher runs/mal-kv.safetensors --size 384 \
    --epochs 16 --stage1-epochs 16 --lr 3e-4 --min-lr 3e-4 --seed $seed --snapshot-every 2 --threads 1
  train sl2-kv384-$((seed + 20)) "${kvasir[@]}" --init runs/kv384-$seed.safetensors --size 384 --crop-scale 1,1 \
    --epochs 10 --lr 3e-4 --structure-loss 2 --seed $((seed + 20)) --threads 1
done
build/core/polypseg-average -o runs/sl2-kv384.safetensors --val "$D/kvasir-seg/val" \
  runs/sl2-kv384-81.safetensors runs/sl2-kv384-82.safetensors
for seed in 141 142; do # microaunet-kvasir: sl2-kv384 taught 90 epochs more at 384 by mal-kv384 (about 70 min each), then whole images
  train kd90-$seed "${kvasir[@]}" --init runs/sl2-kv384.safetensors --teacher runs/mal-kv384.safetensors --size 384 \
    --epochs 90 --lr 3e-4 --seed $seed --threads 1
  train kd90-sl2-$((seed + 20)) "${kvasir[@]}" --init runs/kd90-$seed.safetensors --size 384 --crop-scale 1,1 \
    --epochs 10 --lr 3e-4 --structure-loss 2 --seed $((seed + 20)) --threads 1
done
build/core/polypseg-average -o runs/kd90-sl2.safetensors --val "$D/kvasir-seg/val" \
  runs/kd90-sl2-161.safetensors runs/kd90-sl2-162.safetensors
# microaunet-cvc-256, the fast option: microaunet-cvc (tv7-cvc) trained on at 256, crops then whole frames
train cvc256c-133 "${joint[@]}" --init runs/tv7-cvc.safetensors --size 256 --epochs 20 --lr 1e-3 --seed 133 --threads 1
train cvc256cw-134 "${joint[@]}" --init runs/cvc256c-133.safetensors --size 256 --crop-scale 1,1 --epochs 10 \
  --lr 3e-4 --fn-weight 0.7 --seed 134 --threads 1
if [ "${1:-}" = "--ablation" ]; then # the CVC-only model of the reverse cross-dataset figure (about 1 h more)
  train cvconly --data "$D/cvc-clinicdb" --split "$D/cvc-clinicdb/splits/train.txt" --val "$D/cvc-clinicdb" \
    --val-split "$D/cvc-clinicdb/splits/test.txt" --dataset-name "cvc-clinicdb splits/train.txt" --epochs 200 \
    --lr 4e-3 --seed 1
fi
python3 scripts/plot_training.py weights/training-loss.png runs/kv1.jsonl:kv1 runs/kv2.jsonl:kv2 \
  runs/kv320.jsonl:kv320 runs/jointk.jsonl:jointk --title "MicroAUNet training loss per stage (BCE + Dice)" \
  --ymax 1.0
tail -n 2 runs/kv320.log runs/jointk.log runs/mal-kv.log runs/mal-joint.log runs/mal-kv384.log runs/mal-joint320.log \
  runs/kvkd.log runs/jointkd.log \
  runs/kvkd-s1.log runs/kvctl.log runs/jointkd-s1.log runs/jointctl.log runs/tv7-cvc-7[12].log runs/sl2-kv384-8[12].log runs/kd90-sl2-16[12].log \
  runs/cvc256cw-134.log
