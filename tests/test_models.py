"""The model registry, hub errors, parameter counts and the memory estimate."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from conftest import REPO

from core import config as C
from core.errors import ModelLoadError
from core.models.load import load_model, load_tokenizer
from core.models.lora import build_lora_config, count_parameters
from core.models import memory
from core.models.memory import PROBE_MAX_LAYER_PARAMS, activation_bytes, data_profile, estimate_memory
from core.models.registry import resolve_model


def test_unknown_embedded_key():
    with pytest.raises(ModelLoadError, match="unknown embedded model 'embedded:gpt-9'"):
        resolve_model("embedded:gpt-9")


def test_unknown_hub_id_offline_fails_fast_and_clearly():
    t0 = time.monotonic()
    with pytest.raises(ModelLoadError) as e:
        resolve_model("nobody/no-such-model-xyz")
    assert "nobody/no-such-model-xyz" in str(e.value) and "unreachable" in str(e.value)
    assert e.value.field == "model.name_or_path"
    assert time.monotonic() - t0 < 20  # no minute of retries (a loose bound, not a benchmark)


@pytest.mark.parametrize("name", ["", "just-a-word", "a/b/c"])
def test_malformed_model_names(name):
    with pytest.raises(ModelLoadError):
        resolve_model(name or "./missing-folder")


def test_embedded_model_loads_from_the_cache(smollm2_dir):
    cfg = C.ModelConfig()
    model, tok, path = load_model(cfg)
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
    counted, _ = count_parameters(cfg)
    real = get_peft_model(AutoModelForCausalLM.from_pretrained(micro_model), build_lora_config(cfg.lora))
    trainable, total = real.get_nb_trainable_parameters()
    assert counted.trainable == trainable
    assert counted.total == total


def test_memory_estimate_grows_with_batch_and_shrinks_with_4bit(smollm2_dir):
    cfg = C.RunConfig()
    C.set_value(cfg, "train.gradient_checkpointing", "off")
    small = estimate_memory(cfg)
    C.set_value(cfg, "train.per_device_train_batch_size", 16)
    big = estimate_memory(cfg)
    assert big.activations == pytest.approx(4 * small.activations, rel=1e-6) and big.total > small.total
    # the chunked loss holds one chunk's logits, whatever the batch; trl's own path all of the batch's
    assert big.logits == small.logits
    C.set_value(cfg, "train.skip_prompt_logits", False)
    every_big = estimate_memory(cfg)
    C.set_value(cfg, "train.per_device_train_batch_size", 4)
    every_small = estimate_memory(cfg)
    assert every_big.logits == 4 * every_small.logits and every_small.logits > 4 * small.logits
    C.set_value(cfg, "train.skip_prompt_logits", True)
    C.set_value(cfg, "train.per_device_train_batch_size", 16)
    C.set_value(cfg, "model.load_in_4bit", True)
    assert estimate_memory(cfg).weights < big.weights
    C.set_value(cfg, "train.gradient_checkpointing", True)  # a preset's true / false reads as on / off
    assert cfg.train.gradient_checkpointing == "on"
    assert estimate_memory(cfg).activations < big.activations
    assert small.verdict in ("fits", "tight", "does_not_fit")
    assert small.params.trainable > 0 and small.total == sum(v for k, v in small.breakdown().items() if k != "total")


def test_auto_gradient_checkpointing_turns_on_when_the_run_would_not_fit_or_is_mostly_activations(smollm2_dir):
    """auto decides on the estimate without checkpointing: on when it does not "fit" or when the activations are over
    half of it (the defaults: SmolLM2, 4 rows of 512 tokens), off otherwise (one row of 64 tokens); the estimate is
    then that with checkpointing, saying what it would have been without, and why."""
    from core.errors import ConfigError

    whys = {}
    # one short row; the defaults; a batch that fits no machine this runs on without checkpointing
    for batch, length in ((1, 64), (4, 512), (256, 512)):
        cfg = C.RunConfig()
        C.set_value(cfg, "train.per_device_train_batch_size", batch)
        C.set_value(cfg, "data.max_length", length)
        auto = estimate_memory(cfg)
        C.set_value(cfg, "train.gradient_checkpointing", "off")
        off = estimate_memory(cfg)
        C.set_value(cfg, "train.gradient_checkpointing", "on")
        on = estimate_memory(cfg)
        why = "not_fit" if off.verdict != "fits" else "activations" if off.activations > off.total / 2 else ""
        assert auto.checkpointing == bool(why) and auto.auto_checkpointing_why == why
        if auto.checkpointing:
            assert auto.total == on.total < off.total and auto.auto_checkpointing_from == off.total
            assert "gradient_checkpointing" not in auto.advice
        else:
            assert auto.total == off.total and not auto.auto_checkpointing_from
        whys[batch] = why
    assert whys == {1: "", 4: "activations", 256: "not_fit"}, "256 rows x 512 tokens of SmolLM2: ~360 GiB"
    C.set_value(cfg, "train.gradient_checkpointing", "false")
    assert cfg.train.gradient_checkpointing == "off"
    with pytest.raises(ConfigError, match="train.gradient_checkpointing.*auto, on, off.*'sometimes'"):
        C.set_value(cfg, "train.gradient_checkpointing", "sometimes")


def _saved_for_backward(model_dir, cfg, seq_len: int) -> int:
    """Bytes autograd keeps for backward in a forward of the whole model with the run's LoRA (weights excluded)."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir), build_lora_config(cfg.lora)).train()
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    shapes = {tuple(p.shape) for p in model.parameters() if p.dim() >= 2}
    kept = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in weights and tuple(t.shape) not in shapes:
            kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    ids = torch.randint(0, 100, (1, seq_len))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False, logits_to_keep=1)
    return sum(kept.values())


def test_activation_probe_extrapolates_two_layers_to_the_real_depth(micro_model_factory):
    """The probe builds the architecture with 1 and 2 layers; a 6-layer model must keep what it predicts."""
    deep = micro_model_factory(layers=6)
    cfg = C.RunConfig()
    cfg.model.name_or_path = str(deep)
    cfg.model.dtype, cfg.train.precision = "float32", "fp32"  # auto: bfloat16 on a CPU with native bf16
    _, mconf = count_parameters(cfg)
    per_layer, outside = activation_bytes(cfg, mconf, 64)
    assert per_layer > 64 * 4  # at least the layer's input, in float32
    assert 64 * (6 * per_layer + outside) == pytest.approx(_saved_for_backward(deep, cfg, 64), rel=0.05)

    big = activation_bytes(cfg, mconf, 64, layer_params=PROBE_MAX_LAYER_PARAMS + 1)
    assert big is None  # a 7B-class layer is not built: the estimate falls back to its formula

    C.set_value(cfg, "lora.lora_dropout", 0.0)  # no dropout: LoRA's inputs are not copied
    no_dropout = activation_bytes(cfg, mconf, 64)[0]
    assert no_dropout < per_layer
    C.set_value(cfg, "train.precision", "bf16")  # 16-bit activations (a few norms stay float32)
    assert 0.4 < activation_bytes(cfg, mconf, 64)[0] / no_dropout < 0.8


def test_activation_probe_extrapolates_long_rows(micro_model, monkeypatch):
    """Past PROBE_MAX_LENGTH the per-token bytes are extrapolated from two shorter probes."""
    cfg = C.RunConfig()
    cfg.model.name_or_path = str(micro_model)
    _, mconf = count_parameters(cfg)
    measured = activation_bytes(cfg, mconf, 256)
    monkeypatch.setattr(memory, "PROBE_MAX_LENGTH", 128)
    extrapolated = activation_bytes(cfg, mconf, 256)
    assert extrapolated[0] == pytest.approx(measured[0], rel=0.1)
    assert extrapolated[0] >= activation_bytes(cfg, mconf, 128)[0]


def test_memory_estimate_from_the_data_counts_the_logits_the_batch_computes(micro_model, monkeypatch):
    from conftest import micro_overrides

    from core import data as D

    # the plain MCQ template: with the demo's focus template the rows' p95 length lands where the micro model's
    # attention saves more per token than at 512 (a different SDPA path), and the bound is no longer above
    cfg = C.load_yaml("presets/demo.yaml", micro_overrides(micro_model, **{"data.max_length": 512,
                                                                           "data.template": "mcq_generation"}))
    profile = data_profile(cfg)
    prepared = D.prepare(cfg.data, load_tokenizer(str(micro_model)), seed=cfg.train.seed)
    assert profile.seq_len == min(prepared.stats.p95, 512) < 512  # the short MCQs are far below max_length
    rows = prepared.train
    learned = sum(sum(1 for x in e.labels if x != -100) for e in rows) / sum(len(e.input_ids) for e in rows)
    assert 0 < profile.learned_fraction == pytest.approx(learned)
    assert data_profile(cfg) is profile  # cached: the form can ask on every change

    # a batch of every row is padded to the longest; it computes logits where any row learns the next token
    everything = profile.batch_shape(len(rows))
    assert everything.padded_length == max(len(e.input_ids) for e in rows)
    union = {i for e in rows for i, x in enumerate(e.labels[1:]) if x != -100}
    assert everything.logit_positions == len(union)
    one, batch = profile.batch_shape(1), profile.batch_shape(cfg.train.per_device_train_batch_size)
    longest_answer = max(sum(1 for x in e.labels[1:] if x != -100) for e in rows)
    assert one.logit_positions <= longest_answer
    assert one.logit_positions <= batch.logit_positions <= min(batch.padded_length, len(union))

    bound, est = estimate_memory(cfg), estimate_memory(cfg, profile=profile)
    assert est.activations < bound.activations
    # the chunked loss: at most one chunk of float32 logits and the matmul's output (a Llama's output layer)
    from core.train import loss as L

    vocab = len(load_tokenizer(str(micro_model)))
    assert est.logits <= bound.logits <= L.chunk_positions(vocab) * vocab * 12
    # the logits_to_keep path (an output layer the chunked loss does not know): the positions where any row learns
    monkeypatch.setattr(L, "PLAIN_OUTPUT_LAYER", frozenset())
    bound, est = estimate_memory(cfg), estimate_memory(cfg, profile=profile)
    assert est.logits * 512 == bound.logits * batch.logit_positions
    C.set_value(cfg, "train.skip_prompt_logits", False)  # trl's path: every position's logits are computed
    assert estimate_memory(cfg, profile=profile).logits * 512 == bound.logits * batch.padded_length


def test_training_precision_auto_follows_the_device_and_says_why():
    from core.config import ModelConfig
    from core.models.load import DeviceInfo, training_precision

    def dev(kind, bf16):
        return DeviceInfo(kind, "x", 0, 0, bf16)

    auto = ModelConfig()
    got = lambda model, prec, d: (lambda p: (p.compute, p.weights, p.why))(training_precision(model, prec, d))  # noqa: E731
    assert got(auto, "auto", dev("cpu", True)) == ("bf16", "bfloat16", "cpu_native_bf16")
    assert got(auto, "auto", dev("cpu", False)) == ("fp32", "float32", "cpu_no_bf16")
    assert got(auto, "auto", dev("cuda", True)) == ("bf16", "bfloat16", "cuda_bf16")
    assert got(auto, "auto", dev("cuda", False)) == ("fp16", "float16", "cuda_fp16")
    # weights pinned to float32: bf16 autocast over them is slower than float32 on a CPU, so auto stays float32
    assert got(ModelConfig(dtype="float32"), "auto", dev("cpu", True)) == ("fp32", "float32", "weights_float32")
    # QLoRA on a CPU keeps its float32 compute (the arithmetic the checked merge reproduces)
    q = ModelConfig(load_in_4bit=True)
    assert got(q, "auto", dev("cpu", True)) == ("fp32", "float32", "quantized")
    # a choice is kept; auto weights follow a bf16 choice on a CPU
    assert got(auto, "bf16", dev("cpu", True)) == ("bf16", "bfloat16", "chosen")
    assert got(auto, "fp32", dev("cpu", True)) == ("fp32", "float32", "chosen")
    # 16-bit chosen where a CPU would emulate it (the compute, or the weights alone): kept, and said
    assert got(auto, "bf16", dev("cpu", False)) == ("bf16", "bfloat16", "chosen_emulated")
    assert got(ModelConfig(dtype="bfloat16"), "auto", dev("cpu", False)) == ("fp32", "bfloat16", "chosen_emulated")
    assert training_precision(auto, "bf16", dev("cpu", False)).emulated
    assert not training_precision(auto, "bf16", dev("cpu", True)).emulated
    assert not training_precision(ModelConfig(dtype="bfloat16"), "bf16", dev("cuda", True)).emulated
    assert not training_precision(q, "auto", dev("cpu", False)).emulated


def test_a_model_runs_in_float32_where_16_bit_would_be_emulated():
    from core.models.load import DeviceInfo, runnable_dtype

    native, avx2, gpu = (DeviceInfo(k, "x", 0, 0, bf16) for k, bf16 in (("cpu", True), ("cpu", False), ("cuda", True)))
    assert runnable_dtype("bfloat16", native) == "bfloat16" and runnable_dtype("bfloat16", gpu) == "bfloat16"
    assert runnable_dtype("bfloat16", avx2) == "float32" and runnable_dtype("float16", avx2) == "float32"
    assert runnable_dtype("float32", avx2) == "float32" and runnable_dtype("auto", avx2) == "auto"


def test_cpu_native_bf16_reads_the_cpu_flags():
    from core.models.load import cpu_native_bf16, device_info

    flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("flags")), [])
    assert cpu_native_bf16() == ("avx512_bf16" in flags or "amx_bf16" in flags)
    if device_info().kind == "cpu":
        assert device_info().bf16 == cpu_native_bf16()


def test_resolve_training_is_idempotent_and_leaves_quantized_weights_alone():
    from core.config import RunConfig
    from core.models.load import resolve_training

    cfg, p = resolve_training(RunConfig())
    assert (cfg.train.precision, cfg.model.dtype) == (p.compute, p.weights)
    again, p2 = resolve_training(cfg)
    assert again == cfg and (p2.compute, p2.weights) == (p.compute, p.weights)
    q = RunConfig()
    q.model.load_in_4bit = True
    assert resolve_training(q)[0].model.dtype == "auto"


def test_cli_estimate_prints_what_the_estimate_assumes(micro_model, capsys):
    from conftest import micro_overrides

    from core.__main__ import main

    assert main(["estimate", "presets/demo.yaml", *[x for o in micro_overrides(micro_model) for x in ("--set", o)]]) == 0
    out = capsys.readouterr().out
    assert "a large batch of 2 rows (95th percentile)" in out
    lines = dict(line.split(None, 1) for line in out.splitlines() if line.split()[0] in
                 ("activations", "logits", "total"))
    assert set(lines) == {"activations", "logits", "total"} and lines["total"].endswith("iB")
    assert re.search(r"^padding: \d+% of the batch tokens at random, \d+% with train.train_sampling_strategy=group_by_length \(this run: \w+\)$", out,
                     re.M), out


def _profile(lengths: list[int]) -> memory.DataProfile:
    return memory.DataProfile(tuple((n, frozenset()) for n in lengths), 0.5, max(lengths))


def test_padding_fraction_counts_what_a_batch_pads_and_grouping_by_length_lowers_it():
    assert _profile([3, 1]).padding_fraction(2) == pytest.approx(1 / 3)  # one batch: 2 x 3 slots, 4 tokens
    assert _profile([7] * 12).padding_fraction(4) == 0 == _profile([7] * 12).padding_fraction(4, grouped=True)
    mixed = _profile([20, 200, 60, 150, 35, 90] * 40)
    random_, grouped = mixed.padding_fraction(4), mixed.padding_fraction(4, grouped=True)
    assert 0.2 < random_ < 0.7 and grouped < random_ / 3, (random_, grouped)


def test_group_by_length_reaches_the_trainer_as_transformers_length_grouped_sampler(micro_model, tmp_path):
    from conftest import micro_overrides

    from core.train.job import TrainingJob
    from core.train.trainer import sft_config

    cfg = C.load_yaml("presets/demo.yaml", micro_overrides(micro_model, **{"train.train_sampling_strategy": "group_by_length",
                                                                           "train.max_steps": 2}))
    assert sft_config(cfg, tmp_path).train_sampling_strategy == "group_by_length"
    C.set_value(cfg, "train.train_sampling_strategy", "random")
    assert sft_config(cfg, tmp_path).train_sampling_strategy == "random"
    C.set_value(cfg, "train.train_sampling_strategy", "group_by_length")
    job = TrainingJob(cfg, tmp_path)
    job.run()
    assert job.state == "finished" and job.progress.step == 2


def test_the_8bit_options_reach_bitsandbytes_and_skipped_modules_stay_full_precision(micro_model):
    from core.models.load import quantization_config

    cfg = C.load_yaml(REPO / "presets" / "demo.yaml", [
        f"model.name_or_path={micro_model}", "model.dtype=float32", "model.load_in_8bit=true",
        "model.llm_int8_threshold=4.5", "model.llm_int8_skip_modules=[lm_head,o_proj]"]).model
    q = quantization_config(cfg)
    assert q.load_in_8bit and q.llm_int8_threshold == 4.5 and q.llm_int8_skip_modules == ["lm_head", "o_proj"]
    assert q.llm_int8_enable_fp32_cpu_offload is False
    model = load_model(cfg)[0]
    kinds = {name.rsplit(".", 1)[-1]: type(m).__name__ for name, m in model.named_modules()}
    assert kinds["o_proj"] == "Linear" and kinds["q_proj"] == "Linear8bitLt"
    bad = C.load_yaml(REPO / "presets" / "demo.yaml", ["model.llm_int8_threshold=-1"])
    assert [str(i) for i in C.validate(bad) if i.field == "model.llm_int8_threshold"] == [
        "model.llm_int8_threshold: must be ≥ 0.0, got -1.0"]


def test_a_batch_larger_than_the_data_is_estimated_with_the_rows_there_are(micro_model):
    """Two training rows and batch 8: every step holds the two rows, and the estimate says so."""
    from conftest import micro_overrides

    cfg = C.load_yaml("presets/demo.yaml", micro_overrides(micro_model, **{"data.max_samples": 2,
                                                                           "data.validation_fraction": 0}))
    profile = data_profile(cfg)
    assert len(profile.rows) == 2
    C.set_value(cfg, "train.per_device_train_batch_size", 8)
    big = estimate_memory(cfg, profile=profile)
    C.set_value(cfg, "train.per_device_train_batch_size", 2)
    two = estimate_memory(cfg, profile=profile)
    assert big.batch_size == 2 and big.total == two.total


def test_torch_compile_is_off_by_default_and_reaches_the_trainer_as_transformers_own_option(tmp_path):
    """train.torch_compile is TrainingArguments' torch_compile (inductor when on); off unless chosen, since on a
    2-core CPU the compile time outweighs the faster steps of a short run."""
    from core.train.trainer import sft_config

    cfg = C.RunConfig()
    args = sft_config(cfg, tmp_path)
    assert args.torch_compile is False and args.torch_compile_backend is None
    C.set_value(cfg, "train.torch_compile", True)
    args = sft_config(cfg, tmp_path)
    assert args.torch_compile is True and args.torch_compile_backend == "inductor"
