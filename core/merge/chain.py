"""Chains of runs: train presets one after the other, each on the previous stage's merged model (the seeds'
continued pre-training → merge → MCQ fine-tuning).

Each stage (its training and its merge) runs in a process of its own: run in one process, the second stage of
a Gemma-3-270M chain grew to 21 GB by its 26th step and was killed for memory, where the same stage alone held
4 GB. The first stage leaves something behind that makes the next one grow; a fresh process leaves nothing.
"""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
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
        stage_overrides_k = list(overrides or []) + list((stage_overrides or {}).get(k, []))
        C.load_yaml(preset, stage_overrides_k)  # a bad preset or override: refused here, before any process starts
        run_dir, report = _in_own_process(_stage, str(preset), stage_overrides_k, previous, runs_dir,
                                          k < len(presets), dtype, n_prompts)
        stage = ChainStage(str(preset), Path(run_dir))
        if report is not None:
            if not report.passed:
                raise JobError(f"stage {k} ({Path(preset).name}): the merged model failed its verification "
                               f"({summary(report)}); see {Path(report.out_dir) / REPORT_MD}", field=str(preset))
            stage.merged = report
            previous = Path(report.out_dir)
        stages.append(stage)
        if on_stage:
            on_stage(stage)
    return stages


def _stage(preset: str, overrides: list[str], base: Path | None, runs_dir, merge: bool, dtype: str,
           n_prompts: int) -> tuple[Path, MergeReport | None]:
    """One stage: train ``preset`` (on ``base`` when given), then merge it when ``merge``. Runs in its own
    process (:func:`_in_own_process`); returns the run folder and the merge report."""
    cfg = C.load_yaml(preset, overrides)
    if base is not None:
        cfg.model.name_or_path = str(base)
    run_dir = TrainingJob(cfg, runs_dir).run()
    report = merge_run(run_dir, dtype=dtype, onto="auto", n_prompts=n_prompts) if merge else None
    return run_dir, report


def _in_own_process(fn, *args):
    """``fn(*args)`` in a fresh process (spawned: nothing of this one's memory is shared), its result or its error
    back here. The logging level goes with it."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_logged, logging.getLogger().getEffectiveLevel(), fn, *args).result()


def _logged(level: int, fn, *args):
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    return fn(*args)
