#!/usr/bin/env bash
# Set up (once) and run the whole test suite on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
export GRADIO_ANALYTICS_ENABLED=False TOKENIZERS_PARALLELISM=false
# two workers (pytest-xdist), each test file on one of them (module fixtures such as the browser's app stay whole):
# much of the suite waits on subprocesses that import torch, so two at once take ~15% less time on 2 cores.
# LORA_STUDIO_TEST_WORKERS=0 runs everything in one process (easier to debug).
workers=${LORA_STUDIO_TEST_WORKERS:-2}
if [ "$workers" = "0" ]; then
  exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
fi
exec .venv/bin/python -m pytest -q -p no:cacheprovider -n "$workers" --dist loadfile "$@"
