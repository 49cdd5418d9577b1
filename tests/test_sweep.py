"""Sweeps: a grid trained run after run, each a normal run folder, one sweep.json, stop and resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import micro_overrides

from core.errors import ConfigError
from core.run import RunFolder
from core.sweep import Sweep, combinations, parse_grid

DEMO = "presets/demo.yaml"


def test_a_grid_is_every_combination_first_key_slowest_and_bad_items_name_the_flag():
    grid = parse_grid(["lora.r=8,16", "lora.use_rslora=false,true"])
    assert combinations(grid) == [{"lora.r": "8", "lora.use_rslora": "false"}, {"lora.r": "8", "lora.use_rslora": "true"},
                                  {"lora.r": "16", "lora.use_rslora": "false"}, {"lora.r": "16", "lora.use_rslora": "true"}]
    for bad, message in ((["lora.r"], "expected SECTION.FIELD=V1,V2"), (["lora.r="], "expected"),
                         (["lora.r=8", "lora.r=16"], "given twice"), ([], "at least one --grid")):
        with pytest.raises(ConfigError, match=message):
            parse_grid(bad)


def test_the_sweep_command_trains_each_run_and_writes_the_results(micro_model, tmp_path, run_cli):
    sets = [x for kv in micro_overrides(micro_model, **{"train.max_steps": 2}) for x in ("--set", kv)]
    res = run_cli("sweep", DEMO, "--grid", "lora.r=2,4", "--grid", "lora.lora_alpha=4", *sets,
                  "--name", "ranks", "--runs-dir", str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    path = Path(res.stdout.strip().splitlines()[-1])
    assert path == tmp_path / "sweeps" / "ranks" / "sweep.json"
    sweep = json.loads(path.read_text())
    assert sweep["grid"] == {"lora.r": ["2", "4"], "lora.lora_alpha": ["4"]}
    assert [r["state"] for r in sweep["runs"]] == ["finished", "finished"]
    for entry, rank in zip(sweep["runs"], (2, 4)):
        folder = RunFolder(Path(entry["run_dir"]))
        assert folder.has_adapter() and folder.read_config().lora.r == rank
        assert entry["results"]["steps"] == 2 and entry["results"]["final_train_loss"] is not None
        assert entry["alpha_over_r"] == 4 / rank
    table = res.stderr.strip().splitlines()[-3:]
    assert table[0].startswith("run  lora.r  lora.lora_alpha") and sum(line.endswith("*") for line in table) == 1


def test_a_stopped_sweep_resumes_where_it_stopped_and_keeps_the_finished_runs(micro_model, tmp_path):
    sets = micro_overrides(micro_model, **{"train.max_steps": 2})
    grid = parse_grid(["lora.r=2,4"])
    first = Sweep.plan(DEMO, grid, tmp_path, sets=sets, name="resume")
    done: list = []
    first.run(on_job=done.append, stopped=lambda: len(done) == 1, log=lambda m: None)
    stored = json.loads((tmp_path / "sweeps" / "resume" / "sweep.json").read_text())
    assert [r["state"] for r in stored["runs"]] == ["finished", "pending"]
    kept = RunFolder(Path(stored["runs"][0]["run_dir"]))
    stamp = kept.adapter_stamp()

    again = Sweep.plan(DEMO, grid, tmp_path, sets=sets, name="resume")
    again.run(log=lambda m: None)
    assert again.complete and kept.adapter_stamp() == stamp  # the finished run was not trained again
    with pytest.raises(ConfigError, match="already exists with another grid"):
        Sweep.plan(DEMO, parse_grid(["lora.r=8"]), tmp_path, sets=sets, name="resume")


def test_a_combination_the_config_refuses_stops_the_sweep_before_any_training(micro_model, tmp_path, run_cli):
    sets = [x for kv in micro_overrides(micro_model) for x in ("--set", kv)]
    res = run_cli("sweep", DEMO, "--grid", "lora.r=2,0", *sets, "--runs-dir", str(tmp_path))
    assert res.returncode == 2 and "lora.r" in res.stderr.strip().splitlines()[-1]
    assert list(tmp_path.iterdir()) == []


def test_a_run_that_fails_is_marked_failed_with_its_error_and_the_sweep_goes_on(micro_model, tmp_path):
    sets = micro_overrides(micro_model, **{"train.max_steps": 2})
    sweep = Sweep.plan(DEMO, parse_grid(["data.max_length=16,256"]), tmp_path, sets=sets, name="fails")
    sweep.run(log=lambda m: None)
    stored = json.loads((tmp_path / "sweeps" / "fails" / "sweep.json").read_text())
    assert [r["state"] for r in stored["runs"]] == ["failed", "finished"]
    assert "data.max_length=16 is too short" in stored["runs"][0]["error"]
    rows = sweep.table()
    assert rows[1]["best"] and not rows[0]["best"] and rows[0]["error"].startswith("data.max_length=16")
