"""The content checks on the bundled gold MCQs: how often each flags a correct question (its false-flag rate),
and how often ``key_unsupported`` catches a key moved to a distractor. ``python -m bench --only mcq-checks``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.paths import SAMPLES_DIR
from core.tasks.mcq_content import KEY_UNSUPPORTED, check_content, summarize_content
from core.tasks.mcq_format import LETTERS, MCQ

SAMPLE = SAMPLES_DIR / "vi_informatics_mcq.jsonl"


def run(path: str | Path = SAMPLE) -> dict[str, Any]:
    """The measurement behind the module docstring: the checks on the bundled gold MCQs.

    Args:
        path: A JSONL of rows with ``context``, ``question``, ``answer_a``…``answer_d``, ``correct_answer``
            (the bundled ``assets/samples/vi_informatics_mcq.jsonl``).

    Returns:
        ``{"gold": summarize_content(...), "moved_key_flagged": share}``, where the share is over every gold MCQ
        with its key moved to each distractor in turn.
    """
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    gold, moved = [], []
    for row in rows:
        options = {x: row[f"answer_{x.lower()}"] for x in LETTERS}
        mcq = MCQ(question=row["question"], options=options, answer=row["correct_answer"])
        gold.append(check_content(mcq, row["context"]))
        for wrong in LETTERS:
            if wrong != row["correct_answer"]:
                moved_mcq = MCQ(question=row["question"], options=options, answer=wrong)
                moved.append(KEY_UNSUPPORTED in check_content(moved_mcq, row["context"]).codes)
    return {"gold": summarize_content(gold), "moved_key_flagged": round(sum(moved) / len(moved), 4) if moved else 0.0}


def section() -> dict[str, Any]:
    """The mcq-checks section of docs/BENCHMARKS.md: :func:`run` and its table."""
    from core.tasks.mcq_content import CONTENT_CODES

    result = run()
    gold = result["gold"]
    lines = ["Command: `python -m bench --only mcq-checks` (seconds, no model). Each content check of "
             "`core.tasks.mcq_content` on the bundled gold MCQs, all correct, so every flag is a false flag; then "
             "every gold MCQ with its key moved to each distractor in turn, where `key_unsupported` should fire. "
             "The checks are signals for a reader, never the headline figure (see the read evaluation below).", "",
             "| code | gold MCQs flagged |", "|---|---|"]
    lines += [f"| `{code}` | {gold['code_counts'][code]} |" for code in CONTENT_CODES]
    lines += [f"| passed every check | {gold['n_passed']}/{gold['n']} ({100 * gold['pass_rate']:.1f}%) |", "",
              f"A key moved to a distractor is flagged `key_unsupported` in {100 * result['moved_key_flagged']:.1f}% "
              "of the cases."]
    return dict(result, markdown="\n".join(lines))
