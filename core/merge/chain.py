"""Chains of runs: train presets one after the other, each on the previous stage's merged model (the seeds'
continued pre-training → merge → MCQ fine-tuning)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from core import config as C
from core.errors import ConfigError, JobError
from core.merge.markdown import summary
from core.merge.report import REPORT_MD, MergeReport
from core.merge.run import merge_run
from core.train.job import TrainingJob


@dataclass
class ChainStage:
    preset: str
    run_dir: Path
    merged: MergeReport | None = None


def run_chain(presets: list[str | Path], *, overrides: list[str] | None = None,
              stage_overrides: dict[int, list[str]] | None = None, runs_dir: str | Path | None = None,
              dtype: str = "float32", n_prompts: int = 8,
              on_stage: Callable[[ChainStage], None] | None = None) -> list[ChainStage]:
    """Train presets one after the other, each on the previous stage's merged model.

    Stage k (k ≥ 2) has ``model.name_or_path`` set to stage k-1's merged folder, whatever its preset
    or the overrides say. Every stage but the last is merged (and must pass its verification).

    Args:
        presets: preset files, in order.
        overrides: ``key=value`` applied to every stage.
        stage_overrides: ``{stage number (1-based): [key=value, …]}``.
        runs_dir: parent of the run folders.
        dtype: precision of the intermediate merged models.
        n_prompts: verification prompts of each merge.
        on_stage: called after each stage (trained, and merged when it is merged).
    Returns:
        The stages.
    Raises:
        JobError: a merge that fails its verification stops the chain.
    """
    if len(presets) < 2:
        raise ConfigError("a chain needs at least two presets", field="presets")
    stages: list[ChainStage] = []
    previous: Path | None = None
    for k, preset in enumerate(presets, 1):
        cfg = C.load_yaml(preset, list(overrides or []) + list((stage_overrides or {}).get(k, [])))
        if previous is not None:
            cfg.model.name_or_path = str(previous)
        job = TrainingJob(cfg, runs_dir)
        stage = ChainStage(str(preset), job.run())
        if k < len(presets):
            report = merge_run(stage.run_dir, dtype=dtype, onto="auto", n_prompts=n_prompts)
            if not report.passed:
                raise JobError(f"stage {k} ({Path(preset).name}): the merged model failed its verification "
                               f"({summary(report)}); see {Path(report.out_dir) / REPORT_MD}", field=str(preset))
            stage.merged = report
            previous = Path(report.out_dir)
        stages.append(stage)
        if on_stage:
            on_stage(stage)
    return stages
