#!/usr/bin/env bash
# The GPU check, ready for the day a GPU machine is at hand: tests/test_gpu.py and `python -m bench --only gpu`.
#
# The GPU machine we test on has torch, transformers, peft and accelerate, but not trl, bitsandbytes, datasets,
# pandas or pytest, cannot download, and receives at most 64 MiB per command. So the wheels travel in two parts:
#
#   here (with the package registries):   bash scripts/gpu_check.sh pack
#       writes .gpu-carry/a (pyarrow, datasets, trl, pytest …, ~60 MiB) and .gpu-carry/b (bitsandbytes, pandas,
#       SmolLM2's tokenizer files, ~60 MiB); .gpu-carry/ is ignored by git.
#   there, one command per part (carry .gpu-carry/a, then .gpu-carry/b):
#       bash scripts/gpu_check.sh install a
#       bash scripts/gpu_check.sh install b && bash scripts/gpu_check.sh run
#       (each part is installed into .gpu-env/, which stays between the commands of one warm machine)
#   run: tests/test_gpu.py, then the bench section; the figures go to $OUT/gpu.json (or .gpu-carry/gpu.json).
#   back here:                            .venv/bin/python -m bench --only gpu --import PATH/gpu.json
#       puts them into docs/BENCHMARKS.md.
#
# On a GPU machine that has the network, `bash scripts/setup.sh --tests && bash scripts/gpu_check.sh run` is all.
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=.gpu-carry
ENV_DIR=.gpu-env
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=.venv/bin/python

pack() {
    local pip=(.venv/bin/python -m pip download --no-deps --only-binary=:all: --python-version 3.11
               --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux2014_x86_64
               --platform manylinux_2_17_x86_64 --platform any)
    rm -rf "$CARRY" && mkdir -p "$CARRY/a" "$CARRY/b"
    ver() { .venv/bin/python -c "import importlib.metadata as m; print(m.version('$1'))"; }
    "${pip[@]}" -d "$CARRY/a" "pyarrow==$(ver pyarrow)" "datasets==$(ver datasets)" "trl==$(ver trl)" \
        "dill==$(ver dill)" "multiprocess==$(ver multiprocess)" "xxhash==$(ver xxhash)" "pytest==$(ver pytest)" \
        "pluggy==$(ver pluggy)" "iniconfig==$(ver iniconfig)"
    "${pip[@]}" -d "$CARRY/b" "bitsandbytes==$(ver bitsandbytes)" "pandas==$(ver pandas)" \
        "python-dateutil==$(ver python-dateutil)" "pytz==$(ver pytz)" "tzdata==$(ver tzdata)"
    # the tokenizer of the micro test models and of the bench's seed-shaped ones (the GPU machine has no SmolLM2)
    local tok
    tok=$(.venv/bin/python -c "from core.models.registry import resolve_model; print(resolve_model('embedded:smollm2-135m-instruct'))")
    mkdir -p "$CARRY/b/tokenizer"
    for f in tokenizer.json tokenizer_config.json special_tokens_map.json chat_template.jinja; do
        [ -f "$tok/$f" ] && cp "$tok/$f" "$CARRY/b/tokenizer/"
    done
    du -sh "$CARRY/a" "$CARRY/b"
}

install() {
    local part=$1
    mkdir -p "$ENV_DIR"
    "$PY" -m pip install --quiet --no-index --no-deps --target "$ENV_DIR" "$CARRY/$part"/*.whl
    [ -d "$CARRY/$part/tokenizer" ] && cp -r "$CARRY/$part/tokenizer" "$ENV_DIR/tokenizer"
    echo "installed part $part into $ENV_DIR"
}

run() {
    export PYTHONPATH="$PWD/$ENV_DIR:$PWD${PYTHONPATH:+:$PYTHONPATH}"
    export TOKENIZERS_PARALLELISM=false GRADIO_ANALYTICS_ENABLED=False
    [ -d "$ENV_DIR/tokenizer" ] && export LORA_STUDIO_TOKENIZER="$PWD/$ENV_DIR/tokenizer"
    "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device here'; print(torch.cuda.get_device_name(0))"
    local out=${OUT:-$CARRY}
    mkdir -p "$out"
    local rc=0
    "$PY" -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tee "$out/test_gpu.txt" || rc=1
    "$PY" -m bench --only gpu --no-write --export "$out/gpu.json" 2>&1 | tee "$out/bench_gpu.txt" || rc=1
    return $rc
}

case "${1:-run}" in
    pack) pack ;;
    install) install "${2:?install a|b}" ;;
    run) run ;;
    *) echo "usage: bash scripts/gpu_check.sh pack | install a|b | run" >&2; exit 2 ;;
esac
