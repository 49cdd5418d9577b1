"""TrainingJob: one LoRA/QLoRA run of trl's SFTTrainer, in a background thread, with a run folder.

The job owns its thread, a status, a stop ``threading.Event`` checked by a TrainerCallback, a
locked list of metric records mirrored to ``metrics.jsonl``, and the exception if one was raised.
The GUI polls :meth:`TrainingJob.status`; the CLI calls :meth:`TrainingJob.run` directly.

Run folder (``<runs>/<run-name>/``):
    config.yaml      the full resolved config (never a token)
    run.json         status, resolved base model, data and parameter figures, versions
    metrics.jsonl    one record per logged step
    train.log        the log of this run
    adapter/         the final adapter in PEFT's format, with the tokenizer
    checkpoints/     resumable trainer checkpoints
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
import shutil
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core import config as C
from core.config import RunConfig
from core.errors import JobError, StudioError
from core.paths import default_runs_dir

log = logging.getLogger(__name__)

STATUSES = ("idle", "loading", "training", "stopping", "finished", "stopped", "failed")
FINAL = ("finished", "stopped", "failed")

_active_lock = threading.Lock()
_active: "TrainingJob | None" = None


def active_job() -> "TrainingJob | None":
    """The job that holds the one training slot, if any (finished jobs release it)."""
    return _active


def _claim(job: "TrainingJob") -> None:
    global _active
    with _active_lock:
        if _active is not None and _active is not job and _active.state not in FINAL + ("idle",):
            raise JobError(f"a training job is already running ({_active.run_dir or _active.cfg.run_name or 'loading'});"
                           " stop it or wait for it to finish", field="train")
        _active = job


def _release(job: "TrainingJob") -> None:
    global _active
    with _active_lock:
        if _active is job:
            _active = None


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-").lower()[:60] or "run"


def default_run_name(cfg: RunConfig) -> str:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    model = slug(cfg.model.name_or_path.removeprefix("embedded:").split("/")[-1])
    return f"{stamp}-{model}-r{cfg.lora.r}" + ("-4bit" if cfg.model.load_in_4bit else "")


def last_checkpoint(run_dir: Path) -> Path | None:
    ckpts = sorted((run_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return ckpts[-1] if ckpts else None


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def list_runs(runs_dir: Path | None = None) -> list[dict]:
    """Past runs, newest first, each with its status from run.json."""
    runs_dir = Path(runs_dir or default_runs_dir())
    out = []
    for d in runs_dir.glob("*/run.json") if runs_dir.exists() else []:
        try:
            info = json.loads(d.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        info["run_dir"] = str(d.parent)
        info["name"] = d.parent.name
        out.append(info)
    return sorted(out, key=lambda r: r.get("created", ""), reverse=True)


@dataclass
class JobStatus:
    """A snapshot for the GUI and the API: cheap to build, JSON-safe."""

    status: str
    run_dir: str | None
    step: int = 0
    max_steps: int = 0
    epoch: float = 0.0
    elapsed: float = 0.0
    eta: float | None = None
    tokens_per_s: float | None = None
    loss: float | None = None
    eval_loss: float | None = None
    message: str = ""
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def progress(self) -> float:
        return self.step / self.max_steps if self.max_steps else 0.0

    def to_dict(self) -> dict:
        return asdict(self) | {"progress": self.progress}


class MetricsStore:
    """Thread-safe list of records, appended to ``metrics.jsonl`` as they arrive."""

    def __init__(self, path: Path | None = None, records: list[dict] | None = None):
        self._lock = threading.Lock()
        self._records: list[dict] = list(records or [])
        self.path = path

    def append(self, record: dict) -> None:
        with self._lock:
            self._records.append(record)
            if self.path is not None:
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record) + "\n")

    def since(self, n: int = 0) -> list[dict]:
        with self._lock:
            return list(self._records[n:])

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)


def _finite(x: Any) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _make_callback(job: "TrainingJob"):
    from transformers import TrainerCallback

    class StudioCallback(TrainerCallback):
        """Feeds the job's metrics and honours its stop event (LLaMA-Factory does the same)."""

        def on_train_begin(self, args, state, control, **kwargs):
            job._max_steps = state.max_steps
            job._start_step = state.global_step
            job._t0 = time.monotonic()

        def on_step_end(self, args, state, control, **kwargs):
            job._step = state.global_step
            job._epoch = state.epoch or 0.0
            if job._stop.is_set():
                # save a checkpoint at this very step so that resume continues from here
                control.should_save = True
                control.should_training_stop = True

        def on_log(self, args, state, control, logs=None, **kwargs):
            job._on_log(state, logs or {})

    return StudioCallback()


def _make_trainer_class():
    from trl import SFTTrainer

    class StudioTrainer(SFTTrainer):
        """SFTTrainer plus two things: a separate learning rate for fully trained embeddings (continued
        pre-training), and a loss that runs the output layer only where a token is learned."""

        embedding_learning_rate: float = 0.0
        skip_prompt_logits: bool = False

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if not (self.skip_prompt_logits and "labels" in inputs and self.compute_loss_func is None
                    and self.label_smoother is None and self.args.loss_type == "nll" and not return_outputs):
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            return sparse_logits_loss(self, model, inputs, num_items_in_batch)

        def create_optimizer(self, *args, **kwargs):
            optimizer = super().create_optimizer(*args, **kwargs)
            lr = self.embedding_learning_rate
            if not lr:
                return optimizer
            emb_ids = {id(p) for n, p in self.model.named_parameters()
                       if p.requires_grad and "modules_to_save" in n and ("embed_tokens" in n or "lm_head" in n)}
            if not emb_ids:
                return optimizer
            # note: safe only before the first step, while the optimizer holds no state yet
            for group in list(optimizer.param_groups):
                moved = [p for p in group["params"] if id(p) in emb_ids]
                if not moved:
                    continue
                group["params"] = [p for p in group["params"] if id(p) not in emb_ids]
                optimizer.add_param_group({**{k: v for k, v in group.items() if k != "params"},
                                           "params": moved, "lr": lr})
            optimizer.param_groups[:] = [g for g in optimizer.param_groups if g["params"]]
            return optimizer

    return StudioTrainer


def sparse_logits_loss(trainer, model, inputs: dict, num_items_in_batch=None):
    """The same next-token loss as trl's, with the output layer run only at positions whose next token is learned.

    With the loss on the answer only, most positions are prompt; their logits (batch × length × vocab, the
    largest tensor of the step for a 262k-token vocabulary) are never needed. transformers' ``logits_to_keep``
    takes the positions to keep; a position is kept when any row learns the token after it.
    """
    import torch

    labels = inputs["labels"]
    shifted = labels[:, 1:]
    keep = torch.nonzero((shifted != -100).any(dim=0)).squeeze(1)
    forward = {k: v for k, v in inputs.items() if k != "labels"}
    outputs = model(**forward, use_cache=False, logits_to_keep=keep)
    logits = outputs.logits.float()
    target = shifted[:, keep]
    mask = target != -100
    loss_sum = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1),
                                                 ignore_index=-100, reduction="sum")
    denom = num_items_in_batch if num_items_in_batch is not None else mask.sum()
    loss = loss_sum / torch.as_tensor(denom, device=loss_sum.device).clamp(min=1)

    # the metrics trl logs: token accuracy on learned tokens, and the running count of tokens seen
    mode = "train" if trainer.model.training else "eval"
    with torch.no_grad():
        n_valid = mask.sum().item()
        correct = ((logits.argmax(-1) == target) & mask).sum().item()
    trainer._metrics[mode]["mean_token_accuracy"].append(correct / n_valid if n_valid else 0.0)
    if mode == "train":
        seen = inputs["attention_mask"].sum().item() if "attention_mask" in inputs else labels.numel()
        trainer._total_train_tokens += seen
    trainer._metrics[mode]["num_tokens"] = [trainer._total_train_tokens]
    return loss


class TrainingJob:
    """One training run. ``start()`` runs it in a thread; ``run()`` runs it here.

    Args:
        cfg: the run config (validated again at start).
        runs_dir: parent of the run folder (default ``runs/``).
        resume_dir: an existing run folder to continue from its last checkpoint.
        frame: an already loaded dataset (the GUI passes what it previewed).
    """

    def __init__(self, cfg: RunConfig, runs_dir: str | Path | None = None, *, resume_dir: str | Path | None = None,
                 frame=None):
        self.cfg = cfg
        self.runs_dir = Path(runs_dir or default_runs_dir())
        self.resume_dir = Path(resume_dir) if resume_dir else None
        self.frame = frame
        self.state = "idle"
        self.run_dir: Path | None = self.resume_dir
        self.error: BaseException | None = None
        self.error_message: str | None = None
        self.warnings: list[str] = []
        self.message = ""
        self.metrics = MetricsStore()
        self.info: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._max_steps = self._start_step = self._step = 0
        self._epoch = 0.0
        self._t0 = time.monotonic()
        self._t_created = time.monotonic()
        self._last_tokens: tuple[float, float] | None = None
        self._tokens_per_s: float | None = None
        self._log_handler: logging.Handler | None = None

    # ------------------------------------------------------------------ control

    def start(self) -> "TrainingJob":
        """Run in a background thread; refused while another job holds the slot."""
        _claim(self)
        self.state = "loading"
        self._thread = threading.Thread(target=self._run_guarded, name="lora-studio-train", daemon=True)
        self._thread.start()
        return self

    def run(self) -> Path:
        """Run here (the CLI); returns the run folder, raises the job's error."""
        _claim(self)
        self.state = "loading"
        self._run_guarded()
        if self.state == "failed":
            assert self.error is not None
            raise self.error
        assert self.run_dir is not None
        return self.run_dir

    def stop(self) -> None:
        """Ask the trainer to stop after the current step; the adapter and a checkpoint are saved."""
        if self.state in ("loading", "training"):
            self.state = "stopping"
            self.message = "stopping after the current step"
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.state in FINAL

    def status(self) -> JobStatus:
        elapsed = (time.monotonic() - self._t0) if self.state in ("training", "stopping") else self.info.get(
            "train_seconds", 0.0)
        done = self._step - self._start_step
        eta = None
        if self.state in ("training", "stopping") and done > 0 and self._max_steps:
            eta = elapsed / done * (self._max_steps - self._step)
        last = self.metrics.since(len(self.metrics) - 1) if len(self.metrics) else []
        losses = [r for r in self.metrics.since(max(0, len(self.metrics) - 50)) if r.get("loss") is not None]
        evals = [r for r in self.metrics.since(0) if r.get("eval_loss") is not None]
        return JobStatus(
            status=self.state, run_dir=str(self.run_dir) if self.run_dir else None, step=self._step,
            max_steps=self._max_steps, epoch=round(self._epoch, 4), elapsed=round(elapsed, 2),
            eta=round(eta, 1) if eta is not None else None, tokens_per_s=self._tokens_per_s,
            loss=losses[-1]["loss"] if losses else (last[0].get("loss") if last else None),
            eval_loss=evals[-1]["eval_loss"] if evals else None, message=self.message,
            error=self.error_message, warnings=list(self.warnings))

    # ------------------------------------------------------------------ the run

    def _run_guarded(self) -> None:
        try:
            self._run()
        except BaseException as e:  # noqa: BLE001 - the job records every failure and re-raises none in a thread
            self.error = e
            self.error_message = describe_error(e)
            self.message = self.error_message
            self.state = "failed"
            if isinstance(e, StudioError):  # bad input: the one-line message says it all
                log.info("training refused: %s", self.error_message)
            else:
                log.error("training failed: %s\n%s", self.error_message, traceback.format_exc())
            self._write_run_json()
        finally:
            if self._log_handler is not None:
                logging.getLogger().removeHandler(self._log_handler)
                self._log_handler.close()
            _release(self)

    def _run(self) -> None:
        import torch
        from peft import get_peft_model, prepare_model_for_kbit_training

        from core import data as D
        from core import models as M

        cfg = self.cfg
        self.warnings = [str(i) for i in C.check(cfg)]
        self.message = "loading the model"
        model, tok, resolved = M.load_model(cfg.model)
        self.message = "preparing the data"
        prepared = D.prepare(cfg.data, tok, seed=cfg.train.seed, frame=self.frame)
        issues = C.validate(cfg, n_rows=len(prepared.train), stats=prepared.stats)
        self.warnings += [str(i) for i in issues if i.level == "warning" and str(i) not in self.warnings]

        self.run_dir = self._open_run_dir()
        self._attach_log()
        self.metrics = MetricsStore(self.run_dir / "metrics.jsonl", self._kept_metrics())
        self.info.update({
            "created": self.info.get("created") or dt.datetime.now().isoformat(timespec="seconds"),
            "base_model": cfg.model.name_or_path, "resolved_base_model": resolved,
            "schema": prepared.guess.schema, "template": prepared.template,
            "column_map": prepared.guess.column_map,
            "n_train": len(prepared.train), "n_validation": len(prepared.validation),
            "n_test": len(prepared.test_index), "token_stats": prepared.stats.to_dict(),
            "device": M.device_info().name, "versions": versions(),
        })
        (self.run_dir / "config.yaml").write_text(C.dump_yaml(cfg), encoding="utf-8")
        log.info("run folder %s; %d train / %d validation rows; warnings: %s", self.run_dir, len(prepared.train),
                 len(prepared.validation), self.warnings or "none")

        torch.manual_seed(cfg.train.seed)
        if cfg.model.load_in_4bit or cfg.model.load_in_8bit:
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.train.gradient_checkpointing)
        peft_model = get_peft_model(model, M.build_lora_config(cfg.lora))
        trainable, total = peft_model.get_nb_trainable_parameters()
        self.info.update({"trainable_params": trainable, "total_params": total})
        init_dir = self.run_dir / "adapter_init"
        if cfg.lora.init_lora_weights != "default" and not init_dir.exists():
            # olora/pissa change the base weights too; keep the initial adapter so that the saved one can be
            # converted into a plain LoRA that applies to the untouched base
            peft_model.save_pretrained(init_dir)
        self._write_run_json()

        args = self._sft_config()
        trainer_cls = _make_trainer_class()
        trainer = trainer_cls(
            model=peft_model, args=args, processing_class=tok,
            train_dataset=D.to_hf_dataset(prepared.train),
            eval_dataset=D.to_hf_dataset(prepared.validation) if prepared.validation else None,
            callbacks=[_make_callback(self)])
        # the run's metrics go to metrics.jsonl and train.log; stdout is left to the CLI (its last line: the run folder)
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
        trainer.embedding_learning_rate = cfg.train.embedding_learning_rate
        trainer.skip_prompt_logits = cfg.train.skip_prompt_logits and cfg.data.completion_only_loss
        resume = str(last_checkpoint(self.run_dir)) if self.resume_dir and last_checkpoint(self.run_dir) else None

        if self._stop.is_set():
            self.state = "stopping"
        else:
            self.state = "training"
        self.message = f"training from step {resume.split('-')[-1]}" if resume else "training"
        self._write_run_json()  # so that a reader of the folder sees "training", not "loading"
        t0 = time.monotonic()
        trainer.train(resume_from_checkpoint=resume)
        stopped = self._stop.is_set()
        if prepared.validation and not stopped and cfg.train.eval_steps == 0:
            self.message = "evaluating"
            trainer.evaluate()  # logs eval_loss through the callback
        self.info["train_seconds"] = round(time.monotonic() - t0 + self.info.get("train_seconds", 0.0), 2)

        self.message = "saving the adapter"
        self._save_adapter(peft_model, tok, init_dir)
        self.state = "stopped" if stopped else "finished"
        self.message = (f"stopped at step {self._step}; adapter saved" if stopped
                        else f"finished {self._step} steps; adapter saved")
        self._write_run_json()
        log.info(self.message)

    def _sft_config(self):
        import torch
        from trl import SFTConfig

        from core.models import effective_precision

        cfg, t, d = self.cfg, self.cfg.train, self.cfg.data
        on_gpu = torch.cuda.is_available()
        prec = effective_precision(t.precision)
        if prec == "bf16" and not on_gpu and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            log.warning("train.precision=bf16 on a CPU without native bfloat16 (AVX512-BF16 / AMX): it is emulated "
                        "and usually slower than fp32")
        # transformers 5 folds the warm-up ratio into warmup_steps (a float < 1 is a ratio)
        warmup: float = t.warmup_steps if t.warmup_steps else t.warmup_ratio
        evaluate = t.eval_steps > 0
        return SFTConfig(
            output_dir=str(self.run_dir / "checkpoints"), num_train_epochs=t.num_train_epochs, max_steps=t.max_steps,
            learning_rate=t.learning_rate, per_device_train_batch_size=t.per_device_train_batch_size,
            per_device_eval_batch_size=t.per_device_train_batch_size,
            gradient_accumulation_steps=t.gradient_accumulation_steps, warmup_steps=warmup,
            lr_scheduler_type=t.lr_scheduler_type, optim=t.optim, weight_decay=t.weight_decay,
            max_grad_norm=t.max_grad_norm or 0.0, seed=t.seed, data_seed=t.seed,
            gradient_checkpointing=t.gradient_checkpointing, logging_steps=t.logging_steps,
            eval_strategy="steps" if evaluate else "no", eval_steps=t.eval_steps if evaluate else None,
            save_strategy="steps", save_steps=t.save_steps, save_total_limit=t.save_total_limit,
            bf16=prec == "bf16", fp16=prec == "fp16", use_cpu=not on_gpu, report_to="none", max_length=d.max_length,
            packing=d.packing, dataset_num_proc=None, disable_tqdm=True, logging_first_step=True,
            dataloader_num_workers=0, remove_unused_columns=True,
            gradient_checkpointing_kwargs={"use_reentrant": False} if t.gradient_checkpointing else None,
        )

    # ------------------------------------------------------------------ helpers

    def _open_run_dir(self) -> Path:
        if self.resume_dir is not None:
            if not (self.resume_dir / "config.yaml").exists():
                raise JobError(f"cannot resume {self.resume_dir}: it is not a run folder (no config.yaml)",
                               field="resume")
            if last_checkpoint(self.resume_dir) is None:
                raise JobError(f"cannot resume {self.resume_dir}: it has no checkpoint", field="resume")
            prev = self.resume_dir / "run.json"
            if prev.exists():
                self.info.update(json.loads(prev.read_text(encoding="utf-8")))
                self.info.pop("status", None)
            return self.resume_dir
        name = slug(self.cfg.run_name) if self.cfg.run_name else default_run_name(self.cfg)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        run_dir, n = self.runs_dir / name, 1
        while run_dir.exists():
            n += 1
            run_dir = self.runs_dir / f"{name}-{n}"
        run_dir.mkdir(parents=True)
        return run_dir

    def _kept_metrics(self) -> list[dict]:
        """On resume: the records up to the checkpoint's step; the file is rewritten to match."""
        if self.resume_dir is None:
            return []
        ckpt = last_checkpoint(self.resume_dir)
        step = int(ckpt.name.split("-")[-1]) if ckpt else 0
        kept = [r for r in read_metrics(self.resume_dir) if r.get("step", 0) <= step]
        path = self.resume_dir / "metrics.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        self.metrics.path = None
        return kept

    def _attach_log(self) -> None:
        handler = logging.FileHandler(self.run_dir / "train.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.INFO)
        root = logging.getLogger()
        if root.level > logging.INFO or root.level == logging.NOTSET:
            root.setLevel(logging.INFO)
        root.addHandler(handler)
        self._log_handler = handler

    def _on_log(self, state, logs: dict) -> None:
        now = time.monotonic()
        elapsed = now - self._t0
        record: dict[str, Any] = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4),
                                  "elapsed": round(elapsed, 3)}
        for key in ("loss", "eval_loss", "learning_rate", "grad_norm", "mean_token_accuracy",
                    "eval_mean_token_accuracy"):
            if key in logs:
                record[key] = _finite(logs[key])
        tokens = logs.get("num_tokens")
        if tokens is not None:
            record["num_tokens"] = int(tokens)
            if self._last_tokens is not None and now > self._last_tokens[0]:
                self._tokens_per_s = round((tokens - self._last_tokens[1]) / (now - self._last_tokens[0]), 1)
            elif elapsed > 0 and state.global_step > self._start_step:
                self._tokens_per_s = round(tokens / elapsed, 1)
            self._last_tokens = (now, float(tokens))
            record["tokens_per_s"] = self._tokens_per_s
        done = state.global_step - self._start_step
        if done > 0 and self._max_steps:
            record["eta"] = round(elapsed / done * (self._max_steps - state.global_step), 1)
        if "train_runtime" in logs:  # the trainer's summary line, not a step
            return
        if any(k in record for k in ("loss", "eval_loss")):
            self.metrics.append(record)

    def _save_adapter(self, peft_model, tok, init_dir: Path) -> None:
        out = self.run_dir / "adapter"
        tmp = self.run_dir / ".adapter-saving"
        shutil.rmtree(tmp, ignore_errors=True)
        if init_dir.exists():
            peft_model.save_pretrained(tmp, path_initial_model_for_weight_conversion=str(init_dir))
        else:
            peft_model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        # keep the previous adapter until the new one is complete
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)

    def _write_run_json(self) -> None:
        if self.run_dir is None or not self.run_dir.exists():
            return
        info = dict(self.info, status=self.state, step=self._step, max_steps=self._max_steps,
                    warnings=self.warnings, error=self.error_message,
                    updated=dt.datetime.now().isoformat(timespec="seconds"))
        info.setdefault("created", info["updated"])
        tmp = self.run_dir / ".run.json.tmp"
        tmp.write_text(json.dumps(info, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
        tmp.replace(self.run_dir / "run.json")


def describe_error(e: BaseException) -> str:
    """One readable line for any failure, out-of-memory included."""
    import torch

    if isinstance(e, StudioError):
        return str(e)
    if isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower():
        return ("out of memory: lower the batch size (raise gradient accumulation instead), shorten max_length, "
                "turn on gradient checkpointing or 4-bit loading")
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {first[:300]}" if first else type(e).__name__


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for pkg in ("torch", "transformers", "peft", "trl", "bitsandbytes", "datasets"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out
