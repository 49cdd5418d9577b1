"""Evaluation: the report's numbers come from held-out rows, for each model, and are saved."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import micro_overrides

from core import config as C
from core.evaluate import evaluate_run, report_table
from core.tasks.price import baselines as price_baselines
from core.tasks.price import parse_price
from core.train.job import TrainingJob


@pytest.fixture(scope="module")
def mcq_run(micro_model, tmp_path_factory) -> Path:
    cfg = C.load_yaml("presets/demo.yaml", micro_overrides(micro_model))
    return TrainingJob(cfg, tmp_path_factory.mktemp("eval-runs")).run()


def test_evaluate_writes_the_report_for_base_and_adapter(mcq_run):
    report = evaluate_run(mcq_run, split="test", which=("base", "adapter", "merged"), limit=2, max_new_tokens=12)
    saved = json.loads((mcq_run / "eval_report.json").read_text(encoding="utf-8"))
    assert saved == report
    assert report["split"] == "test" and report["n_prompts"] == 2
    from core.tasks.mcq import MCQ_REPETITION_PENALTY

    # MCQ generation is measured as the Classroom tab generates: greedy with the MCQ repetition penalty
    assert report["decoding"] == {"greedy": True, "repetition_penalty": MCQ_REPETITION_PENALTY}
    assert set(report["models"]) == {"base", "adapter"}  # no merged/ folder yet: skipped, not failed
    from conftest import SHORT_MCQ

    frame_test_rows = sum('"split": "test"' in line for line in SHORT_MCQ.read_text(encoding="utf-8").splitlines())
    assert report["n_rows"] == frame_test_rows
    for m in report["models"].values():
        assert math.isfinite(m["loss"]) and m["perplexity"] > 1
        assert 0.0 <= m["validity_rate"] <= 1.0 and m["n"] == 2
        assert set(m["reason_counts"]) >= {"no_question", "missing_options", "no_answer"}
        assert m["general_perplexity"] > 1
    # the adapter changed the model, so its numbers differ from the base's
    assert report["models"]["base"]["loss"] != report["models"]["adapter"]["loss"]
    assert report["forgetting"]["ratio"] == pytest.approx(
        report["models"]["adapter"]["general_perplexity"] / report["models"]["base"]["general_perplexity"], rel=1e-2)
    table = report_table(report)
    assert [r["model"] for r in table] == ["base", "adapter"] and "validity" in table[0]


def test_evaluate_cli(mcq_run, run_cli):
    res = run_cli("evaluate", str(mcq_run), "--which", "base,adapter", "--limit", "1", "--max-new-tokens", "8")
    assert res.returncode == 0, res.stderr[-1500:]
    assert "model=base" in res.stdout and "model=adapter" in res.stdout
    assert res.stdout.strip().splitlines()[-1].endswith("eval_report.json")


def test_bad_split_is_a_clear_error(run_cli, mcq_run):
    res = run_cli("evaluate", str(mcq_run), "--split", "dev")
    assert res.returncode != 0 and "invalid choice: 'dev'" in res.stderr


@pytest.mark.parametrize("text,value", [("13.00", 13.0), (" 1,299.50 dollars", 1299.5), ("$7", 7.0), ("n/a", None)])
def test_parse_price(text, value):
    assert parse_price(text) == value


def test_price_baselines_fit_on_train_rows_only():
    train = [{"price": 10.0 + p / 10, "pages": p, "format": f} for p in range(100, 400, 20) for f in ("ebook", "paper")]
    held = [{"price": 10.0 + 250 / 10, "pages": 250, "format": "paper"}]
    mae = price_baselines(train, held)
    assert mae["linear_regression"] < 1e-6 < mae["mean"]
