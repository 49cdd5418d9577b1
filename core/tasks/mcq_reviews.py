"""The reader's verdicts: generated MCQs that a person has read as a teacher reads them.

A verdict belongs to one exact question written for one paragraph, so the review file is keyed by both
(:func:`review_key`). The file, ``assets/reviews/mcq.jsonl``, is committed; each line is
``{"key", "verdict", "why", "case", "paragraph_id", "text"}``. Nothing in the app or the bench writes a
verdict: a person does, by reading (``python -m bench --only mcq-read`` lists what is still unread). The app
and the bench look verdicts up, so that a question that has been read shows its reading wherever it appears
again (the bench's three cases, the Classroom's evaluation table).

What "correct" means is written in :mod:`core.tasks.mcq_content`; the verdicts:

    correct            answerable from the paragraph alone, exactly one option right and keyed, the distractors
                       wrong but of the same kind, nothing repeated, not a copied sentence with a blank
    key_wrong          the right answer is among the options, the key names another
    ambiguous          more than one option is right by the paragraph (or none clearly is)
    unanswerable       the paragraph does not say what the question asks
    nonsense           the question or its options do not make sense (unrelated options, a yes/no sentence
                       given entity options, placeholders)
    invalid_structure  not four distinct options A–D with a key
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from core.paths import REPO_ROOT
from core.tasks.mcq_checks import validate_mcq
from core.tasks.mcq_format import LETTERS, format_mcq, split_answer_line

REVIEWS = REPO_ROOT / "assets" / "reviews" / "mcq.jsonl"
VERDICTS = ("correct", "key_wrong", "ambiguous", "unanswerable", "nonsense", "invalid_structure")
CORRECT = "correct"


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", str(text or "")).split())


def review_key(paragraph: str, text: str) -> str:
    """The key of a verdict: the question's exact text (whitespace aside) for this paragraph."""
    return hashlib.sha256(f"{_norm(paragraph)}\n{str(text).strip()}".encode("utf-8")).hexdigest()[:16]


def reviewed_text(raw: str) -> str:
    """The text a verdict is given for: a generation in the canonical MCQ layout (the answer-first line dropped),
    or, without an MCQ structure, the generation itself."""
    body = split_answer_line(raw)[1]
    check = validate_mcq(body)
    if not check.valid:
        return body.strip()
    m = check.mcq
    return format_mcq(m.question, [m.options[x] for x in LETTERS], m.answer)


def load_reviews(path: Path = REVIEWS) -> dict[str, dict]:
    """key → its review line. An unknown verdict is an error naming the line (a typo must not count)."""
    return dict(_load(str(path), path.stat().st_mtime if path.exists() else 0.0))


@lru_cache(maxsize=2)
def _load(path: str, stamp: float) -> tuple[tuple[str, dict], ...]:
    p = Path(path)
    if not p.exists():
        return ()
    out = {}
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if row.get("verdict") not in VERDICTS:
            raise ValueError(f"{p.name} line {n}: unknown verdict {row.get('verdict')!r} (one of {', '.join(VERDICTS)})")
        out[row["key"]] = row
    return tuple(out.items())


def read_figures(texts: Iterable[str], paragraphs: Iterable[str], reviews: dict[str, dict] | None = None) -> dict:
    """How many of these generations a person has read, and their verdicts.

    Returns:
        ``{"n", "n_read", "correct", "verdicts": {verdict: count}}``; ``correct`` counts only read questions.
    """
    reviews = load_reviews() if reviews is None else reviews
    counts = dict.fromkeys(VERDICTS, 0)
    n = n_read = 0
    for text, paragraph in zip(texts, paragraphs):
        n += 1
        row = reviews.get(review_key(paragraph, reviewed_text(text)))
        if row is not None:
            n_read += 1
            counts[row["verdict"]] += 1
    return {"n": n, "n_read": n_read, "correct": counts[CORRECT], "verdicts": counts}
