#!/usr/bin/env bash
# Sets up, once, the onnxruntime shared library that the face engine's optional onnxruntime
# backend loads (a `vigil` built with the `ort` feature; see docs/faces.md), and prints its
# path. The library is the one Microsoft ships in the PyPI `onnxruntime` wheel (MIT), taken
# out of the wheel that pip downloads (pip checks it against PyPI's hashes); nothing else of
# the wheel is kept. Idempotent and fast when the library is already there.
#
#   scripts/onnxruntime.sh                      # prints e.g. ~/.cache/vigil/onnxruntime-1.23.2/libonnxruntime.so.1.23.2
#   VIGIL_ONNXRUNTIME_DIR=/opt/vigil/ort scripts/onnxruntime.sh
#
# Then point Vigil at it: `[faces] onnxruntime_library = "<path>"` in the config file, or
# ORT_DYLIB_PATH=<path> in the environment. Needs python3 with pip and network access to
# PyPI (only this once). Linux x86_64 and aarch64, macOS.
set -euo pipefail

VERSION=1.23.2

dir="${VIGIL_ONNXRUNTIME_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vigil/onnxruntime-$VERSION}"
case "$(uname -s)" in
    Darwin) lib="libonnxruntime.$VERSION.dylib" ;;
    *) lib="libonnxruntime.so.$VERSION" ;;
esac

if [[ ! -f "$dir/$lib" ]]; then
    mkdir -p "$dir"
    # A lock, so that parallel tests set it up once.
    exec 9>"$dir/.lock"
    flock 9
    if [[ ! -f "$dir/$lib" ]]; then
        echo "onnxruntime.sh: fetching onnxruntime $VERSION from PyPI into $dir" >&2
        work="$(mktemp -d)"
        trap 'rm -rf "$work"' EXIT
        python3 -m pip download --quiet --disable-pip-version-check --no-deps \
            --only-binary :all: "onnxruntime==$VERSION" -d "$work" >&2
        wheel="$(ls "$work"/onnxruntime-"$VERSION"-*.whl)"
        python3 - "$wheel" "$lib" "$dir" <<'EOF'
import sys, zipfile, os, shutil
wheel, lib, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    name = f"onnxruntime/capi/{lib}"
    with z.open(name) as src, open(os.path.join(out, lib + ".part"), "wb") as dst:
        shutil.copyfileobj(src, dst)
    for n in z.namelist():
        if n.endswith("LICENSE") or n.endswith("ThirdPartyNotices.txt"):
            with z.open(n) as src, open(os.path.join(out, os.path.basename(n)), "wb") as dst:
                shutil.copyfileobj(src, dst)
os.replace(os.path.join(out, lib + ".part"), os.path.join(out, lib))
EOF
    fi
fi
echo "$dir/$lib"
