#!/usr/bin/env bash
# Installs the Debian 12 packages polypseg needs (idempotent, non-interactive), then configures
# and builds with meson into build/. Options: --torch also installs python3-torch (only the
# fixture generators and side-by-side benchmarks in scripts/ use it).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(gcc libc6-dev pkg-config meson ninja-build libglib2.0-dev libjson-glib-dev libpng-dev
          libjpeg62-turbo-dev
          # OpenBLAS: only polypseg-bench-pointwise, which measures our pointwise kernel against sgemm
          libopenblas-dev
          # the GStreamer element, its tests (gst-check) and the pipelines' elements
          libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools
          gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
          gstreamer1.0-plugins-ugly gstreamer1.0-libav
          # the element's 1,000-frame leak test runs under it (meson test gst-leak-valgrind)
          valgrind)
[[ "${1:-}" == "--torch" ]] && packages+=(python3-torch python3-numpy)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "setup: run as root or install sudo" >&2; exit 1; }
    sudo=(sudo)
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

# Quiet when all is well; the whole output when something fails.
run_quiet() {
  local log; log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then cat "$log" >&2; rm -f "$log"; echo "setup: failed: $*" >&2; exit 1; fi
  rm -f "$log"
}
if [[ -f build/build.ninja ]]; then
  run_quiet meson setup --reconfigure build
else
  run_quiet meson setup build
fi
run_quiet ninja -C build
echo "setup: built into build/"
