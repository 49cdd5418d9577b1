"""The read evaluation's bookkeeping: verdicts keyed by paragraph and exact text, counted, never invented."""

from __future__ import annotations

import json

import pytest

from bench import mcq_read
from core.tasks import mcq_reviews as R
from core.tasks.mcq_format import format_mcq

PARAGRAPH = "Bàn phím và chuột là thiết bị vào. Màn hình và máy in là thiết bị ra."
GOOD = format_mcq("Thiết bị nào là thiết bị vào?", ["Bàn phím", "Màn hình", "Máy in", "Loa"], "A")


def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def test_a_verdict_belongs_to_one_text_for_one_paragraph():
    key = R.review_key(PARAGRAPH, GOOD)
    assert key == R.review_key("  " + PARAGRAPH.replace(" ", "  ") + "\n", GOOD + "\n")  # whitespace aside
    assert key != R.review_key(PARAGRAPH + " Loa là thiết bị ra.", GOOD)  # another paragraph
    assert key != R.review_key(PARAGRAPH, GOOD.replace("Đáp án: A", "Đáp án: B"))  # another key letter


def test_the_reviewed_text_drops_the_answer_line_and_keeps_a_broken_generation_as_it_is():
    assert R.reviewed_text("Ý cần hỏi: Bàn phím\n" + GOOD.replace("\n", "\n\n")) == GOOD
    assert R.reviewed_text("  không phải câu hỏi  ") == "không phải câu hỏi"


def test_an_unknown_verdict_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "mcq.jsonl"
    _write(path, [{"key": "a", "verdict": "correct"}, {"key": "b", "verdict": "corect"}])
    with pytest.raises(ValueError, match="line 2: unknown verdict 'corect'"):
        R.load_reviews(path)


def test_the_report_counts_only_read_questions_and_lists_the_unread(tmp_path):
    generated = [{"case": "pipeline", "task": "mcq_generation", "context_id": f"p{i}", "text": text,
                  "status": "ok", "reasons": [], "seconds": s, "key": R.review_key(PARAGRAPH + str(i), text)}
                 for i, (text, s) in enumerate([(GOOD, 2.0), (GOOD, 3.0), ("rác", 4.0)])]
    reviews = {generated[0]["key"]: {"verdict": "correct"}, generated[2]["key"]: {"verdict": "invalid_structure"}}
    case = mcq_read.report(generated, reviews)["mcq_generation · pipeline"]
    assert (case["n"], case["n_read"], case["correct"], case["structure_valid"]) == (3, 2, 1, 2)
    assert case["verdicts"]["invalid_structure"] == 1 and [g["context_id"] for g in case["unread"]] == ["p1"]
    assert case["seconds_p50"] == 3.0


def test_the_committed_review_file_loads_and_every_line_has_its_reading():
    reviews = R.load_reviews()
    for key, row in reviews.items():
        assert row["verdict"] in R.VERDICTS and row["why"].strip() and row["text"].strip(), key


def test_the_candidates_ceiling_counts_paragraphs_with_a_correct_candidate_among_the_read(tmp_path):
    """The pipeline's rows carry every candidate: the report says how many paragraphs a perfect chooser would
    get right (a correct candidate among the read ones), and lists the candidates still to read."""
    bad = GOOD.replace("Đáp án: A", "Đáp án: B")
    pools = [[GOOD, bad], [bad, "rác"], [bad, GOOD]]
    generated = []
    for i, pool in enumerate(pools):
        para = PARAGRAPH + str(i)
        generated.append({"case": "pipeline", "task": "mcq_focus", "context_id": f"p{i}", "text": pool[0],
                          "status": "ok", "reasons": [], "seconds": 1.0, "key": R.review_key(para, pool[0]),
                          "candidates": [{"key": R.review_key(para, t), "text": t} for t in pool]})
    reviews = {R.review_key(PARAGRAPH + "0", GOOD): {"verdict": "correct"},
               R.review_key(PARAGRAPH + "0", bad): {"verdict": "key_wrong"},
               R.review_key(PARAGRAPH + "1", bad): {"verdict": "key_wrong"},
               R.review_key(PARAGRAPH + "2", bad): {"verdict": "key_wrong"},
               R.review_key(PARAGRAPH + "2", GOOD): {"verdict": "correct"}}
    case = mcq_read.report(generated, reviews)["mcq_focus · pipeline"]
    assert case["correct"] == 1  # the chosen: only p0's is right
    assert case["candidates"] == {"n": 6, "n_read": 5, "correct": 2, "any_correct": 2, "all_read": 2, "paragraphs": 3}
    assert [(g["context_id"], g["text"]) for g in case["unread_candidates"]] == [("p1", "rác")]


def test_a_pipeline_case_with_other_candidates_says_how_many():
    """``python -m bench --only mcq-read --candidates 6``: the pipeline cases are named with their count (their
    rows are not the Classroom's 4-candidate pipeline), the one-answer cases stay as they are."""
    from core.inference.quiz import CANDIDATES

    pipeline, plain = mcq_read.CASES[2], mcq_read.CASES[1]
    six = pipeline.with_candidates(6)
    assert (six.name, six.candidates, six.pipeline) == ("pipeline ×6", 6, True)
    assert pipeline.with_candidates(CANDIDATES) is pipeline and pipeline.with_candidates(None) is pipeline
    assert plain.with_candidates(6) is plain
    assert mcq_read.TEACHER.with_candidates(6).name == "pipeline, teacher's answer ×6"
