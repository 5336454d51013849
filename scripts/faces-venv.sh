#!/usr/bin/env bash
# Makes, once, the Python virtual environment that vigil-faces' parity tests and the `faces`
# benchmark compare against (onnxruntime, numpy and onnx at pinned versions, from PyPI), and
# prints the path of its python. Idempotent and fast when the environment is already there (a
# stamp file names the pinned versions; changing a pin rebuilds it).
#
#   VIGIL_FACES_VENV   where the environment lives (default ~/.cache/vigil/faces-venv)
#
# scripts/install-test-deps.sh runs it; the tests run it too, so that they find (or make) the
# same environment and never skip. Needs python3 with the venv module (Debian: python3-venv).
set -euo pipefail

ONNXRUNTIME=1.23.2
NUMPY=2.2.6
ONNX=1.17.0

venv="${VIGIL_FACES_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/vigil/faces-venv}"
stamp="$venv/.vigil-faces-onnxruntime-$ONNXRUNTIME-numpy-$NUMPY-onnx-$ONNX"
if [[ ! -f "$stamp" || ! -x "$venv/bin/python" ]]; then
    base=/usr/bin/python3
    [[ -x $base ]] || base="$(command -v python3)"
    echo "faces-venv: making $venv (onnxruntime $ONNXRUNTIME, numpy $NUMPY, onnx $ONNX)" >&2
    mkdir -p "$(dirname "$venv")"
    # A lock, so that parallel tests make it once.
    exec 9>"$venv.lock"
    flock 9
    if [[ ! -f "$stamp" || ! -x "$venv/bin/python" ]]; then
        "$base" -m venv --clear "$venv" >&2
        "$venv/bin/pip" install --quiet --disable-pip-version-check \
            "onnxruntime==$ONNXRUNTIME" "numpy==$NUMPY" "onnx==$ONNX" >&2
        touch "$stamp"
    fi
fi
echo "$venv/bin/python"
