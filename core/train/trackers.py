"""Experiment trackers: which ``train.report_to`` values exist, what each needs installed, where each writes.

The trainer's own integrations do the logging (transformers' TensorBoard, Trackio, W&B and MLflow callbacks);
this module only checks that the chosen package is there before any work, and points each tracker at the run
folder so that nothing leaves the machine unless the user asked for it (W&B runs offline without an account).
It must not log anything itself.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from core.errors import ConfigError
from core.run import RunFolder

# tracker → (a module that must import, the install line a user runs)
TRACKERS: dict[str, tuple[str, str]] = {
    "tensorboard": ("tensorboard", "pip install tensorboard"),
    "trackio": ("trackio", "pip install trackio"),
    "wandb": ("wandb", "pip install wandb"),
    "mlflow": ("mlflow", "pip install mlflow"),
}
NONE = "none"


def check_tracker(name: str) -> None:
    """Refuse a tracker whose package is missing, naming the install line (before any model loads).

    Raises:
        ConfigError: ``train.report_to`` names an unknown tracker or one that is not installed.
    """
    if name == NONE:
        return
    if name not in TRACKERS:
        raise ConfigError(f"unknown tracker {name!r} (one of none, {', '.join(TRACKERS)})", field="train.report_to")
    module, install = TRACKERS[name]
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"{name} is not installed: run `{install}` in the app's environment "
                          f"(.venv/bin/{install}), or choose none", field="train.report_to")


def tracker_env(name: str, run_dir: Path, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment variables that keep a tracker's files in the run folder (and W&B offline), leaving any the
    user set alone. Returns only what to add."""
    environ = os.environ if environ is None else environ
    folder = RunFolder(Path(run_dir))
    want: dict[str, str] = {}
    if name == "tensorboard":
        want["TENSORBOARD_LOGGING_DIR"] = str(folder.tensorboard)
    elif name == "wandb":
        want["WANDB_DIR"] = str(folder.path)
        want["WANDB_PROJECT"] = "lora-studio"
        if "WANDB_API_KEY" not in environ and "WANDB_MODE" not in environ:
            want["WANDB_MODE"] = "offline"  # no account, no network: `wandb sync RUN/wandb/offline-run-*` later
    elif name == "mlflow":
        want["MLFLOW_TRACKING_URI"] = folder.mlruns.resolve().as_uri()
    return {k: v for k, v in want.items() if k not in environ}


def report_to(name: str) -> str | list[str]:
    """The trainer's ``report_to`` argument."""
    return "none" if name == NONE else [name]
