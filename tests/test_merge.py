"""Merge and its verification report, broken adapters, several adapters on one base, the Hub, the chain.

Two 3-step micro runs are trained once per session (a float32 LoRA and a 4-bit QLoRA) at a high
learning rate, so that the adapters really move the logits and a merge that dropped them would show.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from conftest import REPO, SHORT_MCQ, micro_overrides

from core import config as C
from core.errors import AdapterError, StudioError
from core.merge.markdown import to_markdown

DEMO = "presets/demo.yaml"
TEXT = "Câu hỏi: Bộ nhớ RAM là gì? Đáp án: bộ nhớ trong, mất dữ liệu khi tắt máy."


def micro_run(tmp_path_factory, model_dir: Path, kind: str) -> Path:
    """A finished 3-step micro run, trained once per session and shared by test_merge and test_generate.

    kind: "fp32" (LoRA on the float32 micro model, 25% validation rows) or "qlora" (4-bit NF4 base,
    no validation: the merge report then falls back to training rows).
    """
    from core.train.job import TrainingJob

    root = tmp_path_factory.getbasetemp() / "merge-runs"
    run_dir = root / kind
    if (run_dir / "adapter" / "adapter_model.safetensors").exists():
        return run_dir
    extra = {"train.learning_rate": 0.01, "run_name": kind}
    if kind == "qlora":
        extra["model.load_in_4bit"] = True
    else:
        extra["data.validation_fraction"] = 0.25
    cfg = C.load_yaml(DEMO, micro_overrides(model_dir, **extra))
    job = TrainingJob(cfg, root)
    assert job.run() == run_dir and job.state == "finished", job.error_message
    return run_dir


@pytest.fixture(scope="session")
def fp32_run(tmp_path_factory, micro_model) -> Path:
    return micro_run(tmp_path_factory, micro_model, "fp32")


@pytest.fixture(scope="session")
def qlora_run(tmp_path_factory, micro_model) -> Path:
    return micro_run(tmp_path_factory, micro_model, "qlora")


@pytest.fixture(scope="session")
def fp32_merged(fp32_run):
    from core.merge.run import merge_run

    return merge_run(fp32_run, n_prompts=2, max_new_tokens=8)


def plain_logits(model_dir: Path, ids: list[int]) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0]


# --------------------------------------------------------------------------- float32 LoRA


def test_fp32_merge_answers_like_base_plus_adapter(fp32_merged, fp32_run):
    report = fp32_merged
    assert report.target == "original" and report.dtype == "float32" and not report.lossy
    assert report.prompts["source"] == "validation" and report.prompts["n"] >= 1
    r = report.chosen
    assert r.saved and r.measured_from == "saved folder"
    assert r.max_abs_dlogit <= 1e-4, r
    assert r.greedy_agreement == 1.0 and r.identical_generations == r.n_prompts
    assert report.passed
    out = Path(report.out_dir)
    assert out == fp32_run / "merged"
    saved = json.loads((out / "merge_report.json").read_text())
    assert saved["passed"] is True and saved["adapter_sha256"] == report.adapter_sha256
    md = (out / "merge_report.md").read_text()
    assert "PASSED" in md and "ĐẠT" in md and "max abs Δlogit" in md
    assert to_markdown(report, "vi").startswith("# Báo cáo gộp adapter")


def test_merged_folder_loads_and_generates_with_stock_transformers(fp32_merged, micro_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(fp32_merged.out_dir)
    tok = AutoTokenizer.from_pretrained(out)
    base_tok = AutoTokenizer.from_pretrained(micro_model)
    assert base_tok.chat_template and tok.chat_template == base_tok.chat_template
    assert (tok.eos_token, tok.bos_token) == (base_tok.eos_token, base_tok.bos_token)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in n for n, _ in model.named_parameters())
    ids = tok(TEXT, return_tensors="pt")
    out_ids = model.generate(**ids, max_new_tokens=5, do_sample=False)
    assert out_ids.shape[1] == ids["input_ids"].shape[1] + 5
    # the adapter is in the weights: the merged model is not the base
    merged = model(**ids).logits[0]
    assert (merged - plain_logits(micro_model, ids["input_ids"][0].tolist())).abs().max() > 1e-3


def test_merging_twice_is_a_no_op_that_says_so(fp32_merged, fp32_run, capsys):
    from core.__main__ import main

    weights = Path(fp32_merged.out_dir) / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert main(["merge", str(fp32_run)]) == 0
    captured = capsys.readouterr()
    assert "already merged" in captured.err and "nothing rewritten" in captured.err
    assert captured.out.strip().splitlines()[-1] == fp32_merged.out_dir
    assert weights.stat().st_mtime_ns == before
    from core.merge.run import merge_run

    again = merge_run(fp32_run)
    assert again.already_merged and again.passed and "Already merged" in to_markdown(again, "en")


def test_dequantized_target_refused_for_a_full_precision_run(fp32_run, capsys):
    from core.__main__ import main

    assert main(["merge", str(fp32_run), "--onto", "dequantized", "--out", str(fp32_run / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: --onto dequantized is for a run trained on a 4-bit base")


# --------------------------------------------------------------------------- QLoRA


def test_qlora_report_shows_both_targets_and_dequantized_is_exact(qlora_run):
    from core.merge.run import merge_run

    report = merge_run(qlora_run, n_prompts=2, max_new_tokens=8)
    assert report.quantized_run and report.target == "dequantized" and report.prompts["source"] == "train"
    deq, orig = report.results["dequantized"], report.results["original"]
    assert deq.saved and not orig.saved and orig.measured_from == "memory"
    # the dequantized merge holds exactly the weights the 4-bit forward pass uses (and core.adapters.exact_4bit
    # keeps that pass in float32), so only float32 reordering is left: the same 1e-4 as a plain LoRA merge
    assert deq.max_abs_dlogit <= 1e-4 and deq.greedy_agreement == 1.0 and deq.passed and report.passed
    # merging onto the original weights drifts by the quantization error: measured ~0.1, 100x more
    assert orig.lossy and orig.max_abs_dlogit > 20 * max(deq.max_abs_dlogit, 1e-6)
    md = to_markdown(report, "en")
    assert "dequantized 4-bit weights" in md and "original 16/32-bit weights" in md
    assert "trọng số 4-bit đã giải lượng tử" in to_markdown(report, "vi")
    from transformers import AutoModelForCausalLM

    cfg = json.loads((Path(report.out_dir) / "config.json").read_text())
    assert "quantization_config" not in cfg
    assert AutoModelForCausalLM.from_pretrained(report.out_dir) is not None


def test_onto_4bit_is_marked_lossy_with_its_measured_loss(qlora_run, tmp_path):
    from core.merge.report import load_report
    from core.merge.run import merge_run

    report = merge_run(qlora_run, onto="4bit", out=tmp_path / "m4", n_prompts=1, max_new_tokens=4)
    assert report.target == "4bit" and report.lossy
    r = report.chosen
    assert r.max_abs_dlogit > 1e-3 and r.saved  # re-quantizing after the merge costs precision
    assert set(report.results) == {"4bit", "dequantized", "original"}
    saved = load_report(tmp_path / "m4")
    assert saved["lossy"] is True and saved["target"] == "4bit"
    assert "quantization_config" in json.loads((tmp_path / "m4" / "config.json").read_text())
    assert "LOSSY" in to_markdown(report, "en") and "CÓ MẤT MÁT" in to_markdown(report, "vi")


# --------------------------------------------------------------------------- broken adapters


@pytest.fixture
def run_copy(fp32_run, tmp_path) -> Path:
    """A copy of the float32 run (without checkpoints and merged model) to break."""
    dst = tmp_path / "run"
    shutil.copytree(fp32_run, dst, ignore=shutil.ignore_patterns("checkpoints", "merged"))
    return dst


def _merge_error(run_dir: Path) -> str:
    from core.merge.run import merge_run

    with pytest.raises(AdapterError) as e:
        merge_run(run_dir, out=run_dir / "merged", n_prompts=1)
    assert not (run_dir / "merged").exists()
    return str(e.value)


@pytest.mark.parametrize("missing", ["adapter_model.safetensors", "adapter_config.json"])
def test_missing_adapter_file(run_copy, missing):
    (run_copy / "adapter" / missing).unlink()
    msg = _merge_error(run_copy)
    assert "incomplete" in msg and str(run_copy / "adapter" / missing) in msg


def test_nan_adapter_weights(run_copy):
    from safetensors.torch import load_file, save_file

    path = run_copy / "adapter" / "adapter_model.safetensors"
    tensors = load_file(str(path))
    key = sorted(k for k in tensors if "lora_B" in k)[0]
    tensors[key][0, 0] = float("nan")
    save_file(tensors, str(path))
    msg = _merge_error(run_copy)
    assert "NaN" in msg and str(path) in msg and key in msg


def _point_at(run_dir: Path, base: Path, *, run_json: bool = True, adapter: bool = True) -> None:
    if run_json:
        info = json.loads((run_dir / "run.json").read_text())
        info["base_model"] = info["resolved_base_model"] = str(base)
        (run_dir / "run.json").write_text(json.dumps(info))
    if adapter:
        p = run_dir / "adapter" / "adapter_config.json"
        cfg = json.loads(p.read_text())
        cfg["base_model_name_or_path"] = str(base)
        p.write_text(json.dumps(cfg))


def test_adapter_for_another_base_shape_mismatch(run_copy, micro_model_factory):
    other = micro_model_factory(hidden=128)
    _point_at(run_copy, other)  # the names agree; only the shapes can tell
    msg = _merge_error(run_copy)
    assert "made for another base" in msg and "adapter_model.safetensors" in msg
    assert re.search(r"module model\.layers\.\d+\.\S+ has (in|out)put size \d+ in the base \S+micro-llama-128\S*, "
                     r"the adapter's lora_[AB]\.weight has \d+", msg), msg


def test_adapter_naming_another_base(run_copy, micro_model_factory):
    other = micro_model_factory(hidden=128)
    _point_at(run_copy, other, adapter=False)  # the run now says hidden-128; the adapter still names hidden-64
    msg = _merge_error(run_copy)
    assert "made for another base" in msg and "adapter_config.json" in msg and str(other) in msg


# --------------------------------------------------------------------------- several adapters on one base


def test_model_set_switches_adapters_on_one_base(fp32_run, qlora_run, micro_model):
    from core.inference.modelset import ModelSet
    from core.config import DecodingConfig

    ms = ModelSet.from_run(fp32_run, merged=True)
    ids = ms.tokenizer(TEXT)["input_ids"]
    plain = plain_logits(micro_model, ids)
    base = ms.logits(ids, "base")
    assert torch.allclose(base, plain, atol=1e-6), "the base with adapters disabled is the plain base"
    first = ms.logits(ids, "adapter")
    assert (first - base).abs().max() > 1e-3
    assert (ms.logits(ids, "merged") - first).abs().max() <= 1e-4

    ms.add_adapter(qlora_run / "adapter", "second")  # same base folder: accepted
    assert ms.names() == ["base", "adapter", "second", "merged"]
    second = ms.logits(ids, "second")
    assert (second - first).abs().max() > 1e-3, "switching adapters changes the output"
    assert torch.equal(ms.logits(ids, "adapter"), first), "switching back gives the first adapter again"
    assert torch.allclose(ms.logits(ids, "base"), plain, atol=1e-6)

    prompt = ms.prompt_for({"context": "Bộ nhớ RAM là bộ nhớ trong."})
    assert "Đoạn văn: Bộ nhớ RAM là bộ nhớ trong." in prompt
    gens = {w: ms.generate([prompt], w, DecodingConfig(max_new_tokens=4))[0] for w in ("base", "adapter", "merged")}
    assert gens["adapter"].token_ids == gens["merged"].token_ids and len(gens["base"].token_ids) == 4

    with pytest.raises(AdapterError, match="reserved"):
        ms.add_adapter(qlora_run / "adapter", "base")
    ms.remove_adapter("second")
    assert ms.names() == ["base", "adapter", "merged"]
    plain_again = ms.unload()
    assert ms.names() == ["base", "merged"]
    with torch.no_grad():
        assert torch.allclose(plain_again(input_ids=torch.tensor([ids])).logits[0], plain, atol=1e-6)


def test_a_bf16_run_opens_in_float32_on_a_cpu_that_would_emulate_bf16(run_copy, micro_model, monkeypatch):
    """A run trained on bfloat16 weights (where a CPU computes bf16 natively) and opened on a CPU without native
    bf16 runs in float32, its merged model too: the same weights upcast exactly, base+adapter still equal to the
    merged model; where bf16 is native it stays bfloat16."""
    from transformers import AutoModelForCausalLM

    from core.config import dump_yaml
    from core.inference.modelset import ModelSet
    from core.models import load as LD

    cfg = C.load_yaml(run_copy / "config.yaml")
    C.set_value(cfg, "model.dtype", "bfloat16")
    (run_copy / "config.yaml").write_text(dump_yaml(cfg), encoding="utf-8")
    AutoModelForCausalLM.from_pretrained(micro_model, dtype=torch.bfloat16).save_pretrained(run_copy / "merged")
    for native, want in ((False, torch.float32), (True, torch.bfloat16)):
        monkeypatch.setattr(LD, "cpu_native_bf16", lambda native=native: native)
        ms = ModelSet.from_run(run_copy, merged=True)
        assert {p.dtype for n, p in ms.model.named_parameters() if "lora_" not in n} == {want}
        assert {p.dtype for p in ms.merged.parameters()} == {want}
    ids = ms.tokenizer(TEXT)["input_ids"]
    monkeypatch.setattr(LD, "cpu_native_bf16", lambda: False)
    ms = ModelSet.from_run(run_copy, merged=True)
    upcast = AutoModelForCausalLM.from_pretrained(micro_model, dtype=torch.bfloat16).float().eval()
    with torch.no_grad():
        assert torch.equal(ms.logits(ids, "merged"), upcast(input_ids=torch.tensor([ids])).logits[0])


def test_model_set_refuses_an_adapter_for_another_base(fp32_run, micro_model_factory):
    from transformers import AutoModelForCausalLM

    from core.inference.modelset import ModelSet
    from core.models.load import load_tokenizer

    other = micro_model_factory(hidden=128)
    ms = ModelSet(AutoModelForCausalLM.from_pretrained(other), load_tokenizer(str(other)), base_names=[str(other)])
    with pytest.raises(AdapterError, match="made for another base"):
        ms.add_adapter(fp32_run / "adapter", "foreign")


# --------------------------------------------------------------------------- the Hub


def test_push_offline_is_a_clear_error_without_the_token(fp32_merged, monkeypatch):
    from core.merge.hub import push_to_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    secret = "hf_thisIsNotARealTokenButMustNotLeak"
    with pytest.raises(StudioError) as e:
        push_to_hub(fp32_merged.out_dir, "someone/merged-model", secret)
    assert "unreachable" in str(e.value) and secret not in str(e.value)
    with pytest.raises(StudioError, match="owner/name"):
        push_to_hub(fp32_merged.out_dir, "not a repo", secret)
    for f in Path(fp32_merged.out_dir).iterdir():
        assert secret not in f.read_bytes().decode("utf-8", "ignore")


# --------------------------------------------------------------------------- chains


def test_chain_trains_stage_two_on_stage_one_merged_model(run_cli, micro_model, tmp_path):
    runs = tmp_path / "runs"
    res = run_cli("chain", "presets/chain_1_cpt.yaml", "presets/chain_2_mcq.yaml",
                  "--set", f"model.name_or_path={micro_model}", "--set", "train.max_steps=2",
                  "--set", "train.per_device_train_batch_size=2", "--set", "data.max_length=256",
                  "--stage-set", f"2:data.source={SHORT_MCQ}", "--stage-set", "2:data.validation_fraction=0",
                  "--prompts", "2", "--runs-dir", str(runs))
    assert res.returncode == 0, res.stderr[-3000:]
    # stdout: each stage's run folder (the trainer's own log lines may come in between)
    stage1, stage2 = [Path(line) for line in res.stdout.splitlines() if line.startswith(str(runs))]
    assert stage1.parent == runs and stage2.parent == runs and stage1 != stage2
    merged = stage1 / "merged"
    report = json.loads((merged / "merge_report.json").read_text())
    assert report["passed"] and report["target"] == "original"
    cfg2 = C.load_yaml(stage2 / "config.yaml")
    assert cfg2.model.name_or_path == str(merged)
    assert json.loads((stage2 / "run.json").read_text())["resolved_base_model"] == str(merged)
    adapter2 = json.loads((stage2 / "adapter" / "adapter_config.json").read_text())
    assert adapter2["base_model_name_or_path"] == str(merged)
    assert C.load_yaml(stage1 / "config.yaml").data.source == "sample:informatics_book"


def test_a_chain_stage_runs_in_a_process_of_its_own_and_its_error_comes_back_whole():
    """Each stage of a chain runs in a fresh process (run in one, a Gemma chain's second stage grew to 21 GB);
    an engine error raised there reaches the parent with its message and its field."""
    import os
    import pickle

    from core.errors import ConfigError, JobError
    from core.merge.chain import _in_own_process

    assert _in_own_process(os.getpid) != os.getpid()
    err = pickle.loads(pickle.dumps(JobError("stage 2 failed", field="presets/x.yaml", issues=["a"])))
    assert type(err) is JobError and str(err) == "stage 2 failed" and err.field == "presets/x.yaml"
    assert err.issues == ["a"]
    with pytest.raises(ConfigError, match="no such preset") as raised:
        _in_own_process(_refuse, "presets/none.yaml")
    assert raised.value.field == "presets/none.yaml"


def _refuse(preset: str):
    from core.errors import ConfigError

    raise ConfigError(f"no such preset: {preset}", field=preset)


def test_bf16_run_trains_on_cpu_and_merges_exactly_in_float32(micro_model, tmp_path):
    """The demo's setting: bfloat16 weights + bf16 compute on the CPU; the merge is checked in float32."""
    from core.merge.run import merge_run
    from core.train.job import TrainingJob

    cfg = C.load_yaml(DEMO, micro_overrides(micro_model, **{"model.dtype": "bfloat16", "train.precision": "bf16",
                                                             "train.learning_rate": 0.01,
                                                             "data.validation_fraction": 0.25}))
    job = TrainingJob(cfg, tmp_path)
    run_dir = job.run()
    assert job.state == "finished", job.error_message
    report = merge_run(run_dir, n_prompts=2, max_new_tokens=8)
    assert report.dtype == "float32" and report.passed
    r = report.chosen
    assert r.tolerance_dtype == "float32" and r.max_abs_dlogit <= 1e-4, r
    assert r.greedy_agreement == 1.0
    assert report.reference == "float32_base" and report.reference_args == {"dtype": "bfloat16"}
    assert "the base in float32 (trained on bfloat16)" in to_markdown(report, "en")
    assert {"code": "float32_reference_lora", "args": {"dtype": "bfloat16"}} in report.notes
    assert "bfloat16 weights" in to_markdown(report, "en")


def test_qlora_on_bf16_weights_merges_exactly_in_float32_and_a_requantized_merge_still_fails(
        micro_model_factory, tmp_path):
    """The demo preset with 4-bit ticked: bfloat16 weights, Gemma-3's scaled tied embeddings, bf16 compute.

    It used to fail its own check (demo: max |Δlogit| 6.25, KL 1e-2): stock ``dequantize`` rounded every weight
    to the load dtype, and the reference kept Gemma's embedding scale as bfloat16 computed it. Now the reference
    and the merge compute like with like, and a wrong merge (re-quantized to 4 bits) still fails.
    """
    from core.merge.run import merge_run
    from core.train.job import TrainingJob

    gemma = micro_model_factory(arch="gemma3", hidden=96)
    cfg = C.load_yaml(DEMO, micro_overrides(gemma, **{"model.dtype": "bfloat16", "train.precision": "bf16",
                                                       "model.load_in_4bit": True, "train.learning_rate": 0.01,
                                                       "data.validation_fraction": 0.25}))
    job = TrainingJob(cfg, tmp_path)
    run_dir = job.run()
    assert job.state == "finished", job.error_message
    report = merge_run(run_dir, dtype="float32", onto="dequantized", n_prompts=2, max_new_tokens=8)
    deq = report.chosen
    assert deq.tolerance_dtype == "float32" and report.passed, deq
    assert deq.greedy_agreement == 1.0 and deq.identical_generations == deq.n_prompts
    assert report.reference == "float32_unquantized"
    assert "its non-quantized modules in float32" in to_markdown(report, "en")
    wrong = merge_run(run_dir, dtype="float32", onto="4bit", out=tmp_path / "m4", n_prompts=2, max_new_tokens=8)
    assert wrong.lossy and not wrong.chosen.passed
    assert wrong.chosen.max_abs_dlogit > 10 * deq.max_abs_dlogit


def test_dequantized_weights_are_the_ones_the_4bit_layer_multiplies_by(micro_model_factory):
    """bf16 weights, float32 compute: the 4-bit forward dequantizes in float32; stock dequantize rounds to bf16."""
    import bitsandbytes as bnb
    from transformers import AutoModelForCausalLM

    from core.merge.build import dequantize_as_computed
    from core.models.load import exact_4bit, quantization_config

    model_dir = micro_model_factory(arch="gemma3", hidden=96)
    cfg = C.ModelConfig(load_in_4bit=True, dtype="bfloat16")

    def load():
        return exact_4bit(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, device_map={"": "cpu"},
                                                               quantization_config=quantization_config(cfg)).eval())

    quantized = load()
    name, layer = next((n, m) for n, m in quantized.named_modules() if isinstance(m, bnb.nn.Linear4bit))
    x = torch.randn(3, layer.in_features)
    with torch.no_grad():
        want = layer(x)  # float32 in, float32 compute
    exact = dequantize_as_computed(load()).get_submodule(name)
    stock = load().dequantize(dtype=torch.float32).get_submodule(name)
    with torch.no_grad():
        assert (exact(x) - want).abs().max() <= 1e-5
        assert (stock(x) - want).abs().max() > 10 * max(1e-6, float((exact(x) - want).abs().max()))


def test_the_merged_folder_carries_the_eos_training_ended_on_and_stock_generation_stops_there(micro_model, tmp_path):
    """Peers' merges lose the EOS or the generation config, and the model never stops. A micro model is taught
    one short answer until it ends it with EOS; the merged folder, loaded with stock transformers, stops there."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from core.inference.batch import run_prompt
    from core.merge.run import merge_run
    from core.train.job import TrainingJob

    # the micro model's embedding row of its pad token (= EOS, as in SmolLM2) is zero from random init (padding_idx),
    # and with tied embeddings so is its output row: EOS could never be learned. A pretrained model has a real row.
    model = AutoModelForCausalLM.from_pretrained(micro_model)
    with torch.no_grad():
        model.get_input_embeddings().weight[model.config.pad_token_id].normal_(0, 0.02)
    model.save_pretrained(tmp_path / "base")
    AutoTokenizer.from_pretrained(micro_model).save_pretrained(tmp_path / "base")
    data = tmp_path / "greet.jsonl"
    data.write_text("".join(json.dumps({"instruction": "Xin chào", "output": "Chào bạn."}, ensure_ascii=False) + "\n"
                            for _ in range(8)), encoding="utf-8")
    cfg = C.load_yaml(REPO / "presets" / "demo.yaml", micro_overrides(tmp_path / "base", **{
        "data.source": str(data), "data.template": "alpaca", "train.max_steps": 60, "train.learning_rate": 1e-2,
        "train.warmup_ratio": 0, "lora.r": 16, "lora.lora_dropout": 0}))
    run = TrainingJob(cfg, tmp_path / "runs").run()
    report = merge_run(run, dtype="float32", n_prompts=1, max_new_tokens=8)
    out = Path(report.out_dir)
    tok = AutoTokenizer.from_pretrained(out)
    eos = GenerationConfig.from_pretrained(out).eos_token_id
    assert tok.eos_token_id in (eos if isinstance(eos, list) else [eos])
    model = AutoModelForCausalLM.from_pretrained(out)
    ids = tok(run_prompt(run, {"instruction": "Xin chào"}), return_tensors="pt", add_special_tokens=False)
    new = model.generate(**ids, max_new_tokens=40, do_sample=False)[0, ids["input_ids"].shape[1]:].tolist()
    assert new[-1] == tok.eos_token_id and len(new) < 40, tok.decode(new)
    assert tok.decode(new[:-1]).strip() == "Chào bạn."
