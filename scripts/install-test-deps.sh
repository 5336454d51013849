#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian/Ubuntu machine, when it is missing:
#   ffmpeg (provides ffprobe, which the Matroska demuxer tests compare against).
# Regenerating testdata/ needs more (mkvtoolnix, GStreamer); testdata/make-testdata.sh checks
# for those itself and prints what to install.
set -euo pipefail

if command -v ffprobe >/dev/null 2>&1; then
  echo "ffprobe found at $(command -v ffprobe); nothing to install"
  exit 0
fi

sudo=()
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
  else
    echo "ffprobe is missing and this is not root and there is no sudo;" >&2
    echo "as root run: apt-get update && apt-get install -y --no-install-recommends ffmpeg" >&2
    exit 1
  fi
fi

run() {
  echo "+ $*"
  "$@"
}
echo "ffprobe not found; installing ffmpeg with apt-get"
run "${sudo[@]}" apt-get update
run "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y --no-install-recommends ffmpeg
ffprobe -version | head -n 1
