#!/usr/bin/env bash
# Set up (once) and run the whole test suite on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
export GRADIO_ANALYTICS_ENABLED=False TOKENIZERS_PARALLELISM=false
# With arguments (a file, -k, -m extended …): one pytest run with them, in one process.
if [ "$#" -gt 0 ]; then
  exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
fi
# The whole suite: first all but the browser tests on two pytest-xdist workers, a test file each at a time (much of
# the suite waits on subprocesses that import torch: two at once take ~15% less time on 2 cores), then the browser
# tests alone, which wait on the app's answers and must not share the cores. LORA_STUDIO_TEST_WORKERS=0: all in one
# process.
workers=${LORA_STUDIO_TEST_WORKERS:-2}
if [ "$workers" = "0" ]; then
  exec .venv/bin/python -m pytest -q -p no:cacheprovider
fi
rc=0
.venv/bin/python -m pytest -q -p no:cacheprovider -n "$workers" --dist loadfile -m "not browser and not extended" || rc=$?
.venv/bin/python -m pytest -q -p no:cacheprovider -m "browser and not extended" || { r=$?; [ "$rc" -ne 0 ] || rc=$r; }
exit "$rc"
