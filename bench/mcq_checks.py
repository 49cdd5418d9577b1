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
