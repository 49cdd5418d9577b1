"""Resuming a run safely: which settings may change, which checkpoint to continue from, and when there is
nothing to do. Everything here is checked before anything in the run folder is written.

A resumed run continues the same adapter, so every setting that defines the adapter's shape or the base it sits
on must stay as it was (:data:`SHAPE_FIELDS`); the training schedule and the data may change (e.g. a lower
learning rate, or more steps).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from core import config as C
from core.errors import JobError
from core.run import RunFolder, Status, checkpoint_is_complete, checkpoint_step

log = logging.getLogger(__name__)

# The adapter's shape and the base it sits on: a resume that changed one would load a checkpoint that does not fit.
SHAPE_FIELDS = ("model.name_or_path", "model.load_in_4bit", "model.load_in_8bit", "model.bnb_4bit_quant_type",
                "model.bnb_4bit_use_double_quant", "lora.r", "lora.lora_alpha", "lora.target_modules",
                "lora.modules_to_save", "lora.use_rslora", "lora.use_dora", "lora.init_lora_weights", "lora.bias",
                "lora.layers_to_transform")
# What a resume may change (everything else of the train and data sections too): said in the refusal.
MAY_CHANGE = ("train.learning_rate", "train.max_steps", "train.num_train_epochs", "train.save_steps",
              "train.eval_steps", "train.logging_steps", "data.*")


SCHEDULES = ("extend", "restart")  # "train more": the learning-rate schedule stretched over the new total, or anew


@dataclass
class ResumePlan:
    """Where a resume continues from, and what it skipped to get there."""

    checkpoint: Path
    step: int
    skipped: list[str] = field(default_factory=list)  # incomplete checkpoints passed over, newest first


@dataclass(frozen=True)
class More:
    """Train more on a finished run: ``steps`` or ``epochs`` more (one of them), and the schedule.

    ``extend`` (the default) rebuilds the learning-rate schedule for the new total and continues it at the
    checkpoint's step: a linear decay that had reached 0 at step 100 is at 1/3 of its peak at step 100 of 150,
    and decays to 0 again; warm-up is not repeated. ``restart`` runs the configured schedule afresh over the new
    steps: warm-up, then the full decay.
    """

    steps: int = 0
    epochs: float = 0.0
    schedule: str = "extend"

    def __post_init__(self):
        if (self.steps > 0) == (self.epochs > 0) or self.steps < 0 or self.epochs < 0:
            raise JobError(f"train more: give a positive number of steps or of epochs, not both "
                           f"(got steps={self.steps}, epochs={self.epochs})", field="more_steps")
        if self.schedule not in SCHEDULES:
            raise JobError(f"train more: schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}",
                           field="schedule")

    def total_steps(self, step: int, steps_per_epoch: int) -> int:
        """The run's new max_steps, continuing from ``step``."""
        return step + (self.steps or max(1, math.ceil(self.epochs * steps_per_epoch)))


def changed_shape(saved: C.RunConfig, new: C.RunConfig) -> list[tuple[str, object, object]]:
    """(key, saved value, new value) of every shape field that differs."""
    a, b = C.to_dict(saved), C.to_dict(new)
    out = []
    for key in SHAPE_FIELDS:
        section, name = key.split(".")
        if a[section][name] != b[section][name]:
            out.append((key, a[section][name], b[section][name]))
    return out


def plan_more(folder: RunFolder, new_cfg: C.RunConfig) -> ResumePlan:
    """Check that the finished run ``folder`` can be trained further with ``new_cfg``; nothing is written.

    It continues from the checkpoint of its last step, so that no step is done twice and the curves go on.

    Raises:
        JobError: not a run folder; a run that has not finished (resume it instead); a changed adapter shape; no
        complete checkpoint at the last step.
    """
    if not folder.config.is_file():
        raise JobError(f"cannot train {folder.path} further: it is not a run folder (no {folder.config.name})",
                       field="resume")
    info = folder.read_info()
    if info.get("status") != str(Status.FINISHED):
        raise JobError(f"{folder.name} has not finished (status {info.get('status', '?')}): resume it instead of "
                       "training more", field="more_steps")
    _check_shape(folder, new_cfg)
    last = int(info.get("step") or 0)
    done = [c for c in folder.checkpoint_dirs() if checkpoint_is_complete(c)]
    if not done or checkpoint_step(done[-1]) != last:
        have = f"its newest complete checkpoint is {done[-1].name}" if done else "it has no complete checkpoint"
        raise JobError(f"cannot train {folder.name} further: it finished at step {last} but {have} (the checkpoint "
                       "of the last step is needed to continue without redoing steps)", field="more_steps")
    return ResumePlan(done[-1], last)


def _check_shape(folder: RunFolder, new_cfg: C.RunConfig) -> None:
    changed = changed_shape(folder.read_config(), new_cfg)
    if changed:
        what = "; ".join(f"{k} {old!r} → {new!r}" for k, old, new in changed)
        raise JobError(f"cannot resume {folder.name} with a different adapter or base ({what}): the checkpoint "
                       f"would not fit. What may change on resume: {', '.join(MAY_CHANGE)}", field=changed[0][0])


def plan_resume(folder: RunFolder, new_cfg: C.RunConfig) -> ResumePlan:
    """Check that ``folder`` can be resumed with ``new_cfg``; nothing is written.

    Raises:
        JobError: not a run folder; an already finished run; a changed adapter shape; no complete checkpoint.
    """
    if not folder.config.is_file():
        raise JobError(f"cannot resume {folder.path}: it is not a run folder (no {folder.config.name})",
                       field="resume")
    info = folder.read_info()
    if info.get("status") == str(Status.FINISHED):
        raise JobError(f"{folder.name} already finished at step {info.get('step', '?')}: nothing to resume "
                       "(train it further with --more-steps N)", field="resume")
    _check_shape(folder, new_cfg)
    skipped = []
    for ckpt in reversed(folder.checkpoint_dirs()):
        if checkpoint_is_complete(ckpt):
            if skipped:
                log.warning("skipping incomplete checkpoint(s) %s; resuming from %s", ", ".join(skipped), ckpt.name)
            return ResumePlan(ckpt, checkpoint_step(ckpt), skipped)
        skipped.append(ckpt.name)
    if skipped:
        raise JobError(f"cannot resume {folder.name}: its checkpoint(s) {', '.join(skipped)} are incomplete (no "
                       "adapter weights or trainer state)", field="resume")
    raise JobError(f"cannot resume {folder.path}: it has no checkpoint", field="resume")
