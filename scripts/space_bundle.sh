#!/usr/bin/env bash
# Write into OUT exactly the tree pushed to the Hugging Face Space repository (see space/bundle.py and the
# README's "Deploying the Space"): the app, requirements.txt with its constraints, and the files no pip
# install provides (onnxruntime-web, BlazeFace's weights), fetched now and checked against their pins.
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: bash scripts/space_bundle.sh OUT" >&2
  exit 2
fi
out=$(realpath -m "$1")
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/install.sh
exec .venv/bin/python -m space.bundle "$out"
