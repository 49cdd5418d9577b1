"""The benchmarks run (on a tiny setting); their figures live in docs/BENCHMARKS.md, never in tests."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.extended  # test_a_quick_run_leaves_docs_untouched runs the bench's entry point in CI
def test_bench_quick_runs_on_a_tiny_setting():
    env = dict(os.environ, PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false")
    res = subprocess.run([sys.executable, "-m", "bench", "--quick", "--tiny", "--reps", "1"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    m = re.search(r"^engine/trl throughput ratio: (\d+\.\d\d)$", res.stdout, re.MULTILINE)
    assert m and float(m.group(1)) > 0
    assert '"gflops_best"' in res.stdout  # the system section measured the matmul peak


def test_the_gpu_section_skips_cleanly_without_cuda():
    import torch

    from bench import gpu

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: scripts/gpu_check.sh measures it")
    skipped = gpu.section()
    assert skipped["skipped"] == "no CUDA device on this machine" and "scripts/gpu_check.sh" in skipped["markdown"]


@pytest.mark.extended  # 20 s: the GPU section's own code, engine and bare trl, on a micro model of a seed's shape
def test_the_gpu_section_code_runs_on_a_micro_model_of_a_seed_shape():
    from bench import gpu

    r = gpu.section(reps=1, tiny=True, allow_cpu=True, shapes=("qwen2.5-0.5b-instruct",))
    m = r["models"]["qwen2.5-0.5b-instruct"]
    assert m["tokens_per_s"]["engine"]["median"] > 0 and m["tokens_per_s"]["trl"]["median"] > 0
    assert m["layers"] == 2 and re.search(r"^\| qwen2.5-0.5b-instruct \| \d+ \| \d+ \| \d+\.\d\d \|", r["markdown"], re.M)


def test_a_quick_run_leaves_docs_untouched():
    env = dict(os.environ, PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false")
    docs = {p: p.read_bytes() for p in (REPO / "docs").glob("*") if p.is_file()}
    res = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "system", "--reps", "1"], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert {p: p.read_bytes() for p in docs} == docs and "wrote" not in res.stdout
    saved = re.search(r"^figures saved to (\S+); docs/ unchanged$", res.stdout, re.MULTILINE)
    assert saved, res.stdout[-1000:]
    text = Path(saved.group(1)).read_text(encoding="utf-8")
    assert json.loads(text)["system"]["matmul"]["gflops_best"] > 0 and str(REPO) not in text


def test_the_reference_nf4_quantizer_and_bitsandbytes_agree_and_the_cpu_shortcut_is_what_scrambles():
    import numpy as np

    from bench import nf4

    w = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    codes, back = nf4.reference_nf4(w)
    assert codes.min() >= 0 and codes.max() <= 15 and 0.07 < np.linalg.norm(w - back) / np.linalg.norm(w) < 0.12
    r = nf4.run(n=512)
    assert abs(r["bnb_functional"] - r["reference"]) < 1e-3
    assert abs(r["linear4bit_after_eval_forward_exact_4bit"] - r["reference"]) < 5e-3
    if r["linear4bit_after_eval_forward_shortcut_available"]:  # a CPU with AVX512-BF16, like this one
        assert r["linear4bit_after_eval_forward"] is None or r["linear4bit_after_eval_forward"] > 0.3


def test_the_scaling_rows_fill_max_length_and_learn_every_answer(tmp_path, smollm2_dir):
    """The scaling section's rows: exactly max_length tokens once cut (no padding on either side), each learning
    its answers, about the same share of the tokens at every length."""
    from bench import scaling
    from core import data as D
    from core.models.load import load_tokenizer
    from core.models.registry import resolve_model

    tok = load_tokenizer(resolve_model(scaling.MODEL))
    shares = []
    for n in (256, 1024):
        cfg = scaling.point_cfg(str(scaling.conversations(tmp_path, n, rows=3)), n, 2, 8, False, False)
        assert cfg.lora.r == 8 and cfg.train.gradient_checkpointing == "off" and cfg.train.precision == "fp32"
        rows = D.prepare(cfg.data, tok, seed=0).train
        assert len(rows) == 3 and all(len(e.input_ids) >= n for e in rows)
        learned = [sum(1 for x in e.labels[:n] if x != -100) for e in rows]
        assert min(learned) > 0
        shares.append(sum(learned) / (3 * n))
    assert 0.2 < min(shares) and max(shares) < 0.7 and max(shares) / min(shares) < 1.5, shares
