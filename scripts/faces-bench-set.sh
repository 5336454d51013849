#!/usr/bin/env bash
# Assembles the `faces` benchmark's photo set from public packages (PyPI and npm), checking each
# package archive's SHA-256, into $VIGIL_FACES_BENCH_SET_DIR (default
# ~/.cache/vigil/faces-bench-set) as <person>/<photo>; `_group` holds group photos (each face a
# distinct person). Idempotent: does nothing when the set is complete. Not needed by the tests
# or by `bench/run --quick` (they use the committed crates/faces/testdata/).
#
# Sources (licences in crates/faces/testdata/PROVENANCE.md):
#   face_recognition 1.3.0 sdist (PyPI, MIT): tests/test_images/ (Obama x5, Biden)
#   scikit-image 0.25.2 wheel (PyPI, BSD-3; the photos public domain): astronaut, camera
#   @vladmandic/face-api 1.7.15 (npm, MIT): demo/sample1..6.jpg (group photos)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

dir="${VIGIL_FACES_BENCH_SET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vigil/faces-bench-set}"
stamp="$dir/.complete-v1"
if [[ -f $stamp ]]; then
    echo "$dir"
    exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

check() { # file sha256
    local got
    got="$(sha256sum "$1" | cut -d' ' -f1)"
    if [[ $got != "$2" ]]; then
        echo "faces-bench-set: $1 has SHA-256 $got, expected $2" >&2
        exit 1
    fi
}

echo "faces-bench-set: fetching into $dir" >&2
python3 -m pip download --quiet --no-deps --no-binary :all: face_recognition==1.3.0 -d "$work" >&2
check "$work/face_recognition-1.3.0.tar.gz" 5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec
python3 -m pip download --quiet --no-deps --only-binary :all: --platform manylinux2014_x86_64 \
    --python-version 3.11 scikit-image==0.25.2 -d "$work" >&2
check "$work"/scikit_image-0.25.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl \
    24cc986e1f4187a12aa319f777b36008764e856e5013666a4a83f8df083c2641
(cd "$work" && npm pack --silent @vladmandic/face-api@1.7.15 >/dev/null)
check "$work/vladmandic-face-api-1.7.15.tgz" 0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031

rm -rf "$dir"
mkdir -p "$dir"/{obama,biden,collins,cameraman,_group}
tar -xzf "$work/face_recognition-1.3.0.tar.gz" -C "$work"
t="$work/face_recognition-1.3.0/tests/test_images"
cp "$t"/obama.jpg "$t"/obama2.jpg "$t"/obama3.jpg "$t"/obama_partial_face.jpg \
    "$t"/obama_partial_face2.jpg "$dir/obama/"
cp "$t/biden.jpg" "$dir/biden/"
unzip -q -o -j "$work"/scikit_image-*.whl skimage/data/astronaut.png -d "$dir/collins"
unzip -q -o -j "$work"/scikit_image-*.whl skimage/data/camera.png -d "$dir/cameraman"
tar -xzf "$work/vladmandic-face-api-1.7.15.tgz" -C "$work"
cp "$work"/package/demo/sample{1,2,3,4,5,6}.jpg "$dir/_group/"
touch "$stamp"
echo "$dir"
