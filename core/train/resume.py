"""Resuming a run safely: which settings may change, which checkpoint to continue from, and when there is
nothing to do. Everything here is checked before anything in the run folder is written.

A resumed run continues the same adapter, so every setting that defines the adapter's shape or the base it sits
on must stay as it was (:data:`SHAPE_FIELDS`); the training schedule and the data may change (e.g. a lower
learning rate, or more steps).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from core import config as C
from core.errors import JobError
from core.run import RunFolder, Status, checkpoint_is_complete

log = logging.getLogger(__name__)

# The adapter's shape and the base it sits on: a resume that changed one would load a checkpoint that does not fit.
SHAPE_FIELDS = ("model.name_or_path", "model.load_in_4bit", "model.load_in_8bit", "model.bnb_4bit_quant_type",
                "model.bnb_4bit_use_double_quant", "lora.r", "lora.lora_alpha", "lora.target_modules",
                "lora.modules_to_save", "lora.use_rslora", "lora.use_dora", "lora.init_lora_weights", "lora.bias",
                "lora.layers_to_transform")
# What a resume may change (everything else of the train and data sections too): said in the refusal.
MAY_CHANGE = ("train.learning_rate", "train.max_steps", "train.num_train_epochs", "train.save_steps",
              "train.eval_steps", "train.logging_steps", "data.*")


@dataclass
class ResumePlan:
    """Where a resume continues from, and what it skipped to get there."""

    checkpoint: Path
    step: int
    skipped: list[str] = field(default_factory=list)  # incomplete checkpoints passed over, newest first


def changed_shape(saved: C.RunConfig, new: C.RunConfig) -> list[tuple[str, object, object]]:
    """(key, saved value, new value) of every shape field that differs."""
    a, b = C.to_dict(saved), C.to_dict(new)
    out = []
    for key in SHAPE_FIELDS:
        section, name = key.split(".")
        if a[section][name] != b[section][name]:
            out.append((key, a[section][name], b[section][name]))
    return out


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
        raise JobError(f"{folder.name} already finished at step {info.get('step', '?')}: nothing to resume",
                       field="resume")
    changed = changed_shape(folder.read_config(), new_cfg)
    if changed:
        what = "; ".join(f"{k} {old!r} → {new!r}" for k, old, new in changed)
        raise JobError(f"cannot resume {folder.name} with a different adapter or base ({what}): the checkpoint "
                       f"would not fit. What may change on resume: {', '.join(MAY_CHANGE)}", field=changed[0][0])
    skipped = []
    for ckpt in reversed(folder.checkpoint_dirs()):
        if checkpoint_is_complete(ckpt):
            if skipped:
                log.warning("skipping incomplete checkpoint(s) %s; resuming from %s", ", ".join(skipped), ckpt.name)
            return ResumePlan(ckpt, int(ckpt.name.split("-")[-1]), skipped)
        skipped.append(ckpt.name)
    if skipped:
        raise JobError(f"cannot resume {folder.name}: its checkpoint(s) {', '.join(skipped)} are incomplete (no "
                       "adapter weights or trainer state)", field="resume")
    raise JobError(f"cannot resume {folder.path}: it has no checkpoint", field="resume")
