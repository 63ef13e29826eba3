#!/usr/bin/env bash
# Records an annotated H.264 MP4 (polyp overlay and contours drawn in) from a video file, a
# folder of numbered frames, a camera or a CVC-ClinicDB sequence, with a JSON-lines sidecar
# holding each frame's polyps. See --help.
set -euo pipefail
# shellcheck source=pipelines/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<EOF
Usage: $0 [OPTIONS] INPUT OUT.mp4
       $0 [OPTIONS] --cvc-sequence N OUT.mp4

Runs INPUT through the polypseg element and records the annotated video as H.264 (x264enc) in
MP4, plus OUT.jsonl: one JSON line per frame with its polyps (the element's "polypseg" messages:
frame, timestamp, stream-time, running-time, duration in ns, inferred, n-polyps, polyps with id,
x, y, width, height, area, score, contour).

INPUT is one of
  a video file             anything decodebin plays (mp4, mkv, avi, ...; audio is left out)
  a folder of frames       numbered PNG or JPEG files (1.png, 2.png... or 0001.jpg...) read in
                           number order at --fps; other names with --pattern
  a camera device          /dev/videoN (v4l2src); stop with Ctrl-C or --frames
Ctrl-C ends the recording cleanly: the MP4 is finalised and playable.

Options:
  --cvc-sequence N         record CVC-ClinicDB sequence N (1..26) from \$POLYPSEG_DATA or
                           ../shared/datasets: its frames, in order (held-out test sequences
                           of the CVC weights: 5, 10, 15, 20, 25)
  -w, --weights FILE       model weights (default: the element's, the shipped
                           microaunet-kvasir.safetensors; for CVC-ClinicDB consider
                           weights/microaunet-cvc.safetensors)
  -t, --threshold T        polyp probability threshold (element default 0.5)
  -i, --inference-interval N
                           run the model on every Nth frame only
  -s, --set PROP=VALUE     any other polypseg property, e.g. --set overlay-alpha=0.5 (repeatable)
  --jsonl FILE             the JSON lines file (default: OUT.mp4 with .jsonl instead of .mp4)
  --caps CAPS              a camera's format, e.g. video/x-raw,width=1280,height=720,framerate=30/1
                           or image/jpeg,width=1920,height=1080 (decoded with jpegdec)
  -n, --frames N           stop after N frames
  --fps N[/D]              frame rate of a folder of frames or a CVC sequence (default 25)
  --pattern PRINTF         file names of the frames in the folder, e.g. frame_%05d.png
  --start N                first number for --pattern (default: the smallest there is)
  --bitrate KBITS          H.264 bit rate in kbit/s (default 4000)
  --preset NAME            x264 speed preset: ultrafast ... veryslow (default faster)
  --print                  print the command instead of running it
  -h, --help               this help

The plugin is the build tree's (build/gst-plugin) when run from a built checkout, else the
installed one. Frame sizes must be even (H.264 4:2:0).

Examples:
  $0 --cvc-sequence 5 --weights weights/microaunet-cvc.safetensors out/seq5.mp4
  $0 clip.mp4 out/clip-annotated.mp4            # also writes out/clip-annotated.jsonl
  $0 --fps 30 frames/ out/frames.mp4
  $0 --frames 300 /dev/video0 out/camera.mp4    # 10 s at 30 fps
  $0 --threshold 0.6 --set draw-overlay=false clip.mkv out/contours-only.mp4
EOF
}

bitrate=4000 preset=faster positional=()
ps_split_equals "$@"
set -- "${PS_ARGS[@]}"
while (($#)); do
  case $1 in
    -h | --help)
      usage
      exit 0
      ;;
    --bitrate | --preset)
      (($# >= 2)) || ps_usage_error "$1 needs a value"
      case $1 in
        --bitrate)
          [[ $2 =~ ^[1-9][0-9]*$ ]] || ps_usage_error "--bitrate wants kbit/s, not '$2'"
          bitrate=$2
          ;;
        --preset) preset=$2 ;;
      esac
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
  ((${#positional[@]} == 1)) || ps_usage_error "with --cvc-sequence, give only OUT.mp4"
  input="" out=${positional[0]}
else
  ((${#positional[@]} == 2)) || ps_usage_error "give INPUT and OUT.mp4"
  input=${positional[0]} out=${positional[1]}
fi
[[ $out == *.mp4 ]] || ps_usage_error "OUT must end in .mp4: $out"
PS_JSONL=${PS_JSONL:-${out%.mp4}.jsonl}
case $preset in
  ultrafast | superfast | veryfast | faster | fast | medium | slow | slower | veryslow | placebo) ;;
  *) ps_usage_error "unknown x264 preset '$preset'" ;;
esac

ps_distinct_files "$input" "$out" "$PS_JSONL"
ps_find_plugin
ps_need_element x264enc gstreamer1.0-plugins-ugly
ps_need_element mp4mux gstreamer1.0-plugins-good
ps_source "$input"
ps_polypseg
mkdir -p "$(dirname "$out")"
echo "$PS_NAME: ${input:+$input }-> $out, $PS_JSONL" >&2

# Written as .part files, renamed when complete: a failed run leaves no broken MP4 and keeps
# an earlier one of the same name.
PS_OUTPUTS=("$out" "$PS_JSONL")
# I420 for the encoder: the most widely playable H.264 (High profile, 4:2:0).
ps_run "${PS_SRC[@]}" ! videoconvert ! "${PS_SEG[@]}" ! videoconvert \
  ! video/x-raw,format=I420 ! queue ! x264enc "bitrate=$bitrate" "speed-preset=$preset" \
  ! mp4mux ! filesink "location=$(realpath -m "$(ps_part "$out")")"
