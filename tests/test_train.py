"""Training end to end: the CLI, the run folder, stock PEFT loading, QLoRA/DoRA/OLoRA, stop and resume, errors."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import micro_overrides, read_jsonl

from core import config as C
from core.errors import ConfigError, JobError
from core.run import RunFolder, last_checkpoint
from core.train.job import TrainingJob

DEMO = "presets/demo.yaml"


def stock_logits(run_dir: Path, text: str = "Câu hỏi: Bộ nhớ RAM là gì?"):
    """Load base and adapter with stock transformers/peft only; return (base logits, adapted logits)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = run_dir / "adapter"
    base_name = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    tok = AutoTokenizer.from_pretrained(adapter)  # the tokenizer sits beside the adapter
    base = AutoModelForCausalLM.from_pretrained(base_name, dtype=torch.float32)
    ids = tok(text, return_tensors="pt")
    with torch.no_grad():
        before = base(**ids).logits
        model = PeftModel.from_pretrained(base, adapter)
        after = model(**ids).logits
    return before, after


def assert_finished_run(run_dir: Path, steps: int) -> None:
    for name in ("config.yaml", "run.json", "metrics.jsonl", "train.log", "adapter/adapter_config.json",
                 "adapter/adapter_model.safetensors", "adapter/tokenizer_config.json"):
        assert (run_dir / name).exists(), name
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "finished" and info["step"] == steps
    losses = [r for r in read_jsonl(run_dir / "metrics.jsonl") if "loss" in r]
    assert [r["step"] for r in losses] == list(range(1, steps + 1))
    assert all(math.isfinite(r["loss"]) for r in losses)
    assert "token" not in (run_dir / "config.yaml").read_text().lower().replace("tokens", "")
    before, after = stock_logits(run_dir)
    assert not torch.allclose(before, after, atol=1e-6), "the adapter must change the logits"
    assert torch.isfinite(after).all()


def test_cli_train_writes_a_complete_run_folder(run_cli, micro_model, tmp_path):
    args = [x for kv in micro_overrides(micro_model, **{"train.gradient_checkpointing": "auto"}) for x in ("--set", kv)]
    res = run_cli("train", DEMO, *args, "--runs-dir", str(tmp_path))
    assert res.returncode == 0, res.stderr[-2000:]
    run_dir = Path(res.stdout.strip().splitlines()[-1])
    assert run_dir.parent == tmp_path
    assert_finished_run(run_dir, 3)
    cfg = C.load_yaml(run_dir / "config.yaml")
    assert cfg.model.name_or_path == str(micro_model) and cfg.train.max_steps == 3
    from core.allocator import find_jemalloc  # python -m core restarts itself under jemalloc when it is installed

    info = json.loads((run_dir / "run.json").read_text())
    assert info["allocator"] == ("jemalloc" if find_jemalloc() else "system")
    # auto (the default; the demo preset sets off): a micro model fits, so no checkpointing, and the estimate it
    # decided on is recorded
    assert info["gradient_checkpointing"]["mode"] == "auto" and info["gradient_checkpointing"]["on"] is False
    assert info["gradient_checkpointing"]["estimate_bytes"] > 0


def test_gradient_checkpointing_changes_memory_not_the_losses(micro_model, tmp_path):
    """Checkpointing recomputes the activations in the backward pass: the same losses, step by step."""
    runs = {mode: TrainingJob(_micro_cfg(micro_model, **{"train.gradient_checkpointing": mode, "train.max_steps": 2,
                                                        "data.validation_fraction": 0}), tmp_path / mode).run()
            for mode in ("off", "on")}
    losses = {mode: [r["loss"] for r in read_jsonl(run / "metrics.jsonl") if "loss" in r] for mode, run in runs.items()}
    assert len(losses["on"]) == 2 and losses["on"] == pytest.approx(losses["off"], abs=1e-5)
    assert json.loads((runs["on"] / "run.json").read_text())["gradient_checkpointing"] == {"mode": "on", "on": True}


@pytest.mark.parametrize("override", ["model.load_in_4bit=true", "lora.use_dora=true", "lora.init_lora_weights=olora"])
def test_variants_train_and_load_with_stock_peft(run_cli, micro_model, tmp_path, override):
    args = [x for kv in micro_overrides(micro_model) + [override] for x in ("--set", kv)]
    res = run_cli("train", DEMO, *args, "--runs-dir", str(tmp_path))
    assert res.returncode == 0, res.stderr[-2000:]
    run_dir = Path(res.stdout.strip().splitlines()[-1])
    assert_finished_run(run_dir, 3)
    adapter_cfg = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    if override.startswith("lora.use_dora"):
        assert adapter_cfg["use_dora"] is True
    if override.startswith("lora.init"):
        # converted to a plain LoRA on the untouched base: rank doubles, init flag reset
        assert adapter_cfg["r"] == 2 * 16 and adapter_cfg["init_lora_weights"] is True


@pytest.mark.slow
def test_demo_preset_on_the_embedded_smollm2(run_cli, smollm2_dir, tmp_path):
    res = run_cli("train", DEMO, "--set", "model.name_or_path=embedded:smollm2-135m-instruct",
                  "--set", "train.max_steps=1", "--set", "train.per_device_train_batch_size=1",
                  "--set", "data.max_samples=2", "--set", "data.validation_fraction=0", "--runs-dir", str(tmp_path))
    assert res.returncode == 0, res.stderr[-2000:]
    run_dir = Path(res.stdout.strip().splitlines()[-1])
    assert_finished_run(run_dir, 1)
    assert json.loads((run_dir / "adapter/adapter_config.json").read_text())["base_model_name_or_path"] == str(
        smollm2_dir)


def _micro_cfg(model_dir: Path, **changes) -> C.RunConfig:
    cfg = C.load_yaml(DEMO, micro_overrides(model_dir, **changes))
    return cfg


def test_stop_leaves_a_loadable_adapter_and_resume_continues(micro_model, tmp_path):
    job = TrainingJob(_micro_cfg(micro_model, **{"train.max_steps": 400, "data.validation_fraction": 0}), tmp_path)
    job.start()
    deadline = time.monotonic() + 120
    while job.status().step < 3 and time.monotonic() < deadline and job.state not in ("failed", "finished"):
        time.sleep(0.05)
    job.stop()
    assert job.wait(120)
    assert job.state == "stopped", job.error_message
    run_dir = Path(job.status().run_dir)
    stopped_at = job.status().step
    assert 3 <= stopped_at < 400
    ckpt = last_checkpoint(run_dir)
    assert ckpt is not None and ckpt.name == f"checkpoint-{stopped_at}"
    before, after = stock_logits(run_dir)
    assert not torch.allclose(before, after, atol=1e-6)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "stopped"

    cfg = C.load_yaml(run_dir / "config.yaml", [f"train.max_steps={stopped_at + 2}"])
    resumed = TrainingJob(cfg, tmp_path, resume_dir=run_dir)
    assert resumed.run() == run_dir
    assert resumed.state == "finished"
    steps = [r["step"] for r in read_jsonl(run_dir / "metrics.jsonl") if "loss" in r]
    assert steps == list(range(1, stopped_at + 3)), "resume continues from the checkpoint's step, no repeats"


def test_auto_precision_is_resolved_recorded_and_kept_on_resume(micro_model, tmp_path):
    """auto precision and weights dtype become what this machine trains with, in config.yaml and run.json; a run
    from before that record resumes as auto meant then (float32 on a CPU), not in a new arithmetic."""
    from core.models.load import training_precision

    auto = {"model.dtype": "auto", "train.precision": "auto", "train.max_steps": 2, "data.validation_fraction": 0,
            "train.save_steps": 1}
    cfg = _micro_cfg(micro_model, **auto)
    expected = training_precision(cfg.model, "auto")
    run_dir = TrainingJob(cfg, tmp_path).run()
    info = json.loads((run_dir / "run.json").read_text())
    assert info["precision"] == {"compute": expected.compute, "weights": expected.weights, "why": expected.why}
    saved = C.load_yaml(run_dir / "config.yaml")
    assert (saved.train.precision, saved.model.dtype) == (expected.compute, expected.weights)

    # an older folder: auto in its config, no record; resuming it trains in float32 as it started
    (run_dir / "config.yaml").write_text((run_dir / "config.yaml").read_text()
                                         .replace(f"precision: {expected.compute}", "precision: auto")
                                         .replace(f"dtype: {expected.weights}", "dtype: auto"), encoding="utf-8")
    del info["precision"]
    (run_dir / "run.json").write_text(json.dumps(info), encoding="utf-8")
    old = C.load_yaml(run_dir / "config.yaml")
    assert (old.train.precision, old.model.dtype) == ("auto", "auto")
    from core.train.resume import More

    resumed = TrainingJob(old, tmp_path, resume_dir=run_dir, more=More(steps=1))
    assert resumed.run() == run_dir and resumed.state == "finished", resumed.error_message
    assert (resumed.cfg.train.precision, resumed.cfg.model.dtype) == ("fp32", "float32")


def test_16_bit_chosen_on_a_cpu_that_emulates_it_is_kept_and_warned(micro_model, tmp_path, monkeypatch, cli_here):
    """bf16 set by hand on a CPU without native bfloat16 trains as set (a choice is kept), and the run's warnings
    and the estimate say that the arithmetic is emulated there, with what to set instead."""
    from core.models import load as LD

    monkeypatch.setattr(LD, "cpu_native_bf16", lambda: False)
    cfg = _micro_cfg(micro_model, **{"train.precision": "bf16", "model.dtype": "auto", "train.max_steps": 1,
                                     "data.validation_fraction": 0})
    job = TrainingJob(cfg, tmp_path)
    run_dir = job.run()
    assert job.state == "finished", job.error_message
    assert json.loads((run_dir / "run.json").read_text())["precision"]["why"] == "chosen_emulated"
    assert any("emulated" in w and "auto" in w for w in job.warnings), job.warnings
    res = cli_here("estimate", str(run_dir / "config.yaml"))
    assert res.returncode == 0 and "chosen_emulated" in res.stdout and "warning: this CPU has no native bfloat16" in res.stdout


def test_eager_attention_trains_the_same_losses_as_sdpa(micro_model, tmp_path):
    """model.attn_implementation reaches the loaded model; eager and sdpa are the same arithmetic in float32."""
    losses = {}
    for impl in ("sdpa", "eager"):
        run = TrainingJob(_micro_cfg(micro_model, **{"model.attn_implementation": impl, "train.max_steps": 2,
                                                     "data.validation_fraction": 0}), tmp_path / impl).run()
        losses[impl] = [r["loss"] for r in read_jsonl(run / "metrics.jsonl") if "loss" in r]
        assert C.load_yaml(run / "config.yaml").model.attn_implementation == impl
    assert len(losses["eager"]) == 2 and losses["eager"] == pytest.approx(losses["sdpa"], abs=1e-5)


def test_flash_attention_without_a_gpu_is_a_clear_error(micro_model):
    from core.errors import ModelLoadError
    from core.models.load import load_model

    if torch.cuda.is_available():
        pytest.skip("a GPU machine: flash_attention_2 may load")
    cfg = C.ModelConfig(name_or_path=str(micro_model), attn_implementation="flash_attention_2")
    with pytest.raises(ModelLoadError, match="flash_attention_2 needs a CUDA GPU") as e:
        load_model(cfg)
    assert e.value.field == "model.attn_implementation"


def test_one_job_at_a_time(micro_model, tmp_path):
    first = TrainingJob(_micro_cfg(micro_model, **{"train.max_steps": 400}), tmp_path).start()
    try:
        with pytest.raises(JobError, match="already running"):
            TrainingJob(_micro_cfg(micro_model), tmp_path).start()
        from gui.tabs.training import start_job

        # a run over two processes is refused the same way, before any process or folder is made
        launched = tmp_path / "launched"
        with pytest.raises(JobError, match="already running"):
            start_job(_micro_cfg(micro_model, **{"train.nproc": 2, "train.per_device_train_batch_size": 1}), launched)
        assert not launched.exists()
    finally:
        first.stop()
        first.wait(120)
    assert first.state in ("stopped", "finished")
    second = TrainingJob(_micro_cfg(micro_model, **{"train.max_steps": 1}), tmp_path)
    second.run()
    assert second.state == "finished"


# --------------------------------------------------------------------------- bad input: one line, non-zero, nothing left


def _write(tmp_path: Path, name: str, content: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(content)
    return p


BAD = {
    "missing file": (lambda t: ["--set", f"data.source={t / 'missing.jsonl'}"], "missing.jsonl"),
    "empty file": (lambda t: ["--set", f"data.source={_write(t, 'empty.jsonl', b'')}"], "empty.jsonl"),
    "unreadable file": (lambda t: ["--set", f"data.source={_write(t, 'junk.jsonl', bytes(range(1, 200)))}"],
                        "junk.jsonl"),
    "unmapped columns": (lambda t: ["--set", "data.source=" + str(_write(
        t, "other.jsonl", b'{"foo": "x", "bar": "y"}\n'))], "foo, bar"),
    "lora.r=0": (lambda t: ["--set", "lora.r=0"], "lora.r: must be ≥ 1, got 0"),
    "negative lr": (lambda t: ["--set", "train.learning_rate=-0.001"], "train.learning_rate"),
    "unknown preset key": (lambda t: ["--set", "lora.rank=8"], "unknown setting `lora.rank`"),
    "unknown model offline": (lambda t: ["--set", "model.name_or_path=nobody/no-such-model-xyz"],
                              "nobody/no-such-model-xyz"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_gets_one_line_and_leaves_nothing(run_cli, cli_here, micro_model, tmp_path, case):
    make_args, needle = BAD[case]
    runs = tmp_path / "runs"
    base = [x for kv in micro_overrides(micro_model) for x in ("--set", kv)]
    # one case through a real interpreter (what a user types); the others in this process, the same main()
    cli = run_cli if case == "missing file" else cli_here
    res = cli("train", DEMO, *base, *make_args(tmp_path), "--runs-dir", str(runs))
    assert res.returncode != 0
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and needle in last, res.stderr[-1500:]
    assert "Traceback" not in res.stderr
    assert not runs.exists() or not any(runs.iterdir())


def test_unknown_top_level_key_in_preset_file(run_cli, tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("model:\n  name_or_path: x\noptimizer:\n  lr: 1\n")
    res = run_cli("train", str(p), "--runs-dir", str(tmp_path / "runs"))
    assert res.returncode != 0 and "unknown preset key `optimizer` in p.yaml" in res.stderr


def test_4bit_without_bitsandbytes_is_a_clear_error(micro_model, tmp_path):
    import subprocess

    code = ("import sys; sys.modules['bitsandbytes'] = None\n"
            "from core.__main__ import main\n"
            f"sys.exit(main(['train', '{DEMO}', '--set', 'model.load_in_4bit=true', '--set', "
            f"'model.name_or_path={micro_model}', '--runs-dir', '{tmp_path / 'runs'}']))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parent.parent)
    assert res.returncode == 2
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: model.load_in_4bit=true needs bitsandbytes"), res.stderr[-800:]
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("arch, softcap, chunk, fused", [
    ("llama", None, None, True),  # the chunked loss, one chunk (682 positions of SmolLM2's 49k vocabulary)
    ("llama", None, 5, True),  # chunks of 5 positions, the last one shorter
    ("gemma3", 30.0, 7, True),  # Gemma's final logit soft-capping (tanh), through the chunks
    ("qwen2", None, None, False),  # the logits_to_keep path, for output layers the chunked loss does not know
])
def test_sparse_logits_loss_equals_the_full_loss(micro_model_factory, tokenizer, monkeypatch, arch, softcap, chunk,
                                                  fused):
    """The output layer run only where tokens are learned, in chunks of positions or through ``logits_to_keep``,
    gives the very same loss, gradients and token accuracy as the model's own loss over every position."""
    from collections import defaultdict
    from types import SimpleNamespace

    from conftest import SHORT_MCQ
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from core import data as D
    from core.models.lora import build_lora_config
    from core.train import loss as L

    if not fused:
        monkeypatch.setattr(L, "PLAIN_OUTPUT_LAYER", frozenset())
    prepared = D.prepare(C.DataConfig(source=str(SHORT_MCQ), validation_fraction=0), tokenizer)
    rows = prepared.train[:3]
    width = max(len(e.input_ids) for e in rows)
    pad = lambda xs, v: xs + [v] * (width - len(xs))  # noqa: E731
    batch = {"input_ids": torch.tensor([pad(e.input_ids, tokenizer.pad_token_id) for e in rows]),
             "attention_mask": torch.tensor([pad([1] * len(e.input_ids), 0) for e in rows]),
             "labels": torch.tensor([pad(e.labels, -100) for e in rows])}
    torch.manual_seed(0)
    extra = {"final_logit_softcapping": softcap} if softcap else {}
    base = AutoModelForCausalLM.from_pretrained(micro_model_factory(arch), **extra)
    model = get_peft_model(base, build_lora_config(C.LoraSection()))
    for p in model.parameters():  # make B non-zero so that LoRA gradients are not trivially zero
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.02)
    model.eval()  # no dropout: the two passes must see the same network
    assert (L.plain_output_layer(model) is not None) == fused
    out = model(**batch)
    out.loss.backward()
    full = out.loss.detach()
    grads_full = [p.grad.clone() for p in model.parameters() if p.requires_grad]
    target = batch["labels"][:, 1:]
    learned = target != -100
    accuracy = ((out.logits[:, :-1].argmax(-1) == target) & learned).sum().item() / learned.sum().item()
    model.zero_grad()
    trainer = SimpleNamespace(model=model, _metrics={"train": defaultdict(list), "eval": defaultdict(list)}, _total_train_tokens=0)
    sparse = L.sparse_logits_loss(trainer, model, batch, chunk=chunk)
    sparse.backward()
    grads_sparse = [p.grad for p in model.parameters() if p.requires_grad]
    assert torch.allclose(full, sparse, atol=1e-5), (full, sparse)
    for a, b in zip(grads_full, grads_sparse):
        assert torch.allclose(a, b, atol=1e-6)
    assert trainer._metrics["eval"]["mean_token_accuracy"] == [pytest.approx(accuracy)]


def test_the_chunked_loss_in_bf16_is_as_close_to_float32_as_the_logits_path(micro_model_factory, tokenizer, monkeypatch):
    """Under bf16 autocast with bfloat16 weights (the CPU default where bf16 is native), the chunked loss does the
    output layer's arithmetic as the model's own layer does: its loss and gradients are as close to the float32
    ones as those of the logits_to_keep path (bf16 rounds differently along each path, so not equal to 1e-5)."""
    import copy
    from collections import defaultdict
    from types import SimpleNamespace

    from conftest import SHORT_MCQ
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from core import data as D
    from core.models.lora import build_lora_config
    from core.train import loss as L

    prepared = D.prepare(C.DataConfig(source=str(SHORT_MCQ), validation_fraction=0), tokenizer)
    rows = prepared.train[:2]
    width = max(len(e.input_ids) for e in rows)
    pad = lambda xs, v: xs + [v] * (width - len(xs))  # noqa: E731
    batch = {"input_ids": torch.tensor([pad(e.input_ids, tokenizer.pad_token_id) for e in rows]),
             "attention_mask": torch.tensor([pad([1] * len(e.input_ids), 0) for e in rows]),
             "labels": torch.tensor([pad(e.labels, -100) for e in rows])}
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(micro_model_factory("gemma3"), dtype=torch.bfloat16)
    model = get_peft_model(base, build_lora_config(C.LoraSection()))
    for p in model.parameters():
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.02)
    model.eval()
    reference = copy.deepcopy(model).float()

    def run(net, fused: bool, bf16: bool):
        monkeypatch.setattr(L, "PLAIN_OUTPUT_LAYER", L.PLAIN_OUTPUT_LAYER if fused else frozenset())
        net.zero_grad()
        trainer = SimpleNamespace(model=net, _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
                                  _total_train_tokens=0)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = L.sparse_logits_loss(trainer, net, batch, chunk=9)
        loss.backward()
        monkeypatch.undo()
        return loss.item(), torch.cat([p.grad.float().flatten() for p in net.parameters() if p.requires_grad])

    ref_loss, ref_grad = run(reference, True, False)
    errors = {}
    for fused in (False, True):
        loss, grad = run(model, fused, True)
        errors[fused] = (abs(loss - ref_loss) / ref_loss, ((grad - ref_grad).norm() / ref_grad.norm()).item())
    assert errors[True][0] < 1e-2 and errors[True][1] < 0.05, errors
    assert errors[True][0] <= 1.5 * errors[False][0] + 1e-4 and errors[True][1] <= 1.5 * errors[False][1], errors


def test_a_packed_batch_gives_each_row_its_own_loss(micro_model, tokenizer):
    """Padding-free packing (trl's collator, what ``data.packing`` trains with): rows laid end to end in one sequence,
    each attending only to itself (position_ids restart per row; transformers builds the block mask on CPU SDPA).
    The sparse loss and its gradients equal those of the same rows padded into a batch."""
    from collections import defaultdict
    from types import SimpleNamespace

    from conftest import SHORT_MCQ
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from core import data as D
    from core.models.lora import build_lora_config
    from core.train.loss import sparse_logits_loss

    prepared = D.prepare(C.DataConfig(source=str(SHORT_MCQ), validation_fraction=0), tokenizer)
    rows = [{"input_ids": e.input_ids, "labels": e.labels} for e in prepared.train[:3]]
    assert len({len(r["input_ids"]) for r in rows}) > 1, "rows of different lengths"
    padded = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)(rows)
    packed = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=True)(rows)
    assert packed["input_ids"].shape == (1, sum(len(r["input_ids"]) for r in rows)) and "attention_mask" not in packed
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(micro_model), build_lora_config(C.LoraSection()))
    for p in model.parameters():
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.02)
    model.eval()
    losses, grads = [], []
    for batch in (padded, packed):
        model.zero_grad()
        trainer = SimpleNamespace(model=model, args=SimpleNamespace(average_tokens_across_devices=False, world_size=1),
                                  _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
                                  _total_train_tokens=0)
        loss = sparse_logits_loss(trainer, model, batch)
        loss.backward()
        losses.append(loss.detach())
        grads.append([p.grad.clone() for p in model.parameters() if p.requires_grad])
    assert torch.allclose(losses[0], losses[1], atol=1e-5), losses
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-6)


def test_a_run_whose_max_length_cuts_the_answers_says_so(micro_model, tmp_path):
    """The bundled MCQs are ~650 SmolLM2 tokens: at max_length 600 the longest lose the end of their answer (and its key)."""
    from core.train.job import TrainingJob

    cfg = C.load_yaml(DEMO, micro_overrides(micro_model, **{"data.source": "sample:vi_informatics_mcq",
                                                            "data.max_length": 600, "train.max_steps": 1}))
    run_dir = TrainingJob(cfg, tmp_path).run()
    warnings = json.loads((run_dir / "run.json").read_text())["warnings"]
    [cut] = [w for w in warnings if "lose the end of their answer" in w]
    assert cut.startswith("data.max_length: ") and "than 600 tokens" in cut


def test_tensorboard_gets_the_same_losses_as_metrics_jsonl_inside_the_run_folder(micro_model, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    run_dir = TrainingJob(_micro_cfg(micro_model, **{"train.report_to": "tensorboard", "train.max_steps": 4}),
                          tmp_path).run()
    folder = RunFolder(run_dir)
    events = EventAccumulator(str(folder.tensorboard))
    events.Reload()
    logged = {e.step: e.value for e in events.Scalars("train/loss")}
    ours = {r["step"]: r["loss"] for r in folder.read_metrics() if r.get("loss") is not None}
    assert sorted(logged) == sorted(ours) == [1, 2, 3, 4]
    assert all(abs(logged[s] - ours[s]) < 1e-5 for s in ours)
    assert "TENSORBOARD_LOGGING_DIR" not in os.environ  # the app's next run does not write into this folder


def test_a_tracker_that_is_not_installed_names_its_pip_line_before_any_model_loads(micro_model, tmp_path):
    import importlib.util

    if importlib.util.find_spec("mlflow") is not None:
        pytest.skip("mlflow is installed here")
    job = TrainingJob(_micro_cfg(micro_model, **{"train.report_to": "mlflow"}), tmp_path)
    with pytest.raises(ConfigError, match=r"mlflow is not installed: run `pip install mlflow`") as e:
        job.run()
    assert e.value.field == "train.report_to" and list(tmp_path.iterdir()) == []


def test_wandb_runs_offline_into_the_run_folder_unless_the_user_says_otherwise(tmp_path):
    from core.train.trackers import tracker_env

    env = tracker_env("wandb", tmp_path, environ={})
    assert env["WANDB_MODE"] == "offline" and env["WANDB_DIR"] == str(tmp_path)
    assert "WANDB_MODE" not in tracker_env("wandb", tmp_path, environ={"WANDB_API_KEY": "x"})
    assert tracker_env("mlflow", tmp_path, environ={})["MLFLOW_TRACKING_URI"].startswith("file://")
    assert tracker_env("mlflow", tmp_path, environ={"MLFLOW_TRACKING_URI": "http://h"}) == {}
    assert tracker_env("none", tmp_path, environ={}) == {}
