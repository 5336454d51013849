#!/usr/bin/env bash
# Regenerates the Matroska/WebM test vectors in this folder from synthetic sources.
#
# Usage: testdata/make-testdata.sh        (from any directory; overwrites the outputs)
#
# Needs: ffmpeg/ffprobe (with libx264, libx265, libvpx, libopus), mkvtoolnix (mkvmerge, mkvinfo),
# GStreamer 1.x (gst-launch-1.0 with x264enc, avenc_aac, h264parse, aacparse, matroskamux).
# Debian: apt-get install ffmpeg mkvtoolnix gstreamer1.0-tools gstreamer1.0-plugins-base \
#         gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad gstreamer1.0-libav
#
# Determinism: the ffmpeg outputs (bitexact flags, -threads 1) and the mkvmerge outputs
# (--engage no_variable_data) are byte-identical from run to run with the same tool versions.
# The GStreamer capture is not: matroskamux picks random track/segment UIDs and writes the
# current time as DateUTC, and cannot be told otherwise from gst-launch.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

# --- tool check -------------------------------------------------------------------------------
missing=()
need() { # need <command> <debian package>
  command -v "$1" >/dev/null 2>&1 || missing+=("$2")
}
need ffmpeg ffmpeg
need ffprobe ffmpeg
need mkvmerge mkvtoolnix
need mkvinfo mkvtoolnix
need gst-launch-1.0 gstreamer1.0-tools
need gst-inspect-1.0 gstreamer1.0-tools
if command -v gst-inspect-1.0 >/dev/null 2>&1; then
  for pair in videotestsrc:gstreamer1.0-plugins-base audiotestsrc:gstreamer1.0-plugins-base \
              matroskamux:gstreamer1.0-plugins-good x264enc:gstreamer1.0-plugins-ugly \
              h264parse:gstreamer1.0-plugins-bad aacparse:gstreamer1.0-plugins-good \
              avenc_aac:gstreamer1.0-libav; do
    gst-inspect-1.0 "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
fi
encoders=""
if command -v ffmpeg >/dev/null 2>&1; then
  encoders="$(ffmpeg -hide_banner -encoders 2>/dev/null)"
  for enc in libx264 libx265 libvpx-vp9 aac; do
    grep -q " $enc " <<<"$encoders" \
      || { echo "ffmpeg lacks the $enc encoder" >&2; exit 1; }
  done
fi
if ((${#missing[@]})); then
  printf 'missing tools; install with:\n  apt-get install -y %s\n' \
    "$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')" >&2
  exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

ff() { ffmpeg -hide_banner -nostdin -v error -y "$@"; }
BITEXACT=(-fflags +bitexact -flags:v +bitexact -flags:a +bitexact)
VSRC=(-f lavfi -i "testsrc2=size=320x240:rate=25:duration=2")
ASRC=(-f lavfi -i "sine=frequency=440:sample_rate=48000:duration=2")
X264=(-c:v libx264 -threads 1 -preset medium -crf 32 -g 25 -keyint_min 25 -sc_threshold 0
      -pix_fmt yuv420p)

# --- ffmpeg -----------------------------------------------------------------------------------
echo "ffmpeg_h264.mkv"
ff "${VSRC[@]}" "${X264[@]}" "${BITEXACT[@]}" ffmpeg_h264.mkv

echo "ffmpeg_h264-aac.mkv"
ff "${VSRC[@]}" "${ASRC[@]}" -map 0:v -map 1:a "${X264[@]}" \
  -c:a aac -threads 1 -b:a 64k -ar 48000 -ac 2 "${BITEXACT[@]}" ffmpeg_h264-aac.mkv

echo "ffmpeg_h265.mkv"
ff "${VSRC[@]}" -c:v libx265 -preset fast -crf 34 -g 25 -pix_fmt yuv420p \
  -x265-params "log-level=error:pools=1:frame-threads=1:keyint=25:min-keyint=25:scenecut=0" \
  "${BITEXACT[@]}" ffmpeg_h265.mkv

echo "ffmpeg_opus.mkv"
if grep -q ' libopus ' <<<"$encoders"; then
  OPUS=(-c:a libopus -b:a 32k)
else
  OPUS=(-c:a opus -strict -2 -b:a 32k)
fi
ff "${ASRC[@]}" "${OPUS[@]}" -threads 1 -ar 48000 -ac 2 "${BITEXACT[@]}" ffmpeg_opus.mkv

echo "ffmpeg_vp9.webm"
ff "${VSRC[@]}" -c:v libvpx-vp9 -threads 1 -deadline realtime -cpu-used 8 -b:v 150k -g 25 \
  -pix_fmt yuv420p "${BITEXACT[@]}" ffmpeg_vp9.webm

echo "ffmpeg_h264-blockgroups.mkv"
cat > "$tmp/subs.srt" <<'SRT'
1
00:00:00,200 --> 00:00:00,800
first cue

2
00:00:01,000 --> 00:00:01,900
second cue
SRT
ff "${VSRC[@]}" -i "$tmp/subs.srt" -map 0:v -map 1:s "${X264[@]}" -c:s srt "${BITEXACT[@]}" \
  ffmpeg_h264-blockgroups.mkv

# --- GStreamer --------------------------------------------------------------------------------
# streamable=true: no Cues, no Duration, unknown-size Segment and Clusters.
# 50 video buffers at 25 fps = 2 s; 94 audio buffers of 1024 samples at 48 kHz = 2.005 s.
echo "gstreamer_h264-streamable.mkv"
gst-launch-1.0 -q \
  videotestsrc num-buffers=50 pattern=smpte is-live=false \
    ! video/x-raw,format=I420,width=320,height=240,framerate=25/1 \
    ! x264enc key-int-max=25 tune=zerolatency bitrate=300 threads=1 \
    ! h264parse ! queue ! mux. \
  audiotestsrc num-buffers=94 samplesperbuffer=1024 freq=440 is-live=false \
    ! audio/x-raw,rate=48000,channels=2 \
    ! avenc_aac bitrate=64000 ! aacparse ! queue ! mux. \
  matroskamux name=mux streamable=true \
    ! filesink location=gstreamer_h264-streamable.mkv

# --- mkvmerge ---------------------------------------------------------------------------------
# mkvmerge laces audio by default and picks the lacing type per lace: for the AAC track of
# ffmpeg_h264-aac.mkv it picks Xiph (so `--engage lacing_xiph` gives byte-identical output and
# is not kept as a separate file); `--engage lacing_ebml` forces EBML lacing; fixed-size
# lacing is what it picks for constant-size frames (CBR AC-3). no_variable_data makes the
# output byte-reproducible (fixed UIDs and date).
MKVMERGE=(mkvmerge --quiet --engage no_variable_data)
echo "mkvmerge_h264-aac-laced.mkv"
"${MKVMERGE[@]}" -o mkvmerge_h264-aac-laced.mkv ffmpeg_h264-aac.mkv
echo "mkvmerge_aac-ebml-laced.mkv"
"${MKVMERGE[@]}" --engage lacing_ebml -o mkvmerge_aac-ebml-laced.mkv --no-video ffmpeg_h264-aac.mkv
echo "mkvmerge_ac3-fixed-laced.mkv"
ff "${ASRC[@]}" -c:a ac3 -b:a 64k -ar 48000 -ac 1 "${BITEXACT[@]}" "$tmp/sine.ac3"
"${MKVMERGE[@]}" -o mkvmerge_ac3-fixed-laced.mkv "$tmp/sine.ac3"
rm -f mkvmerge_h264-aac-xiph-laced.mkv # older runs of this script made it; identical to -laced

# --- check ------------------------------------------------------------------------------------
files=(ffmpeg_h264.mkv ffmpeg_h264-aac.mkv ffmpeg_h265.mkv ffmpeg_opus.mkv ffmpeg_vp9.webm
       ffmpeg_h264-blockgroups.mkv gstreamer_h264-streamable.mkv mkvmerge_h264-aac-laced.mkv
       mkvmerge_aac-ebml-laced.mkv mkvmerge_ac3-fixed-laced.mkv)
for f in "${files[@]}"; do
  if [[ -n "$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$f" 2>&1 >/dev/null)" ]] \
     || [[ -n "$(ffmpeg -hide_banner -nostdin -v error -i "$f" -f null - 2>&1)" ]]; then
    echo "error: $f does not probe/decode cleanly" >&2
    exit 1
  fi
done

# Lacing kind of the first SimpleBlock that holds more than one frame: none/xiph/fixed/ebml.
first_lacing() {
  local f="$1" pos bytes i b len mask
  mkvinfo -v -v "$f" >"$tmp/mkvinfo.txt" # to a file: a pipe into sed 'q' would SIGPIPE (pipefail)
  pos=$(sed -n 's/.*Simple block: .* \([2-9]\|[1-9][0-9]\+\) frame(s).* at \([0-9]\+\)$/\2/p;T;q' \
        "$tmp/mkvinfo.txt")
  [[ -n "$pos" ]] || { echo none; return; }
  read -r -a bytes < <(od -An -v -tu1 -j "$pos" -N 24 "$f" | tr '\n' ' ')
  i=1 # skip the SimpleBlock ID (0xA3); then the element size and the track number, both vints
  for _ in size track; do
    b=${bytes[$i]}; len=1; mask=128
    while (( (b & mask) == 0 && len < 8 )); do mask=$((mask >> 1)); len=$((len + 1)); done
    i=$((i + len))
  done
  i=$((i + 2)) # relative timecode
  case $(( (bytes[i] >> 1) & 3 )) in 0) echo none ;; 1) echo xiph ;; 2) echo fixed ;; 3) echo ebml ;; esac
}
for pair in mkvmerge_h264-aac-laced.mkv:xiph mkvmerge_aac-ebml-laced.mkv:ebml \
            mkvmerge_ac3-fixed-laced.mkv:fixed; do
  got=$(first_lacing "${pair%%:*}")
  [[ "$got" == "${pair#*:}" ]] || { echo "error: ${pair%%:*} has $got lacing" >&2; exit 1; }
done
# matroskamux streamable=true: Segment and every Cluster of unknown size (8-byte 0x01FF..FF).
hex=$(od -An -v -tx1 gstreamer_h264-streamable.mkv | tr -d ' \n')
[[ "$hex" == *1853806701ffffffffffffff* ]] || { echo "error: Segment size is known" >&2; exit 1; }
clusters=$(grep -o 1f43b675 <<<"$hex" | wc -l)
unknown=$(grep -o 1f43b67501ffffffffffffff <<<"$hex" | wc -l)
(( clusters > 0 && clusters == unknown )) \
  || { echo "error: $unknown of $clusters Clusters have unknown size" >&2; exit 1; }

total=0
for f in "${files[@]}"; do
  size=$(stat -c %s "$f")
  total=$((total + size))
  printf '%8d  %s\n' "$size" "$f"
done
printf '%8d  total\n' "$total"
