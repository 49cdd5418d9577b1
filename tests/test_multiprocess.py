"""More than one process (core.train.launch): the same run as DDP under accelerate launch, here 2 gloo processes on
a micro model, as N GPUs would be on a GPU machine."""

from __future__ import annotations

import time

import pytest
from conftest import REPO, micro_overrides

from core import config as C
from core.errors import ConfigError
from core.run import RunFolder, read_metrics

# a constant learning rate: the losses of the first steps do not depend on max_steps (the 2-process run is stopped
# and resumed with another max_steps than the single-process run it is compared with)
SAME = {"train.lr_scheduler_type": "constant", "train.warmup_ratio": 0, "train.warmup_steps": 0,
        "train.save_steps": 1000}


def _losses(run) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(run) if r.get("loss") is not None}


def test_two_processes_train_one_run_that_the_app_follows_stops_after_a_restart_and_resumes(micro_model, tmp_path,
                                                                                            run_cli):
    import core.train.job as job_module
    from core.train.job import TrainingJob
    from core.train.launch import FollowedRun
    from gui.tabs import training as tab

    runs = tmp_path / "runs"
    cfg = C.load_yaml(REPO / "presets" / "demo.yaml", micro_overrides(micro_model, **SAME, **{
        "train.per_device_train_batch_size": 1, "train.max_steps": 2000, "train.nproc": 2}))
    started = tab.start_job(cfg, runs)  # the app's Start: the CLI's launcher, in a process of its own
    assert isinstance(started, FollowedRun)
    deadline = time.monotonic() + 240
    while len(started.metrics) < 2:
        assert time.monotonic() < deadline and started.proc.poll() is None, started.launcher_error()
        time.sleep(0.2)
    run = started.run_dir
    assert run is not None and [p.name for p in runs.iterdir() if not p.name.startswith(".")] == [run.name]

    # the app restarts: a new process knows nothing of the run, and finds it again from the runs folder
    tab._started, job_module._active = None, None
    followed = tab.reattach(runs)
    assert followed is not None and followed.run_dir == run
    view = tab.current_run(runs)
    assert view.live and view.status["status"] == "training" and view.status["stage"] == "processes"
    from core.locale import text

    assert text("training.stopping", "en") in tab.stop_training("en")  # the page's Stop: RUN/.stop, for all of them
    assert followed.wait(120) and started.proc.wait(60) == 0

    info = RunFolder(run).read_info()
    step = info["step"]
    assert info["status"] == "stopped" and info["world_size"] == 2 and step >= 2
    assert (run / "checkpoints" / f"checkpoint-{step}").is_dir() and RunFolder(run).has_adapter()
    assert not RunFolder(run).stop_request.exists() and tab.current_run(runs).status["status"] == "stopped"

    # resumed by the CLI: the run's own train.nproc, from the checkpoint's step
    r = run_cli("resume", str(run), "--set", f"train.max_steps={step + 2}")
    assert r.returncode == 0, r.stderr[-2000:]
    info = RunFolder(run).read_info()
    assert info["status"] == "finished" and info["step"] == step + 2 and info["world_size"] == 2
    steps = [rec["step"] for rec in read_metrics(run) if rec.get("loss") is not None]
    assert steps == list(range(1, step + 3))  # rank 0 alone writes: each step once, the curve goes on

    # the same global batch (2 rows a step) in one process: the same losses, step by step
    single = TrainingJob(C.load_yaml(REPO / "presets" / "demo.yaml", micro_overrides(micro_model, **SAME, **{
        "train.per_device_train_batch_size": 2, "train.max_steps": step + 2})), tmp_path / "single").run()
    one, two = _losses(single), _losses(run)
    assert one.keys() == two.keys()
    assert max(abs(one[s] - two[s]) / one[s] for s in one) < 1e-4, (one, two)
    assert len(set(one.values())) > 1  # the losses move: the comparison is of training, not of a constant


def test_a_process_count_the_machine_cannot_hold_is_refused_before_anything_is_written(micro_model, tmp_path, run_cli):
    from core.train.launch import check_nproc, slots

    r = run_cli("train", "presets/demo.yaml", "--nproc", "0", "--runs-dir", str(tmp_path / "runs"))
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error: train.nproc: ")
    assert not (tmp_path / "runs").exists()
    cfg = C.load_yaml(REPO / "presets" / "demo.yaml", micro_overrides(micro_model, **{"train.nproc": slots() + 1}))
    with pytest.raises(ConfigError, match=rf"train.nproc: {slots() + 1} processes but this machine has {slots()} "):
        check_nproc(cfg)
    huge = C.load_yaml(REPO / "presets" / "demo.yaml", micro_overrides(micro_model, **{
        "train.nproc": 2, "train.per_device_train_batch_size": 1024, "data.max_length": 32768}))
    with pytest.raises(ConfigError, match=r"train.nproc: 2 processes need about .* is available"):
        check_nproc(huge)


def test_the_equivalent_command_shows_nproc_and_the_accelerate_launch_it_runs():
    from gui.tabs.params import cli_command

    cfg = C.load_yaml(REPO / "presets" / "demo.yaml", ["train.nproc=2"])
    text = cli_command(cfg, str(REPO / "presets" / "demo.yaml"))
    lines = text.splitlines()
    comment = lines[-1]
    assert lines[:2] == ["python -m core train presets/demo.yaml \\", "    --nproc 2"]
    assert comment.startswith("# accelerate launch --multi_gpu --num_processes 2 --num_machines 1")
    assert comment.endswith("-m core _worker RUN_DIR")
    assert "--nproc" not in cli_command(C.load_yaml(REPO / "presets" / "demo.yaml"), str(REPO / "presets" / "demo.yaml"))
