#!/usr/bin/env bash
# Sets up, then records an annotated MP4 from a real colonoscopy clip through the polypseg
# GStreamer element (pipelines/record.sh): out/annotated.mp4 (H.264, polyps tinted and outlined)
# and out/annotated.jsonl (each frame's polyps), and its first frame as out/annotated-frame.png.
# The clip is CVC-ClinicDB sequence 5 (held out from training the shipped CVC weights) from
# $POLYPSEG_DATA or ../shared/datasets, or the video file or folder of numbered frames you name.
#   scripts/demo.sh [--weights FILE] [VIDEO | FRAME-FOLDER]
set -euo pipefail

# Paths given are taken from where the script is run, so they are made absolute before the cd.
weights="" input=""
while (($#)); do
  case $1 in
    -h | --help)
      sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    -w | --weights)
      (($# >= 2)) || { echo "demo: $1 needs a file" >&2; exit 2; }
      weights=$(realpath -m -- "$2")
      shift 2
      ;;
    -?*)
      echo "demo: unknown option $1 (see --help)" >&2
      exit 2
      ;;
    *)
      [[ -z $input ]] || { echo "demo: one input only (see --help)" >&2; exit 2; }
      input=$(realpath -m -- "$1")
      shift
      ;;
  esac
done
# so is a relative $POLYPSEG_DATA
if [[ -n ${POLYPSEG_DATA:-} ]]; then
  POLYPSEG_DATA=$(realpath -m -- "$POLYPSEG_DATA")
  export POLYPSEG_DATA
fi
cd "$(dirname "$0")/.."

scripts/setup.sh
mkdir -p out
if [[ -n $input ]]; then
  # Any colonoscopy video: the Kvasir-SEG weights (the element's default) unless told otherwise.
  args=("$input")
  [[ -z $weights ]] || args=(--weights "$weights" "${args[@]}")
else
  data="${POLYPSEG_DATA:-../shared/datasets}"
  if [[ ! -f $data/cvc-clinicdb/sequences.csv ]]; then
    echo "demo: no CVC-ClinicDB at $data/cvc-clinicdb: name a clip instead," \
      "scripts/demo.sh VIDEO (or a folder of numbered frames)" >&2
    exit 1
  fi
  args=(--cvc-sequence 5 --weights "${weights:-weights/microaunet-cvc.safetensors}")
fi
pipelines/record.sh "${args[@]}" out/annotated.mp4
# One frame to look at without a video player: the recording's first, decoded back (pngenc
# snapshot=true stops after it, so a long video costs no more than a short one).
rm -f out/annotated-frame.png
gst-launch-1.0 -q filesrc location=out/annotated.mp4 ! decodebin ! videoconvert ! pngenc snapshot=true \
  ! filesink location=out/annotated-frame.png
echo "demo: wrote out/annotated.mp4, out/annotated.jsonl and out/annotated-frame.png"
