#!/usr/bin/env bash
# The scripts in pipelines/ and the read-polyp-meta example, end to end with an untrained model
# (made by make-test-model): what they write (MP4 frames, JSON lines), --frames, Ctrl-C,
# errors. TAP output. meson passes POLYPSEG_BUILD (the build folder the scripts use) and a
# private GStreamer registry.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=${POLYPSEG_BUILD:?run by meson test}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unset DISPLAY WAYLAND_DISPLAY # the display fallback, whatever machine this runs on
export GST_PLUGIN_PATH=$build/gst-plugin

n=0 failed=0
ok() {
  n=$((n + 1))
  echo "ok $n - $1"
}
not_ok() {
  n=$((n + 1)) failed=$((failed + 1))
  echo "not ok $n - $1"
  [[ ! -s $tmp/log ]] || sed 's/^/# /' "$tmp/log"
}
skip() {
  n=$((n + 1))
  echo "ok $n - $1 # SKIP $2"
}
# check DESCRIPTION COMMAND...: ok when it succeeds; its output goes to $tmp/log.
check() {
  local what=$1
  shift
  if "$@" >"$tmp/log" 2>&1; then ok "$what"; else not_ok "$what"; fi
}
lines() { wc -l <"$1" | tr -d ' '; }
# Every line a JSON object with n-polyps == the number of polyps, frames numbered 0...
valid_jsonl() {
  python3 - "$1" "$2" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == int(sys.argv[2]), f"{len(rows)} lines, want {sys.argv[2]}"
for i, r in enumerate(rows):
    assert r["frame"] == i and r["n-polyps"] == len(r["polyps"]), r
    for p in r["polyps"]:
        assert {"id", "x", "y", "width", "height", "area", "score", "contour"} <= p.keys(), p
        assert 0 < p["area"] <= 1 and all(len(xy) == 2 for xy in p["contour"]), p
PY
}
# Frames in an MP4, decoded.
mp4_frames() {
  rm -rf "$tmp/dec" && mkdir "$tmp/dec"
  gst-launch-1.0 -q filesrc "location=$1" ! qtdemux ! h264parse ! avdec_h264 ! videoconvert \
    ! pngenc ! multifilesink "location=$tmp/dec/%d.png" >/dev/null 2>&1 || return 1
  find "$tmp/dec" -name '*.png' | wc -l
}

"$build/tests/gst/make-test-model" "$tmp/model.safetensors" 128 3 || { echo "Bail out! make-test-model failed"; exit 1; }
model=$tmp/model.safetensors
# 10 numbered PNG frames (0.png..9.png), 160x120.
mkdir "$tmp/frames"
gst-launch-1.0 -q videotestsrc num-buffers=10 pattern=ball ! video/x-raw,width=160,height=120 \
  ! pngenc ! multifilesink "location=$tmp/frames/%d.png" >/dev/null 2>&1 ||
  { echo "Bail out! cannot make test frames (gstreamer1.0-plugins-good?)"; exit 1; }

for s in live record playback; do
  check "$s.sh --help" "$repo/pipelines/$s.sh" --help
done

# record: a folder of frames -> MP4 + JSON lines, one per frame.
check "record.sh frames folder" "$repo/pipelines/record.sh" --weights "$model" --fps 10 \
  "$tmp/frames" "$tmp/out/rec.mp4"
if [[ $(mp4_frames "$tmp/out/rec.mp4") == 10 ]]; then ok "record.sh MP4 has 10 frames"; else not_ok "record.sh MP4 has 10 frames ($(mp4_frames "$tmp/out/rec.mp4"))"; fi
check "record.sh JSON lines: 10 valid" valid_jsonl "$tmp/out/rec.jsonl" 10

# ...and the recording as input (a video file through decodebin), stopped after 4 frames.
check "record.sh video file --frames 4" "$repo/pipelines/record.sh" --weights "$model" --frames 4 \
  --jsonl "$tmp/out/four.jsonl" "$tmp/out/rec.mp4" "$tmp/out/four.mp4"
check "record.sh --frames: 4 JSON lines" valid_jsonl "$tmp/out/four.jsonl" 4
if [[ $(mp4_frames "$tmp/out/four.mp4") == 4 ]]; then ok "record.sh --frames: MP4 has 4 frames"; else not_ok "record.sh --frames: MP4 has 4 frames"; fi

# A CVC-ClinicDB sequence (sequence 10: frames 200..205).
data=${POLYPSEG_DATA:-$repo/../shared/datasets}
if [[ -f $data/cvc-clinicdb/sequences.csv ]]; then
  check "record.sh --cvc-sequence 10" "$repo/pipelines/record.sh" --weights "$model" \
    --cvc-sequence 10 "$tmp/out/cvc.mp4"
  check "record.sh --cvc-sequence 10: 6 JSON lines" valid_jsonl "$tmp/out/cvc.jsonl" 6
  if [[ $(mp4_frames "$tmp/out/cvc.mp4") == 6 ]]; then ok "CVC MP4 has 6 frames"; else not_ok "CVC MP4 has 6 frames"; fi
elif [[ ${CI:-} == true ]]; then
  not_ok "CVC-ClinicDB not found at $data (CI must have the datasets)"
else
  skip "record.sh --cvc-sequence" "datasets not found: set POLYPSEG_DATA or put them in ../shared/datasets"
fi

# playback and live (no display here: fakesink).
check "playback.sh frames folder" "$repo/pipelines/playback.sh" --weights "$model" \
  --jsonl "$tmp/out/play.jsonl" "$tmp/frames"
check "playback.sh: 10 JSON lines" valid_jsonl "$tmp/out/play.jsonl" 10
check "live.sh --test-pattern --frames 5" "$repo/pipelines/live.sh" --test-pattern --frames 5 \
  --weights "$model" --jsonl "$tmp/out/live.jsonl"
check "live.sh: 5 JSON lines" valid_jsonl "$tmp/out/live.jsonl" 5
# (stdout only: the printed command must end in fakesink; the note on stderr mentions it anyway)
check "live.sh without a display: fakesink" grep -qE '! fakesink *$' <(env -u DISPLAY -u WAYLAND_DISPLAY "$repo/pipelines/live.sh" --test-pattern --print 2>/dev/null)

# The camera path without a camera: /dev/null is a character device but no V4L2 driver, so the
# pipeline is the camera one (v4l2src, decoder for MJPEG caps) and v4l2src's error must surface.
"$repo/pipelines/live.sh" --device /dev/null --caps image/jpeg,width=1280,height=720 --print >"$tmp/log" 2>&1
if grep -q 'v4l2src device=/dev/null .*image/jpeg.*jpegdec .*polypseg' "$tmp/log"; then ok "live.sh camera pipeline (MJPEG caps decoded)"; else not_ok "live.sh camera pipeline"; fi
"$repo/pipelines/live.sh" --device /dev/null --frames 3 --weights "$model" >"$tmp/log" 2>&1
rc=$?
if ((rc == 1)) && grep -q "v4l2src.*/dev/null" "$tmp/log"; then ok "live.sh: a device that is no camera fails with v4l2src's error"; else not_ok "live.sh: not-a-camera error (exit $rc)"; fi
"$repo/pipelines/live.sh" --device "$tmp/no-video9" >"$tmp/log" 2>&1
rc=$?
if ((rc != 0)) && grep -q "no camera at $tmp/no-video9" "$tmp/log"; then ok "live.sh: missing camera named"; else not_ok "live.sh: missing camera named (exit $rc)"; fi
"$repo/pipelines/record.sh" --weights "$model" /dev/null "$tmp/out/cam.mp4" >"$tmp/log" 2>&1
rc=$?
if ((rc == 1)) && grep -q "v4l2src.*/dev/null" "$tmp/log"; then ok "record.sh camera input: v4l2src's error"; else not_ok "record.sh camera input error (exit $rc)"; fi

# Errors: a clear message and a non-zero exit.
"$repo/pipelines/record.sh" --weights "$tmp/none.safetensors" "$tmp/frames" "$tmp/out/x.mp4" >"$tmp/log" 2>&1
rc=$?
if ((rc != 0)) && grep -q "none.safetensors" "$tmp/log"; then ok "missing weights named"; else not_ok "missing weights named (exit $rc)"; fi
: >"$tmp/empty.safetensors"
"$repo/pipelines/record.sh" --weights "$tmp/empty.safetensors" "$tmp/frames" "$tmp/out/x.mp4" >"$tmp/log" 2>&1
rc=$?
if ((rc == 1)) && grep -q "error from .*polypseg.*empty.safetensors" "$tmp/log"; then ok "bad weights: the element's error"; else not_ok "bad weights: the element's error (exit $rc)"; fi
"$repo/pipelines/record.sh" "$tmp/nothing-here" "$tmp/out/x.mp4" >"$tmp/log" 2>&1
rc=$?
if ((rc == 1)) && grep -q "no such file" "$tmp/log"; then ok "missing input"; else not_ok "missing input (exit $rc)"; fi
"$repo/pipelines/record.sh" --no-such-option >"$tmp/log" 2>&1
if (($? == 2)); then ok "unknown option: exit 2"; else not_ok "unknown option: exit 2"; fi
"$repo/pipelines/record.sh" --threshold 7 "$tmp/frames" "$tmp/out/x.mp4" >"$tmp/log" 2>&1
if (($? == 2)) && grep -q "threshold wants a number in \[0, 1\]" "$tmp/log"; then ok "--threshold 7: exit 2"; else not_ok "--threshold 7: exit 2"; fi

# record.sh --caps for a camera (MJPEG decoded), refused for anything else.
"$repo/pipelines/record.sh" --caps image/jpeg,width=1920,height=1080 --print /dev/null "$tmp/out/cam.mp4" >"$tmp/log" 2>&1
if grep -q 'v4l2src device=/dev/null .*image/jpeg.*jpegdec .*polypseg' "$tmp/log"; then ok "record.sh --caps: camera format, MJPEG decoded"; else not_ok "record.sh --caps camera"; fi
"$repo/pipelines/record.sh" --caps video/x-raw "$tmp/frames" "$tmp/out/x.mp4" >"$tmp/log" 2>&1
if (($? == 2)) && grep -q "caps is for a camera" "$tmp/log"; then ok "record.sh --caps on frames: exit 2"; else not_ok "record.sh --caps on frames"; fi

# A folder whose path holds a % (multifilesrc's format character) and whose frames are links.
mkdir "$tmp/100% links"
for i in 0 1 2; do ln -s "$tmp/frames/$i.png" "$tmp/100% links/$i.png"; done
check "record.sh: % in the folder, linked frames" "$repo/pipelines/record.sh" --weights "$model" \
  "$tmp/100% links" "$tmp/out/links.mp4"
check "record.sh: % and links: 3 JSON lines" valid_jsonl "$tmp/out/links.jsonl" 3

# The input as the output: refused before anything is written (filesink would empty it first).
cp "$tmp/out/rec.mp4" "$tmp/out/same.mp4"
before=$(cksum <"$tmp/out/same.mp4")
"$repo/pipelines/record.sh" --weights "$model" "$tmp/out/same.mp4" "$tmp/out/same.mp4" >"$tmp/log" 2>&1
rc=$?
if ((rc == 1)) && grep -q "same file" "$tmp/log" && [[ $(cksum <"$tmp/out/same.mp4") == "$before" ]]; then
  ok "record.sh: input as output refused, input kept"
else
  not_ok "record.sh: input as output (exit $rc)"
fi

# A corrupt frame ends a folder's stream early: the run fails, and the earlier recording of
# the same name stays as it was (no half-written replacement, no .part left).
cp -r "$tmp/frames" "$tmp/broken"
head -c 300 "$tmp/frames/4.png" >"$tmp/broken/4.png"
before=$(cksum <"$tmp/out/rec.mp4")
"$repo/pipelines/record.sh" --weights "$model" --fps 10 "$tmp/broken" "$tmp/out/rec.mp4" >"$tmp/log" 2>&1
rc=$?
if ((rc == 1)) && grep -q "of the 10 frames expected came through" "$tmp/log" &&
  [[ $(cksum <"$tmp/out/rec.mp4") == "$before" ]] && ! compgen -G "$tmp/out/*.part" >/dev/null; then
  ok "record.sh: corrupt frame fails the run, earlier output kept"
else
  not_ok "record.sh: corrupt frame (exit $rc)"
fi

# Ctrl-C during a live recording: the MP4 is finished and plays.
"$build/pipelines/polypseg-record" --jsonl "$tmp/out/int.jsonl" -- videotestsrc is-live=true \
  ! video/x-raw,width=160,height=120,framerate=30/1 ! videoconvert \
  ! polypseg "weights=$model" post-messages=true ! videoconvert ! video/x-raw,format=I420 \
  ! x264enc speed-preset=ultrafast ! mp4mux ! filesink "location=$tmp/out/int.mp4" >"$tmp/log" 2>&1 &
pid=$!
for _ in $(seq 300); do # until frames flow (up to 30 s on a loaded machine)
  [[ -s $tmp/out/int.jsonl ]] && break
  sleep 0.1
done
sleep 0.5
kill -INT "$pid"
wait "$pid"
rc=$?
frames=$(mp4_frames "$tmp/out/int.mp4")
if ((rc == 0)) && [[ -n $frames ]] && ((frames > 0 && frames == $(lines "$tmp/out/int.jsonl"))); then
  ok "Ctrl-C: finished MP4 ($frames frames, as many JSON lines)"
else
  not_ok "Ctrl-C: finished MP4 (exit $rc, ${frames:-no} decodable frames)"
fi

# The example application reading the metas.
check "read-polyp-meta" "$build/gst-plugin/examples/read-polyp-meta" videotestsrc num-buffers=3 \
  ! video/x-raw,format=BGRx,width=160,height=120 ! polypseg "weights=$model" threshold=0 ! fakesink
if [[ $(grep -c "1 polyp(s), mask 128x128 with 16384 polyp pixels" "$tmp/log") == 3 ]] &&
  grep -q "polyp 0: box 0,0 160x120  area 1.0000" "$tmp/log"; then
  ok "read-polyp-meta prints the metas"
else
  not_ok "read-polyp-meta prints the metas"
fi

echo "1..$n"
((failed == 0))
