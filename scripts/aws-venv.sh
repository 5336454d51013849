#!/usr/bin/env bash
# Makes, once, the Python virtual environment of the AWS clients the end-to-end tests drive
# Vigil with (boto3 and botocore, the AWS CLI v1, and cbor2 for the AWS SDK for Java's CBOR
# wire), at pinned versions from PyPI, and prints the path of its python. Idempotent and fast
# when the environment is already there (a stamp file names the pins; changing one rebuilds).
#
#   VIGIL_AWS_VENV   where the environment lives (default ~/.cache/vigil/aws-venv)
#
# scripts/install-test-deps.sh runs it; the tests run it too, so that they find (or make) the
# same environment and never skip. Needs python3 with the venv module (Debian: python3-venv).
set -euo pipefail

BOTO3=1.43.11
BOTOCORE=1.43.11
AWSCLI=1.45.11
CBOR2=6.3.0

venv="${VIGIL_AWS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/vigil/aws-venv}"
stamp="$venv/.vigil-boto3-$BOTO3-botocore-$BOTOCORE-awscli-$AWSCLI-cbor2-$CBOR2"
if [[ ! -f "$stamp" || ! -x "$venv/bin/python" ]]; then
    base=/usr/bin/python3
    [[ -x $base ]] || base="$(command -v python3)"
    echo "aws-venv: making $venv (boto3 $BOTO3, awscli $AWSCLI, cbor2 $CBOR2)" >&2
    mkdir -p "$(dirname "$venv")"
    # A lock, so that parallel tests make it once.
    exec 9>"$venv.lock"
    flock 9
    if [[ ! -f "$stamp" || ! -x "$venv/bin/python" ]]; then
        "$base" -m venv --clear "$venv" >&2
        "$venv/bin/pip" install --quiet --disable-pip-version-check \
            "boto3==$BOTO3" "botocore==$BOTOCORE" "awscli==$AWSCLI" "cbor2==$CBOR2" >&2
        touch "$stamp"
    fi
fi
echo "$venv/bin/python"
