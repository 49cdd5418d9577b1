"""The GPU path: the same engine on CUDA. Skipped, with its reason, on a machine without CUDA.

Run on a GPU machine with ``.venv/bin/python -m pytest -q tests/test_gpu.py`` (micro models built here, no
download). Covers a training step in bf16 and fp16, 4-bit QLoRA with bitsandbytes, the sparse-logits loss
against the full loss, a merge and its verification, generation, and the memory estimate against
``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import pytest
import torch
from conftest import REPO, micro_overrides

from core import config as C

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


def _run(micro_model, tmp_path, **extra):
    from core.train.job import TrainingJob

    cfg = C.load_yaml(REPO / "presets" / "demo.yaml", micro_overrides(micro_model, **extra))
    return TrainingJob(cfg, tmp_path / "runs").run()


@pytest.mark.parametrize("precision,dtype", [("bf16", "bfloat16"), ("fp16", "float16")])
def test_a_training_run_on_cuda_in_16_bit(micro_model, tmp_path, precision, dtype):
    from core.run import RunFolder, read_metrics

    run = _run(micro_model, tmp_path, **{"train.precision": precision, "model.dtype": dtype})
    losses = [r["loss"] for r in read_metrics(run) if "loss" in r]
    assert RunFolder(run).read_info()["status"] == "finished" and losses and all(x == x for x in losses)


def test_qlora_with_bitsandbytes_on_cuda_merges_and_passes(micro_model, tmp_path):
    pytest.importorskip("bitsandbytes")
    from core.merge.run import merge_run

    run = _run(micro_model, tmp_path, **{"model.load_in_4bit": True, "model.bnb_4bit_compute_dtype": "bfloat16"})
    report = merge_run(run, dtype="float32", onto="dequantized", n_prompts=2, max_new_tokens=8)
    assert report.passed, report.chosen


def test_the_sparse_logits_loss_equals_the_full_loss_on_cuda(micro_model, tokenizer):
    from collections import defaultdict
    from types import SimpleNamespace

    from conftest import SHORT_MCQ
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from core import data as D
    from core.models.lora import build_lora_config
    from core.train.loss import sparse_logits_loss

    rows = D.prepare(C.DataConfig(source=str(SHORT_MCQ), validation_fraction=0), tokenizer).train[:3]
    width = max(len(e.input_ids) for e in rows)
    pad = lambda xs, v: xs + [v] * (width - len(xs))  # noqa: E731
    batch = {"input_ids": torch.tensor([pad(e.input_ids, tokenizer.pad_token_id) for e in rows]),
             "attention_mask": torch.tensor([pad([1] * len(e.input_ids), 0) for e in rows]),
             "labels": torch.tensor([pad(e.labels, -100) for e in rows])}
    batch = {k: v.cuda() for k, v in batch.items()}
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(micro_model), build_lora_config(C.LoraSection()))
    model.cuda().eval()
    full = model(**batch).loss
    trainer = SimpleNamespace(model=model, _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
                              _total_train_tokens=0)
    assert torch.allclose(full, sparse_logits_loss(trainer, model, batch), atol=1e-4)


def test_merge_verification_and_generation_on_cuda(micro_model, tmp_path):
    from core.inference.modelset import ModelSet
    from core.merge.run import merge_run

    run = _run(micro_model, tmp_path)
    assert merge_run(run, dtype="float32", n_prompts=2, max_new_tokens=8).passed
    models = ModelSet.from_run(run)
    out = models.generate([models.prompt_for({"context": "Bàn phím là thiết bị vào."})], "adapter",
                          C.DecodingConfig(max_new_tokens=8))
    assert out[0].text is not None


def test_the_memory_estimate_is_near_the_cuda_peak(micro_model, tmp_path):
    from core.models.memory import estimate_memory

    cfg = C.load_yaml(REPO / "presets" / "demo.yaml", micro_overrides(micro_model))
    torch.cuda.reset_peak_memory_stats()
    _run(micro_model, tmp_path)
    peak = torch.cuda.max_memory_allocated()
    estimate = estimate_memory(cfg).total
    assert 0.5 < estimate / peak < 2.0, (estimate, peak)
