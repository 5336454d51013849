#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian/Ubuntu machine, when it is missing:
#   ffmpeg (provides ffprobe, which the Matroska demuxer tests compare against, and ffmpeg,
#     which makes the test media and checks GetImages' pictures);
#   nasm (the openh264 crate assembles OpenH264's bundled x86 assembly with it; builds need it);
#   chromium, nodejs and npm (the low-latency HLS test plays the server's HLS with hls.js in
#     headless Chromium, driven by playwright-core), then `npm ci` in crates/server/tests/browser
#     (hls.js and playwright-core at the versions of its package-lock.json; playwright-core
#     downloads no browser: the test launches /usr/bin/chromium, or $VIGIL_CHROMIUM);
#   the web console's npm packages (`npm ci` in crates/console/web: esbuild, TypeScript,
#     hls.js, @noble/hashes, playwright-core), for the bundle check and the console's
#     browser test;
#   GStreamer's RTSP server with the system python3's GObject bindings (python3-gi,
#     gir1.2-gst-rtsp-server-1.0) and the plugins the camera tests' RTSP server uses
#     (videotestsrc/audiotestsrc: base; RTP payloaders: good; x265enc: bad; x264enc: ugly;
#     avenc_aac: libav): crates/vigil/tests/rtsp_server.py, run with /usr/bin/python3 (or
#     $VIGIL_TEST_PYTHON);
#   FFmpeg's development files and libclang (libavcodec-dev, libavformat-dev, libavutil-dev,
#     libclang-dev, pkg-config): the `ffmpeg` feature of vigil-api-playback (GetImages through
#     libavcodec: H.265, faster H.264) is built and tested too; ffmpeg-sys-next runs bindgen.
# Regenerating testdata/ needs more (mkvtoolnix, GStreamer); testdata/make-testdata.sh checks
# for those itself and prints what to install.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages=()
command -v ffprobe >/dev/null 2>&1 || packages+=(ffmpeg)
command -v nasm >/dev/null 2>&1 || packages+=(nasm)
[[ -x "${VIGIL_CHROMIUM:-/usr/bin/chromium}" ]] || packages+=(chromium)
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)
# The SNS tests verify delivery signatures against the served certificate with openssl.
command -v openssl >/dev/null 2>&1 || packages+=(openssl)
# The camera tests' RTSP server: each package is checked on its own (dpkg), so a partly
# installed set is completed.
for p in python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base \
  gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly \
  gstreamer1.0-libav libavcodec-dev libavformat-dev libavutil-dev libclang-dev pkg-config; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || packages+=("$p")
done

run() {
  echo "+ $*"
  "$@"
}

if [[ ${#packages[@]} -eq 0 ]]; then
  echo "ffprobe, nasm, chromium, node, npm, openssl and GStreamer's RTSP server found; nothing to install with apt-get"
else
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
  echo "installing ${packages[*]} with apt-get"
  # Another apt-get may hold the lock for a while (unattended upgrades): wait for it.
  run "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update
  run "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${packages[@]}"
fi
ffprobe -version | head -n 1
nasm -v
"${VIGIL_CHROMIUM:-/usr/bin/chromium}" --version
node --version
"${VIGIL_TEST_PYTHON:-/usr/bin/python3}" -c '
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer
Gst.init(None)
missing = [e for e in ("videotestsrc", "audiotestsrc", "x264enc", "x265enc", "avenc_aac",
                       "rtph264pay", "rtph265pay", "rtpmp4gpay") if not Gst.ElementFactory.find(e)]
if missing:
    raise SystemExit("GStreamer elements missing: " + " ".join(missing))
print("GStreamer", Gst.version_string(), "with its RTSP server")
'

# The browser test's JavaScript dependencies, exactly as locked; skipped when node_modules
# already matches the lock file.
browser=crates/server/tests/browser
if ! cmp -s "$browser/package-lock.json" "$browser/node_modules/.package-lock.json.installed" 2>/dev/null; then
  (cd "$browser" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 run npm ci --no-audit --no-fund)
  cp "$browser/package-lock.json" "$browser/node_modules/.package-lock.json.installed"
fi

# The web console's build tools and its browser test's driver (esbuild, TypeScript, hls.js,
# @noble/hashes, playwright-core), exactly as locked: scripts/test checks that the committed
# build in crates/console/dist matches the sources, and the console test drives Chromium.
console=crates/console/web
if ! cmp -s "$console/package-lock.json" "$console/node_modules/.package-lock.json.installed" 2>/dev/null; then
  (cd "$console" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 run npm ci --no-audit --no-fund)
  cp "$console/package-lock.json" "$console/node_modules/.package-lock.json.installed"
fi

# vigil-faces: its parity tests and the `faces` benchmark compare the engine with the same
# ONNX models run by Python onnxruntime, in a venv of pinned versions made once by
# scripts/faces-venv.sh (the venv module is Debian's python3-venv).
if ! /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null; then
  run apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends python3-venv
fi
echo "onnxruntime for vigil-faces: $(scripts/faces-venv.sh)"
# The face engine's onnxruntime backend: the shared library from the PyPI wheel, fetched once
# by scripts/onnxruntime.sh (its tests and the `faces` benchmark run both backends).
echo "onnxruntime library for the faces backend: $(scripts/onnxruntime.sh)"
# The AWS clients of the Kinesis end-to-end tests (boto3, the AWS CLI, cbor2 for the Java
# SDK's CBOR wire), in a venv of pinned versions made once by scripts/aws-venv.sh.
echo "AWS clients for the end-to-end tests: $(scripts/aws-venv.sh)"
