"""Training throughput: our TrainingJob against a bare trl SFTTrainer script, side by side.

Both get the identical model, pre-tokenized rows (input_ids + labels, loss on the answer only), LoRA
settings, batch, steps and seed. Throughput is tokens (non-padding) per second between the end of
the first step and the end of the last, so model loading and the first step's warm-up are excluded
from both alike.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.system import summary
from core import config as C


def cpu_has_bf16() -> bool:
    """Native bfloat16 matmuls on this CPU (AVX512-BF16 / AMX), where bf16 training pays off."""
    import torch

    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def make_cfg(model: str, source: str, steps: int, batch: int, max_length: int, skip_prompt_logits: bool,
             bf16: bool = False) -> C.RunConfig:
    cfg = C.RunConfig()
    for key, value in {"model.name_or_path": model, "data.source": source, "data.max_length": max_length,
                       "data.validation_fraction": 0, "train.max_steps": steps,
                       "train.per_device_train_batch_size": batch, "train.logging_steps": 1,
                       "train.save_steps": 100_000, "train.skip_prompt_logits": skip_prompt_logits}.items():
        C.set_value(cfg, key, value)
    # pinned, not auto: the fp32 rows are float32 on every CPU (auto is bf16 where bf16 is native), and neither side
    # recomputes activations (trl's default; the engine's auto may turn checkpointing on to save memory)
    C.set_value(cfg, "train.gradient_checkpointing", "off")
    # bf16: the demo preset's setting, bfloat16 weights and bf16 compute (LoRA weights stay float32)
    C.set_value(cfg, "model.dtype", "bfloat16" if bf16 else "float32")
    C.set_value(cfg, "train.precision", "bf16" if bf16 else "fp32")
    return cfg


def _rate(points: list[tuple[float, float]]) -> float:
    """Tokens/s from (seconds, cumulative tokens) at each step end, skipping the first step."""
    (t0, n0), (t1, n1) = points[0], points[-1]
    return (n1 - n0) / (t1 - t0)


def engine_run(cfg: C.RunConfig, runs_dir: Path) -> float:
    from core.run import read_metrics
    from core.train.job import TrainingJob

    job = TrainingJob(cfg, runs_dir)
    run_dir = job.run()
    recs = [r for r in read_metrics(run_dir) if "loss" in r]
    return _rate([(r["elapsed"], r["num_tokens"]) for r in recs])


def trl_run(cfg: C.RunConfig, out_dir: Path, *, bf16: bool = False, checkpointing: bool = False) -> float:
    """What a notebook does: load the model, hand SFTTrainer a LoraConfig and the dataset, train.

    ``bf16``: the model loaded in bfloat16 and trained with ``bf16=True`` (what a GPU notebook does); else float32.
    ``checkpointing``: trl 1.x turns gradient checkpointing on by default (``SFTConfig.gradient_checkpointing``);
    off here unless asked, as on the engine side, so that both keep the same activations.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from core import data as D
    from core.models.lora import build_lora_config
    from core.models.registry import resolve_model

    path = resolve_model(cfg.model.name_or_path)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16 if bf16 else torch.float32)
    rows = D.to_hf_dataset(D.prepare(cfg.data, tok, seed=cfg.train.seed).train)
    points: list[tuple[float, float]] = []

    class Clock(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "num_tokens" in logs:
                points.append((time.monotonic(), float(logs["num_tokens"])))

    t = cfg.train
    args = SFTConfig(output_dir=str(out_dir), max_steps=t.max_steps, per_device_train_batch_size=t.per_device_train_batch_size,
                     learning_rate=t.learning_rate, lr_scheduler_type=t.lr_scheduler_type, seed=t.seed, data_seed=t.seed,
                     logging_steps=1, save_strategy="no", report_to="none", max_length=cfg.data.max_length,
                     bf16=bf16, fp16=False, use_cpu=not torch.cuda.is_available(), disable_tqdm=True,
                     dataloader_num_workers=0, activation_checkpointing=checkpointing)
    torch.manual_seed(t.seed)
    trainer = SFTTrainer(model=model, args=args, train_dataset=rows, processing_class=tok,
                         peft_config=build_lora_config(cfg.lora), callbacks=[Clock()])
    trainer.train()
    return _rate(points)


def run(model: str, source: str, *, steps: int, batch: int, max_length: int, reps: int,
        bf16: bool = False) -> dict:
    """Alternate engine and trl runs ``reps`` times; also the engine with the sparse output layer off.

    With ``bf16`` (and a CPU with native bfloat16), also the engine in the demo's bf16 setting.
    """
    names = ["engine", "trl", "engine_full_logits"] + (["engine_bf16"] if bf16 and cpu_has_bf16() else [])
    results: dict[str, list[float]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i in range(reps):
            # order rotates so that a slow drift of the machine does not favour one side
            k = i % len(names)
            for name in names[k:] + names[:k]:
                cfg = make_cfg(model, source, steps, batch, max_length, skip_prompt_logits=name != "engine_full_logits",
                               bf16=name == "engine_bf16")
                rate = trl_run(cfg, tmp / f"trl{i}") if name == "trl" else engine_run(cfg, tmp / "runs")
                results[name].append(rate)
    from core import data as D
    from core.models.load import load_tokenizer
    from core.models.lora import count_parameters
    from core.models.registry import resolve_model

    cfg = make_cfg(model, source, steps, batch, max_length, True)
    params, mconf = count_parameters(cfg)
    train = D.prepare(cfg.data, load_tokenizer(resolve_model(model)), seed=cfg.train.seed).train
    lengths = [min(len(e.input_ids), max_length) for e in train]
    learned = sum(sum(1 for x in e.labels[:max_length] if x != -100) for e in train)
    vocab = int(mconf.vocab_size)
    # embedding and output layer are not matmul work per token the way the body is: the body's N excludes them
    head = vocab * mconf.hidden_size * (1 if getattr(mconf, "tie_word_embeddings", True) else 2)
    ratios = [e / t for e, t in zip(results["engine"], results["trl"])]
    overhead = [e / t for e, t in zip(results["engine_full_logits"], results["trl"])]
    extra = {}
    if results.get("engine_bf16"):
        extra["ratio_bf16"] = summary([e / t for e, t in zip(results["engine_bf16"], results["trl"])])
    return {"model": model, "source": source, "steps": steps, "batch": batch, "max_length": max_length,
            "tokens_per_s": {k: summary(v) for k, v in results.items()},
            "ratio": summary(ratios), "ratio_same_loss_path": summary(overhead), **extra,
            "params": params.total, "body_params": params.total - head, "vocab": vocab,
            "layers": mconf.num_hidden_layers, "hidden": mconf.hidden_size,
            "mean_tokens": round(sum(lengths) / len(lengths), 1), "learned_fraction": round(learned / sum(lengths), 4)}
