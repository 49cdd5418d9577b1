"""TrainingJob: one LoRA/QLoRA run, in a background thread (the GUI) or in the caller's (the CLI).

The job owns its thread, its state (:class:`core.run.Status`), a stop ``threading.Event`` that the
trainer's callback checks, the metric records mirrored to ``metrics.jsonl``, and the exception if one was
raised. It writes the run folder through :class:`core.run.RunFolder`. What it is doing is a *stage code*
(``loading_model``, ``training``, ``finished`` …) with its numbers; :data:`JobStatus.message` is the
English text of that code, for logs and the CLI; the GUI translates the code itself.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import logging
import math
import os
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core import allocator
from core import config as C
from core import locale
from core.config import RunConfig
from core.errors import ConfigError, JobError, StudioError
from core.paths import default_runs_dir
from core.run import FINAL, MetricsStore, RunFolder, RunLock, Status, check_runs_dir, default_run_name, versions
from core.train.dist import Dist, SharedStop, dist_env
from core.train.resume import More, ResumePlan, plan_more, plan_resume
from core.train.trackers import check_tracker, tracker_env
from core.train.trainer import Progress, make_callback, sft_config, trainer_class

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0  # how often run.json records the step while training

_active_lock = threading.Lock()
_active: "TrainingJob | None" = None


def active_job() -> "TrainingJob | None":
    """The job that holds the one training slot, if any (finished jobs release it)."""
    return _active


def claim(job=None, *, start=None):
    """Take the one training slot for ``job`` (a TrainingJob, or a core.train.launch.FollowedRun of other processes),
    or for the job that ``start()`` starts once the slot is known to be free (nothing starts when it is not).

    Returns:
        The job that holds the slot now.
    Raises:
        JobError: another job holds it and has not ended.
    """
    global _active
    with _active_lock:
        if _active is not None and _active is not job and _active.state not in FINAL + (Status.IDLE,):
            raise JobError(f"a training job is already running ({_active.run_dir or _active.cfg.run_name or 'loading'});"
                           " stop it or wait for it to finish", field="train")
        _active = job = start() if start is not None else job
    return job


def _release(job) -> None:
    global _active
    with _active_lock:
        if _active is job:
            _active = None


@dataclass
class JobStatus:
    """A snapshot for the GUI and the API: cheap to build, JSON-safe.

    ``stage`` is a code (``core.locale`` key ``train.stage.<stage>``) and ``stage_args`` its numbers;
    ``message`` is the same in English.
    """

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
    stage: str = ""
    stage_args: dict = field(default_factory=dict)

    @property
    def progress(self) -> float:
        return self.step / self.max_steps if self.max_steps else 0.0

    def to_dict(self) -> dict:
        return asdict(self) | {"progress": self.progress}


class TrainingJob:
    """One training run. ``start()`` runs it in a thread; ``run()`` runs it here.

    Args:
        cfg: the run config (validated again at start).
        runs_dir: parent of the run folder (default ``runs/``).
        resume_dir: an existing run folder to continue from its last checkpoint.
        more: with ``resume_dir`` a finished run, trained for more steps or epochs from its last step.
        frame: an already loaded dataset (the GUI passes what it previewed).
        launched: one of the processes of a multi-process run (:mod:`core.train.launch`): the launcher made the
            folder (``into``, a new run) or chose it (``resume_dir``) and holds its lock; rank 0 alone writes it.
        into: with ``launched``, the new run's folder the launcher made.
    """

    def __init__(self, cfg: RunConfig, runs_dir: str | Path | None = None, *, resume_dir: str | Path | None = None,
                 more: More | None = None, frame=None, launched: bool = False, into: str | Path | None = None):
        if more is not None and resume_dir is None:
            raise JobError("train more needs the run folder to continue", field="resume")
        self.cfg = cfg
        self.more = more
        self.runs_dir = Path(runs_dir or default_runs_dir())
        self.resume_dir = Path(resume_dir) if resume_dir else None
        self.frame = frame
        self.state = Status.IDLE
        self.folder: RunFolder | None = RunFolder(self.resume_dir) if self.resume_dir else None
        self.error: BaseException | None = None
        self.error_message: str | None = None
        self.warnings: list[str] = []
        self.stage, self.stage_args = "", {}
        self.metrics = MetricsStore()
        self._env_added: dict[str, str] = {}
        self.info: dict[str, Any] = {}
        self.progress = Progress()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._log_handler: logging.Handler | None = None
        self._lock: RunLock | None = None
        self._writes = False  # this job writes run.json: a new run at once, a resumed one once it has started
        self._last_beat = 0.0
        self.notes: list[str] = []
        self.launched = launched
        self.into = Path(into) if into else None
        self.dist = dist_env() if launched else Dist()

    @property
    def run_dir(self) -> Path | None:
        return self.folder.path if self.folder is not None else None

    @property
    def message(self) -> str:
        """What the job is doing, in English (the error itself once it failed)."""
        if self.state == Status.FAILED and self.error_message:
            return self.error_message
        return locale.text(f"train.stage.{self.stage}", "en", **self.stage_args) if self.stage else ""

    def _set_stage(self, stage: str, **args: Any) -> None:
        self.stage, self.stage_args = stage, args

    # ------------------------------------------------------------------ control

    def start(self) -> "TrainingJob":
        """Run in a background thread; refused while another job holds the slot."""
        claim(self)
        self.state = Status.LOADING
        self._thread = threading.Thread(target=self._run_guarded, name="lora-studio-train", daemon=True)
        self._thread.start()
        return self

    def run(self) -> Path:
        """Run here (the CLI); returns the run folder, raises the job's error."""
        claim(self)
        self.state = Status.LOADING
        self._run_guarded()
        if self.state == Status.FAILED:
            assert self.error is not None
            raise self.error
        assert self.run_dir is not None
        return self.run_dir

    def stop(self) -> None:
        """Ask the trainer to stop after the current step; the adapter and a checkpoint are saved."""
        if self.state in (Status.LOADING, Status.TRAINING):
            self.state = Status.STOPPING
            self._set_stage("stopping")
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.state in FINAL

    def status(self) -> JobStatus:
        p = self.progress
        running = self.state in (Status.TRAINING, Status.STOPPING)
        elapsed = p.elapsed() if running else self.info.get("train_seconds", 0.0)
        eta = p.eta() if running else None
        n = len(self.metrics)
        last = self.metrics.since(n - 1) if n else []
        losses = [r for r in self.metrics.since(max(0, n - 50)) if r.get("loss") is not None]
        evals = [r for r in self.metrics.since(0) if r.get("eval_loss") is not None]
        return JobStatus(
            status=str(self.state), run_dir=str(self.run_dir) if self.run_dir else None, step=p.step,
            max_steps=p.max_steps, epoch=round(p.epoch, 4), elapsed=round(elapsed, 2),
            eta=round(eta, 1) if eta is not None else None, tokens_per_s=p.tokens_per_s,
            loss=losses[-1]["loss"] if losses else (last[0].get("loss") if last else None),
            eval_loss=evals[-1]["eval_loss"] if evals else None, message=self.message,
            error=self.error_message, warnings=list(self.warnings), stage=self.stage, stage_args=dict(self.stage_args))

    # ------------------------------------------------------------------ the run

    def _run_guarded(self) -> None:
        try:
            self._run()
        except BaseException as e:  # noqa: BLE001 - the job records every failure and re-raises none in a thread
            self.error = e
            self.error_message = describe_error(e)
            self.state = Status.FAILED
            if isinstance(e, StudioError):  # bad input: the one-line message says it all
                log.info("training refused: %s", self.error_message)
            else:
                log.error("training failed: %s\n%s", self.error_message, traceback.format_exc())
            self._write_run_json()
        finally:
            for key in self._env_added:
                os.environ.pop(key, None)
            if self._log_handler is not None:
                logging.getLogger().removeHandler(self._log_handler)
                self._log_handler.close()
            if self._lock is not None:
                self._lock.release()
                self._lock = None
            _release(self)
            gc.collect()  # the model and the trainer of _run are unreachable now: hand their pages back
            allocator.release()

    def _run(self) -> None:
        import torch
        from peft import get_peft_model, prepare_model_for_kbit_training
        from transformers.trainer_callback import PrinterCallback

        from core import data as D
        from core.models.load import device_info, load_model
        from core.models.lora import build_lora_config, check_modules, meta_model

        cfg = self.cfg
        self.warnings = [str(i) for i in C.check(cfg)]
        check_tracker(cfg.train.report_to)  # a missing package is one line, before any model loads
        plan = None
        if self.resume_dir is not None:
            # one writer per run folder, and every refusal before anything in it is written
            self.folder = RunFolder(self.resume_dir)
            if not self.folder.path.is_dir():
                raise JobError(f"cannot resume {self.resume_dir}: no such folder", field="resume")
            if not self.launched:  # a launched process: its launcher holds the lock
                self._lock = RunLock(self.folder).acquire()
            plan = plan_more(self.folder, cfg) if self.more else plan_resume(self.folder, cfg)
            self.notes += [f"skipped incomplete checkpoint {name}" for name in plan.skipped]
        elif self.into is None:
            check_runs_dir(self.runs_dir)
        cfg = self.cfg = self._resolve_precision(cfg, plan)
        # the module names against the model's own, on the meta device: no weight read, no folder made yet
        skeleton, _ = meta_model(cfg)
        errors = check_modules(cfg, skeleton)
        if errors:
            raise ConfigError("; ".join(map(str, errors)), field=errors[0].field, issues=errors)
        self._set_stage("loading_model")
        model, tok, resolved = load_model(cfg.model)
        self._set_stage("preparing_data")
        prepared = D.prepare(cfg.data, tok, seed=cfg.train.seed, frame=self.frame)
        issues = C.validate(cfg, n_rows=len(prepared.train), stats=prepared.stats)
        self.warnings += [str(i) for i in issues if i.level == "warning" and str(i) not in self.warnings]
        self.warnings += [w for w in dropped_rows_warnings(prepared.stats, cfg.data) if w not in self.warnings]

        main = self.dist.main  # the process that writes the run folder (the only one, unless launched)
        if plan is None and self.into is not None:
            self.folder = RunFolder(self.into)
            self.info.update(self.folder.read_info())  # what the launcher wrote: created, launcher_pid
            self.info.pop("status", None)
            self._writes = main
        elif plan is None:
            self.folder = RunFolder.create(self.runs_dir, cfg.run_name or default_run_name(cfg))
            self._lock = RunLock(self.folder).acquire()
            self._writes = True
        folder = self.folder
        if main:
            self._attach_log()
        if plan is not None:
            self.info.update(folder.read_info())
            self.info.pop("status", None)
            # the records up to the checkpoint's step; the file is rewritten once the resumed run has started
            self.metrics = MetricsStore(None, [r for r in folder.read_metrics() if r.get("step", 0) <= plan.step])
        else:
            self.metrics = MetricsStore(folder.metrics if main else None)
        self.info.update({
            "created": self.info.get("created") or dt.datetime.now().isoformat(timespec="seconds"),
            "base_model": cfg.model.name_or_path, "resolved_base_model": resolved,
            "schema": prepared.guess.schema, "template": prepared.template,
            "column_map": prepared.guess.column_map,
            "n_train": len(prepared.train), "n_validation": len(prepared.validation),
            "n_test": len(prepared.test_index), "token_stats": prepared.stats.to_dict(),
            # the rows of each split, so that a merge or an evaluation finds them without preparing the data again
            "validation_index": [e.index for e in prepared.validation],
            "device": device_info().name, "versions": versions(), "allocator": allocator.active(),
            "world_size": self.dist.world_size,
        })
        if self.more is not None:
            per_epoch = math.ceil(len(prepared.train) / cfg.train.per_device_train_batch_size
                                  / cfg.train.gradient_accumulation_steps)
            total = self.more.total_steps(plan.step, per_epoch)
            cfg = self.cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_steps=total))
            self.info["continued"] = [*self.info.get("continued", []), {
                "from_step": plan.step, "to_step": total, "schedule": self.more.schedule, "finished": False}]
        if plan is None and main:
            folder.write_config(cfg)
        log.info("run folder %s; %d train / %d validation rows; warnings: %s", folder.path, len(prepared.train),
                 len(prepared.validation), self.warnings or "none")

        checkpointing = self._checkpointing(cfg, resolved, prepared)
        torch.manual_seed(cfg.train.seed)
        if cfg.model.load_in_4bit or cfg.model.load_in_8bit:
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing)
        peft_model = get_peft_model(model, build_lora_config(cfg.lora, model))
        trainable, total = peft_model.get_nb_trainable_parameters()
        self.info.update({"trainable_params": trainable, "total_params": total})
        if cfg.lora.init_lora_weights != "default" and main and not folder.adapter_init.exists():
            # olora/pissa change the base weights too; keep the initial adapter so that the saved one can be
            # converted into a plain LoRA that applies to the untouched base
            peft_model.save_pretrained(folder.adapter_init)
        if plan is None:
            self._write_run_json()

        # a tracker writes into the run folder (TensorBoard, MLflow) or offline (W&B), unless the user set otherwise;
        # the trainer's integrations read these while they run; they are taken away again when the job ends, so
        # that the app's next run does not write into this folder
        self._env_added = tracker_env(cfg.train.report_to, folder.path)
        os.environ.update(self._env_added)
        trainer = trainer_class()(
            model=peft_model, args=sft_config(cfg, folder.checkpoints, checkpointing=checkpointing), processing_class=tok,
            train_dataset=D.to_hf_dataset(prepared.train),
            eval_dataset=D.to_hf_dataset(prepared.validation) if prepared.validation else None,
            callbacks=[make_callback(self.progress, self._stop_check(), self.metrics.append,
                                     on_begin=lambda: self._on_train_begin(plan), on_step=self._heartbeat)])
        if cfg.model.load_in_4bit or cfg.model.load_in_8bit:
            restore_saved_module_dtype(peft_model)
        # the run's metrics go to metrics.jsonl and train.log; stdout is left to the CLI (its last line: the run folder)
        trainer.remove_callback(PrinterCallback)
        trainer.embedding_learning_rate = cfg.train.embedding_learning_rate
        trainer.skip_prompt_logits = cfg.train.skip_prompt_logits and cfg.data.completion_only_loss
        trainer.schedule_offset = schedule_offset(self.info.get("continued", []))

        self.state = Status.STOPPING if self._stop.is_set() else Status.TRAINING
        if plan is not None:
            self._set_stage("resumed", step=plan.step)
        else:
            self._set_stage("training")
            self._write_run_json()  # so that a reader of the folder sees "training", not "loading"
        t0 = time.monotonic()
        trainer.train(resume_from_checkpoint=str(plan.checkpoint) if plan else None)
        stopped = self._stop.is_set()
        if prepared.validation and not stopped and cfg.train.eval_steps == 0:
            self._set_stage("evaluating")
            trainer.evaluate()  # logs eval_loss through the callback
        self.info["train_seconds"] = round(time.monotonic() - t0 + self.info.get("train_seconds", 0.0), 2)

        continued = self.info.get("continued") or [{}]
        kept = stopped and continued[-1].get("finished") is False
        if not kept:  # kept: trained more, stopped before the new part finished; the finished adapter stays
            self._set_stage("saving")
            if main:
                self._save_adapter(peft_model, tok)
            self.info["adapter_step"] = self.progress.step
            if not stopped and continued[-1].get("finished") is False:
                continued[-1]["finished"] = True
        self.state = Status.STOPPED if stopped else Status.FINISHED
        if stopped:
            if kept:
                self._set_stage("stopped_kept", step=self.progress.step, adapter_step=self.info.get("adapter_step"))
            else:
                self._set_stage("stopped", step=self.progress.step)
        else:
            self._set_stage("finished", steps=self.progress.step)
        self._write_run_json()
        log.info(self.message)

    def _resolve_precision(self, cfg: RunConfig, plan: ResumePlan | None) -> RunConfig:
        """``auto`` precision and weights dtype as this machine trains them (recorded in run.json); a resumed run
        goes on as it started: as recorded, or for a run from before the record, as ``auto`` meant then (float32
        on a CPU)."""
        import torch

        from core.models.load import resolve_training

        if plan is None:
            cfg, precision = resolve_training(cfg)
            self.info["precision"] = dataclasses.asdict(precision)
            self._warn_emulated(precision)
            return cfg
        recorded = self.folder.read_info().get("precision")
        if recorded is None and cfg.train.precision == "auto" and not torch.cuda.is_available():
            recorded = {"compute": "fp32", "weights": "float32"}
        if recorded is not None:
            quantized = cfg.model.load_in_4bit or cfg.model.load_in_8bit
            model = cfg.model if quantized or cfg.model.dtype != "auto" else dataclasses.replace(
                cfg.model, dtype=recorded["weights"])
            cfg = dataclasses.replace(cfg, model=model,
                                      train=dataclasses.replace(cfg.train, precision=recorded["compute"]))
        cfg, precision = resolve_training(cfg)
        self._warn_emulated(precision)
        return cfg

    def _warn_emulated(self, precision) -> None:
        if precision.emulated:
            self.warnings.append(
                f"train.precision={precision.compute} with {precision.weights} weights on a CPU without native "
                "bfloat16 (AVX512-BF16 / AMX): the 16-bit arithmetic is emulated, tens of times slower than "
                "float32 (the demo preset: 560 against 9 s a step); set train.precision and model.dtype to auto")

    def _checkpointing(self, cfg: RunConfig, resolved: str, prepared: Any) -> bool:
        """Gradient checkpointing for this run: as set, or for ``auto`` as the memory estimate on this run's own rows
        decides (recorded in run.json, and said in the warnings when it turned it on)."""
        from core.models.memory import estimate_memory, human_bytes, profile_of

        mode = cfg.train.gradient_checkpointing
        record: dict[str, Any] = {"mode": mode, "on": mode == "on"}
        if mode == "auto":
            try:
                est = estimate_memory(cfg, resolved=resolved, profile=profile_of(prepared, cfg.data.max_length))
            except Exception as e:  # noqa: BLE001 - an estimate that fails must not stop a run: train as set
                log.warning("memory estimate failed (%s); training without gradient checkpointing", e)
            else:
                record.update(on=est.checkpointing, estimate_bytes=est.total)
                if est.auto_checkpointing_from:
                    record.update(without_bytes=est.auto_checkpointing_from, why=est.auto_checkpointing_why)
                    budget = est.device.available_bytes or est.device.total_bytes
                    self.warnings.append(
                        f"train.gradient_checkpointing: auto turned it on: without it the run would need about "
                        f"{human_bytes(est.auto_checkpointing_from)} of the {human_bytes(budget)} free (with it "
                        f"{human_bytes(est.total)}); steps are about 40-50% slower; set it to off to train faster"
                        if est.auto_checkpointing_why == "not_fit" else
                        f"train.gradient_checkpointing: auto turned it on: the activations would be most of the "
                        f"run's {human_bytes(est.auto_checkpointing_from)} (with it {human_bytes(est.total)}); steps "
                        f"are about 40-50% slower; set it to off to train faster if the memory allows")
        self.info["gradient_checkpointing"] = record
        return bool(record["on"])

    def _on_train_begin(self, plan: ResumePlan | None) -> None:
        """The trainer has started (a resumed run's checkpoint is loaded): only now is a resumed folder rewritten."""
        if plan is None or not self.dist.main:
            return
        self._writes = True
        self.folder.write_metrics(self.metrics.since(0))
        self.metrics.path = self.folder.metrics
        self.folder.write_config(self.cfg)
        self.state = Status.STOPPING if self._stop.is_set() else Status.TRAINING
        self._write_run_json()

    def _heartbeat(self) -> None:
        """run.json's step and heartbeat, every few seconds while training (a reader sees how far it got)."""
        now = time.monotonic()
        if now - self._last_beat >= HEARTBEAT_S:
            self._last_beat = now
            self._write_run_json()

    # ------------------------------------------------------------------ helpers

    def _stop_check(self):
        """What the trainer's callback asks after each step: this job's Stop; in a launched run also RUN/.stop, agreed
        by every process (:class:`core.train.dist.SharedStop`)."""
        if not self.launched:
            return self._stop
        return SharedStop(self._stop, self.folder.stop_request, self.dist.world_size)

    def _attach_log(self) -> None:
        handler = logging.FileHandler(self.folder.log, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.INFO)
        root = logging.getLogger()
        if root.level > logging.INFO or root.level == logging.NOTSET:
            root.setLevel(logging.INFO)
        root.addHandler(handler)
        self._log_handler = handler

    def _save_adapter(self, peft_model, tok) -> None:
        """Write the adapter (and tokenizer) under a temporary name; replace the previous one only when complete."""
        import shutil

        folder = self.folder
        out, tmp = folder.adapter, folder.adapter_saving
        shutil.rmtree(tmp, ignore_errors=True)
        if folder.adapter_init.exists():
            peft_model.save_pretrained(tmp, path_initial_model_for_weight_conversion=str(folder.adapter_init))
        else:
            peft_model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)

    def _write_run_json(self) -> None:
        if not self._writes or self.folder is None or not self.folder.path.exists():
            return  # a refused (or not yet started) resume writes nothing
        p = self.progress
        info = dict(self.info, status=str(self.state), step=p.step, max_steps=p.max_steps, warnings=self.warnings,
                    error=self.error_message, updated=dt.datetime.now().isoformat(timespec="seconds"),
                    pid=os.getpid(), heartbeat=dt.datetime.now().isoformat(timespec="seconds"))
        info.setdefault("created", info["updated"])
        self.folder.write_info(info)


def schedule_offset(continued: list[dict]) -> int:
    """The step the learning-rate schedule starts at: that of the last restarted continuation ("train more"), else 0.

    An ``extend`` continuation stretches the schedule it continues, restarted or not.
    """
    restarts = [c["from_step"] for c in continued if c.get("schedule") == "restart"]
    return restarts[-1] if restarts else 0


def restore_saved_module_dtype(peft_model) -> None:
    """Put fully trained modules (``modules_to_save``) of a quantized run back in their original module's dtype.

    trl 1.x casts every trainable parameter of a quantized model to bfloat16 (the QLoRA paper's adapters); a
    LoRA layer casts its input to match, but a trained copy of lm_head or embed_tokens does not, and its first
    forward fails on a float32 base ("expected m1 and m2 to have the same dtype"), as the merge matrix found
    (QLoRA + modules_to_save on SmolLM2).
    """
    for module in peft_model.modules():
        original = getattr(module, "original_module", None)
        copies = getattr(module, "modules_to_save", None)
        if original is None or copies is None or not hasattr(original, "weight"):
            continue
        for copy in copies.values():
            copy.to(original.weight.dtype)


def dropped_rows_warnings(stats, data_cfg) -> list[str]:
    """Rows the data preparation dropped, said as run warnings (never only a counter in run.json)."""
    out = []
    if stats.n_no_loss:
        out.append(f"data.max_length: {stats.n_no_loss} rows were dropped because their answer starts after token "
                   f"{data_cfg.max_length} (the longest row has {stats.max} tokens); raise data.max_length to keep them")
    if stats.n_filtered:
        out.append(f"data.min_tokens/max_tokens: {stats.n_filtered} rows were dropped by the length filter "
                   f"(min_tokens={data_cfg.min_tokens}, max_tokens={data_cfg.max_tokens})")
    return out


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
