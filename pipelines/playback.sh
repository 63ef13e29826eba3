#!/usr/bin/env bash
# Plays a video file or a folder of frames through polypseg to the display. See --help.
set -euo pipefail
# shellcheck source=pipelines/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<EOF
Usage: $0 [OPTIONS] INPUT
       $0 [OPTIONS] --cvc-sequence N

Plays INPUT with the polyps segmented by the polypseg element, to the display (autovideosink;
fakesink when \$DISPLAY and \$WAYLAND_DISPLAY are unset, or --sink).

INPUT is a video file (anything decodebin plays) or a folder of numbered PNG or JPEG frames
(1.png, 2.png... or 0001.jpg...; other names with --pattern), played in number order at --fps.

Options:
  --cvc-sequence N         play CVC-ClinicDB sequence N (1..26) from \$POLYPSEG_DATA or
                           ../shared/datasets
  --sink "SINK [PROPS]"    video sink (default autovideosink; fakesink without a display)
  -w, --weights FILE       model weights (default: the element's, the shipped
                           microaunet-kvasir.safetensors)
  -t, --threshold T        polyp probability threshold (element default 0.5)
  -i, --inference-interval N
                           run the model on every Nth frame only
  -s, --set PROP=VALUE     any other polypseg property (repeatable)
  --jsonl FILE             also write each frame's polyps as JSON lines (as record.sh does)
  -n, --frames N           stop after N frames
  --fps N[/D]              frame rate of a folder of frames or a CVC sequence (default 25)
  --pattern PRINTF         file names of the frames in the folder, e.g. frame_%05d.png
  --start N                first number for --pattern (default: the smallest there is)
  --print                  print the command instead of running it
  -h, --help               this help

Examples:
  $0 clip.mp4
  $0 --fps 10 frames/
  $0 --cvc-sequence 15 --weights weights/microaunet-cvc.safetensors
  $0 --sink "fakesink sync=false" --jsonl out/clip.jsonl clip.mp4   # as fast as possible, no window
EOF
}

sink="" positional=()
ps_split_equals "$@"
set -- "${PS_ARGS[@]}"
while (($#)); do
  case $1 in
    -h | --help)
      usage
      exit 0
      ;;
    --sink)
      (($# >= 2)) || ps_usage_error "$1 needs a value"
      sink=$2
      shift 2
      ;;
    --)
      shift
      positional+=("$@")
      break
      ;;
    -?*)
      ps_parse_common "$@"
      ((PS_SHIFT)) || ps_usage_error "unknown option $1"
      shift "$PS_SHIFT"
      ;;
    *)
      positional+=("$1")
      shift
      ;;
  esac
done

if [[ -n $PS_CVC ]]; then
  ((${#positional[@]} == 0)) || ps_usage_error "give either INPUT or --cvc-sequence"
  input=""
else
  ((${#positional[@]} == 1)) || ps_usage_error "give one INPUT (a video file or a folder of frames)"
  input=${positional[0]}
  [[ $input != /dev/* ]] || ps_usage_error "for a camera use pipelines/live.sh"
fi

ps_find_plugin
ps_source "$input"
ps_display_sink "$sink"
ps_polypseg
ps_run "${PS_SRC[@]}" ! videoconvert ! "${PS_SEG[@]}" ! queue ! videoconvert ! "${PS_SINK[@]}"
