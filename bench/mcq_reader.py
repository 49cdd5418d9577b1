"""The second reader (:mod:`core.inference.verifier`) measured: ``python -m bench --only mcq-reader`` (~12 min).

Two questions, each on data that is already judged, so that no new verdict is needed:

1. **Is the reader right?** On the gold MCQs of the bundled sample's *train* split (never the test split, which the
   read evaluation uses), how often the base model's most-supported option is the gold key, at any margin and at
   :data:`~core.inference.verifier.CLEAR_MARGIN` or more; and with each gold key moved to each distractor in turn,
   how often it says the key is clearly wrong.
2. **Does it choose better?** Every candidate of the read evaluation's pipelines whose candidates were all read
   (``docs/bench_results.json``, verdicts in ``assets/reviews/mcq.jsonl``) is read again with today's checks
   (:func:`core.inference.quiz.read_candidate`, no re-keying: the stored text is the one judged) and scored by the
   reader; the quiz's own :meth:`~core.inference.quiz.Candidate.rank` then chooses one per paragraph with and
   without the reader's scores. Counted: the paragraphs whose chosen question a reader judged correct.
"""

from __future__ import annotations

import json
from typing import Any

from core.paths import SAMPLES_DIR
from core.tasks.mcq_format import LETTERS

SAMPLE = SAMPLES_DIR / "vi_informatics_mcq.jsonl"
BASE = "embedded:gemma3-270m"


def _reader(name: str = BASE):
    """The base model as the quiz's reader gets it: in the dtype a run of the demo preset runs in here."""
    from transformers import AutoModelForCausalLM

    from core.models.load import load_tokenizer, runnable_dtype
    from core.models.registry import resolve_model

    path = resolve_model(name)
    dtype = runnable_dtype("bfloat16")
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype).eval(), load_tokenizer(path), dtype


def gold(model, tokenizer, split: str = "train") -> dict[str, Any]:
    """The reader on the gold MCQs of ``split``: its best option against the gold key."""
    from core.inference.verifier import CLEAR_MARGIN, option_supports

    rows = [json.loads(x) for x in SAMPLE.read_text(encoding="utf-8").splitlines() if x.strip()]
    rows = [r for r in rows if r["split"] == split]
    right = clear = clear_right = disputed = moved = moved_caught = 0
    for r in rows:
        options = {x: str(r[f"answer_{x.lower()}"]) for x in LETTERS}
        key = str(r["correct_answer"]).strip().upper()
        s = option_supports(model, tokenizer, r["context"], [(r["question"], options)])[0]
        right += s.best == key
        disputed += s.disagrees(key)
        if s.margin(s.best) >= CLEAR_MARGIN:
            clear += 1
            clear_right += s.best == key
        for wrong in LETTERS:
            if wrong != key:
                moved += 1
                moved_caught += s.disagrees(wrong)
    n = len(rows)
    return {"split": split, "n": n, "best_is_key": right, "clear": clear, "clear_best_is_key": clear_right,
            "gold_disputed": disputed, "moved": moved, "moved_disputed": moved_caught}


def pools(model, tokenizer, stored: dict) -> list[dict[str, Any]]:
    """Each fully read pipeline pool of the stored read evaluation, chosen with and without the reader."""
    from core.inference.quiz import read_candidate
    from core.inference.verifier import option_supports
    from core.tasks.mcq_reviews import CORRECT, load_reviews
    from core.tasks.mcq_sample import sample_paragraphs

    reviews = load_reviews()
    paragraphs = {p["context_id"]: p["context"] for p in sample_paragraphs("test")}
    groups: dict[tuple, list[dict]] = {}
    for g in stored.get("generated") or []:
        if g.get("candidates"):
            groups.setdefault((g["run"], g["task"], g["case"]), []).append(g)
    scored: dict[str, object] = {}
    out = []
    for (run, task, case), rows in groups.items():
        if any(c["key"] not in reviews for g in rows for c in g["candidates"]):
            continue  # a pool with an unread candidate cannot say what a chooser gets
        counts = {"without": 0, "with": 0, "ceiling": 0}
        changed = 0
        for g in rows:
            paragraph = paragraphs[g["context_id"]]
            keys = [c["key"] for c in g["candidates"]]
            cands = [read_candidate(c["text"], paragraph, rekey=False, focus=c.get("focus"),
                                    logprob=float(c.get("logprob") or 0.0)) for c in g["candidates"]]
            plain = min(range(len(cands)), key=lambda i, cands=cands: cands[i].rank())
            todo = [i for i, c in enumerate(cands) if c.structure.valid and keys[i] not in scored]
            if todo:
                supports = option_supports(model, tokenizer, paragraph,
                                           [(cands[i].mcq.question, cands[i].mcq.options) for i in todo])
                scored.update({keys[i]: s for i, s in zip(todo, supports)})
            for i, c in enumerate(cands):
                c.reader = scored.get(keys[i])
            read = min(range(len(cands)), key=lambda i, cands=cands: cands[i].rank())
            counts["without"] += reviews[keys[plain]]["verdict"] == CORRECT
            counts["with"] += reviews[keys[read]]["verdict"] == CORRECT
            counts["ceiling"] += any(reviews[k]["verdict"] == CORRECT for k in keys)
            changed += read != plain
        out.append({"run": run, "task": task, "case": case, "paragraphs": len(rows),
                    "candidates": sum(len(g["candidates"]) for g in rows), "changed": changed, **counts})
    return out


def section(stored: dict) -> dict[str, Any]:
    """The mcq-reader section of docs/BENCHMARKS.md: :func:`gold` and :func:`pools` with the reader as the quiz
    gets it, and their words (:func:`markdown`)."""
    import time

    model, tokenizer, dtype = _reader()
    t0 = time.monotonic()
    result = {"gold": gold(model, tokenizer), "pools": pools(model, tokenizer, stored)}
    result.update(seconds=round(time.monotonic() - t0, 1), dtype=str(dtype).removeprefix("torch."))
    return dict(result, markdown=markdown(result))


def markdown(result: dict[str, Any]) -> str:
    """The section's text from its figures."""
    from core.inference.verifier import CLEAR_MARGIN

    g, p = result["gold"], result["pools"]

    def pct(a: int, b: int) -> str:
        return f"{a}/{b} ({100 * a / b:.0f}%)" if b else "–"

    lines = [f"Command: `python -m bench --only mcq-reader` ({result['seconds']:.0f} s here; Gemma-3-270M in "
             f"{result['dtype']} as the reader). The quiz's second reader (`core.inference.verifier`, "
             "`core quiz --reader`; off by default): the base model, its adapter off, scores each option of a written "
             "question by how much the paragraph raises it (log P(option | paragraph, question) − log P(option | "
             "question)). Measured on data already judged:", "",
             f"**Is it right?** On the {g['n']} gold MCQs of the bundled sample's *train* split (the test split is "
             f"the read evaluation's), its most supported option is the gold key for {pct(g['best_is_key'], g['n'])} "
             f"(chance: 25%); where it leads by {CLEAR_MARGIN:g} nats or more, for "
             f"{pct(g['clear_best_is_key'], g['clear'])}. It clearly disputes the gold key itself (a false flag) for "
             f"{pct(g['gold_disputed'], g['n'])}. With each gold key moved to each distractor in turn, it clearly "
             f"disputes the moved key in {pct(g['moved_disputed'], g['moved'])} of the cases.", "",
             "**Does it choose better?** Each fully read candidate pool of the read evaluation above, re-checked with "
             "today's checks and chosen by the quiz's own rank, without and with the reader's scores (the reader "
             "ranks after the check flags: a key it backs by 2 nats or more first, one it disputes last). "
             "Counted: paragraphs whose chosen question a reader judged correct.", "",
             "| run · case | template | paragraphs | candidates | correct without the reader | **with the reader** "
             "| chosen question changed | a correct candidate exists |", "|---|---|---|---|---|---|---|---|"]
    for r in p:
        lines.append(f"| {r['run']} · {r['case']} | {r['task']} | {r['paragraphs']} | {r['candidates']} | "
                     f"{r['without']} | **{r['with']}** | {r['changed']} | {r['ceiling']} |")
    from core import tasks

    for label, rows in (("key-first runs (`mcq_focus_first`, the demo's)",
                         [r for r in p if tasks.get(r["task"]).key_first]), ("all", p)):
        if rows:
            lines.append(f"| {label} | | {sum(r['paragraphs'] for r in rows)} | {sum(r['candidates'] for r in rows)} | "
                         f"{sum(r['without'] for r in rows)} | **{sum(r['with'] for r in rows)}** | "
                         f"{sum(r['changed'] for r in rows)} | {sum(r['ceiling'] for r in rows)} |")
    lines += ["", "Pools of one run share most of their candidates (the ×6 pool holds the ×4 one's texts), so the rows "
              "of a run are not independent; the 23 paragraphs are the same test paragraphs throughout, the ones the "
              "earlier choices of the pipeline were made on. On a fresh demo run (20261207-132659, the read "
              "evaluation's *pipeline + second reader*) it chose 15/23 correct, as many as without it, and added "
              "about 2 s a question (8.5 s p50, 11.2 s p95 against 6.6 and 8.8; 8.0 and 9.7 in a second "
              "measurement): it stays off by default."]
    return "\n".join(lines)
