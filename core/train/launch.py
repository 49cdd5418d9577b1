"""More than one process: the same run as DDP over ``train.nproc`` processes, started with ``accelerate launch``.

The *launcher* (``python -m core train … --nproc N``, or the app through that command) checks the settings, makes
the run folder, holds its lock and waits. The N processes are ``python -m core _worker RUN_DIR`` under accelerate's
DDP launcher (torchrun underneath): N GPUs, or N CPU processes over gloo on a machine without one. Each is a
:class:`core.train.job.TrainingJob` that trains on its share of every batch; the trainer (transformers' own
accelerate integration) averages the gradients. Rank 0 alone writes the run folder (run.json, metrics.jsonl,
train.log, the adapter); the trainer's checkpoints are the trainer's.

Stop: ``RUN/.stop`` (:attr:`core.run.RunFolder.stop_request`). Every process looks for it after each step, and they
agree through an all-reduce, so that all stop at the same step with one checkpoint. The launcher writes it on
Ctrl-C or SIGTERM; the app writes it for its Stop button, also for a run it re-attached to after a restart.

A run of other processes is followed through its folder by :class:`FollowedRun`, with the interface of a
TrainingJob that the Training tab reads.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from core import config as C
from core.config import RunConfig
from core.errors import ConfigError, JobError
from core.run import ACTIVE, FINAL, RunFolder, RunLock, Status, check_runs_dir, default_run_name, effective_status

WORKER = "_worker"  # the hidden CLI command each process runs


# --------------------------------------------------------------------------- checks before anything is written

def on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def slots() -> int:
    """How many processes this machine can hold at most: its GPUs, else its CPU cores (one each)."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.device_count()
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def check_nproc(cfg: RunConfig) -> None:
    """Refuse a process count the machine cannot hold, before any folder is made.

    Raises:
        ConfigError (train.nproc): below 1, more processes than GPUs (or CPU cores), or N copies of the
            estimated per-process memory over what the machine has available.
    """
    from core.models.memory import estimate_memory, human_bytes

    n = cfg.train.nproc
    if n < 1:
        raise ConfigError(f"train.nproc: {n} is below 1 (one process is the ordinary run)", field="train.nproc")
    have = slots()
    kind = "GPUs" if on_gpu() else "CPU cores"
    if n > have:
        raise ConfigError(f"train.nproc: {n} processes but this machine has {have} {kind} (one each)",
                          field="train.nproc")
    est = estimate_memory(cfg)
    budget = est.device.available_bytes or est.device.total_bytes
    # on a GPU each process has its own device; on a CPU the N copies share the machine's memory
    need = est.total if on_gpu() else n * est.total
    if budget and need > budget:
        each = "each GPU" if on_gpu() else f"{n} processes × {human_bytes(est.total)}"
        raise ConfigError(f"train.nproc: {n} processes need about {human_bytes(need)} ({each}) but "
                          f"{human_bytes(budget)} is available; use fewer processes or a smaller batch",
                          field="train.nproc")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_args(run_dir: Path, *, resume: bool = False, more=None) -> list[str]:
    """What each process runs: ``-m core _worker RUN_DIR`` (with the resume / train-more choice)."""
    args = ["-m", "core", WORKER, str(run_dir)]
    if resume:
        args.append("--resume")
    if more is not None:
        args += ["--more-steps", str(more.steps), "--more-epochs", str(more.epochs), "--schedule", more.schedule]
    return args


def accelerate_command(nproc: int, worker: list[str], *, gpu: bool | None = None, port: int | None = None,
                       program: list[str] | None = None) -> list[str]:
    """The ``accelerate launch`` command line of a run over ``nproc`` processes.

    ``--multi_gpu`` is accelerate's name for its DDP launcher (torchrun); on a machine without a GPU the processes
    train on the CPU over gloo (``use_cpu`` in the trainer's arguments), each with its share of the cores.

    Args:
        worker: the script's part, ``-m core …``.
        program: how accelerate is run (default ``accelerate launch``; the launcher uses this Python's module).
    """
    gpu = on_gpu() if gpu is None else gpu
    cmd = list(program or ["accelerate", "launch"])
    cmd += ["--multi_gpu", "--num_processes", str(nproc), "--num_machines", "1", "--mixed_precision", "no",
            "--dynamo_backend", "no"]
    if not gpu:
        cmd += ["--num_cpu_threads_per_process", str(max(1, slots() // nproc))]
    if port is not None:
        cmd += ["--main_process_port", str(port)]
    return cmd + worker


# --------------------------------------------------------------------------- the launcher

class Launch:
    """One multi-process run (new, resumed or trained more), from this process: ``start()`` then ``wait()``.

    Args:
        cfg: the run's config; ``cfg.train.nproc`` processes.
        runs_dir: parent of a new run's folder.
        resume_dir: an existing run folder to resume (or, with ``more``, to train more).
        more: a :class:`core.train.resume.More` for a finished run.
    """

    def __init__(self, cfg: RunConfig, runs_dir: str | Path | None = None, *, resume_dir: str | Path | None = None,
                 more=None):
        from core.paths import default_runs_dir

        self.cfg, self.more = cfg, more
        self.runs_dir = Path(runs_dir or default_runs_dir())
        self.resume_dir = Path(resume_dir) if resume_dir else None
        self.folder: RunFolder | None = None
        self.proc: subprocess.Popen | None = None
        self.returncode: int | None = None
        self.warnings: list[str] = []
        self._lock: RunLock | None = None
        self._log = None

    def start(self) -> Path:
        """Check everything, make (or lock) the run folder, and start the processes; returns the run folder.

        Raises:
            StudioError: a bad setting, a process count the machine cannot hold, a tracker not installed, a run
                that cannot be resumed; nothing is written then.
        """
        from core.train.resume import plan_more, plan_resume
        from core.train.trackers import check_tracker

        cfg = self.cfg
        self.warnings = [str(i) for i in C.check(cfg)]
        check_tracker(cfg.train.report_to)
        check_nproc(cfg)
        if self.resume_dir is not None:
            folder = RunFolder(self.resume_dir)
            if not folder.path.is_dir():
                raise JobError(f"cannot resume {self.resume_dir}: no such folder", field="resume")
            self._lock = RunLock(folder, purpose=f"training, {cfg.train.nproc} processes").acquire()
            try:
                (plan_more if self.more else plan_resume)(folder, cfg)  # its refusals, before anything starts
            except BaseException:
                self._lock.release()
                raise
        else:
            check_runs_dir(self.runs_dir)
            folder = RunFolder.create(self.runs_dir, cfg.run_name or default_run_name(cfg))
            self._lock = RunLock(folder, purpose=f"training, {cfg.train.nproc} processes").acquire()
            folder.write_config(cfg)
            now = dt.datetime.now().isoformat(timespec="seconds")
            folder.write_info({"status": str(Status.LOADING), "created": now, "updated": now, "step": 0,
                               "max_steps": 0, "world_size": cfg.train.nproc, "launcher_pid": os.getpid(),
                               "warnings": self.warnings, "error": None})
        self.folder = folder
        folder.stop_request.unlink(missing_ok=True)
        if self.resume_dir is not None and cfg != folder.read_config():
            folder.write_config(cfg)  # a resume with --set: the processes read the folder's config
        worker = worker_args(folder.path, resume=self.resume_dir is not None, more=self.more)
        cmd = accelerate_command(cfg.train.nproc, worker, port=free_port(),
                                 program=[sys.executable, "-m", "accelerate.commands.launch"])
        env = dict(os.environ, TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
        if not on_gpu():
            env["ACCELERATE_USE_CPU"] = "true"
        self._log = open(folder.workers_log, "a", encoding="utf-8")
        self._log.write(f"# {dt.datetime.now().isoformat(timespec='seconds')} {shlex.join(cmd)}\n")
        self._log.flush()
        # a session of their own: a Ctrl-C in the terminal reaches the launcher only, which asks them to stop
        # after the step (torchrun would kill them at once); the app's restart leaves them running
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, cwd=str(Path(__file__).resolve().parents[2]), start_new_session=True)
        return folder.path

    def stop(self) -> None:
        """Ask every process to stop after the current step (a checkpoint and the adapter are saved)."""
        if self.folder is not None:
            self.folder.stop_request.touch()

    def abort(self) -> None:
        """Stop at once (a second Ctrl-C): the run keeps its last checkpoint."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the processes; settle run.json if they died without saying so; release the folder."""
        assert self.proc is not None and self.folder is not None
        try:
            self.returncode = self.proc.wait(timeout)
        except KeyboardInterrupt:
            self.abort()
            self.returncode = self.proc.wait()
            raise
        finally:
            if self.proc.returncode is not None:
                self._finish()
        return self.returncode

    def _finish(self) -> None:
        folder = self.folder
        folder.stop_request.unlink(missing_ok=True)
        info = folder.read_info()
        if str(info.get("status")) in {str(s) for s in ACTIVE}:
            # a process died (a crash, an abort) before rank 0 could say how the run ended
            reason = last_error(folder.workers_log) or f"exit status {self.returncode}"
            info.update(status=str(Status.FAILED), error=f"a training process failed: {reason}",
                        updated=dt.datetime.now().isoformat(timespec="seconds"))
            folder.write_info(info)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def last_error(log_path: Path) -> str | None:
    """The last error line of the processes' output (``error: …`` from the CLI, or a traceback's last line)."""
    try:
        lines = [ln.strip() for ln in log_path.read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError:
        return None
    for ln in reversed(lines):
        text = ln.split("]:", 1)[-1].strip() if ln.startswith("[rank") else ln
        if text.startswith("error: ") or (text and ("Error:" in text.split(" ", 1)[0] or "Error: " in text)):
            return text.removeprefix("error: ")[:300]
    return None


# --------------------------------------------------------------------------- following a run of other processes

class FollowedRun:
    """A run that other processes train (a multi-process run this app started, or one it found on start), read
    through its folder with the interface of a TrainingJob that the Training tab uses: ``state``, ``run_dir``,
    ``metrics``, ``status()``, ``stop()``.

    Args:
        folder: the run folder, when known.
        proc: the launcher process this app started (``python -m core train … --nproc N``); its run folder is found
            by the launcher's PID in run.json.
        runs_dir: where to look for it.
    """

    def __init__(self, cfg: RunConfig | None = None, folder: RunFolder | None = None, *,
                 proc: subprocess.Popen | None = None, runs_dir: Path | None = None, log_path: Path | None = None):
        self.cfg = cfg
        self.folder = folder
        self.proc = proc
        self.runs_dir = runs_dir
        self.log_path = log_path
        self.metrics = _FolderMetrics(self)
        self.warnings: list[str] = []
        self._stopping = False

    @property
    def run_dir(self) -> Path | None:
        if self.folder is None and self.proc is not None and self.runs_dir is not None:
            self.folder = find_launched(self.runs_dir, self.proc.pid)
            if self.folder is not None and self.log_path is not None:
                self.log_path.with_suffix(".yaml").unlink(missing_ok=True)  # the folder has its config.yaml now
        return self.folder.path if self.folder is not None else None

    @property
    def state(self) -> Status:
        if self.run_dir is None:
            if self.proc is not None and self.proc.poll() is None:
                return Status.LOADING
            return Status.FAILED  # the launcher refused (a bad setting) before it made a folder
        info = self.folder.read_info()
        status = effective_status(info, self.folder)
        if self.proc is not None and self.proc.poll() is None and status not in {str(s) for s in FINAL}:
            status = status if status in {str(s) for s in ACTIVE} else str(Status.LOADING)
        try:
            return Status(status)
        except ValueError:  # "interrupted": its processes are gone
            return Status.FAILED

    def stop(self) -> None:
        if self.run_dir is not None:
            self.folder.stop_request.touch()
        self._stopping = True

    def wait(self, timeout: float | None = None) -> bool:
        end = None if timeout is None else time.monotonic() + timeout
        while self.state not in FINAL:
            if end is not None and time.monotonic() > end:
                return False
            time.sleep(0.2)
        return True

    def launcher_error(self) -> str | None:
        """What the launcher said when it refused to start (its one ``error:`` line)."""
        if self.log_path is None:
            return None
        return last_error(self.log_path)

    def status(self):
        from core.train.job import JobStatus

        if self.run_dir is None:
            state = self.state
            return JobStatus(status=str(state), run_dir=None, stage="loading_model" if state == Status.LOADING else "",
                             error=self.launcher_error() if state == Status.FAILED else None)
        info = self.folder.read_info()
        records = self.metrics.since(0)
        losses = [r for r in records if r.get("loss") is not None]
        evals = [r for r in records if r.get("eval_loss") is not None]
        last = records[-1] if records else {}
        state = self.state
        if self._stopping and state == Status.TRAINING:
            state = Status.STOPPING
        n = int(info.get("world_size") or 1)
        return JobStatus(
            status=str(state), run_dir=str(self.folder.path), step=int(info.get("step") or 0),
            max_steps=int(info.get("max_steps") or 0), epoch=float(last.get("epoch") or 0.0),
            elapsed=float(last.get("elapsed") or info.get("train_seconds") or 0.0),
            eta=last.get("eta") if state in (Status.TRAINING, Status.STOPPING) else None,
            tokens_per_s=last.get("tokens_per_s"), loss=losses[-1]["loss"] if losses else None,
            eval_loss=evals[-1]["eval_loss"] if evals else None, error=info.get("error"),
            warnings=list(info.get("warnings") or []), stage="processes" if state == Status.TRAINING else "",
            stage_args={"n": n})


class _FolderMetrics:
    """metrics.jsonl of a followed run, read again only when the file changed."""

    def __init__(self, run: FollowedRun):
        self.run = run
        self._stamp: tuple | None = None
        self._records: list[dict] = []

    def since(self, n: int = 0) -> list[dict]:
        folder = self.run.folder if self.run.run_dir is not None else None
        if folder is None:
            return []
        try:
            st = folder.metrics.stat()
            stamp = (st.st_size, st.st_mtime_ns)
        except OSError:
            return []
        if stamp != self._stamp:
            self._records, self._stamp = folder.read_metrics(), stamp
        return self._records[n:]

    def __len__(self) -> int:
        return len(self.since(0))


def find_launched(runs_dir: Path, launcher_pid: int) -> RunFolder | None:
    """The run folder that the launcher ``launcher_pid`` made (its run.json says so)."""
    from core.run import list_runs

    for info in list_runs(runs_dir):
        if info.get("launcher_pid") == launcher_pid and info.get("run_dir"):
            return RunFolder(Path(info["run_dir"]))
    return None


def live_launched_runs(runs_dir: Path) -> list[RunFolder]:
    """Multi-process runs of this runs folder that are training now (their launcher holds the lock): what the app
    re-attaches to when it starts."""
    from core.run import list_runs

    out = []
    for info in list_runs(runs_dir):
        if info.get("launcher_pid") and str(info.get("status")) in {str(s) for s in ACTIVE} and info.get("run_dir"):
            out.append(RunFolder(Path(info["run_dir"])))
    return out


def start_in_background(cfg: RunConfig, runs_dir: Path, *, resume_dir: Path | None = None, more=None) -> FollowedRun:
    """The app's way to start a multi-process run: the CLI's launcher (``python -m core train CONFIG --nproc N``, or
    ``resume RUN``) as a process of its own, which outlives the app; followed through its folder.

    A new run's config goes to a temporary file under ``RUNS/.launch/`` (removed once the run folder holds it), with
    the launcher's output beside it (the one-line refusal of a bad setting).
    """
    from core.run import write_text_atomic

    runs_dir = check_runs_dir(runs_dir, create=True)
    pending = runs_dir / ".launch"
    pending.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    log_path = pending / f"{stamp}.log"
    if resume_dir is None:
        preset = pending / f"{stamp}.yaml"
        write_text_atomic(preset, C.dump_yaml(cfg))
        args = ["train", str(preset), "--runs-dir", str(runs_dir)]
    else:
        args = ["resume", str(resume_dir), "--nproc", str(cfg.train.nproc)]
        if more is not None:
            args += ["--more-epochs", str(more.epochs)] if more.epochs and not more.steps else \
                ["--more-steps", str(more.steps)]
            args += ["--schedule", more.schedule]
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen([sys.executable, "-m", "core", *args], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=str(Path(__file__).resolve().parents[2]),
                                start_new_session=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    folder = RunFolder(resume_dir) if resume_dir is not None else None
    return FollowedRun(cfg, folder, proc=proc, runs_dir=runs_dir, log_path=log_path)
