"""Shared fixtures: a micro random Llama with the real SmolLM2 tokenizer, saved as a real model folder.

Fixtures return builders (torchtune's habit) so that a test can ask for the variant it needs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The embedded SmolLM2-135M-Instruct, materialised once into the cache.

    On the GPU machine (scripts/gpu_check.sh), which has no embedded models, LORA_STUDIO_TOKENIZER names a folder
    with SmolLM2's tokenizer files only: enough for the micro models of tests/test_gpu.py.
    """
    from core.models.registry import resolve_model

    if os.environ.get("LORA_STUDIO_TOKENIZER"):
        return Path(os.environ["LORA_STUDIO_TOKENIZER"])

    return Path(resolve_model("embedded:smollm2-135m-instruct"))


@pytest.fixture(scope="session")
def tokenizer(smollm2_dir):
    from core.models.load import load_tokenizer

    return load_tokenizer(str(smollm2_dir))


@pytest.fixture(scope="session")
def micro_model_factory(tmp_path_factory, smollm2_dir):
    """Builder of micro random models (Llama or Qwen2) with SmolLM2's real tokenizer, saved to disk."""
    import torch
    from transformers import (
        AutoTokenizer,
        Gemma3ForCausalLM,
        Gemma3TextConfig,
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    cache: dict = {}

    def build(arch: str = "llama", hidden: int = 64, layers: int = 2, seed: int = 0) -> Path:
        """arch: llama | qwen2 | gemma3 (Gemma-3's text model: tied embeddings scaled by √hidden, the scale a
        non-persistent buffer made at load time in the model's dtype)."""
        key = (arch, hidden, layers, seed)
        if key in cache:
            return cache[key]
        tok = AutoTokenizer.from_pretrained(smollm2_dir)
        common = dict(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=2048, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
        torch.manual_seed(seed)
        if arch == "gemma3":
            model = Gemma3ForCausalLM(Gemma3TextConfig(**common, head_dim=hidden // 4, sliding_window=64,
                                                       layer_types=["sliding_attention", "full_attention"][:layers]
                                                       + ["full_attention"] * max(0, layers - 2)))
        else:
            model = (LlamaForCausalLM(LlamaConfig(**common)) if arch == "llama"
                     else Qwen2ForCausalLM(Qwen2Config(**common)))
        out = tmp_path_factory.mktemp(f"micro-{arch}-{hidden}-{layers}-{seed}")
        model.save_pretrained(out)
        tok.save_pretrained(out)
        cache[key] = out
        return out

    return build


@pytest.fixture(scope="session")
def micro_model(micro_model_factory) -> Path:
    return micro_model_factory()


SHORT_MCQ = REPO / "tests" / "data" / "short_mcq.jsonl"


def micro_overrides(model_dir: Path, **extra) -> list[str]:
    """--set overrides that make the demo preset a seconds-long run on a micro model.

    The data are the bundled MCQs with their paragraphs cut to a sentence (tests/data/short_mcq.jsonl),
    so that a row is ~100 tokens instead of ~650.
    """
    base = {"model.name_or_path": str(model_dir), "data.source": str(SHORT_MCQ), "data.max_length": 256,
            "data.validation_fraction": 0, "train.max_steps": 3, "train.per_device_train_batch_size": 2,
            "train.save_steps": 100, "train.logging_steps": 1,
            # auto means bfloat16 on a CPU with native bf16 (the demo's speed-up); the tests' exact loss and merge
            # comparisons are in float32 on every machine
            "model.dtype": "float32", "train.precision": "fp32"}
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


@pytest.fixture
def run_cli():
    """Run ``python -m core …`` in a subprocess, as a user would."""

    def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        env = dict(os.environ, PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false")
        return subprocess.run([sys.executable, "-m", "core", *args], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=timeout)

    return run


@pytest.fixture
def cli_here(capsys):
    """``python -m core …`` in this process: the same ``main`` as :func:`run_cli` without an interpreter's start-up,
    for the refusals (they load no model). Returns a CompletedProcess with the exit code and the captured output."""
    from core.cli import main

    def run(*args: str) -> subprocess.CompletedProcess:
        capsys.readouterr()
        code = main(list(args))
        out = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out.out, out.err)

    return run


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="session", autouse=True)
def _the_app_may_read_the_test_data():
    """The GUI reads data files only inside allowed folders; the handler tests' files live in tests/data."""
    from gui.state import allow_data_dir

    allow_data_dir(SHORT_MCQ.parent)


# The longest test files first: on two xdist workers (scripts/test.sh, a file each at a time) a long file that starts
# last would leave one worker idle while the other finishes it. Within a file the order is unchanged.
LONGEST_FIRST = ("test_reliability.py", "test_merge_matrix.py", "test_export.py",
                 "test_multiprocess.py", "test_train.py", "test_merge.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
