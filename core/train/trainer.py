"""What runs inside ``trainer.train()``: trl's SFTTrainer with our loss and optimizer groups, the callback that
reports progress and honours Stop, and the mapping of the train section onto ``SFTConfig``.

It knows nothing of threads or of the run folder's files: :mod:`core.train.job` owns those.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from core.config import RunConfig
from core.models.load import training_precision
from core.train.trackers import report_to


METRIC_KEYS = ("loss", "eval_loss", "learning_rate", "grad_norm", "mean_token_accuracy", "eval_mean_token_accuracy")


def _finite(x: Any) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


@dataclass
class Progress:
    """Where training is: written by the trainer's callback only, read by :meth:`TrainingJob.status`.

    Also the ETA and tokens/s bookkeeping, from the steps done since this process started (a resumed run
    starts its clock at the checkpoint's step).
    """

    max_steps: int = 0
    start_step: int = 0
    step: int = 0
    epoch: float = 0.0
    t0: float = field(default_factory=time.monotonic)
    tokens_per_s: float | None = None
    _last_tokens: tuple[float, float] | None = None

    def begin(self, max_steps: int, step: int) -> None:
        self.max_steps, self.start_step, self.step = max_steps, step, step
        self.t0 = time.monotonic()

    def advance(self, step: int, epoch: float) -> None:
        self.step, self.epoch = step, epoch

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def eta(self, step: int | None = None) -> float | None:
        """Seconds left at the average pace of this process's steps; None before the first step."""
        step = self.step if step is None else step
        done = step - self.start_step
        if done <= 0 or not self.max_steps:
            return None
        return self.elapsed() / done * (self.max_steps - step)

    def record(self, step: int, epoch: float, logs: dict) -> dict | None:
        """The metrics.jsonl record of one trainer log line; None for the trainer's final summary or no loss."""
        now = time.monotonic()
        elapsed = now - self.t0
        record: dict[str, Any] = {"step": step, "epoch": round(epoch or 0.0, 4), "elapsed": round(elapsed, 3)}
        for key in METRIC_KEYS:
            if key in logs:
                record[key] = _finite(logs[key])
        tokens = logs.get("num_tokens")
        if tokens is not None:
            record["num_tokens"] = int(tokens)
            if self._last_tokens is not None and now > self._last_tokens[0]:
                self.tokens_per_s = round((tokens - self._last_tokens[1]) / (now - self._last_tokens[0]), 1)
            elif elapsed > 0 and step > self.start_step:
                self.tokens_per_s = round(tokens / elapsed, 1)
            self._last_tokens = (now, float(tokens))
            record["tokens_per_s"] = self.tokens_per_s
        eta = self.eta(step)
        if eta is not None:
            record["eta"] = round(eta, 1)
        if "train_runtime" in logs:  # the trainer's summary line, not a step
            return None
        return record if any(k in record for k in ("loss", "eval_loss")) else None


def make_callback(progress: Progress, stop: "threading.Event | Any", on_record: Callable[[dict], None],
                  on_begin: Callable[[], None] | None = None, on_step: Callable[[], None] | None = None):
    """A TrainerCallback that feeds ``progress`` and ``on_record`` and honours ``stop`` (LLaMA-Factory does the same).

    ``stop.is_set()`` is asked once after every step (a :class:`core.train.dist.SharedStop` in a multi-process run,
    where every process must ask it at the same step).

    Args:
        on_begin: called once the trainer has started (a resumed run's checkpoint is loaded by then).
        on_step: called after every optimizer step (the job's heartbeat).
    """
    from transformers import TrainerCallback

    class StudioCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            progress.begin(state.max_steps, state.global_step)
            if on_begin is not None:
                on_begin()

        def on_step_end(self, args, state, control, **kwargs):
            progress.advance(state.global_step, state.epoch or 0.0)
            if on_step is not None:
                on_step()
            if stop.is_set():
                # save a checkpoint at this very step so that resume continues from here
                control.should_save = True
                control.should_training_stop = True

        def on_log(self, args, state, control, logs=None, **kwargs):
            record = progress.record(state.global_step, state.epoch or 0.0, logs or {})
            if record is not None:
                on_record(record)

    return StudioCallback()


def trainer_class():
    """StudioTrainer: SFTTrainer plus a separate learning rate for fully trained embeddings (continued
    pre-training), and a loss that runs the output layer only where a token is learned."""
    from trl import SFTTrainer

    class StudioTrainer(SFTTrainer):
        embedding_learning_rate: float = 0.0
        skip_prompt_logits: bool = False
        schedule_offset: int = 0  # "train more" with a restarted schedule: the step its new schedule starts at

        def create_scheduler(self, num_training_steps, optimizer=None):
            offset = self.schedule_offset
            if not offset or self.lr_scheduler is not None:
                return super().create_scheduler(num_training_steps, optimizer)
            from torch.optim.lr_scheduler import LambdaLR
            from transformers.optimization import get_scheduler

            # the configured schedule (warm-up, decay) over the steps after ``offset``, held at its start before
            optimizer = self.optimizer if optimizer is None else optimizer
            n = max(1, num_training_steps - offset)
            inner = get_scheduler(self.args.lr_scheduler_type, optimizer=optimizer,
                                  num_warmup_steps=self.args.get_warmup_steps(n), num_training_steps=n,
                                  scheduler_specific_kwargs=self.args.lr_scheduler_kwargs)
            self.lr_scheduler = (LambdaLR(optimizer, [lambda s, f=f: f(max(0, s - offset)) for f in inner.lr_lambdas])
                                 if hasattr(inner, "lr_lambdas") else inner)
            self._created_lr_scheduler = True
            return self.lr_scheduler

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if not (self.skip_prompt_logits and "labels" in inputs and self.compute_loss_func is None
                    and self.label_smoother is None and self.args.loss_type == "nll" and not return_outputs):
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            from core.train.loss import sparse_logits_loss

            return sparse_logits_loss(self, model, inputs, num_items_in_batch)

        def _load_optimizer_and_scheduler(self, checkpoint):
            super()._load_optimizer_and_scheduler(checkpoint)
            sched = self.lr_scheduler
            if checkpoint is None or not hasattr(sched, "lr_lambdas"):
                return
            # the optimizer comes back with the learning rate the checkpoint's schedule had reached (0 at the end
            # of a linear decay); the schedule of this run (more steps, or restarted) decides the next step's
            step = sched.last_epoch
            lrs = [base * fn(step) for base, fn in zip(sched.base_lrs, sched.lr_lambdas)]
            for group, lr in zip(self.optimizer.param_groups, lrs):
                group["lr"] = lr
            sched._last_lr = lrs

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


def sft_config(cfg: RunConfig, checkpoints: Path, *, checkpointing: bool | None = None):
    """trl's SFTConfig from the train and data sections (the names are the libraries' own).

    ``checkpointing``: gradient checkpointing as decided for this run (the training job resolves ``auto`` with the
    memory estimate); without it, ``auto`` reads as off.
    """
    import torch
    from trl import SFTConfig

    t, d = cfg.train, cfg.data
    on_gpu = torch.cuda.is_available()
    prec = training_precision(cfg.model, t.precision).compute
    # transformers 5 folds the warm-up ratio into warmup_steps (a float < 1 is a ratio)
    warmup: float = t.warmup_steps if t.warmup_steps else t.warmup_ratio
    evaluate = t.eval_steps > 0
    gc = t.gradient_checkpointing == "on" if checkpointing is None else checkpointing
    return SFTConfig(
        output_dir=str(checkpoints), num_train_epochs=t.num_train_epochs, max_steps=t.max_steps,
        learning_rate=t.learning_rate, per_device_train_batch_size=t.per_device_train_batch_size,
        per_device_eval_batch_size=t.per_device_train_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps, warmup_steps=warmup,
        lr_scheduler_type=t.lr_scheduler_type, optim=t.optim, weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm or 0.0, seed=t.seed, data_seed=t.seed,
        activation_checkpointing=gc, logging_steps=t.logging_steps,
        eval_strategy="steps" if evaluate else "no", eval_steps=t.eval_steps if evaluate else None,
        save_strategy="steps", save_steps=t.save_steps, save_total_limit=t.save_total_limit,
        bf16=prec == "bf16", fp16=prec == "fp16", use_cpu=not on_gpu, report_to=report_to(t.report_to),
        max_length=d.max_length,
        packing=d.packing, dataset_num_proc=None, disable_tqdm=True, logging_first_step=True,
        dataloader_num_workers=0, remove_unused_columns=True,
        # a LoRA step uses every trainable weight: DDP's search for unused ones is a wasted pass (multi-process runs)
        ddp_find_unused_parameters=False,
        train_sampling_strategy=t.train_sampling_strategy, torch_compile=t.torch_compile,
        activation_checkpointing_kwargs={"use_reentrant": False} if gc else None,
    )
