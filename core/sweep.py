"""Sweeps: a grid of settings, trained one run after another, each a normal run folder, with one results table.

Owns the grid (``--grid lora.r=8,16,64``), the order of the runs, ``<runs>/sweeps/<name>/sweep.json`` (the grid,
every run with its folder, state and results, rewritten after each run) and the results read from each run.
A sweep that was stopped resumes where it stopped: finished runs are kept, a stopped or interrupted one is
resumed from its checkpoint, the rest are trained. It trains through :class:`core.train.job.TrainingJob` and
evaluates through :func:`core.evaluate.evaluate_run`; it must not train or load a model any other way.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from core import config as C
from core.errors import ConfigError
from core.run import ACTIVE, RunFolder, Status, effective_status, read_json, slug, write_json_atomic

SWEEPS = "sweeps"
SWEEP_JSON = "sweep.json"
DONE, PENDING = str(Status.FINISHED), "pending"


def parse_grid(items: list[str], flag: str = "--grid") -> dict[str, list[str]]:
    """``["lora.r=8,16", "lora.use_rslora=false,true"]`` → ``{"lora.r": ["8", "16"], …}``, checked against the config.

    Raises:
        ConfigError: an item without ``=`` or values, a key the config does not have, or a key given twice.
    """
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key or not vals:
            raise ConfigError(f"{flag} {item!r}: expected SECTION.FIELD=V1,V2,…", field=flag)
        if key in grid:
            raise ConfigError(f"{flag} {key} is given twice", field=flag)
        grid[key] = vals
    if not grid:
        raise ConfigError(f"a sweep needs at least one {flag} SECTION.FIELD=V1,V2", field=flag)
    return grid


def combinations(grid: dict[str, list[str]]) -> list[dict[str, str]]:
    """Every combination of the grid's values, the first key varying slowest."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def sweep_folder(runs_dir: str | Path, name: str) -> Path:
    return Path(runs_dir) / SWEEPS / name


def _run_name(name: str, n: int, combo: dict[str, str]) -> str:
    parts = "-".join(f"{k.rpartition('.')[2]}{v}" for k, v in combo.items())
    return slug(f"{name}-{n:02d}-{parts}")[:80]


def _scales(cfg: C.RunConfig) -> dict[str, float]:
    """The seeds' two readings of the LoRA scale: alpha/r (plain) and alpha/√r (rsLoRA)."""
    r, a = cfg.lora.r, cfg.lora.lora_alpha
    return {"alpha_over_r": round(a / r, 3), "alpha_over_sqrt_r": round(a / math.sqrt(r), 3),
            "scale": round(a / math.sqrt(r) if cfg.lora.use_rslora else a / r, 3)}


def run_results(run_dir: Path, *, evaluate: bool = False) -> dict[str, Any]:
    """What a sweep compares of one finished run: losses and time from its folder; with ``evaluate``, the task's
    metric on the test split and forgetting (``core.evaluate``)."""
    folder = RunFolder(run_dir)
    info = folder.read_info()
    records = folder.read_metrics()
    evals = [r["eval_loss"] for r in records if r.get("eval_loss") is not None]
    losses = [r["loss"] for r in records if r.get("loss") is not None]
    out: dict[str, Any] = {"final_eval_loss": evals[-1] if evals else None, "best_eval_loss": min(evals) if evals else None,
                           "final_train_loss": losses[-1] if losses else None,
                           "train_seconds": info.get("train_seconds"), "steps": info.get("step")}
    if evaluate:
        from core.evaluate import evaluate_run

        from core.inference.modelset import ADAPTER, BASE

        report = evaluate_run(run_dir, split="test", which=(BASE, ADAPTER))  # the base too: forgetting
        metric = report["models"][ADAPTER]
        out["test_loss"] = metric.get("loss")
        if "validity_rate" in metric:
            out["structure_rate"] = metric["validity_rate"]
        content = metric.get("content") or {}
        if "pass_rate" in content:
            out["content_rate"] = content["pass_rate"]
        if "forgetting" in report:
            out["forgetting_ratio"] = report["forgetting"]["ratio"]
        if metric.get("mae") is not None:  # the price task: the run's MAE beside its baselines' on the same split
            out["mae"] = metric["mae"]
            out.update({f"mae_{k}": v for k, v in (report.get("baselines_mae") or {}).items()})
    return out


@dataclass
class Sweep:
    """One sweep's plan and state, as ``sweep.json`` holds it."""

    name: str
    preset: str
    grid: dict[str, list[str]]
    sets: list[str] = field(default_factory=list)
    evaluate: bool = False
    runs_dir: str = "runs"
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return sweep_folder(self.runs_dir, self.name)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "preset": self.preset, "grid": self.grid, "sets": self.sets,
                "evaluate": self.evaluate, "runs": self.runs}

    def save(self) -> Path:
        path = self.folder / SWEEP_JSON
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, self.to_dict())
        return path

    @classmethod
    def plan(cls, preset: str | Path, grid: dict[str, list[str]], runs_dir: str | Path, *, sets: list[str] | None = None,
             name: str | None = None, evaluate: bool = False) -> "Sweep":
        """A new sweep, or the stored one of that name when its grid and settings are the same (to resume it).

        Raises:
            ConfigError: a combination the config refuses (checked for all before any training), or a stored
                sweep of that name with another grid.
        """
        sets = list(sets or [])
        name = name or slug(f"{Path(preset).stem}-" + "-".join(k.rpartition(".")[2] for k in grid))
        sweep = cls(name=name, preset=str(preset), grid=grid, sets=sets, evaluate=evaluate, runs_dir=str(runs_dir))
        for n, combo in enumerate(combinations(grid)):
            overrides = sets + [f"{k}={v}" for k, v in combo.items()]
            cfg = C.load_yaml(preset, overrides)
            C.check(cfg)
            sweep.runs.append({"index": n, "values": combo, "run_name": _run_name(name, n, combo), "run_dir": None,
                               "state": PENDING, **_scales(cfg), "results": None})
        stored = read_json(sweep.folder / SWEEP_JSON)
        if stored:
            if stored.get("grid") != grid or stored.get("sets") != sets or stored.get("preset") != str(preset):
                raise ConfigError(f"sweep {name!r} already exists with another grid or settings "
                                  f"({sweep.folder / SWEEP_JSON}); choose another --name", field="--name")
            sweep.runs = stored["runs"]
        return sweep

    @classmethod
    def load(cls, runs_dir: str | Path, name: str) -> "Sweep | None":
        """The stored sweep of that name under ``runs_dir``, or None."""
        stored = read_json(sweep_folder(runs_dir, name) / SWEEP_JSON)
        if not stored:
            return None
        return cls(runs_dir=str(runs_dir), **{k: stored[k] for k in ("name", "preset", "grid", "sets", "evaluate",
                                                                     "runs") if k in stored})

    def run(self, *, on_job: Callable[[Any], None] | None = None, stopped: Callable[[], bool] = lambda: False,
            log: Callable[[str], None] = print) -> "Sweep":
        """Train what is left, one run after another; ``on_job`` sees each job as it starts (to stop it), and
        ``stopped()`` true ends the sweep before the next run.

        A run that ends stopped ends the sweep (sweep.json says where); calling ``run`` again resumes it. A run that
        fails is marked failed with its error, and the sweep goes on with the next one.
        """
        from core.train.job import TrainingJob

        for entry in self.runs:
            if entry["state"] == DONE and entry.get("results") is not None:
                continue
            if stopped():
                log(f"sweep {self.name}: stopped before run {entry['index'] + 1}; the same command resumes it")
                return self
            overrides = self.sets + [f"{k}={v}" for k, v in entry["values"].items()] + [f"run_name={entry['run_name']}"]
            folder = RunFolder(Path(entry["run_dir"])) if entry.get("run_dir") else None
            status = effective_status(folder.read_info(), folder) if folder and folder.is_run() else None
            if status == DONE:
                job = None
            elif folder is not None and folder.is_run() and status not in map(str, ACTIVE):
                log(f"sweep {self.name}: resuming run {entry['index'] + 1}/{len(self.runs)} {folder.name}")
                job = TrainingJob(folder.read_config(), folder.path.parent, resume_dir=folder.path)
            else:
                log(f"sweep {self.name}: run {entry['index'] + 1}/{len(self.runs)} {entry['values']}")
                job = TrainingJob(C.load_yaml(self.preset, overrides), self.runs_dir)
            if job is not None:
                if on_job is not None:
                    on_job(job)
                entry["started"] = time.time()
                try:
                    run_dir = job.run()
                except Exception as e:  # noqa: BLE001 - a failed run is marked failed, and the sweep goes on
                    run_dir = None
                    entry["error"] = job.error_message or str(e)
                    log(f"sweep {self.name}: run {entry['index'] + 1} failed: {entry['error']}")
                finally:
                    if job.run_dir is not None:
                        entry["run_dir"] = str(job.run_dir)
                    entry["state"] = str(job.state)
                    self.save()
                if str(job.state) == str(Status.FAILED):
                    continue
                entry.pop("error", None)
                if str(job.state) != DONE:
                    log(f"sweep {self.name}: stopped in run {entry['index'] + 1}; the same command resumes it")
                    return self
                entry["run_dir"] = str(run_dir)
            entry["state"] = DONE
            entry["results"] = run_results(Path(entry["run_dir"]), evaluate=self.evaluate)
            self.save()
        return self

    @property
    def complete(self) -> bool:
        return all(e["state"] == DONE and e.get("results") is not None for e in self.runs)

    def table(self) -> list[dict[str, Any]]:
        """One row per run: its values, scales, state and results; ``best`` marks the lowest best eval loss (the
        lowest final train loss when there was no evaluation)."""
        rows = [{"run": Path(e["run_dir"]).name if e.get("run_dir") else e["run_name"], **e["values"],
                 "alpha/r": e["alpha_over_r"], "alpha/√r": e["alpha_over_sqrt_r"], "state": e["state"],
                 **({"error": e["error"]} if e.get("error") else {}),
                 **(e.get("results") or {})} for e in self.runs]
        key = "best_eval_loss" if any(r.get("best_eval_loss") is not None for r in rows) else "final_train_loss"
        scored = [r for r in rows if r.get(key) is not None]
        best = min(scored, key=lambda r: r[key]) if scored else None
        for r in rows:
            r["best"] = r is best
        return rows
