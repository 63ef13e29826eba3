# shellcheck shell=bash disable=SC2034  # (its variables are read by the scripts sourcing it)
# Shared by pipelines/*.sh (sourced, not run): finding the plugin, building the input and the
# polypseg parts of a pipeline, running it. Pipelines are bash arrays of gst-launch-1.0 tokens,
# one token per element or property (so paths with spaces need no quoting).

PS_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The meson build folder: build/ in the checkout unless $POLYPSEG_BUILD names another.
PS_BUILD=${POLYPSEG_BUILD:-$PS_REPO/build}
PS_NAME=$(basename "$0")

ps_die() {
  echo "$PS_NAME: $*" >&2
  exit 1
}

# Usage errors: the message, then where the help is.
ps_usage_error() {
  echo "$PS_NAME: $*" >&2
  echo "Try '$0 --help'." >&2
  exit 2
}

# The build tree's plugin when this is a checkout that has been built, the installed one
# otherwise (GStreamer's own search: its plugin folder, GST_PLUGIN_PATH); then checks that
# GStreamer finds it.
ps_find_plugin() {
  command -v gst-launch-1.0 >/dev/null ||
    ps_die "gst-launch-1.0 not found: install gstreamer1.0-tools (scripts/setup.sh does)"
  if [[ -f $PS_BUILD/gst-plugin/libgstpolypseg.so ]]; then
    export GST_PLUGIN_PATH="$PS_BUILD/gst-plugin${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
  fi
  gst-inspect-1.0 polypseg >/dev/null 2>&1 ||
    ps_die "GStreamer cannot find the polypseg element: build it with scripts/setup.sh" \
      "(then it is used from build/gst-plugin) or install it with 'meson install -C build'" \
      "(GST_PLUGIN_PATH=${GST_PLUGIN_PATH:-unset})"
}

# ps_need_element ELEMENT PACKAGE: dies naming the Debian package when ELEMENT is missing.
ps_need_element() {
  gst-inspect-1.0 "$1" >/dev/null 2>&1 ||
    ps_die "GStreamer element $1 not found: install $2 (scripts/setup.sh does)"
}

# Common options. ps_parse_common "$@" consumes one option (and its value) if it is one of
# these and sets PS_SHIFT to how many arguments it used (0 when it is not one of them).
PS_WEIGHTS="" PS_THRESHOLD="" PS_INTERVAL="" PS_FRAMES="" PS_FPS=25 PS_PATTERN="" PS_START="" PS_JSONL=""
PS_CVC="" PS_PRINT=0 PS_CAPS=""
PS_PROPS=()
PS_EXPECTED="" # frames the source holds, when known (a folder of frames, a CVC sequence)
PS_OUTPUTS=()  # files ps_run writes as FILE.part and renames into place only when it succeeds
ps_parse_common() {
  local opt=$1
  PS_SHIFT=2
  case $opt in
    -w | --weights | -t | --threshold | -i | --inference-interval | -s | --set | -n | --frames | \
      --fps | --pattern | --start | --cvc-sequence | --jsonl | --caps)
      (($# >= 2)) || ps_usage_error "$opt needs a value"
      ;;
  esac
  case $opt in
    -w | --weights) PS_WEIGHTS=$2 ;;
    --jsonl) PS_JSONL=$2 ;;
    -t | --threshold)
      [[ $2 =~ ^(0(\.[0-9]*)?|1(\.0*)?|\.[0-9]+)$ ]] || ps_usage_error "--threshold wants a number in [0, 1], not '$2'"
      PS_THRESHOLD=$2
      ;;
    -i | --inference-interval)
      [[ $2 =~ ^[1-9][0-9]*$ ]] || ps_usage_error "--inference-interval wants a positive number, not '$2'"
      PS_INTERVAL=$2
      ;;
    -s | --set)
      [[ $2 == ?*=* ]] || ps_usage_error "--set wants PROPERTY=VALUE, not '$2'"
      PS_PROPS+=("$2")
      ;;
    -n | --frames)
      [[ $2 =~ ^[1-9][0-9]*$ ]] || ps_usage_error "--frames wants a positive number, not '$2'"
      PS_FRAMES=$2
      ;;
    --fps)
      [[ $2 =~ ^[1-9][0-9]*(/[1-9][0-9]*)?$ ]] || ps_usage_error "--fps wants N or N/D, not '$2'"
      PS_FPS=$2
      ;;
    --pattern) PS_PATTERN=$2 ;;
    --caps)
      [[ $2 == video/x-raw* || $2 == image/jpeg* ]] ||
        ps_usage_error "--caps wants video/x-raw,... or image/jpeg,..., not '$2'"
      PS_CAPS=$2
      ;;
    --start)
      [[ $2 =~ ^[0-9]+$ ]] || ps_usage_error "--start wants a number, not '$2'"
      PS_START=$2
      ;;
    --cvc-sequence)
      [[ $2 =~ ^[1-9][0-9]*$ ]] || ps_usage_error "--cvc-sequence wants a sequence number, not '$2'"
      PS_CVC=$2
      ;;
    --print) PS_PRINT=1 PS_SHIFT=1 ;;
    *) PS_SHIFT=0 ;;
  esac
}

# --fps as the fraction GStreamer caps want (25 -> 25/1).
ps_fps_fraction() {
  if [[ $PS_FPS == */* ]]; then echo "$PS_FPS"; else echo "$PS_FPS/1"; fi
}

# Splits --opt=value into --opt value: ps_split_equals "$@" sets PS_ARGS.
ps_split_equals() {
  PS_ARGS=()
  local a
  for a in "$@"; do
    if [[ $a == --*=* ]]; then
      PS_ARGS+=("${a%%=*}" "${a#*=}")
    else
      PS_ARGS+=("$a")
    fi
  done
}

# PS_SEG: the polypseg element with the chosen properties (extra tokens in "$@"); with
# --jsonl it posts the messages the JSON lines are written from.
ps_polypseg() {
  PS_SEG=(polypseg "$@")
  if [[ -n $PS_JSONL ]]; then
    PS_SEG+=(post-messages=true)
    mkdir -p "$(dirname "$PS_JSONL")"
  fi
  if [[ -n $PS_WEIGHTS ]]; then
    [[ -f $PS_WEIGHTS ]] || ps_die "weights file $PS_WEIGHTS not found"
    PS_SEG+=("weights=$(realpath "$PS_WEIGHTS")")
  fi
  [[ -z $PS_THRESHOLD ]] || PS_SEG+=("threshold=$PS_THRESHOLD")
  [[ -z $PS_INTERVAL ]] || PS_SEG+=("inference-interval=$PS_INTERVAL")
  PS_SEG+=("${PS_PROPS[@]}")
}

# The folder of CVC-ClinicDB ($POLYPSEG_DATA or ../shared/datasets next to the checkout).
ps_cvc_root() {
  local data=${POLYPSEG_DATA:-$PS_REPO/../shared/datasets}
  [[ -f $data/cvc-clinicdb/sequences.csv ]] ||
    ps_die "CVC-ClinicDB not found at $data/cvc-clinicdb (set POLYPSEG_DATA to the datasets folder)"
  (cd "$data/cvc-clinicdb" && pwd)
}

# PS_SRC for CVC-ClinicDB sequence N: its frames (consecutive numbers, from sequences.csv) in order.
ps_cvc_source() {
  local root csv first last count
  root=$(ps_cvc_root)
  csv=$root/sequences.csv
  read -r first last count < <(awk -F, -v s="$1" '
    NR > 1 && $2 + 0 == s + 0 { n++; f = $1 + 0; if (n == 1 || f < lo) lo = f; if (n == 1 || f > hi) hi = f }
    END { print (n ? lo : -1), (n ? hi : -1), n + 0 }' "$csv")
  if ((count == 0)); then
    ps_die "no sequence $1 in $csv (sequences: $(awk -F, 'NR > 1 { s[$2 + 0] = 1 } END { n = 0; for (k in s) if (k + 0 > n) n = k + 0; printf "1..%d", n }' "$csv"))"
  fi
  ((last - first + 1 == count)) ||
    ps_die "sequence $1's frames in $csv are not consecutive numbers ($count frames in $first..$last)"
  [[ -f $root/images/$first.png && -f $root/images/$last.png ]] ||
    ps_die "$root/images/ lacks frames $first..$last of sequence $1"
  echo "$PS_NAME: CVC-ClinicDB sequence $1: frames $first..$last ($count frames at $PS_FPS fps)" >&2
  PS_EXPECTED=$count
  PS_SRC=(multifilesrc "location=${root//%/%%}/images/%d.png" "start-index=$first" "stop-index=$last"
    "caps=image/png,framerate=$(ps_fps_fraction)" ! pngdec)
}

# PS_SRC for a folder of numbered frames (1.png, 2.png... or 0001.jpg...; --pattern for other
# names), read in number order by multifilesrc until the first missing number.
ps_frames_source() {
  local dir=$1 ext first last count width
  dir=$(cd "$dir" && pwd)
  if [[ -n $PS_PATTERN ]]; then
    ext=${PS_PATTERN##*.}
    [[ $PS_PATTERN =~ ^[^%/]*%(0[1-9][0-9]*)?d[^%/]*$ ]] ||
      ps_die "--pattern wants one %d or %0Nd in a file name, like frame_%05d.png, not '$PS_PATTERN'"
    first=$PS_START
    if [[ -z $first ]]; then
      # The smallest number among the names the pattern matches.
      local prefix=${PS_PATTERN%%%*} rest=${PS_PATTERN#*%} suffix f num
      suffix=${rest#*d}
      for f in "$dir/$prefix"*"$suffix"; do
        num=${f#"$dir/$prefix"}
        num=${num%"$suffix"}
        [[ $num =~ ^[0-9]+$ ]] || continue
        if [[ -z $first ]] || ((10#$num < first)); then first=$((10#$num)); fi
      done
      first=${first:-0}
    fi
    # shellcheck disable=SC2059
    [[ -f $dir/$(printf "$PS_PATTERN" "$first") ]] ||
      ps_die "no frame $dir/$(printf "$PS_PATTERN" "$first") (pattern $PS_PATTERN, first number $first; see --start)"
    PS_SRC=(multifilesrc "location=${dir//%/%%}/$PS_PATTERN" "start-index=$first")
  else
    # Names that are a number and an image extension; zero-padded ones fix the width.
    read -r ext first last count width < <(cd "$dir" && find -L . -maxdepth 1 -type f -printf '%f\n' |
      grep -E '^[0-9]+\.([Pp][Nn][Gg]|[Jj][Pp][Ee]?[Gg])$' | awk -F. '
        { e = $2; exts[e]++; n++; v = $1 + 0
          if (n == 1 || v < lo) lo = v; if (n == 1 || v > hi) hi = v
          if (length($1) > 1 && substr($1, 1, 1) == "0") { if (w && w != length($1)) bad = 1; w = length($1) } }
        END { ne = 0; for (k in exts) { ne++; e = k }
              if (n == 0) print "none"; else if (ne > 1 || bad) print "mixed"; else print e, lo, hi, n, w + 0 }')
    case $ext in
      none) ps_die "no numbered frames (like 1.png or 0001.jpg) in $dir; name others with --pattern" ;;
      mixed) ps_die "$dir mixes extensions or number widths: choose the frames with --pattern" ;;
    esac
    local pattern="%d.$ext"
    ((width > 0)) && pattern="%0${width}d.$ext"
    if ((last - first + 1 != count)); then
      echo "$PS_NAME: warning: $dir has $count frames numbered $first..$last; reading stops at the first missing number" >&2
    else
      PS_EXPECTED=$count
    fi
    echo "$PS_NAME: $dir: frames $pattern from $first ($count frames at $PS_FPS fps)" >&2
    PS_SRC=(multifilesrc "location=${dir//%/%%}/$pattern" "start-index=$first" "stop-index=$last")
  fi
  case ${ext,,} in
    png) PS_SRC+=("caps=image/png,framerate=$(ps_fps_fraction)" ! pngdec) ;;
    jpg | jpeg) PS_SRC+=("caps=image/jpeg,framerate=$(ps_fps_fraction)" ! jpegdec) ;;
    *) ps_die "frames must be PNG or JPEG, not .$ext" ;;
  esac
}

# The V4L2 devices there are, in words.
ps_cameras() {
  local devs=(/dev/video*)
  [[ -e ${devs[0]} ]] || devs=("none found")
  echo "cameras: ${devs[*]}"
}

# PS_SRC for a V4L2 camera device, in the --caps format when given.
ps_camera_source() {
  [[ -c $1 ]] || ps_die "no camera at $1 ($(ps_cameras))"
  ps_need_element v4l2src gstreamer1.0-plugins-good
  PS_SRC=(v4l2src "device=$1")
  ps_add_caps
}

# Appends --caps to PS_SRC, and a JPEG decoder for MJPEG (capture cards often give 1080p at
# full rate only so).
ps_add_caps() {
  [[ -n $PS_CAPS ]] || return 0
  PS_SRC+=(! "$PS_CAPS")
  [[ $PS_CAPS != image/jpeg* ]] || PS_SRC+=(! jpegdec)
}

# PS_SRC for INPUT (video file, folder of frames or camera device) or the --cvc-sequence.
ps_source() {
  local input=$1
  if [[ -n $PS_CVC ]]; then
    [[ -z $PS_CAPS ]] || ps_usage_error "--caps is for a camera, not a CVC-ClinicDB sequence"
    ps_cvc_source "$PS_CVC"
    return
  elif [[ $input == /dev/* || -c $input ]]; then
    ps_camera_source "$input"
    return
  fi
  [[ -z $PS_CAPS ]] || ps_usage_error "--caps is for a camera, not $input"
  if [[ -d $input ]]; then
    ps_frames_source "$input"
  elif [[ -f $input ]]; then
    [[ -r $input ]] || ps_die "cannot read $input"
    # decodebin links its first video stream; other streams (audio) are left out.
    PS_SRC=(filesrc "location=$(realpath "$input")" ! decodebin)
  else
    ps_die "$input: no such file, folder or device"
  fi
}

# PS_SINK: --sink's tokens, else autovideosink with a display, else fakesink (with a note).
ps_display_sink() {
  if [[ -n ${1:-} ]]; then
    read -r -a PS_SINK <<<"$1"
  elif [[ -n ${DISPLAY:-} || -n ${WAYLAND_DISPLAY:-} ]]; then
    PS_SINK=(autovideosink)
  else
    echo "$PS_NAME: no display (\$DISPLAY and \$WAYLAND_DISPLAY unset): frames go to fakesink;" \
      "choose a sink with --sink, or record with pipelines/record.sh" >&2
    PS_SINK=(fakesink)
  fi
}

# The recorder that writes the JSON lines: the build tree's, else the installed one.
ps_recorder() {
  if [[ -x $PS_BUILD/pipelines/polypseg-record ]]; then
    echo "$PS_BUILD/pipelines/polypseg-record"
  elif command -v polypseg-record >/dev/null; then
    command -v polypseg-record
  else
    ps_die "polypseg-record not found: build it with scripts/setup.sh (build/pipelines/)"
  fi
}

# ps_part FILE: where the pipeline writes FILE (FILE.part while it runs, when FILE is one of
# PS_OUTPUTS and this is not --print).
ps_part() {
  local f
  for f in "${PS_OUTPUTS[@]}"; do
    if [[ $f == "$1" ]] && ((!PS_PRINT)); then
      echo "$1.part"
      return
    fi
  done
  echo "$1"
}

# ps_run TOKENS...: runs the pipeline through polypseg-record (a gst-launch-1.0 -e that also
# writes the JSON lines of --jsonl, stops after exactly --frames N frames of the element, and
# exits 2 for a pipeline that cannot be built); the first Ctrl-C ends the stream cleanly.
# --print shows the command.
# PS_OUTPUTS (written as FILE.part, see ps_part) are renamed into place by polypseg-record only
# when the run succeeds and, when the source's frame count is known, every frame came through
# (a corrupt frame ends a folder's stream early); a failure leaves an earlier FILE as it was.
ps_run() {
  local cmd f
  cmd=("$(ps_recorder)")
  [[ -z $PS_JSONL ]] || cmd+=(--jsonl "$(ps_part "$PS_JSONL")")
  [[ -z $PS_FRAMES ]] || cmd+=(--frames "$PS_FRAMES")
  if ((!PS_PRINT)); then
    for f in "${PS_OUTPUTS[@]}"; do cmd+=(--commit "$(ps_part "$f")=$f"); done
    [[ -z $PS_EXPECTED ]] || cmd+=(--expect-frames "$PS_EXPECTED")
  fi
  cmd+=(-- "$@")
  if ((PS_PRINT)); then
    [[ -z ${GST_PLUGIN_PATH:-} ]] || printf 'GST_PLUGIN_PATH=%q ' "$GST_PLUGIN_PATH"
    printf '%q ' "${cmd[@]}"
    echo
    exit 0
  fi
  exec "${cmd[@]}"
}

# ps_distinct_files INPUT OUTPUT...: dies when an output is the input (or two outputs are one
# file): writing would empty the input before it is read.
ps_distinct_files() {
  local input=$1 a b i j
  shift
  local paths=("$@")
  [[ -z $input || ! -f $input ]] || paths=("$input" "${paths[@]}")
  for ((i = 0; i < ${#paths[@]}; i++)); do
    for ((j = i + 1; j < ${#paths[@]}; j++)); do
      a=$(realpath -m -- "${paths[i]}") b=$(realpath -m -- "${paths[j]}")
      [[ $a != "$b" ]] || ps_die "${paths[i]} and ${paths[j]} are the same file; choose another output"
    done
  done
}
