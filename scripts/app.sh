#!/usr/bin/env bash
# Install the runtime packages and start the Space on http://127.0.0.1:7860 (GRADIO_SERVER_PORT to change).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export GRADIO_ANALYTICS_ENABLED=False NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
exec .venv/bin/python app.py
