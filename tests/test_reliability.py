"""Nothing lost, nothing misleading: one writer per run folder, honest run states, Ctrl-C acts like Stop, safe
resume, paths the API may read, one-line errors before any work, no silent drops.

Each test is one failure a careless user met (issue 15); the training ones run the real CLI in a subprocess on a
micro model, so that signals and a killed process are real.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO, SHORT_MCQ, micro_overrides

from core import config as C
from core.errors import ConfigError, DataError, StudioError
from core.run import INTERRUPTED, RunFolder, RunLock, RunLocked, effective_status, list_runs

DEMO = "presets/demo.yaml"


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false")


def _train_args(model_dir: Path, runs: Path, name: str, **extra) -> list[str]:
    args = [sys.executable, "-m", "core", "train", DEMO, "--runs-dir", str(runs)]
    for kv in micro_overrides(model_dir, run_name=name, **extra):
        args += ["--set", kv]
    return args


def _start(model_dir: Path, runs: Path, name: str, **extra) -> subprocess.Popen:
    return subprocess.Popen(_train_args(model_dir, runs, name, **extra), cwd=REPO, env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def _wait_for_step(folder: RunFolder, step: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"training exited early: {proc.stderr.read()[-2000:]}")
        if any(r.get("step", 0) >= step for r in folder.read_metrics()):
            return
        time.sleep(0.2)
    raise AssertionError(f"no step {step} within {timeout} s")


def _digest(folder: Path) -> dict[str, str]:
    """Every file of a folder and the sha256 of its bytes (the lock file aside: it is the lock, not the run)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture(scope="module")
def finished_run(micro_model, tmp_path_factory) -> Path:
    """A finished 3-step micro run, checkpointed at every step."""
    from core.train.job import TrainingJob

    runs = tmp_path_factory.mktemp("reliable-runs")
    cfg = C.load_yaml(DEMO, micro_overrides(micro_model, run_name="done", **{"train.save_steps": 1,
                                                                            "train.save_total_limit": 3}))
    return TrainingJob(cfg, runs).run()


def _copy(run: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(run, dst, ignore=shutil.ignore_patterns(".lock"))
    return dst


# --------------------------------------------------------------------------- one writer per run folder

def test_a_second_writer_is_refused_naming_the_process_that_holds_the_run(finished_run, tmp_path, run_cli):
    run = _copy(finished_run, tmp_path / "run")
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps(dict(info, status="stopped")))  # something to resume
    with RunLock(RunFolder(run), "training"):
        with pytest.raises(RunLocked, match=f"process {os.getpid()}"):
            RunLock(RunFolder(run)).acquire()
        before = _digest(run)
        res = run_cli("resume", str(run))
        assert res.returncode == 2, res.stderr
        assert f"in use by process {os.getpid()}" in res.stderr.strip().splitlines()[-1]
        assert _digest(run) == before
    # the lock is free again: taking it works, and says nothing was taken over (it was released, not left behind)
    lock = RunLock(RunFolder(run)).acquire()
    assert lock.took_over is None
    lock.release()


def test_a_lock_left_by_a_dead_process_is_taken_over_and_said(tmp_path):
    folder = RunFolder(tmp_path)
    (tmp_path / ".lock").write_text(json.dumps({"pid": 999999, "host": "elsewhere", "purpose": "training"}))
    lock = RunLock(folder).acquire()
    assert lock.took_over["pid"] == 999999  # the kernel dropped its flock when it died: the file is all that was left
    lock.release()


# --------------------------------------------------------------------------- honest states, Ctrl-C = Stop

def test_a_killed_run_shows_interrupted_then_resumes_and_merges(micro_model, tmp_path, run_cli):
    runs = tmp_path / "runs"
    proc = _start(micro_model, runs, "killed", **{"train.max_steps": 4000, "train.save_steps": 2})
    folder = RunFolder(runs / "killed")
    _wait_for_step(folder, 5, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    info = folder.read_info()
    assert info["status"] == "training" and info["pid"] == proc.pid  # what run.json was left saying
    assert effective_status(info, folder) == INTERRUPTED
    [listed] = list_runs(runs)
    assert listed["status"] == INTERRUPTED and listed["recorded_status"] == "training"
    res = run_cli("runs", "--runs-dir", str(runs))
    assert res.returncode == 0 and "killed" in res.stdout
    assert "interrupted at step" in res.stdout and "(resumable from checkpoint" in res.stdout
    # a merge uses the newest complete checkpoint's adapter when adapter/ was never written
    from core.run import RunInfo

    assert RunInfo.load(folder.path).adapter_dir.parent == folder.checkpoints
    res = run_cli("resume", str(folder.path), "--set", "train.max_steps=8")
    assert res.returncode == 0, res.stderr[-2000:]
    assert folder.read_info()["status"] == "finished" and folder.has_adapter()
    steps = [r["step"] for r in folder.read_metrics() if r.get("loss") is not None]
    assert steps == sorted(steps) and len(steps) == len(set(steps)), steps  # continued, no step twice


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_act_like_stop(micro_model, tmp_path, sig, code):
    runs = tmp_path / "runs"
    # save_steps far away: without Stop's own checkpoint, nothing could be resumed
    proc = _start(micro_model, runs, "signalled", **{"train.max_steps": 4000, "train.save_steps": 1000})
    folder = RunFolder(runs / "signalled")
    _wait_for_step(folder, 3, proc)
    os.kill(proc.pid, sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    assert "stopping after the current step" in err and "adapter saved" in err
    info = folder.read_info()
    assert info["status"] == "stopped" and effective_status(info, folder) == "stopped"
    ckpt = folder.last_checkpoint()
    assert ckpt is not None and int(ckpt.name.split("-")[-1]) == info["step"]
    from peft import PeftConfig

    assert PeftConfig.from_pretrained(str(folder.adapter)).r == C.LoraSection().r  # a loadable adapter
    assert out.strip().splitlines()[-1] == str(folder.path)


# --------------------------------------------------------------------------- safe resume

def test_resuming_a_finished_run_changes_nothing(finished_run, run_cli):
    before = _digest(finished_run)
    res = run_cli("resume", str(finished_run))
    assert res.returncode == 0 and "already finished at step 3" in res.stderr
    assert _digest(finished_run) == before


def test_a_resume_that_changes_the_adapter_shape_leaves_the_folder_byte_identical(finished_run, tmp_path, run_cli):
    run = _copy(finished_run, tmp_path / "run")
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps(dict(info, status="stopped")))
    before = _digest(run)
    res = run_cli("resume", str(run), "--set", "lora.r=8")
    assert res.returncode == 2
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot resume run with a different adapter or base (lora.r 16 → 8)"), last
    assert "train.learning_rate" in last  # what may change is said
    assert _digest(run) == before
    again = run_cli("resume", str(run), "--set", "train.max_steps=4")  # a plain resume still works
    assert again.returncode == 0, again.stderr[-2000:]


def test_a_checkpoint_missing_its_weights_is_skipped_for_the_one_before(finished_run, tmp_path):
    from core.train.job import TrainingJob

    run = _copy(finished_run, tmp_path / "run")
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps(dict(info, status="stopped")))
    newest = RunFolder(run).last_checkpoint()
    (newest / "adapter_model.safetensors").unlink()
    job = TrainingJob(C.load_yaml(run / "config.yaml", ["train.max_steps=4"]), tmp_path, resume_dir=run)
    job.run()
    assert job.notes == [f"skipped incomplete checkpoint {newest.name}"]
    assert job.state == "finished" and job.progress.start_step == 2  # continued from checkpoint-2


# --------------------------------------------------------------------------- train more

def _lrs(run: Path) -> dict[int, float]:
    return {r["step"]: r["learning_rate"] for r in RunFolder(run).read_metrics() if r.get("learning_rate") is not None}


def _scheduled_lrs(cfg: C.RunConfig, total: int) -> list[float]:
    """transformers' own schedule for ``total`` steps: the learning rate of steps 1..total (what the log shows)."""
    import torch
    from transformers.optimization import get_scheduler

    t = cfg.train
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=t.learning_rate)
    warmup = t.warmup_steps or math.ceil(total * t.warmup_ratio)
    sched = get_scheduler(t.lr_scheduler_type, optimizer=opt, num_warmup_steps=warmup, num_training_steps=total)
    out = []
    for _ in range(total):
        out.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return out


def test_train_more_continues_a_finished_run_from_its_last_step(finished_run, tmp_path, run_cli):
    run = _copy(finished_run, tmp_path / "run")
    before = RunFolder(run).read_metrics()
    adapter_before = (run / "adapter" / "adapter_model.safetensors").read_bytes()
    res = run_cli("resume", str(run), "--more-steps", "3")
    assert res.returncode == 0, res.stderr[-2000:]
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["step"] == 6 and info["adapter_step"] == 6
    assert info["continued"] == [{"from_step": 3, "to_step": 6, "schedule": "extend", "finished": True}]
    after = RunFolder(run).read_metrics()
    assert [r for r in after if r["step"] <= 3] == before, "the first part's curve is kept as it was"
    steps = [r["step"] for r in after if r.get("loss") is not None]
    assert steps == sorted(steps) and steps[-1] == 6 and {4, 5, 6} <= set(steps), steps
    assert (run / "adapter" / "adapter_model.safetensors").read_bytes() != adapter_before
    assert C.load_yaml(run / "config.yaml").train.max_steps == 6
    # extend: the schedule of a 6-step run, continued at step 4
    cfg = C.load_yaml(run / "config.yaml")
    want = _scheduled_lrs(cfg, 6)
    assert [_lrs(run)[k] for k in (4, 5, 6)] == pytest.approx(want[3:], rel=1e-6)


def test_train_more_with_a_restarted_schedule_repeats_the_first_schedule(finished_run, tmp_path):
    from core.train.job import TrainingJob
    from core.train.resume import More

    run = _copy(finished_run, tmp_path / "run")
    first = _lrs(run)
    TrainingJob(C.load_yaml(run / "config.yaml"), tmp_path, resume_dir=run, more=More(steps=3, schedule="restart")).run()
    lrs = _lrs(run)
    assert [lrs[k] for k in (4, 5, 6)] == pytest.approx([first[k] for k in (1, 2, 3)], rel=1e-6)


def test_a_stopped_train_more_keeps_the_finished_adapter_until_the_new_part_finishes(finished_run, tmp_path):
    from core.train.job import TrainingJob
    from core.train.resume import More

    run = _copy(finished_run, tmp_path / "run")
    adapter = (run / "adapter" / "adapter_model.safetensors").read_bytes()
    job = TrainingJob(C.load_yaml(run / "config.yaml"), tmp_path, resume_dir=run, more=More(steps=3))
    job.stop()  # asked before it starts: it stops after its first new step
    job.run()
    info = json.loads((run / "run.json").read_text())
    assert job.state == "stopped" and info["step"] == 4 and info["adapter_step"] == 3
    assert info["continued"][-1]["finished"] is False
    assert (run / "adapter" / "adapter_model.safetensors").read_bytes() == adapter
    assert job.message == "stopped at step 4 while training more; the adapter of step 3 is kept (resume to finish)"
    TrainingJob(C.load_yaml(run / "config.yaml"), tmp_path, resume_dir=run).run()  # a plain resume finishes it
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["step"] == 6 and info["adapter_step"] == 6
    assert info["continued"][-1]["finished"] is True
    assert (run / "adapter" / "adapter_model.safetensors").read_bytes() != adapter


def test_train_more_refusals_are_one_line_and_change_nothing(finished_run, tmp_path, cli_here):
    import shutil

    from core.errors import JobError
    from core.train.job import TrainingJob
    from core.train.resume import More

    run = _copy(finished_run, tmp_path / "run")
    shutil.rmtree(RunFolder(run).checkpoints)
    before = _digest(run)
    res = cli_here("resume", str(run), "--more-steps", "3")
    assert res.returncode == 2, res.stderr[-2000:]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot train run further: it finished at step 3 but it has no complete"), last
    assert _digest(run) == before
    with pytest.raises(JobError, match="give a positive number of steps or of epochs"):
        More(steps=0)
    with pytest.raises(JobError, match="not both"):
        More(steps=2, epochs=1.0)
    stopped = _copy(finished_run, tmp_path / "stopped")
    info = json.loads((stopped / "run.json").read_text())
    (stopped / "run.json").write_text(json.dumps(dict(info, status="stopped")))
    before = _digest(stopped)
    job = TrainingJob(C.load_yaml(stopped / "config.yaml"), tmp_path, resume_dir=stopped, more=More(steps=3))
    with pytest.raises(JobError, match="has not finished \\(status stopped\\): resume it instead"):
        job.run()
    assert _digest(stopped) == before


# --------------------------------------------------------------------------- early, one-line errors

def test_a_runs_dir_that_is_a_file_is_one_line_before_any_model_loads(micro_model, tmp_path, cli_here):
    not_a_folder = tmp_path / "runs"
    not_a_folder.write_text("x")
    res = cli_here("train", DEMO, "--runs-dir", str(not_a_folder), *sum((["--set", kv] for kv in
                                                                       micro_overrides(micro_model)), []))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith(f"error: the runs folder {not_a_folder} is a file")


@pytest.mark.parametrize("setting,message", [
    ("lora.target_modules=[q_proj,nope_proj]", "lora.target_modules: nope_proj names no module of the model"),
    ("lora.modules_to_save=[lm_head,no_such_head]", "lora.modules_to_save: no_such_head names no module"),
    ("lora.layers_to_transform=[0,7]", "lora.layers_to_transform: the model has 2 layers (0–1), got 7"),
])
def test_module_names_are_checked_before_the_model_loads_and_leave_no_folder(micro_model, tmp_path, setting, message):
    from core.train.job import TrainingJob

    cfg = C.load_yaml(DEMO, micro_overrides(micro_model) + [setting])
    job = TrainingJob(cfg, tmp_path)
    with pytest.raises(ConfigError) as e:
        job.run()
    assert message in str(e.value)
    assert not any(tmp_path.iterdir())


def test_only_these_layers_works_with_all_linear(micro_model, tmp_path):
    from peft import PeftConfig

    from core.train.job import TrainingJob

    cfg = C.load_yaml(DEMO, micro_overrides(micro_model, **{"train.max_steps": 1}) + ["lora.layers_to_transform=[1]"])
    run = TrainingJob(cfg, tmp_path).run()
    saved = PeftConfig.from_pretrained(str(RunFolder(run).adapter))
    assert saved.layers_to_transform == [1] and {"q_proj", "down_proj"} <= set(saved.target_modules)
    from safetensors.torch import load_file

    keys = load_file(str(RunFolder(run).adapter / "adapter_model.safetensors"))
    assert keys and all(".layers.1." in k for k in keys)


def test_odd_data_files_name_the_file_and_the_row(tmp_path):
    from core import data as D
    from core import tasks
    from core.templates import TemplateContext

    numbers = tmp_path / "numbers.json"
    numbers.write_text("[1, 2, 3]")
    with pytest.raises(DataError, match=r"numbers.json item 1: expected a record .* got int"):
        D.read_table(numbers)
    with pytest.raises(DataError, match="item 1 must be an object with role and content"):
        tasks.format_row({"messages": ["hello", "hi"]}, "chat", TemplateContext(eos_token=""))


@pytest.mark.parametrize("value", ["0", "-5"])
def test_max_new_tokens_out_of_bounds_is_one_line(value, run_cli, tmp_path):
    res = run_cli("generate", str(tmp_path), "--input", "x.jsonl", "--out", "o.csv", "--max-new-tokens", value)
    assert res.returncode == 2 and res.stderr.strip() == f"error: --max-new-tokens: must be ≥ 1, got {value}"


def test_generate_checks_its_output_before_any_work(tmp_path, run_cli):
    src = tmp_path / "in.jsonl"
    src.write_text('{"context": "RAM"}\n')
    res = run_cli("generate", str(tmp_path / "no-run"), "--input", str(src), "--out", str(tmp_path))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith(f"error: --out {tmp_path} is a folder")


def test_rows_dropped_for_length_are_a_run_warning(micro_model, tmp_path):
    from core.train.job import TrainingJob

    long = tmp_path / "long.jsonl"
    rows = [json.loads(x) for x in SHORT_MCQ.read_text(encoding="utf-8").splitlines()[:6]]
    rows[0]["context"] = " ".join(["rất dài"] * 400)  # its answer starts far beyond max_length
    long.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    cfg = C.load_yaml(DEMO, micro_overrides(micro_model, **{"data.source": str(long), "train.max_steps": 1}))
    job = TrainingJob(cfg, tmp_path / "runs")
    job.run()
    [warning] = [w for w in job.warnings if "were dropped" in w]
    assert warning.startswith("data.max_length: 1 rows were dropped") and "the longest row has" in warning
    assert warning in json.loads((job.run_dir / "run.json").read_text())["warnings"]


def test_a_killed_merge_leaves_no_hidden_folder_behind(tmp_path):
    from core.merge.run import clean_stale_merges

    run = tmp_path / "run"
    leftover = run / ".merged.merging-999999-abc"
    leftover.mkdir(parents=True)
    (leftover / "model.safetensors").write_bytes(b"x" * 1024)
    mine = run / f".merged.merging-{os.getpid()}-def"  # this process: a merge in progress, kept
    mine.mkdir()
    assert clean_stale_merges(tmp_path) == [leftover]
    assert not leftover.exists() and mine.exists()


# --------------------------------------------------------------------------- what the API may read

@pytest.fixture
def outside(tmp_path) -> Path:
    secret = tmp_path / "secret" / "passwords.csv"
    secret.parent.mkdir()
    secret.write_text("question,answer_a\nhunter2-secret,hunter2-pin\n")
    return secret


def test_no_dataset_argument_reads_a_file_outside_the_allowed_folders(outside, tmp_path):
    from gui.state import allow_data_dir, effective_config
    from gui.tabs import dataset as tab_dataset
    from gui.tabs import params as tab_params
    from gui.tabs import training as tab_training

    allow_data_dir(tmp_path / "uploads")
    dataset = {"source": str(outside), "hub_split": "train", "column_map": {}}
    config = C.to_dict(C.RunConfig())
    with pytest.raises(DataError, match="outside the folders this app may read"):
        effective_config(config, dataset)
    html_, tokens = tab_dataset.preview_row(dataset, config, 1, "en")
    assert "outside the folders" in html_ and "hunter2" not in tokens and "hunter2" not in html_
    assert "outside the folders" in tab_training.start_training(config, dataset, "x", "en", tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
    config["data"]["source"] = str(outside)  # the same file named in the config instead
    assert "outside the folders" in tab_training.start_training(config, None, "x", "en", tmp_path / "runs")
    assert "outside the folders" in tab_params.estimate(config, None, "en")
    checks, _ = tab_params.validate_config(config, None, None, "[]", "en")
    assert "outside the folders" in checks
    via_link = tmp_path / "uploads" / "link.csv"
    via_link.parent.mkdir(exist_ok=True)
    via_link.symlink_to(outside)
    with pytest.raises(DataError, match="outside the folders"):
        effective_config(config, dict(dataset, source=str(via_link)))
    out = dict(zip(tab_dataset._output_names(), tab_dataset.load_dataset(str(outside), "train", {}, "en",
                                                                          tmp_path / "uploads")))
    assert "escapes its folder" in out["info"]


# ----------------------------------------------------------------------------- the app as a process

def _serve(runs: Path, log: Path) -> tuple[subprocess.Popen, str]:
    from bench.app_process import serve

    return serve(runs, log, lang="en", extra=("--data-dir", str(SHORT_MCQ.parent)))


def test_the_app_stops_its_training_on_sigterm_and_merges_a_run_made_after_the_page(micro_model, tmp_path):
    from gradio_client import Client

    runs, log = tmp_path / "runs", tmp_path / "app.log"
    proc, url = _serve(runs, log)
    try:
        client = Client(url, verbose=False)
        cfg = C.load_yaml(REPO / DEMO, micro_overrides(micro_model, **{"train.max_steps": 5000}))
        dataset = {"source": str(SHORT_MCQ), "hub_split": "train", "column_map": {}}
        note = client.predict(C.to_dict(cfg), dataset, "shutdown", api_name="/start_training")
        assert "error" not in note.lower(), note
        deadline = time.time() + 120
        while client.predict(api_name="/training_status").get("step", 0) < 2:
            assert time.time() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        with urllib.request.urlopen(url.rstrip("/") + "/api/training_status", timeout=30) as r:  # the plain route
            plain = json.loads(r.read())
        assert plain["status"] == "training" and plain["step"] >= 2 and plain["max_steps"] == 5000
        assert plain["run_dir"] == client.predict(api_name="/training_status")["run_dir"]
        proc.send_signal(signal.SIGTERM)  # what a service manager, or closing a terminal, sends
        assert proc.wait(120) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    (run,) = [Path(info["run_dir"]) for info in list_runs(runs)]
    folder = RunFolder(run)
    assert folder.read_info()["status"] == "stopped" and folder.has_adapter(), log.read_text()[-2000:]
    assert "stopping the training run" in log.read_text()

    proc, url = _serve(runs, log)  # a page built with the run in its list, then one made after it
    try:
        client = Client(url, verbose=False)
        made = subprocess.run(_train_args(micro_model, runs, "later", **{"train.max_steps": 2}), cwd=REPO,
                              env=_env(), capture_output=True, text=True, timeout=300)
        assert made.returncode == 0, made.stderr[-2000:]
        later = Path(made.stdout.strip().splitlines()[-1])
        badge, _report, out_dir = client.predict(later.name, "float32", "auto", api_name="/merge")
        assert "passed" in badge.lower() or "✓" in badge, badge
        assert RunFolder(later).has_merged()
    finally:
        proc.terminate()
        proc.wait(60)
