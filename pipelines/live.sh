#!/usr/bin/env bash
# Live endoscope view: camera -> polypseg -> display. See --help.
set -euo pipefail
# shellcheck source=pipelines/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<EOF
Usage: $0 [OPTIONS]

Shows a V4L2 camera (an endoscope's capture device) live with the polyps segmented by the
polypseg element: v4l2src -> videoconvert -> polypseg -> videoconvert -> display. Without a
display (\$DISPLAY and \$WAYLAND_DISPLAY unset) the frames go to fakesink, or to --sink.
Stop with Ctrl-C.

Options:
  -d, --device DEV         camera device (default /dev/video0)
  --test-pattern           a moving test picture (videotestsrc) instead of a camera: checks
                           the display and the element without one
  --caps CAPS              camera format, e.g. video/x-raw,width=1280,height=720,framerate=30/1
                           or image/jpeg,width=1920,height=1080 (decoded with jpegdec)
  --sink "SINK [PROPS]"    video sink (default autovideosink; fakesink without a display),
                           e.g. --sink "ximagesink sync=false"
  -w, --weights FILE       model weights (default: the element's, the shipped
                           microaunet-kvasir.safetensors)
  -t, --threshold T        polyp probability threshold (element default 0.5)
  -i, --inference-interval N
                           run the model on every Nth frame only (for slow machines)
  -s, --set PROP=VALUE     any other polypseg property, e.g. --set contour-width=5 (repeatable)
  --jsonl FILE             also write each frame's polyps as JSON lines (as record.sh does)
  -n, --frames N           stop after N frames
  --print                  print the command instead of running it
  -h, --help               this help

The plugin is the build tree's (build/gst-plugin) when run from a built checkout, else the
installed one.

Examples:
  $0
  $0 --device /dev/video2 --caps video/x-raw,width=1280,height=720,framerate=30/1
  $0 --inference-interval 2 --threshold 0.6
  $0 --sink fakesink --jsonl out/live.jsonl --frames 300   # no window, polyps to a file
EOF
}

device=/dev/video0 sink="" test_pattern=0
ps_split_equals "$@"
set -- "${PS_ARGS[@]}"
while (($#)); do
  case $1 in
    -h | --help)
      usage
      exit 0
      ;;
    --test-pattern)
      test_pattern=1
      shift
      ;;
    -d | --device | --sink)
      (($# >= 2)) || ps_usage_error "$1 needs a value"
      case $1 in
        -d | --device) device=$2 ;;
        --sink) sink=$2 ;;
      esac
      shift 2
      ;;
    *)
      ps_parse_common "$@"
      ((PS_SHIFT)) || ps_usage_error "unknown argument $1"
      [[ $1 != --cvc-sequence && $1 != --pattern && $1 != --fps && $1 != --start ]] ||
        ps_usage_error "$1 is for frame folders (record.sh, playback.sh)"
      shift "$PS_SHIFT"
      ;;
  esac
done

ps_find_plugin
if ((test_pattern)); then
  PS_SRC=(videotestsrc is-live=true pattern=ball)
  [[ -n $PS_CAPS ]] || PS_CAPS=video/x-raw,width=640,height=480,framerate=30/1
  ps_add_caps
else
  ps_camera_source "$device"
fi
ps_display_sink "$sink"
ps_polypseg
# The queue lets the display run in its own thread; leaky so a slow model drops frames
# instead of delaying the picture.
ps_run "${PS_SRC[@]}" ! videoconvert ! "${PS_SEG[@]}" ! queue leaky=downstream \
  max-size-buffers=2 ! videoconvert ! "${PS_SINK[@]}"
