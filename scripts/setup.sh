#!/usr/bin/env bash
# Installs the Debian 12 packages polypseg needs (idempotent, non-interactive), then configures
# and builds with meson into build/. Options: --torch also installs python3-torch (only the
# fixture generators and side-by-side benchmarks in scripts/ use it).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(gcc pkg-config meson ninja-build libglib2.0-dev libjson-glib-dev libpng-dev
          libjpeg62-turbo-dev)
[[ "${1:-}" == "--torch" ]] && packages+=(python3-torch python3-numpy)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ -f build/build.ninja ]]; then
  meson setup --reconfigure build >/dev/null
else
  meson setup build >/dev/null
fi
ninja -C build >/dev/null
echo "setup: built into build/"
