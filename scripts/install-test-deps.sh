#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian/Ubuntu machine, when it is missing:
#   ffmpeg (provides ffprobe, which the Matroska demuxer tests compare against, and ffmpeg,
#     which makes the test media and checks GetImages' pictures);
#   nasm (the openh264 crate assembles OpenH264's bundled x86 assembly with it; builds need it).
# Regenerating testdata/ needs more (mkvtoolnix, GStreamer); testdata/make-testdata.sh checks
# for those itself and prints what to install.
set -euo pipefail

packages=()
command -v ffprobe >/dev/null 2>&1 || packages+=(ffmpeg)
command -v nasm >/dev/null 2>&1 || packages+=(nasm)
if [[ ${#packages[@]} -eq 0 ]]; then
  echo "ffprobe and nasm found; nothing to install"
  exit 0
fi

sudo=()
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
  else
    echo "${packages[*]} missing and this is not root and there is no sudo;" >&2
    echo "as root run: apt-get update && apt-get install -y --no-install-recommends ${packages[*]}" >&2
    exit 1
  fi
fi

run() {
  echo "+ $*"
  "$@"
}
echo "installing ${packages[*]} with apt-get"
run "${sudo[@]}" apt-get update
run "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y --no-install-recommends "${packages[@]}"
ffprobe -version | head -n 1
nasm -v
