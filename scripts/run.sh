#!/usr/bin/env bash
# Set up (once) and launch LoRA Studio on http://127.0.0.1:7860 with the embedded default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export GRADIO_ANALYTICS_ENABLED=False TOKENIZERS_PARALLELISM=false
exec .venv/bin/python app.py "$@"
