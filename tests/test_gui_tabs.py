"""Handler tests of the result tabs (merge, compare, classroom, analysis), without a browser.

One 3-step micro run is trained for the whole module; every handler is called as the GUI would call it.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import REPO, micro_overrides

from core.locale import text as t
from gui.render.compare import word_diff_html
from gui.tabs import analysis as tab_analysis
from gui.tabs import classroom as tab_classroom
from gui.tabs import compare as tab_compare
from gui.tabs import merge as tab_merge
from gui.widgets import run_picker



@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Micro models run several times faster on one thread: the hand-off costs more than their tiny matmuls."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gui-runs")


@pytest.fixture(scope="module")
def micro_run(micro_model, runs_dir) -> str:
    """The name of a finished 3-step micro run (MCQ template) inside ``runs_dir``."""
    from core import config as C
    from core.train.job import TrainingJob

    run_dir = TrainingJob(C.load_yaml(REPO / "presets" / "demo.yaml", micro_overrides(micro_model)), runs_dir).run()
    return run_dir.name


@pytest.fixture(scope="module")
def second_run(micro_model, runs_dir) -> str:
    """Another micro run on the same base (r=4, 2 steps), for switching adapters and comparing analyses."""
    from core import config as C
    from core.train.job import TrainingJob

    overrides = micro_overrides(micro_model, **{"lora.r": 4, "train.max_steps": 2, "run_name": "second"})
    return TrainingJob(C.load_yaml(REPO / "presets" / "demo.yaml", overrides), runs_dir).run().name


@pytest.fixture(scope="module")
def merged(micro_run, runs_dir) -> tuple[str, str, str]:
    """The merge handler's output for the micro run (fp32 onto the original base)."""
    return tab_merge.merge(micro_run, "float32", "auto", "en", str(runs_dir))


# ----------------------------------------------------------------------------- texts

def test_word_diff_escapes_and_marks():
    out = word_diff_html("<script>alert(1)</script> same words", "same words")
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert '<mark class="ls-ins">' in out
    out = word_diff_html("a b c", "a x c")
    assert '<del class="ls-del">x</del>' in out and '<mark class="ls-ins">b</mark>' in out
    assert word_diff_html("a & b", "a & b") == "a &amp; b"


def test_run_picker_lists_only_runs_with_an_adapter(micro_run, runs_dir):
    (runs_dir / "half-done").mkdir()
    (runs_dir / "half-done" / "run.json").write_text('{"status": "failed"}', encoding="utf-8")
    names = [value for _, value in run_picker.run_choices(runs_dir, "vi")]
    assert micro_run in names and "half-done" not in names
    assert run_picker.default_run(runs_dir, "mcq_generation") == micro_run
    with pytest.raises(Exception):
        run_picker.resolve_run(runs_dir, "../../etc")


# ----------------------------------------------------------------------------- merge

def test_merge_handler_passes_and_is_idempotent(merged, micro_run, runs_dir):
    badge, report, out_dir = merged
    assert "PASS" in badge, badge
    assert report.strip()
    assert Path(out_dir) == runs_dir / micro_run / "merged"
    assert (Path(out_dir) / "config.json").exists()
    again = tab_merge.merge(micro_run, "float32", "auto", "vi", str(runs_dir))
    assert "ĐẠT" in again[0] and t("merge.already", "vi") in again[0]
    shown = tab_merge.show_existing(micro_run, "en", str(runs_dir))
    assert "PASS" in shown[0] and shown[2] == out_dir


def test_push_without_a_token_says_so_and_clears_the_box(merged, micro_run, runs_dir):
    result, token_box = tab_merge.push(micro_run, "me/model", "", True, "en", str(runs_dir))
    assert t("merge.push_need_token", "en") in result and token_box == ""
    result, token_box = tab_merge.push(micro_run, "me/model", "hf_secret123", True, "en", str(runs_dir))
    assert token_box == "" and "hf_secret123" not in result  # offline: a clear error, never the token


# ----------------------------------------------------------------------------- compare

def test_compare_three_panes_merged_identical(merged, micro_run, runs_dir):
    prompt, context = tab_compare.example_input(micro_run, 0, str(runs_dir))
    assert context and not prompt  # MCQ run: a paragraph of the test split
    base, adapter, merged_pane, status = tab_compare.compare(
        micro_run, "", context, "greedy", 0.7, 0.9, 0, 12, "en", str(runs_dir))
    assert "ls-error" not in status, status
    assert t("compare.reference_badge", "en") in adapter
    assert t("compare.identical", "en") in merged_pane
    assert "ls-badge" in base


def test_compare_batch_writes_a_csv(merged, micro_run, runs_dir):
    path, preview, status = tab_compare.batch(micro_run, "test", 2, "greedy", 0.7, 0.9, 0, 8, "en", str(runs_dir))
    assert path and Path(path).exists(), status
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and {"base", "adapter", "merged", "merged_identical"} <= set(rows[0])
    assert all(r["merged_identical"] == "True" for r in rows)


# ----------------------------------------------------------------------------- classroom

def test_sample_contexts_come_from_the_test_split():
    from core.data import read_table, resolve_source

    frame = read_table(resolve_source(tab_classroom.SAMPLE))
    test = set(frame[frame["split"] == "test"]["context"].str.strip())
    contexts = tab_classroom.sample_contexts()
    assert contexts and all(c["context"] in test for c in contexts)
    choices = tab_classroom.context_choices("vi")
    assert len(choices) == len({c["topic"] for c in contexts})  # one per topic
    _, text = tab_classroom.pick_random(contexts[0]["context"])
    assert text in test and text != contexts[0]["context"]


def test_classroom_generate_and_export(micro_run, runs_dir):
    from core.tasks.mcq_format import format_mcq

    context = tab_classroom.sample_contexts()[0]["context"]
    base, tuned, status, history, note = tab_classroom.generate(micro_run, context, False, "vi", str(runs_dir), [])
    assert "ls-error" not in status, status
    for card in (base, tuned):
        assert 'class="mcq-card"' in card and ("ls-valid" in card or "ls-invalid" in card)
        assert "<details" in card  # the answer is revealed on click
    assert [h["model"] for h in history] == ["base", "fine-tuned"]
    # a random micro model writes no real question: add a well-formed one to check the exports' content
    good = format_mcq("Thiết bị nào dùng để nhập dữ liệu?", ["Bàn phím", "Màn hình", "Loa", "Máy in"], "A")
    history.append({"model": "fine-tuned", "run": micro_run, "context": context, "text": good})
    assert "ls-valid" in tab_classroom.card_html("x", good, "vi")

    path, msg = tab_classroom.export_csv(history, False, False, "vi")
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and rows[-1]["question"] == "Thiết bị nào dùng để nhập dữ liệu?" and rows[-1]["answer"] == "A"
    path, msg = tab_classroom.export_csv(history, True, True, "vi")
    with open(path, encoding="utf-8-sig", newline="") as f:
        assert len(list(csv.DictReader(f))) == 1

    path, msg = tab_classroom.export_printable(history, True, False, "Kiểm tra 15 phút", "vi")
    page = Path(path).read_text(encoding="utf-8")
    assert "Kiểm tra 15 phút" in page and "Thiết bị nào dùng để nhập dữ liệu?" in page and "Bàn phím" in page
    assert tab_classroom.export_csv([], True, False, "en")[0] is None


def test_evaluation_table_translates_reasons():
    result = {"models": {
        "base": {"n": 4, "n_valid": 1, "validity_rate": 0.25, "reason_counts": {"no_answer": 3}, "perplexity": 12.5,
                 "answer_distribution": {"A": 1, "B": 0, "C": 0, "D": 0, "other": 0}},
        "adapter": {"n": 4, "n_valid": 4, "validity_rate": 1.0, "reason_counts": {"no_answer": 0}, "perplexity": 3.25,
                    "answer_distribution": {"A": 1, "B": 1, "C": 1, "D": 1, "other": 0}}}}
    frame = tab_classroom.evaluation_frame(result, "vi")
    assert list(frame.columns) == ["Chỉ số", "Mô hình gốc", "Mô hình đã tinh chỉnh"]
    cells = frame.astype(str).values.tolist()
    assert [t("classroom.validity", "vi"), "1/4 · 25%", "4/4 · 100%"] in cells
    from core import locale

    assert any(locale.text("mcq.reason.no_answer", "vi") in row[0] for row in cells)


# ----------------------------------------------------------------------------- analysis

def test_analysis_handler_writes_json_and_figures(micro_run, runs_dir):
    import plotly.graph_objects as go

    out = tab_analysis.analyze(micro_run, "", False, "vi", str(runs_dir))
    status, reading, heat, heat_b, spectra, intruders, modules, table, results = out
    assert "ls-error" not in status, status
    assert (runs_dir / micro_run / "analysis.json").exists()
    assert reading and all(isinstance(f, go.Figure) for f in (heat, spectra, intruders))
    assert modules["value"] and set(modules["value"]) <= set(modules["choices"])
    assert tab_analysis.redraw_spectra(["v_proj"], results, "en") is not None
    again = tab_analysis.analyze(micro_run, micro_run, False, "en", str(runs_dir))
    assert "reused" in again[0]


def test_classroom_evaluate_table(micro_run, runs_dir):
    table, status = tab_classroom.evaluate(micro_run, 1, "en", str(runs_dir))
    assert "ls-error" not in status, status
    assert list(table.columns) == ["Measure", "Original model", "Fine-tuned model"]
    assert table.iloc[0, 0] == t("classroom.validity", "en")


def test_a_second_run_on_the_same_base_adds_its_adapter(micro_run, second_run, runs_dir):
    from core.inference.modelset import ModelCache

    cache = ModelCache()
    with cache.lock:
        first, names_a = cache.get(runs_dir / micro_run, need_merged=False)
        again, names_b = cache.get(runs_dir / second_run, need_merged=False)
    assert again is first  # the base was not loaded again
    assert names_a["adapter"] == "adapter" and names_b["adapter"] != "adapter"
    assert names_b["adapter"] in first.names()


def test_analysis_of_two_runs_overlays_and_compares(micro_run, second_run, runs_dir):
    out = tab_analysis.analyze(micro_run, second_run, False, "en", str(runs_dir))
    status, reading, heat, heat_b, spectra, intruders, modules, table, results = out
    assert "ls-error" not in status, status
    assert len(results) == 2 and heat_b["visible"] and table["visible"]
    assert {micro_run, second_run} <= set(table["value"].columns)
    assert {tr.legendgroup for tr in spectra.data} == {micro_run, second_run}
