#!/usr/bin/env bash
# Sets up, once, the onnxruntime shared library that the face engine's onnxruntime backend
# loads (`vigil serve --faces-backend onnxruntime`; see docs/faces.md), and prints its path.
# The library is the one Microsoft ships in the PyPI `onnxruntime` wheel (MIT), taken out of
# the wheel that pip downloads (pip checks it against PyPI's hashes); nothing else of the wheel
# is kept but its licence files. Idempotent and fast when the library is already there.
#
#   scripts/onnxruntime.sh          # prints ~/.cache/vigil/onnxruntime-1.23.2/libonnxruntime.so.1.23.2
#   VIGIL_ONNXRUNTIME_DIR=/opt/vigil/onnxruntime scripts/onnxruntime.sh
#
# Then point Vigil at it: `[faces] onnxruntime_library = "<path>"` in the configuration file,
# --onnxruntime-library, or ORT_DYLIB_PATH. Linux on x86_64 or aarch64 (glibc 2.28 or later).
# Needs python3 (with pip, or with the venv module to make a throwaway pip: Debian's
# python3-venv) and PyPI, this once; the wheel is the same for every Python version, so any
# python3 does.
set -euo pipefail

VERSION=1.23.2

dir="${VIGIL_ONNXRUNTIME_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vigil/onnxruntime-$VERSION}"
lib="libonnxruntime.so.$VERSION"

if [[ ! -f "$dir/$lib" ]]; then
    case "$(uname -s)-$(uname -m)" in
        Linux-x86_64) platform=manylinux_2_28_x86_64 ;;
        Linux-aarch64) platform=manylinux_2_28_aarch64 ;;
        *)
            echo "onnxruntime.sh: no onnxruntime wheel for $(uname -s) $(uname -m) here; install onnxruntime $VERSION yourself and give Vigil its libonnxruntime" >&2
            exit 1
            ;;
    esac
    mkdir -p "$dir"
    # A lock, so that parallel tests set it up once.
    exec 9>"$dir/.lock"
    flock 9
    if [[ ! -f "$dir/$lib" ]]; then
        echo "onnxruntime.sh: fetching onnxruntime $VERSION from PyPI into $dir" >&2
        work="$(mktemp -d)"
        trap 'rm -rf "$work"' EXIT
        pip=(python3 -m pip)
        if ! python3 -m pip --version >/dev/null 2>&1; then
            python3 -m venv "$work/venv" >&2
            pip=("$work/venv/bin/python" -m pip)
        fi
        "${pip[@]}" download --quiet --disable-pip-version-check --no-deps \
            --only-binary :all: --implementation cp --python-version 3.11 \
            --platform "$platform" "onnxruntime==$VERSION" -d "$work/wheel" >&2
        wheel="$(ls "$work"/wheel/onnxruntime-"$VERSION"-*.whl)"
        python3 - "$wheel" "$lib" "$dir" <<'EOF'
import os, shutil, sys, zipfile
wheel, lib, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    with z.open(f"onnxruntime/capi/{lib}") as src, open(os.path.join(out, lib + ".part"), "wb") as dst:
        shutil.copyfileobj(src, dst)
    for n in z.namelist():
        if n.endswith("/LICENSE") or n.endswith("ThirdPartyNotices.txt"):
            with z.open(n) as src, open(os.path.join(out, os.path.basename(n)), "wb") as dst:
                shutil.copyfileobj(src, dst)
os.replace(os.path.join(out, lib + ".part"), os.path.join(out, lib))
EOF
    fi
fi
echo "$dir/$lib"
