"""The model registry, hub errors, parameter counts and the memory estimate."""

from __future__ import annotations

import time

import pytest

from core import config as C
from core import models as M
from core.errors import ModelLoadError


def test_unknown_embedded_key():
    with pytest.raises(ModelLoadError, match="unknown embedded model 'embedded:gpt-9'"):
        M.resolve_model("embedded:gpt-9")


def test_unknown_hub_id_offline_fails_fast_and_clearly():
    t0 = time.monotonic()
    with pytest.raises(ModelLoadError) as e:
        M.resolve_model("nobody/no-such-model-xyz")
    assert "nobody/no-such-model-xyz" in str(e.value) and "unreachable" in str(e.value)
    assert e.value.field == "model.name_or_path"
    assert time.monotonic() - t0 < 20  # no minute of retries (a loose bound, not a benchmark)


@pytest.mark.parametrize("name", ["", "just-a-word", "a/b/c"])
def test_malformed_model_names(name):
    with pytest.raises(ModelLoadError):
        M.resolve_model(name or "./missing-folder")


def test_embedded_model_loads_from_the_cache(smollm2_dir):
    cfg = C.ModelConfig()
    model, tok, path = M.load_model(cfg)
    assert path == str(smollm2_dir) and (smollm2_dir / "model.safetensors").exists()
    assert model.config.model_type == "llama" and tok.eos_token == "<|im_end|>"
    assert getattr(model, "hf_quantizer", None) is None


@pytest.mark.parametrize("changes", [{}, {"lora.r": 4, "lora.target_modules": "q_proj,v_proj"},
                                     {"lora.modules_to_save": ["lm_head"]}, {"lora.use_dora": True}])
def test_parameter_count_matches_a_real_peft_model(micro_model, changes):
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    cfg = C.RunConfig()
    cfg.model.name_or_path = str(micro_model)
    for k, v in changes.items():
        C.set_value(cfg, k, v)
    counted, _ = M.count_parameters(cfg)
    real = get_peft_model(AutoModelForCausalLM.from_pretrained(micro_model), M.build_lora_config(cfg.lora))
    trainable, total = real.get_nb_trainable_parameters()
    assert counted.trainable == trainable
    assert counted.total == total


def test_memory_estimate_grows_with_batch_and_shrinks_with_4bit(smollm2_dir):
    cfg = C.RunConfig()
    small = M.estimate_memory(cfg)
    C.set_value(cfg, "train.per_device_train_batch_size", 16)
    big = M.estimate_memory(cfg)
    assert big.activations == 4 * small.activations and big.total > small.total
    C.set_value(cfg, "model.load_in_4bit", True)
    assert M.estimate_memory(cfg).weights < big.weights
    C.set_value(cfg, "train.gradient_checkpointing", True)
    assert M.estimate_memory(cfg).activations < big.activations
    assert small.verdict in ("fits", "tight", "does_not_fit")
    assert small.params.trainable > 0 and small.total == sum(v for k, v in small.breakdown().items() if k != "total")


def test_memory_estimate_from_the_data_counts_learned_logits_only(micro_model):
    from conftest import micro_overrides

    from core import data as D

    cfg = C.load_yaml("presets/demo.yaml", micro_overrides(micro_model, **{"data.max_length": 512}))
    profile = M.data_profile(cfg)
    prepared = D.prepare(cfg.data, M.load_tokenizer(str(micro_model)), seed=cfg.train.seed)
    assert profile.seq_len == min(prepared.stats.p95, 512) < 512  # the short MCQs are far below max_length
    rows = prepared.train
    learned = sum(sum(1 for x in e.labels if x != -100) for e in rows) / sum(len(e.input_ids) for e in rows)
    assert 0 < profile.learned_fraction == pytest.approx(learned)
    assert M.data_profile(cfg) is profile  # cached: the form can ask on every change

    bound, est = M.estimate_memory(cfg), M.estimate_memory(cfg, profile=profile)
    batch = cfg.train.per_device_train_batch_size
    assert bound.activations * profile.seq_len == est.activations * 512
    assert est.logits == int(batch * profile.seq_len * profile.learned_fraction) * bound.logits // (batch * 512)
    C.set_value(cfg, "train.skip_prompt_logits", False)  # trl's path: every position's logits are computed
    assert M.estimate_memory(cfg, profile=profile).logits == bound.logits * profile.seq_len // 512
