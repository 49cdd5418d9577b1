"""The read evaluation: MCQs generated for the test split's paragraphs, each read as a teacher reads it.

``python -m bench --only mcq-read [--demo-run RUN]`` generates the questions of three cases side by side — the
base model, the demo-tuned model with plain decoding, and the full pipeline (:mod:`core.inference.quiz`) — and
looks each one up in the committed review file, ``assets/reviews/mcq.jsonl``. A verdict there is a person's reading
of that exact text for that paragraph; nothing here writes one. The report gives ``reader-judged correct k/n``
over the questions that have a verdict, and writes the ones still to read to ``<runs>/_reviews/unread.jsonl``.

The verdicts and what "correct" means: :mod:`core.tasks.mcq_reviews`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import tasks
from core.tasks.mcq_sample import sample_paragraphs
from core.tasks.mcq_reviews import CORRECT, REVIEWS, VERDICTS, load_reviews, review_key, reviewed_text

__all__ = ["REVIEWS", "VERDICTS", "load_reviews", "review_key", "generate", "report", "write_unread"]


def test_paragraphs() -> list[dict]:
    """One entry per distinct paragraph of the bundled sample's test split: context_id, topic, context, answer."""
    return list(sample_paragraphs("test"))


@dataclass
class Case:
    """One way of writing questions: a model and its decoding."""

    name: str
    which: str  # base | adapter
    pipeline: bool  # the full pipeline (candidates, re-keying, checks) or one greedy answer
    # the teacher marks the answer (an answer-first run only): the key of the paragraph's first gold question,
    # the phrase a teacher would mark
    teacher_answer: bool = False
    candidates: int | None = None  # the pipeline's candidates (None: the Classroom's, quiz.CANDIDATES)
    narrow: bool = True  # the pipeline writes with the run's vocabulary (core.inference.vocab), as the Classroom does
    reader: bool = False  # the base model reads each candidate (core.inference.verifier; core quiz --reader)

    def with_candidates(self, n: int | None) -> "Case":
        """This case with ``n`` candidates, named so (``pipeline ×6``) when ``n`` is not the Classroom's."""
        from core.inference.quiz import CANDIDATES

        if not self.pipeline or not n or n == CANDIDATES:
            return self
        return Case(f"{self.name} ×{n}", self.which, True, self.teacher_answer, n, self.narrow, self.reader)


CASES = (Case("base", "base", False), Case("tuned-plain", "adapter", False), Case("pipeline", "adapter", True))
WHOLE = Case("pipeline, whole vocabulary", "adapter", True, narrow=False)  # --whole-vocabulary: the step's baseline
READER = Case("pipeline + second reader", "adapter", True, reader=True)  # --reader: the step, measured
TEACHER = Case("pipeline, teacher's answer", "adapter", True, teacher_answer=True)


def generate(run_dir: str | Path, cases: tuple[Case, ...] = CASES, limit: int | None = None,
             candidates: int | None = None) -> list[dict]:
    """Every case's question for every test paragraph, with the time each took.

    A row: ``{"case", "task", "context_id", "text", "status", "reasons", "seconds", "key"}``, where ``task`` is the
    run's template (``mcq_generation`` or ``mcq_answer_first``) and ``text`` is what the reader reads.
    """
    from core.config import DecodingConfig
    from core.inference.modelset import ModelSet
    from core.inference.quiz import CANDIDATES, MAX_NEW_TOKENS, QuizWriter, read_candidate
    from core.tasks import get

    models = ModelSet.from_run(run_dir)
    penalty = get(models.template).repetition_penalty
    # the same token budget for every model: the base model must not make a teacher wait longer
    greedy = DecodingConfig(max_new_tokens=MAX_NEW_TOKENS, repetition_penalty=penalty)
    paragraphs = test_paragraphs()[:limit]
    out = []
    for case in cases:
        writer = (QuizWriter(models, which=case.which, run_dir=run_dir, narrow=case.narrow, reader=case.reader,
                             candidates=case.candidates or candidates or CANDIDATES) if case.pipeline else None)
        for p in paragraphs:
            t0 = time.monotonic()
            extra = {}
            if writer is not None:
                answer = p["answer"] if case.teacher_answer else None
                q = writer.write(p["context"], answer=answer)[0]  # the Classroom's question, as it times it
                seconds = time.monotonic() - t0
                text, status, reasons = q.text, q.status, list(q.reasons)
                # every candidate, best first (written again, untimed; the first is the question above): all of
                # them give the ceiling a perfect chooser would reach
                written = writer.write(p["context"], answer=answer, k=writer.candidates)
                extra = {"candidates": [{"key": review_key(p["context"], c.text), "text": c.text, "focus": c.focus,
                                         "logprob": c.logprob, "key_confidence": c.key_confidence,
                                         "reasons": list(c.reasons), "reader": c.reader} for c in written]}
            else:
                raw = models.generate([models.prompt_for({"context": p["context"]})], case.which, greedy)[0].text
                cand = read_candidate(raw, p["context"], rekey=False)
                text, status, reasons = reviewed_text(raw), "ok" if not cand.reasons else "flagged", list(cand.reasons)
                seconds = time.monotonic() - t0
            out.append({"case": case.name, "task": models.template, "context_id": p["context_id"], "text": text, "status": status,
                        "reasons": reasons, "seconds": round(seconds, 2),
                        "key": review_key(p["context"], text), **extra})
    return out


def _labeller(generated: list[dict]):
    """A case's name in the report: the base model is one case; a tuned model's cases carry their run's task, and
    the run's folder name too when two runs share a task."""
    runs_of: dict[str, set] = {}
    for g in generated:
        if g["case"] != "base":
            runs_of.setdefault(g.get("task"), set()).add(g.get("run"))

    def label(row: dict) -> str:
        if row["case"] == "base" or not row.get("task"):
            return row["case"]
        task = row["task"] if len(runs_of.get(row["task"], ())) < 2 else f"{row['task']} [{row.get('run')}]"
        return f"{task} · {row['case']}"

    return label


def report(generated: list[dict], reviews: dict[str, dict] | None = None) -> dict[str, Any]:
    """Per case: structure rate, reader-judged correct k/n over the read ones, the verdict counts, what is unread."""
    from core.tasks.mcq_checks import validate_mcq

    reviews = load_reviews() if reviews is None else reviews
    label = _labeller(generated)
    out: dict[str, Any] = {}
    for name in dict.fromkeys(label(g) for g in generated):
        rows = [g for g in generated if label(g) == name]
        read = [reviews[g["key"]] for g in rows if g["key"] in reviews]
        counts = {v: sum(r["verdict"] == v for r in read) for v in VERDICTS}
        secs = sorted(g["seconds"] for g in rows)
        out[name] = {"n": len(rows), "structure_valid": sum(validate_mcq(g["text"]).valid for g in rows),
                     "n_read": len(read), "correct": counts["correct"], "verdicts": counts,
                     "flagged": sum(g["status"] == "flagged" for g in rows),
                     "seconds_p50": secs[len(secs) // 2] if secs else None,
                     "seconds_p95": secs[min(len(secs) - 1, int(0.95 * len(secs)))] if secs else None,
                     "unread": [g for g in rows if g["key"] not in reviews]}
        out[name]["unread_candidates"] = [
            {**{k: v for k, v in g.items() if k != "candidates"}, "text": c["text"], "key": c["key"], "candidate": True}
            for g in rows for c in g.get("candidates") or () if c["key"] not in reviews]
        pools = [g["candidates"] for g in rows if g.get("candidates")]
        if pools:  # what a perfect chooser among the candidates would reach, over the candidates read so far
            pools = [[c["key"] for c in pool] for pool in pools]
            keys = [k for pool in pools for k in pool]
            out[name]["candidates"] = {
                "n": len(keys), "n_read": sum(k in reviews for k in keys),
                "correct": sum(reviews.get(k, {}).get("verdict") == CORRECT for k in keys),
                "any_correct": sum(any(reviews.get(k, {}).get("verdict") == CORRECT for k in pool) for pool in pools),
                "all_read": sum(all(k in reviews for k in pool) for pool in pools), "paragraphs": len(pools)}
    return out


def write_unread(result: dict, runs_dir: Path = REVIEWS.parent) -> Path | None:
    """The questions still to read, one JSON line each, with their paragraph: what a reviewer works from."""
    paragraphs = {p["context_id"]: p["context"] for p in test_paragraphs()}
    unread = [g for case in result.values() for g in case["unread"]]
    listed = {g["key"] for g in unread}
    for case in result.values():  # then the other candidates still to read (report() left out the read ones)
        for g in case.get("unread_candidates", ()):
            if g["key"] not in listed:
                listed.add(g["key"])
                unread.append(g)
    if not unread:
        return None
    path = Path(runs_dir) / "unread.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(dict(g, paragraph=paragraphs[g["context_id"]]), ensure_ascii=False) + "\n"
                            for g in unread), encoding="utf-8")
    return path


DEFINITION = ("**Correct** (a teacher could hand it out): the question can be answered from the paragraph alone; exactly "
              "one option is right according to the paragraph and the key names it; the three distractors are wrong "
              "according to the paragraph but of the same kind as the answer; no option repeats another or the "
              "question; the question is not a copied sentence of the paragraph with a blank.")


def rows_by_run(last: dict) -> dict[str, list[dict]]:
    """A stored mcq-read result's generated rows by run folder name (rows from before a row named its run: the
    run of their task, in the stored order; the base model's rows go with the first run)."""
    runs = list(last.get("runs") or [])
    rows = list(last.get("generated") or [])
    order = list(dict.fromkeys(g["task"] for g in rows))
    out: dict[str, list[dict]] = {}
    for g in rows:
        name = g.get("run") or (runs[order.index(g["task"])] if order.index(g["task"]) < len(runs) else None)
        if name:
            out.setdefault(name, []).append(dict(g, run=name))
    return out


def section(run_dirs: list[str | Path], generated: list[dict] | None = None, limit: int | None = None,
            kept: dict[str, list[dict]] | None = None, candidates: int | None = None,
            whole_vocabulary: bool = False, reader: bool = False) -> dict:
    """The mcq-read section: generate (unless ``generated`` is given: ``--reread``), look up verdicts, report.

    The base model is generated once (with the first run's prompt); each run adds its tuned-plain and pipeline
    cases. ``kept``: rows of an earlier generation by run folder name, reused for those runs instead of generating
    again. ``candidates``: the pipeline's candidates per question, when not the Classroom's. The questions still to read go to ``assets/reviews/unread.jsonl`` (git-ignored).
    """
    if generated is None:
        generated = []
        from core.inference.batch import run_template

        for n, run in enumerate(run_dirs):
            stored = (kept or {}).get(Path(run).name, [])
            if stored and not Path(run).is_dir():  # an earlier run whose folder is gone: its stored rows as they are
                generated += [g for g in stored if n == 0 or g["case"] != "base"]
                continue
            cases = CASES if n == 0 else CASES[1:]
            if tasks.get(run_template(Path(run))).takes_answer:
                cases += (TEACHER,)
            cases = (tuple(c.with_candidates(candidates) for c in cases) + ((WHOLE,) if whole_vocabulary else ())
                     + ((READER,) if reader else ()))
            # every stored case of this run stays (a pipeline ×6 beside the ×4); the cases it lacks are generated
            reuse = [g for g in (kept or {}).get(Path(run).name, []) if n == 0 or g["case"] != "base"]
            missing = tuple(c for c in cases if c.name not in {g["case"] for g in reuse})
            generated += reuse + ([dict(g, run=Path(run).name) for g in generate(run, missing, limit=limit)]
                                  if missing else [])
    result = report(generated)
    unread = write_unread(result)
    lines = ["Command: `python -m bench --only mcq-read --demo-run RUN [--demo-run RUN2 …]` (generates, ~10 min a "
             "run on 2 cores; `--reread` reports the last generation again after new verdicts; `--keep` reuses the "
             "last generation of the runs it already holds and generates only for new ones). The 23 paragraphs "
             "of the bundled sample's test split, never trained on. Every question is read as a teacher reads it "
             "and given a verdict in `assets/reviews/mcq.jsonl`, keyed by the paragraph and the exact text; a "
             "script never writes one. *tuned-plain*: the fine-tuned model, one greedy answer (repetition penalty "
             "of the task). *pipeline*: the Classroom's `core.inference.quiz` — "
             "4 sampled candidates, the structure and content checks, the best one kept, the key moved to the "
             "option the paragraph supports when the checks say so. *pipeline, teacher's answer* (a run trained "
             "with `data.template=mcq_answer_first`): the same, for an answer the teacher marks in the Classroom "
             "— here the key of the paragraph's first gold question, the phrase a teacher would mark. "
             "*mcq_focus* (a run trained with `data.template=mcq_focus`: the prompt also names the sentence to ask "
             "about): its pipeline writes one greedy question on each of up to 4 sentences of the paragraph and "
             "keeps the best, the key moved to the option that sentence supports; its tuned-plain case asks about "
             "the first sentence. The runs of 2026-12-02 wrote the 4 questions one after another; from "
             "20261203-084527 on (the same recipe, retrained: its tuned-plain questions are the same texts) they are "
             "written in one left-padded batch, 1.8× faster; in bfloat16 the padding changes 11 of the 23 chosen "
             "questions, which a reader judged anew (3 of those 11 correct, against 5 of the one-by-one ones). From "
             "20261203-113854 on (retrained once more: the same texts again), the output layer gets a contiguous "
             "input and the candidates' log-probabilities are read step by step (`contiguous_head`, "
             "`token_logprobs`): the same 23 questions, 1.7× faster. Its pipeline also reports every candidate, "
             "each read, for the ceiling line under the table. The runs of 2026-12-07 trained and generated in "
             "float32 on a 2-core AVX2 EPYC without native bf16 (so their seconds are that machine's): "
             "20261207-032256 is the mcq_focus recipe, 20261207-043058 the same with `data.template=mcq_focus_first` "
             "(the right option written first, the options moved to a letter drawn from the question's text by the "
             "pipeline: the mcq_focus model's letter where it writes the key was about 0.25 for each of A–D, so its "
             "key told nothing). *pipeline ×6*: the pipeline with 6 candidates (`--candidates 6`), one per sentence; "
             "its first 4 candidates are the texts of the 4-candidate pipeline. *pipeline, whole vocabulary* "
             "(`--whole-vocabulary`): the pipeline as it was up to 20261207-043058, each step over Gemma's 262k-token "
             "vocabulary; *pipeline* from 20261207-061721 on, and for 20261207-043058 its new row, writes with the "
             "run's vocabulary (`core.inference.vocab`: the tokens of the rows it trained on, the paragraph's, and "
             "single letters; 2,865 tokens here): the output layer was 44% of a question's time. On the same run "
             "61 of the 92 candidates are the same texts; the others differ where the model wanted a word the run "
             "never saw (' nhựa', ' Camera', ' Control Panel'), and 9 of the 23 chosen questions changed. "
             "*pipeline, + the tokenizer's Vietnamese words* (tried, not kept): the same set with every Gemma token "
             "that is a Vietnamese word, 9,290 tokens, so that ' nhựa' stays one token. "
             "20261207-061721 is the demo recipe with 68 steps instead of 100 (512 s of training instead of 841 "
             "in float32 here). 20261207-083307 (100 steps, 352 s of training) and 20261207-084650 (130 steps, the "
             "demo preset now, 474 s) trained and generated in bfloat16 on a 2-core AMD EPYC with AVX512-BF16; "
             "their *pipeline* rows write with a float32 output layer over the run's vocabulary (a bfloat16 one "
             "rounds logits near 20 to steps of 0.125, and greedy decoding followed the rounding: with it the two "
             "pipelines read 9/23 and 10/23) and with the checks' full-stop and given-away-key rules of that day. "
             "demo-after-cpt: continued pre-training on the bundled informatics book first (`presets/chain_1_cpt.yaml` "
             "on Gemma, max_length 512, 42 steps, 176 s; one of the 23 test paragraphs has a sentence in the book), "
             "merged, then the demo recipe for 100 steps on the merged model (350 s), same machine. "
             "20261207-132659: the demo preset trained once more (a new session's machine of the same kind, 387 s "
             "of training), its tuned-plain and pipeline rows as the Classroom writes them now; the same recipe as "
             "20261207-084650, and yet 16 of its 23 greedy questions and 20 of the 23 chosen ones are other texts: "
             "how far one training run lands from the next on another machine (trained a third time on the same "
             "machine, 416 s, it wrote the same 69 questions and 92 candidates: on one machine training is "
             "repeatable). *pipeline + second reader* (`--reader`, `core quiz "
             "--reader`): the pipeline with the base model scoring each candidate's options "
             "(`core.inference.verifier`; see the next section).",
             "",
             DEFINITION, "",
             "| case | structure valid | flagged by the checks | **reader-judged correct** | key_wrong | ambiguous | "
             "unanswerable | nonsense | invalid structure | s/question p50 / p95 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in result.items():
        v = r["verdicts"]
        read = f"**{r['correct']}/{r['n_read']}**" + (f" ({r['n'] - r['n_read']} unread)" if r["n_read"] < r["n"] else "")
        lines.append(f"| {name} | {r['structure_valid']}/{r['n']} | {r['flagged']}/{r['n']} | {read} | "
                     f"{v['key_wrong']} | {v['ambiguous']} | {v['unanswerable']} | {v['nonsense']} | "
                     f"{v['invalid_structure']} | {r['seconds_p50']} / {r['seconds_p95']} |")
    for name, r in result.items():
        c = r.get("candidates")
        if c:
            lines += ["", f"*{name}*, all its candidates: {c['correct']} of the {c['n_read']} read (of {c['n']}) "
                          f"are correct, and {c['any_correct']} of the {c['paragraphs']} paragraphs have at least one "
                          f"correct candidate ({c['all_read']} paragraphs with every candidate read): the most a perfect "
                          "chooser among them could reach."]
    reviews = load_reviews()
    wrong = [g for g in generated if g["key"] in reviews and reviews[g["key"]]["verdict"] != "correct"
             and reviews[g["key"]]["verdict"] != "invalid_structure"]
    if wrong:
        caught = sum(g["status"] == "flagged" for g in wrong)
        lines += ["", f"The automatic content checks flagged {caught} of the {len(wrong)} structurally valid questions "
                      "a reader judged wrong. They are signals: the pipeline keeps the candidate that passes them, so "
                      "a passed check says little about a question chosen that way — which is why the headline is "
                      "the reader's verdict."]
    if unread:
        lines += ["", f"Still to read: {sum(len(r['unread']) for r in result.values())} questions, listed in "
                      "`assets/reviews/unread.jsonl` by the last run."]
    summary = {name: {k: v for k, v in r.items() if k not in ("unread", "unread_candidates")}
               | {"n_unread": len(r["unread"])}
               for name, r in result.items()}
    return {"runs": [Path(r).name for r in run_dirs], "cases": summary, "generated": generated,
            "markdown": "\n".join(lines)}
