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


def make_cfg(model: str, source: str, steps: int, batch: int, max_length: int, skip_prompt_logits: bool) -> C.RunConfig:
    cfg = C.RunConfig()
    for key, value in {"model.name_or_path": model, "data.source": source, "data.max_length": max_length,
                       "data.validation_fraction": 0, "train.max_steps": steps,
                       "train.per_device_train_batch_size": batch, "train.logging_steps": 1,
                       "train.save_steps": 100_000, "train.skip_prompt_logits": skip_prompt_logits}.items():
        C.set_value(cfg, key, value)
    return cfg


def _rate(points: list[tuple[float, float]]) -> float:
    """Tokens/s from (seconds, cumulative tokens) at each step end, skipping the first step."""
    (t0, n0), (t1, n1) = points[0], points[-1]
    return (n1 - n0) / (t1 - t0)


def engine_run(cfg: C.RunConfig, runs_dir: Path) -> float:
    from core.train import TrainingJob, read_metrics

    job = TrainingJob(cfg, runs_dir)
    run_dir = job.run()
    recs = [r for r in read_metrics(run_dir) if "loss" in r]
    return _rate([(r["elapsed"], r["num_tokens"]) for r in recs])


def trl_run(cfg: C.RunConfig, out_dir: Path) -> float:
    """What a notebook does: load the model, hand SFTTrainer a LoraConfig and the dataset, train."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from core import data as D
    from core.models import build_lora_config, resolve_model

    path = resolve_model(cfg.model.name_or_path)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
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
                     bf16=False, fp16=False, disable_tqdm=True, dataloader_num_workers=0)
    torch.manual_seed(t.seed)
    trainer = SFTTrainer(model=model, args=args, train_dataset=rows, processing_class=tok,
                         peft_config=build_lora_config(cfg.lora), callbacks=[Clock()])
    trainer.train()
    return _rate(points)


def run(model: str, source: str, *, steps: int, batch: int, max_length: int, reps: int) -> dict:
    """Alternate engine and trl runs ``reps`` times; also the engine with the sparse output layer off."""
    results: dict[str, list[float]] = {"engine": [], "trl": [], "engine_full_logits": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i in range(reps):
            # order rotates so that a slow drift of the machine does not favour one side
            order = ["engine", "trl", "engine_full_logits"][i % 3:] + ["engine", "trl", "engine_full_logits"][:i % 3]
            for name in order:
                cfg = make_cfg(model, source, steps, batch, max_length, skip_prompt_logits=name == "engine")
                rate = trl_run(cfg, tmp / f"trl{i}") if name == "trl" else engine_run(cfg, tmp / "runs")
                results[name].append(rate)
    from core import data as D
    from core.models import count_parameters, load_tokenizer, resolve_model

    cfg = make_cfg(model, source, steps, batch, max_length, True)
    params, mconf = count_parameters(cfg)
    lengths = [min(len(e.input_ids), max_length) for e in
               D.prepare(cfg.data, load_tokenizer(resolve_model(model)), seed=cfg.train.seed).train]
    ratios = [e / t for e, t in zip(results["engine"], results["trl"])]
    overhead = [e / t for e, t in zip(results["engine_full_logits"], results["trl"])]
    return {"model": model, "source": source, "steps": steps, "batch": batch, "max_length": max_length,
            "tokens_per_s": {k: summary(v) for k, v in results.items()},
            "ratio": summary(ratios), "ratio_same_loss_path": summary(overhead),
            "params": params.total, "layers": mconf.num_hidden_layers, "hidden": mconf.hidden_size,
            "mean_tokens": round(sum(lengths) / len(lengths), 1)}
