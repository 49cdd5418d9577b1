"""Structure checks of an MCQ: a question, exactly four non-empty distinct options A–D and a key among them.

Each failure has a stable reason code (:data:`REASON_CODES`; the words: ``core.locale`` keys
``mcq.reason.<code>``). What the question *says* — whether the paragraph answers it, whether the key is right —
is :mod:`core.tasks.mcq_content`'s.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from core.tasks.mcq_format import LETTERS, MCQ, parse_mcq


@dataclass(frozen=True)
class MCQCheck:
    """Result of :func:`validate_mcq`.

    Attributes:
        valid: ``True`` when ``reasons`` is empty.
        reasons: Reason codes (see :data:`REASONS`), in :data:`REASON_CODES` order.
        mcq: The MCQ that was checked.
    """

    valid: bool
    reasons: tuple[str, ...]
    mcq: MCQ


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------

NO_QUESTION = "no_question"
MISSING_OPTIONS = "missing_options"
EXTRA_OPTIONS = "extra_options"
EMPTY_OPTION = "empty_option"
DUPLICATE_OPTIONS = "duplicate_options"
NO_ANSWER = "no_answer"
ANSWER_NOT_IN_ABCD = "answer_not_in_abcd"
ANSWER_OPTION_MISSING = "answer_option_missing"

#: Human-readable descriptions of every reason code, for the GUI.
#: All reason codes, in the order :func:`validate_mcq` reports them (their words: ``core.locale``
#: ``mcq.reason.<code>``).
REASON_CODES: tuple[str, ...] = (NO_QUESTION, MISSING_OPTIONS, EXTRA_OPTIONS, EMPTY_OPTION, DUPLICATE_OPTIONS, NO_ANSWER, ANSWER_NOT_IN_ABCD, ANSWER_OPTION_MISSING)

def _option_key(text: str) -> str:
    """Comparison key for duplicate detection: casefold + collapsed spaces."""
    return " ".join(text.casefold().split())


def _as_mcq(item: MCQ | str) -> MCQ:
    """Return ``item`` if it is an MCQ, else parse it."""
    return item if isinstance(item, MCQ) else parse_mcq(item)


def validate_mcq(text_or_mcq: MCQ | str) -> MCQCheck:
    """Check an MCQ and list every problem found.

    Args:
        text_or_mcq: Raw text (parsed with :func:`parse_mcq`) or an :class:`MCQ`.

    Returns:
        An :class:`MCQCheck`.  ``reasons`` holds every applicable code from
        :data:`REASON_CODES` (several may apply at once), in that order;
        ``valid`` is ``True`` iff there are none.
    """
    mcq = _as_mcq(text_or_mcq)
    found: set[str] = set()

    if not (mcq.question or "").strip():
        found.add(NO_QUESTION)
    if any(letter not in mcq.options for letter in LETTERS):
        found.add(MISSING_OPTIONS)
    if any(letter not in LETTERS for letter in mcq.options):
        found.add(EXTRA_OPTIONS)
    if any(not text.strip() for text in mcq.options.values()):
        found.add(EMPTY_OPTION)
    keys = [_option_key(t) for t in mcq.options.values() if t.strip()]
    if len(keys) != len(set(keys)):
        found.add(DUPLICATE_OPTIONS)
    if mcq.answer is None or not mcq.answer.strip():
        found.add(NO_ANSWER)
    elif mcq.answer not in LETTERS:
        found.add(ANSWER_NOT_IN_ABCD)
    elif mcq.answer not in mcq.options:
        found.add(ANSWER_OPTION_MISSING)

    reasons = tuple(code for code in REASON_CODES if code in found)
    return MCQCheck(valid=not reasons, reasons=reasons, mcq=mcq)


def summarize(texts: Iterable[MCQ | str]) -> dict[str, Any]:
    """Aggregate validity statistics over many generated MCQs.

    Args:
        texts: Raw MCQ texts (``MCQ`` objects are accepted too).

    Returns:
        A JSON-serialisable dict with ``n``, ``n_valid``, ``validity_rate``
        (0.0 when ``n`` is 0), ``reason_counts`` (every code, 0 if absent) and
        ``answer_distribution`` (counts of parsed keys A-D plus ``"other"`` for
        any other key; MCQs without a key are not counted).
    """
    n = n_valid = 0
    reason_counts = {code: 0 for code in REASON_CODES}
    answers = {**{letter: 0 for letter in LETTERS}, "other": 0}
    for item in texts:
        check = validate_mcq(item)
        n += 1
        n_valid += check.valid
        for code in check.reasons:
            reason_counts[code] += 1
        key = check.mcq.answer
        if key is not None:
            answers[key if key in LETTERS else "other"] += 1
    return {
        "n": n,
        "n_valid": n_valid,
        "validity_rate": (n_valid / n) if n else 0.0,
        "reason_counts": reason_counts,
        "answer_distribution": answers,
    }


# ---------------------------------------------------------------------------
# Tabular export
# ---------------------------------------------------------------------------

#: Column order of :func:`mcqs_to_rows`.
CSV_COLUMNS: tuple[str, ...] = ("question", "A", "B", "C", "D", "answer", "valid", "reasons")


def mcqs_to_rows(items: Iterable[MCQ | str]) -> list[dict[str, Any]]:
    """Flatten MCQs into rows for a CSV / DataFrame.

    Args:
        items: MCQs or raw texts.

    Returns:
        One dict per item with the keys of :data:`CSV_COLUMNS`: ``question``,
        ``A``-``D`` (``""`` when missing), ``answer`` (``""`` when missing),
        ``valid`` (bool) and ``reasons`` (codes joined with ``";"``).  Options
        beyond D are not exported; ``extra_options`` in ``reasons`` flags them.
    """
    rows: list[dict[str, Any]] = []
    for item in items:
        check = validate_mcq(item)
        mcq = check.mcq
        row: dict[str, Any] = {"question": mcq.question or ""}
        for letter in LETTERS:
            row[letter] = mcq.options.get(letter, "")
        row["answer"] = mcq.answer or ""
        row["valid"] = check.valid
        row["reasons"] = ";".join(check.reasons)
        rows.append(row)
    return rows
