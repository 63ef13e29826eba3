#!/usr/bin/env bash
# The polypseg element end to end: videotestsrc 1920x1080 (BGRx, I420, NV12) -> polypseg with
# overlay and contours -> fakesink, unsynchronised. For each format: FPS (frames / wall time of
# the whole pipeline) and the element's per-frame latency from GStreamer's latency tracer, as a
# table (out/bench-element.md) and a latency histogram (out/bench-element.png). The table also
# has the CPU time the whole pipeline took per frame (source, polypseg, sink and the tracer's
# logging; user + system, an idle worker's spin included) and the FPS that CPU time allows on
# this machine's cores at best.
# The model is microaunet-cvc (320x320 input, trained on video frames and Kvasir); the EXTRA
# properties come after it, so weights=weights/microaunet-kvasir.safetensors measures the 384 one
# and weights=weights/microaunet-cvc-256.safetensors the fast 256 one.
# --queue puts a queue before polypseg, so the source paints the next frame in a thread of its
# own while polypseg works on this one, as a capture source (v4l2src, a decoder) does in a live
# pipeline; without it the source and polypseg take turns in one streaming thread.
# Usage: scripts/bench_element.sh [--queue] [FRAMES=600] [EXTRA polypseg properties, e.g. threads=2]
set -euo pipefail
cd "$(dirname "$0")/.."
queue=() label=""
if [ "${1:-}" = "--queue" ]; then queue=(! queue); label=" +queue"; shift; fi
frames="${1:-600}"; shift || true
[[ $frames =~ ^[1-9][0-9]*$ ]] || { echo "bench_element: FRAMES must come first, a number (see the header)" >&2; exit 2; }
source pipelines/lib.sh # ps_find_plugin: the build tree's plugin, with a clear error when missing
ps_find_plugin
export GST_DEBUG_NO_COLOR=1
mkdir -p out
runs=()
TIMEFORMAT='%3U %3S' # bash's `time` below: the pipeline's user and system CPU seconds, into $cpu
for format in BGRx I420 NV12; do
  log=out/bench-element-$format.log cpu=out/bench-element-$format.cpu
  start=$(date +%s.%N)
  { time GST_TRACERS="latency(flags=element)" GST_DEBUG="GST_TRACER:7" gst-launch-1.0 -q \
    videotestsrc num-buffers="$frames" ! "video/x-raw,format=$format,width=1920,height=1080" "${queue[@]}" \
    ! polypseg name=polypseg weights=weights/microaunet-cvc.safetensors draw-overlay=true draw-contours=true "$@" \
    ! fakesink sync=false 2>"$log"; } 2>"$cpu" || { tail -n 20 "$log" >&2; exit 1; }
  end=$(date +%s.%N)
  runs+=("$format 1080p$label=$log,$frames,$(awk "BEGIN { print $end - $start }"),$(awk '{ print $1 + $2 }' "$cpu")")
done
python3 scripts/latency_report.py out/bench-element.png out/bench-element.md polypseg "${runs[@]}"
