"""The run folder: every path and file of a run, their reading and writing, the list of runs, the run states.

A run folder (``<runs>/<run-name>/``) holds:
    config.yaml      the full resolved config (never a token)
    run.json         status, heartbeat, base model, data and parameter figures, versions
    metrics.jsonl    one record per logged step
    train.log        the log of this run
    workers.log      a multi-process run: what the launcher and its processes printed
    .stop            a stop request for a run in other processes (the GUI's Stop, the launcher's Ctrl-C)
    adapter/         the adapter in PEFT's format, with the tokenizer
    adapter_init/    the initial adapter of an OLoRA / PiSSA run (to convert the saved one to plain LoRA)
    checkpoints/     resumable trainer checkpoints
    merged/          after a merge: the merged model and merge_report.json / .md
    export/          after an export: the GGUF file, its Modelfile and export report
    eval_report.json after an evaluation
    analysis.json    after an analysis

This module is the only one that spells those names. It reads and writes files; it loads no model.
Every rewrite of a JSON or YAML file goes through a temporary file and a rename, so that a reader never
sees half a file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import threading
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from core import config as C
from core.errors import AdapterError, StudioError
from core.lock import RunLock, RunLocked, is_locked  # noqa: F401 - a run's lock, re-exported with the folder
from core.paths import default_runs_dir


class Status(str, Enum):
    """What run.json says a run is doing; the values are the strings written to the file."""

    IDLE = "idle"
    LOADING = "loading"
    TRAINING = "training"
    STOPPING = "stopping"
    FINISHED = "finished"
    STOPPED = "stopped"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


FINAL = (Status.FINISHED, Status.STOPPED, Status.FAILED)
ACTIVE = (Status.LOADING, Status.TRAINING, Status.STOPPING)

ADAPTER_CONFIG = "adapter_config.json"  # PEFT's own name: what makes a folder an adapter


def write_text_atomic(path: Path, text: str) -> None:
    """Write a text file under a temporary name in the same folder, then rename it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str))


def read_json(path: Path) -> dict | None:
    """A JSON object from a file, or None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def slug(text: str) -> str:
    """A folder-safe name: letters, digits, dot, dash and underscore; at most 60 characters."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-").lower()[:60] or "run"


def default_run_name(cfg: C.RunConfig) -> str:
    """``20250101-120000-smollm2-135m-instruct-r16`` (``-4bit`` for QLoRA)."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    model = slug(cfg.model.name_or_path.removeprefix("embedded:").split("/")[-1])
    return f"{stamp}-{model}-r{cfg.lora.r}" + ("-4bit" if cfg.model.load_in_4bit else "")


@dataclass(frozen=True)
class RunFolder:
    """The paths of one run folder and the I/O of its small files."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path).expanduser())

    # ------------------------------------------------------------------ paths

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def run_json(self) -> Path:
        return self.path / "run.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def log(self) -> Path:
        return self.path / "train.log"

    @property
    def workers_log(self) -> Path:
        """A multi-process run: the launcher's and its processes' own output (tracebacks of any rank)."""
        return self.path / "workers.log"

    @property
    def stop_request(self) -> Path:
        """Present while someone asked a run in other processes to stop after the current step."""
        return self.path / ".stop"

    @property
    def adapter(self) -> Path:
        return self.path / "adapter"

    @property
    def adapter_saving(self) -> Path:
        """Where a new adapter is written before it replaces ``adapter/``."""
        return self.path / ".adapter-saving"

    @property
    def adapter_init(self) -> Path:
        return self.path / "adapter_init"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def merged(self) -> Path:
        return self.path / "merged"

    @property
    def export(self) -> Path:
        return self.path / "export"

    @property
    def eval_report(self) -> Path:
        return self.path / "eval_report.json"

    @property
    def analysis(self) -> Path:
        return self.path / "analysis.json"

    @property
    def tensorboard(self) -> Path:
        """TensorBoard's event files, when ``train.report_to`` is tensorboard."""
        return self.path / "tensorboard"

    @property
    def mlruns(self) -> Path:
        """MLflow's local store, when ``train.report_to`` is mlflow and no tracking URI is set."""
        return self.path / "mlruns"

    # ------------------------------------------------------------------ what is there

    def is_run(self) -> bool:
        """A run folder: it has a config.yaml and a run.json."""
        return self.config.is_file() and self.run_json.is_file()

    def has_adapter(self) -> bool:
        return (self.adapter / ADAPTER_CONFIG).is_file()

    def has_merged(self) -> bool:
        return (self.merged / "config.json").is_file()

    def merged_stamp(self) -> float | None:
        """Modification time of the merged model's config (None when not merged), so that a fresh merge is seen."""
        cfg = self.merged / "config.json"
        return cfg.stat().st_mtime if cfg.exists() else None

    def adapter_stamp(self) -> float:
        """Newest modification time of the adapter's files (a resumed run rewrites them)."""
        return max((p.stat().st_mtime for p in self.adapter.iterdir() if p.is_file()), default=0.0)

    def checkpoint_dirs(self) -> list[Path]:
        """The trainer's checkpoints, oldest first."""
        return sorted(self.checkpoints.glob("checkpoint-*"), key=checkpoint_step)

    def last_checkpoint(self) -> Path | None:
        ckpts = self.checkpoint_dirs()
        return ckpts[-1] if ckpts else None

    # ------------------------------------------------------------------ the small files

    def read_info(self) -> dict:
        """run.json as a dict ({} when missing or unreadable)."""
        return read_json(self.run_json) or {}

    def write_info(self, info: dict) -> None:
        write_json_atomic(self.run_json, info)

    def read_config(self, overrides: list[str] | None = None) -> C.RunConfig:
        return C.load_yaml(self.config, overrides)

    def write_config(self, cfg: C.RunConfig) -> None:
        write_text_atomic(self.config, C.dump_yaml(cfg))

    def read_metrics(self) -> list[dict]:
        """metrics.jsonl's records (a torn last line, from a process killed mid-write, is skipped)."""
        try:
            lines = self.metrics.read_text(encoding="utf-8").splitlines()
        except OSError:
            return []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def write_metrics(self, records: list[dict]) -> None:
        write_text_atomic(self.metrics, "".join(json.dumps(r) + "\n" for r in records))

    def log_tail(self, n_bytes: int = 6000) -> str:
        """The last lines of train.log (whole lines only)."""
        try:
            with self.log.open("rb") as fh:
                fh.seek(0, 2)
                size = fh.tell()
                fh.seek(max(0, size - n_bytes))
                data = fh.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        if size > n_bytes and "\n" in data:
            data = data.split("\n", 1)[1]
        return data

    # ------------------------------------------------------------------ making one

    @classmethod
    def create(cls, runs_dir: str | Path, name: str) -> "RunFolder":
        """A new, empty run folder ``runs_dir/name`` (``name-2``, ``name-3`` … when taken).

        Raises:
            StudioError: the runs folder is a file or cannot be created.
        """
        runs_dir = check_runs_dir(runs_dir, create=True)
        base, n = slug(name), 1
        path = runs_dir / base
        while True:
            try:
                path.mkdir()
                return cls(path)
            except FileExistsError:
                n += 1
                path = runs_dir / f"{base}-{n}"


def check_runs_dir(runs_dir: str | Path, *, create: bool = False) -> Path:
    """A runs folder that can hold a new run: one line naming the folder when it is a file, sits inside a file, or
    cannot be written. Checked before any model loads; created only with ``create``.

    Raises:
        StudioError: naming the folder.
    """
    runs_dir = Path(runs_dir).expanduser()
    existing = runs_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        what = "is a file" if existing == runs_dir else f"is inside {existing}, which is a file"
        raise StudioError(f"the runs folder {runs_dir} {what}, not a folder; choose another --runs-dir",
                          field="runs_dir")
    if not os.access(existing, os.W_OK):
        raise StudioError(f"cannot create the runs folder {runs_dir}: {existing} is not writable; choose another "
                          "--runs-dir", field="runs_dir")
    if create:
        try:
            runs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StudioError(f"cannot create the runs folder {runs_dir}: {e.strerror or e}",
                              field="runs_dir") from None
    return runs_dir


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


def read_metrics(run_dir: str | Path) -> list[dict]:
    return RunFolder(Path(run_dir)).read_metrics()


def last_checkpoint(run_dir: str | Path) -> Path | None:
    return RunFolder(Path(run_dir)).last_checkpoint()


def list_runs(runs_dir: str | Path | None = None) -> list[dict]:
    """Past runs, newest first: each run.json with ``run_dir`` and ``name`` added, and ``status`` as it really is
    (``interrupted`` for a run whose process is gone; run.json's own word is kept as ``recorded_status``)."""
    runs_dir = Path(runs_dir or default_runs_dir())
    out = []
    for path in runs_dir.glob("*/run.json") if runs_dir.is_dir() else []:
        info = read_json(path)
        if info is None:
            continue
        folder = RunFolder(path.parent)
        info["run_dir"] = str(path.parent)
        info["name"] = path.parent.name
        info["recorded_status"] = info.get("status")
        info["status"] = effective_status(info, folder)
        out.append(info)
    return sorted(out, key=lambda r: r.get("created", ""), reverse=True)


# --------------------------------------------------------------------------- a finished run, read back

@dataclass
class RunInfo:
    """What a run folder with an adapter says about itself: its config, run.json, adapter and base."""

    run_dir: Path
    cfg: C.RunConfig
    info: dict
    adapter_dir: Path
    base_path: str  # the base to load: run.json's resolved path, or the model re-resolved when it moved
    template: str

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.run_dir)

    @property
    def quantized(self) -> bool:
        """Trained on a 4-bit (QLoRA) or 8-bit base."""
        return bool(self.cfg.model.load_in_4bit or self.cfg.model.load_in_8bit)

    @property
    def base_names(self) -> set[str]:
        """Every name under which this run's base may appear in an adapter_config.json."""
        info = self.info
        names = {self.base_path, str(info.get("base_model") or ""), str(info.get("resolved_base_model") or "")}
        return {n for n in names if n}

    @classmethod
    def load(cls, run_dir: str | Path) -> "RunInfo":
        """Read a run folder.

        Raises:
            AdapterError: not a run folder, or no adapter in it.
        """
        from core.models.registry import resolve_model
        from core.tasks import resolve_template

        folder = RunFolder(Path(run_dir).expanduser().resolve())
        if not folder.path.is_dir():
            raise AdapterError(f"run folder not found: {folder.path}", field=str(folder.path))
        for path in (folder.config, folder.run_json):
            if not path.is_file():
                raise AdapterError(f"{folder.path} is not a run folder: it has no {path.name}", field=str(path))
        cfg = folder.read_config()
        info = read_json(folder.run_json)
        if info is None:
            raise AdapterError(f"cannot read {folder.run_json}", field=str(folder.run_json))
        adapter_dir = folder.adapter
        if not adapter_dir.is_dir():
            # a run killed before it saved its adapter: its newest complete checkpoint holds one (PEFT's format)
            step = resumable_step(folder)
            if step is None:
                state = describe_status(dict(info, run_dir=str(folder.path), status=effective_status(info, folder)))
                raise AdapterError(f"{folder.path} has no {folder.adapter.name}/ folder and no checkpoint: the run "
                                   f"did not save an adapter ({state})", field=str(folder.adapter))
            adapter_dir = folder.checkpoints / f"checkpoint-{step}"
        resolved = str(info.get("resolved_base_model") or "")
        if resolved and (Path(resolved).is_dir() or not resolved.startswith("/")):
            base_path = resolved
        else:  # the run folder came from another machine, or the cache moved: resolve the name again
            base_path = resolve_model(str(info.get("base_model") or cfg.model.name_or_path))
        template = info.get("template") or resolve_template(cfg.data.template, info.get("schema", ""))
        return cls(folder.path, cfg, info, adapter_dir, base_path, template)


def versions() -> dict[str, str]:
    """The versions of the ML stack, as run.json and the merge report record them."""
    import importlib.metadata as md

    out = {}
    for pkg in ("torch", "transformers", "peft", "trl", "bitsandbytes", "datasets"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def effective_status(info: dict, folder: RunFolder) -> str:
    """What a run is doing, honestly: run.json's status, except that a run that says it is loading, training or
    stopping while no process holds its lock was interrupted (killed, crashed, the machine rebooted)."""
    status = str(info.get("status") or "")
    if status in {str(s) for s in ACTIVE} and not is_locked(folder):
        return INTERRUPTED
    return status


INTERRUPTED = "interrupted"  # not a Status a job sets: what a reader concludes from a dead writer


CHECKPOINT_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")  # PEFT's names, as the trainer saves them
CHECKPOINT_STATE = "trainer_state.json"


def checkpoint_is_complete(ckpt: Path) -> bool:
    """A checkpoint the trainer can resume from: its adapter weights and its trainer state are there."""
    return (ckpt / CHECKPOINT_STATE).is_file() and any((ckpt / w).is_file() for w in CHECKPOINT_WEIGHTS)


def checkpoint_step(ckpt: Path) -> int:
    """The step a trainer checkpoint folder (``checkpoint-<step>``) was saved at."""
    return int(ckpt.name.split("-")[-1])


def resumable_step(folder: RunFolder) -> int | None:
    """The step of the newest checkpoint a resume could continue from (weights and trainer state present)."""
    for ckpt in reversed(folder.checkpoint_dirs()):
        if checkpoint_is_complete(ckpt):
            return checkpoint_step(ckpt)
    return None


def describe_status(info: dict) -> str:
    """A run's state in one English line, as ``runs`` and the merge say it:
    ``interrupted at step 30 (resumable from checkpoint 20)``, ``finished at step 100`` …"""
    status, step = str(info.get("status") or "?"), info.get("step", "?")
    if status == INTERRUPTED:
        folder = RunFolder(Path(info["run_dir"])) if info.get("run_dir") else None
        ckpt = resumable_step(folder) if folder else None
        return f"interrupted at step {step} " + (f"(resumable from checkpoint {ckpt})" if ckpt is not None
                                                 else "(no checkpoint to resume from)")
    if status in (str(Status.FINISHED), str(Status.STOPPED), str(Status.FAILED)):
        return f"{status} at step {step}"
    return f"{status} (step {step})"
