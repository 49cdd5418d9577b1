"""Handler tests of the result tabs (merge, compare, classroom, analysis), without a browser.

One 3-step micro run is trained for the whole module; every handler is called as the GUI would call it.
"""

from __future__ import annotations

import csv
import html
import time
from pathlib import Path

import pytest
from conftest import REPO, micro_overrides

from core.locale import text as t
from gui.render.compare import word_diff_html
from gui.render.mcq_cards import quiz_card_html
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
    assert run_picker.default_run(runs_dir, "mcq") == micro_run
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


@pytest.mark.extended  # the browser test drives the same handler
@pytest.mark.skipif(__import__("core.export.toolchain", fromlist=["x"]).converter_path() is None,
                    reason="llama.cpp's converter is not installed: run `python -m core.export.toolchain` once")
def test_export_handler_writes_a_checked_gguf_and_says_how_to_use_it(merged, micro_run, runs_dir):
    verdict, files = tab_merge.export(micro_run, "f16", "vi", str(runs_dir))
    assert "ls-error" not in verdict and "✓" in verdict, verdict
    folder = runs_dir / micro_run / "export" / "f16"
    assert str(folder / "Modelfile") in files and "ollama create" in files
    assert (folder / "Modelfile").read_text(encoding="utf-8").startswith("# Made by LoRA Studio")
    verdict, _ = tab_merge.export(None, "f16", "vi", str(runs_dir))
    assert t("runs.pick_run", "vi") in verdict


# ----------------------------------------------------------------------------- compare


def test_a_merged_pane_in_another_precision_says_why_it_parts():
    """A bf16 run on a CPU with native bf16: base + adapter runs in bfloat16, the merged model (saved in float32)
    in float32. Where their tokens part, the merged pane says it is the precision; where they agree, or both run
    in one precision, it says nothing."""
    from core.inference.generate import Generation
    from gui.render.compare import render_panes

    note = html.escape(t("compare.dtype_differs", "en", merged="float32", adapter="bfloat16"))
    base = Generation("p", "x", [9], "bfloat16")
    adapter = Generation("p", "a b c", [1, 2, 3], "bfloat16")
    parted = Generation("p", "a b d", [1, 2, 4], "float32")
    assert note in render_panes({"base": base, "adapter": adapter, "merged": parted}, "en")[2]
    same = Generation("p", "a b c", [1, 2, 3], "float32")
    assert note not in render_panes({"base": base, "adapter": adapter, "merged": same}, "en")[2]
    one_precision = Generation("p", "a b d", [1, 2, 4], "bfloat16")
    assert "ls-note" not in render_panes({"base": base, "adapter": adapter, "merged": one_precision}, "en")[2]

def test_compare_three_panes_merged_identical(merged, micro_run, runs_dir):
    prompt, context = tab_compare.example_input(micro_run, 0, str(runs_dir))
    assert context and not prompt  # MCQ run: a paragraph of the test split
    base, adapter, merged_pane, status = tab_compare.compare(
        micro_run, "", context, "greedy", 0.7, 0.9, 0, 12, "en", str(runs_dir))
    assert "ls-error" not in status, status
    # the demo preset's run writes the right option first: the status says why every key in the panes is A
    assert html.escape(t("compare.key_first", "en")) in status
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
    from core.tasks.mcq_sample import SAMPLE

    frame = read_table(resolve_source(SAMPLE))
    test = set(frame[frame["split"] == "test"]["context"].str.strip())
    contexts = tab_classroom.sample_contexts()
    assert contexts and all(c["context"] in test for c in contexts)
    choices = tab_classroom.context_choices("vi")
    assert len(choices) == len({c["topic"] for c in contexts})  # one per topic
    _, text = tab_classroom.pick_random(contexts[0]["context"])
    assert text in test and text != contexts[0]["context"]


def _kept_item(paragraph: str, text: str, *, rekey: bool = True) -> dict:
    """A question as the Classroom keeps it, read by the pipeline from ``text`` (what a model might have written)."""
    from core.inference import quiz as Q

    q = Q.choose([Q.read_candidate(text, paragraph, rekey=rekey)], paragraph, time.monotonic())
    return tab_classroom._item(q, 0)


PARAGRAPH = ("Bàn phím và chuột là thiết bị vào. Màn hình và máy in là thiết bị ra. Thiết bị vào dùng để nhập dữ "
             "liệu vào máy tính, thiết bị ra đưa kết quả ra cho người dùng.")


def test_classroom_writes_one_question_per_paragraph_of_a_chapter(micro_run, runs_dir):
    contexts = [c["context"] for c in tab_classroom.sample_contexts()[:2]]
    base, status, items, kept = tab_classroom.write_quiz(micro_run, "\n\n".join(contexts), "", True, False, "vi",
                                                         str(runs_dir))
    assert "ls-error" not in status, status
    assert base == ""  # the comparison is for one paragraph
    assert [it["paragraph"] for it in items] == contexts and len(kept) == 2
    assert all(it["n_candidates"] == tab_classroom.Q.CANDIDATES for it in items)
    assert kept == [it["status"] == "ok" and it["structure_ok"] for it in items]
    # one paragraph: the original model answers beside it, with its own structure badge
    base, status, items, kept = tab_classroom.write_quiz(micro_run, contexts[0], "", True, False, "en", str(runs_dir))
    assert t("classroom.base", "en") in base and "ls-badge-pill" in base and len(items) == 1
    # "write another": the same paragraph, other samples
    again, kept2, note = tab_classroom.write_another(0, micro_run, items, kept, "en", str(runs_dir))
    assert again[0]["paragraph"] == contexts[0] and again[0]["seed"] != items[0]["seed"]
    assert t("classroom.rewritten", "en", n=1, s="").split()[0] in note


def test_classroom_says_what_it_did_not_use_and_stays_usable(micro_run, runs_dir):
    _, status, items, _ = tab_classroom.write_quiz(micro_run, PARAGRAPH, "thiết bị vào", False, False, "vi",
                                                   str(runs_dir))
    assert t("classroom.answer_not_used", "vi") in status and len(items) == 1  # a plain MCQ run: no answer line
    for empty in ("", "   \n\n  "):
        base, status, items, kept = tab_classroom.write_quiz(micro_run, empty, "", True, False, "vi", str(runs_dir))
        assert t("classroom.empty", "vi") in status
    assert "ls-warn" in tab_classroom.write_quiz(None, PARAGRAPH, "", True, False, "vi", str(runs_dir))[1]


def test_a_flagged_question_says_why_in_words_and_a_good_one_has_both_badges():
    from core.tasks.mcq_format import format_mcq

    # the key names a device the paragraph never mentions, while option A is in it
    wrong_key = format_mcq("Thiết bị nào là thiết bị vào?", ["Bàn phím", "Loa", "Tai nghe", "Máy chiếu"], "C")
    flagged = tab_classroom._question(_kept_item(PARAGRAPH, wrong_key, rekey=False))
    assert flagged.status == "flagged" and "key_unsupported" in flagged.reasons
    card = quiz_card_html(flagged, "vi")
    assert t("mcq.content.key_unsupported", "vi", better="A", key="C") in html.unescape(card)
    assert t("mcq.badge.structure_ok", "vi") in card and t("mcq.badge.content_flagged", "vi") in card
    rekeyed = tab_classroom._question(_kept_item(PARAGRAPH, wrong_key))  # the pipeline moves the key, and says so
    assert rekeyed.mcq.answer == "A" and rekeyed.status == "ok"
    assert t("mcq.content.rekeyed", "en", old="C", new="A") in html.unescape(quiz_card_html(rekeyed, "en"))
    assert t("mcq.badge.content_ok", "en") in quiz_card_html(rekeyed, "en")


def test_only_kept_questions_are_exported_and_every_format_parses_back():
    import xml.etree.ElementTree as ET

    import openpyxl

    from core.tasks.mcq_format import format_mcq

    good = format_mcq("Thiết bị nào là thiết bị vào?", ["Bàn phím", "Màn hình", "Máy in", "Loa"], "A")
    other = format_mcq("Thiết bị nào đưa kết quả ra?", ["Chuột", "Màn hình", "Bàn phím", "Ổ cứng"], "B")
    items = [_kept_item(PARAGRAPH, good), _kept_item(PARAGRAPH, other), _kept_item(PARAGRAPH, "rác")]
    kept = [True, False, True]  # the teacher dropped the second; the third has no structure and cannot go out
    assert tab_classroom.export_note(items, kept, "en") == t("classroom.export_intro", "en", n=1, total=3)
    for fmt in tab_classroom.FORMATS:
        path, status = tab_classroom.export_quiz(items, kept, fmt, "Kiểm tra 15 phút", "vi")
        assert path and "ls-error" not in status, (fmt, status)
        data = Path(path).read_bytes()
        if fmt in ("kahoot", "quizizz"):
            import io

            cells = [str(c) for row in openpyxl.load_workbook(io.BytesIO(data)).active.iter_rows(values_only=True)
                     for c in row if c is not None]
            assert "Thiết bị nào là thiết bị vào?" in cells and "Thiết bị nào đưa kết quả ra?" not in cells, fmt
        else:
            text = data.decode("utf-8-sig")
            assert "Thiết bị nào là thiết bị vào?" in text and "Thiết bị nào đưa kết quả ra?" not in text, fmt
            if fmt == "moodle":
                assert len(ET.fromstring(text).findall("question[@type='multichoice']")) == 1
            if fmt == "csv":
                rows = list(csv.DictReader(io_lines(text)))
                assert len(rows) == 1 and rows[0]["key"] == "A"
    path, status = tab_classroom.export_quiz(items, [False, False, False], "gift", "", "vi")
    assert path is None and t("classroom.nothing", "vi") in status


def io_lines(text: str):
    import io

    return io.StringIO(text, newline="")


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
