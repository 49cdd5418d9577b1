"""The multiple-choice question (MCQ) text format: build the canonical layout, parse a forgiving one.

The model in LoRA Studio is fine-tuned to write Vietnamese informatics MCQs in
exactly one canonical text layout (see :func:`format_mcq`).  Everything that
produces training text or reads model output goes through this module, so the
format is defined in one place only.

Parsing is deliberately forgiving: a small model after a short fine-tune does
not always reproduce the layout to the letter, and teachers paste questions
from Word documents in many house styles.  The checks that follow are strict:
the structure in :mod:`core.tasks.mcq_checks`, the content in
:mod:`core.tasks.mcq_content`; the cards are ``gui/render/mcq_cards.py``.

This module uses the standard library only and never imports gradio.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["MCQ_QUESTION_PREFIX", "MCQ_ANSWER_PREFIX", "LETTERS", "MCQ", "format_mcq", "parse_mcq", "ANSWER_LINE",
           "split_answer_line", "shuffle_options", "shuffled_order"]

# ---------------------------------------------------------------------------
# Canonical format
# ---------------------------------------------------------------------------

MCQ_QUESTION_PREFIX = "Câu hỏi:"
MCQ_ANSWER_PREFIX = "Đáp án:"

#: The four option letters of a well-formed MCQ, in order.
LETTERS: tuple[str, ...] = ("A", "B", "C", "D")

# Letters the parser recognises as option markers.  Going past D lets us
# *detect* extra options (a common failure: the model invents an "E.") instead
# of silently gluing them onto the question; stopping at H keeps ordinary
# words such as "I" or "X" from looking like options.
_OPTION_LETTERS = "ABCDEFGH"


def _clean_option_for_format(letter: str, text: str) -> str:
    """Return ``text`` as one line, without a duplicated ``letter.`` marker."""
    text = text.strip()
    # Datasets often store options already labelled ("A. foo"); without this the
    # model would learn "A. A. foo".  Only the option's own letter is removed so
    # that a genuine text like "B. ..." inside option A survives.
    m = re.match(rf"^\(?{letter}\s*[.):]\)?\s+", text, flags=re.IGNORECASE)
    if m and text[m.end():].strip():
        text = text[m.end():]
    # An option must stay on one line: a newline would make the parser treat the
    # remainder as noise and the model would learn a broken layout.
    return re.sub(r"\s*\n\s*", " ", text).strip()


def _normalize_answer_letter(answer: str) -> str:
    """Turn ``"b"``, ``" B. "``, ``"(B)"`` into ``"B"``; raise if not A-D."""
    letter = answer.strip().strip("().:").strip().upper()
    if letter not in LETTERS:
        raise ValueError(f"answer must be one of A, B, C, D, got {answer!r}")
    return letter


def format_mcq(question: str, options: Sequence[str], answer: str) -> str:
    """Build the canonical MCQ text the model is trained to produce.

    The layout is exactly::

        Câu hỏi: <question>
        A. <option>
        B. <option>
        C. <option>
        D. <option>
        Đáp án: X.

    with no trailing newline.  This is the single source of the format: the
    training templates call it, and :func:`parse_mcq` round-trips it.

    Args:
        question: The question stem.  Surrounding whitespace is removed;
            internal newlines (e.g. a code snippet) are kept.
        options: Exactly four option texts, in A-D order.  A leading marker of
            the option's own letter (``"A. foo"`` at position A) is removed and
            internal newlines are folded into spaces.
        answer: The key letter; case, surrounding spaces, parentheses and a
            trailing dot are tolerated (``"b"``, ``"(B)"``, ``"B."``).

    Returns:
        The canonical MCQ text.

    Raises:
        ValueError: If there are not exactly four options, the question or an
            option is empty, or the answer is not one of A-D.  Training on such
            an item would teach the model a broken format, so it fails loudly.
    """
    if isinstance(options, str) or len(options) != len(LETTERS):
        raise ValueError(f"format_mcq needs exactly 4 options, got {options!r}")
    stem = question.strip()
    if not stem:
        raise ValueError("format_mcq needs a non-empty question")
    lines = [f"{MCQ_QUESTION_PREFIX} {stem}"]
    for letter, text in zip(LETTERS, options):
        cleaned = _clean_option_for_format(letter, str(text))
        if not cleaned:
            raise ValueError(f"format_mcq: option {letter} is empty")
        lines.append(f"{letter}. {cleaned}")
    lines.append(f"{MCQ_ANSWER_PREFIX} {_normalize_answer_letter(answer)}.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Data classes
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MCQ:
    """One parsed multiple-choice question.

    Attributes:
        question: The question stem, or ``None`` if none was found.
        options: Option letter (uppercase) -> option text, for every letter
            found, in letter order.  May contain letters beyond D.
        answer: The answer key as written, uppercased (normally one letter), or
            ``None`` if there is no answer line.
        raw: The text the MCQ was parsed from, unchanged.  Excluded from
            equality so that two spellings of the same MCQ compare equal.
    """

    question: str | None
    options: dict[str, str]
    answer: str | None
    raw: str = field(default="", compare=False)


def shuffled_order(mcq: MCQ) -> tuple[str, ...] | None:
    """The letters of ``mcq``'s options in the order :func:`shuffle_options` puts them (new position ``n`` holds the
    option that was at ``order[n]``); None for an MCQ without four options A–D and a key among them."""
    import hashlib
    import itertools

    if mcq.answer not in LETTERS or any(x not in mcq.options for x in LETTERS):
        return None
    seed = hashlib.sha256("\n".join([mcq.question or "", *(mcq.options[x] for x in LETTERS)]).encode("utf-8"))
    orders = list(itertools.permutations(LETTERS))
    return orders[int.from_bytes(seed.digest()[:8], "big") % len(orders)]


def shuffle_options(mcq: MCQ) -> MCQ:
    """The MCQ with its four options moved to other letters, the key following its option.

    For a model trained to write its answer first (the key-first task): a quiz must not always key A. The order is
    a permutation drawn from the question's own text (sha256), so the same question always comes out the same,
    and over many questions each letter is the key about a quarter of the time. An MCQ without four options A–D
    and a key among them is returned as it is.
    """
    order = shuffled_order(mcq)
    if order is None:
        return mcq
    options = {new: mcq.options[old] for new, old in zip(LETTERS, order)}
    return MCQ(mcq.question, options, LETTERS[order.index(mcq.answer)], mcq.raw)


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------

# Markdown emphasis the model (or a pasted document) sometimes wraps around
# prefixes, e.g. "**Câu 1:**" or "**Đáp án:** B".
_MD = r"[*_]{0,2}"

# "Câu hỏi:", "Câu hỏi 1:", "Câu hỏi số 1.", "Câu 1:", "Question 2)".  A bare
# "Câu" must be followed by a number, because many Vietnamese questions
# genuinely start with "Câu lệnh ..." ("the statement ...").  A separator (or end
# of line) is required so that "Câu hỏi nào ..." is not taken as a prefix.
_QUESTION_RE = re.compile(
    rf"^[#>\s]*{_MD}"
    r"(?:câu\s*hỏi(?:\s*(?:số\s*)?\d+)?|câu\s*(?:số\s*)?\d+|question(?:\s*\d+)?)"
    rf"\s*{_MD}\s*(?:[:.)：\-–—]|$){_MD}\s*(?P<text>.*)$",
    re.IGNORECASE | re.DOTALL,
)

# "Đáp án: B", "Đáp án đúng là B", "**Đáp án:** (B)", "Answer: B".
_ANSWER_RE = re.compile(
    rf"^[#>\s]*{_MD}(?:đáp\s*án|answer)(?:\s+đúng)?(?:\s+là)?\s*{_MD}\s*"
    rf"(?P<sep>[:：=\-–—])?\s*{_MD}\s*(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)

# A single key letter, alone or followed by punctuation/option text: "B",
# "B.", "(B)", "B. Mảng".  The negative look-ahead stops "Đáp án nào ..." (a
# question!) from yielding the answer "N".
_ANSWER_LETTER_RE = re.compile(r"^\(?\s*(?P<letter>[A-Za-z])\s*\)?(?!\w)")

# Used to cut an answer that shares a line with other text
# ("D. 42 Đáp án: B").  A colon and a capital "Đ" are required: stems very
# often say "Chọn đáp án đúng: ..." ("choose the correct answer"), and that
# lowercase mid-sentence phrase must stay part of the question.
_INLINE_ANSWER_SPLIT_RE = re.compile(
    rf"(?<=\S)\s+(?={_MD}(?:Đáp\s*án|ĐÁP\s*ÁN)(?:\s+đúng|\s+ĐÚNG)?"
    rf"(?:\s+là|\s+LÀ)?\s*{_MD}\s*[:：])"
)

# Option lines: "A. x", "A) x", "A: x", "A - x", "a. x", "- A. x", "**A.** x".
# Whitespace (or end of line) is required after the separator so that code in
# an unprefixed stem ("a:=a+1", "a.append(1)") is not mistaken for an option.
_OPTION_RE = re.compile(
    rf"^(?:[-*•+]\s+)?{_MD}(?P<letter>[{_OPTION_LETTERS}{_OPTION_LETTERS.lower()}])"
    rf"\s*(?P<sep>[.):\-–—]){_MD}(?:\s+|$)(?P<text>.*)$",
    re.DOTALL,
)
# "(A) x" / "(a)x": the parentheses are unambiguous, so no space is required.
_PAREN_OPTION_RE = re.compile(
    rf"^(?:[-*•+]\s+)?{_MD}\(\s*(?P<letter>[{_OPTION_LETTERS}{_OPTION_LETTERS.lower()}])"
    rf"\s*\){_MD}\s*(?P<text>.*)$",
    re.DOTALL,
)

# Characters that vary between editors but carry no meaning here.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)
_SPACES = dict.fromkeys(map(ord, "\u00a0\u2007\u202f\u3000"), " ")


def _normalize_text(text: str) -> str:
    """NFC-normalise and unify line endings and exotic spaces."""
    # Vietnamese may arrive decomposed (NFD, e.g. from macOS or some PDFs); the
    # regexes and the duplicate check compare code points, so compose first.
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.translate(_INVISIBLE).translate(_SPACES)


def _marker_pattern(letter: str, style: str) -> re.Pattern[str]:
    """Regex for an inline option marker of ``letter`` in ``style``.

    ``style`` is the separator character (``.``, ``)``, ``:``, ``-``) or
    ``"paren"`` for ``(A)``.  The marker must be preceded by whitespace (group
    ``gap``) and followed by whitespace or the end of the text.
    """
    if style == "paren":
        marker = rf"\(\s*{letter}\s*\)"
    elif style in "-–—":
        # Hyphens only count with a space on both sides ("A - x"): "x-y" is text.
        marker = rf"{letter}\s+[-–—]"
    else:
        marker = rf"{letter}\s*{re.escape(style)}"
    return re.compile(rf"(?P<gap>\s+){marker}(?=\s|$)")


def _chain_options(
    text: str, next_index: int, lower: bool, style: str, *, min_markers: int
) -> tuple[str, list[tuple[str, str]]] | None:
    """Split ``text`` at consecutive inline option markers.

    Finds markers for ``_OPTION_LETTERS[next_index]``, the letter after it, and
    so on, strictly in order and all in the same case and style.  The chain is
    accepted only if it is convincing: it runs at least to D, or every marker
    is preceded by a wide gap (tab or 2+ spaces, the usual two-column layout
    "A. x    B. y").  This keeps option texts such as "x B. y" intact.

    Args:
        text: Text that may contain inline options.
        next_index: Index in ``_OPTION_LETTERS`` of the first marker to find.
        lower: Whether the markers use lowercase letters.
        style: Separator style, see :func:`_marker_pattern`.
        min_markers: Minimum number of markers for the chain to count.

    Returns:
        ``(head, [(letter, text), ...])`` where ``head`` is the text before the
        first marker, or ``None`` if no convincing chain was found.
    """
    found: list[tuple[int, int, str, str]] = []
    pos = 0
    for letter in _OPTION_LETTERS[next_index:]:
        shown = letter.lower() if lower else letter
        m = _marker_pattern(shown, style).search(text, pos)
        if m is None:
            break
        found.append((m.start(), m.end(), letter, m.group("gap")))
        pos = m.end()
    if len(found) < min_markers:
        return None
    reaches_d = _OPTION_LETTERS.index(found[-1][2]) >= _OPTION_LETTERS.index("D")
    wide = all("\t" in gap or len(gap) >= 2 for *_, gap in found)
    if not (reaches_d or wide):
        return None
    head = text[: found[0][0]]
    parts = []
    for i, (_, end, letter, _) in enumerate(found):
        stop = found[i + 1][0] if i + 1 < len(found) else len(text)
        parts.append((letter, text[end:stop].strip()))
    return head, parts


def _split_question_options(text: str) -> tuple[str, list[tuple[str, str]]]:
    """Split options written on the question line ("... ? A. x B. y C. z D. w")."""
    for lower in (False, True):
        for style in (".", ")", ":", "paren"):
            # Try every "A" marker, since the stem itself may contain one.
            # The leading space lets a marker at the very start match too.
            padded = " " + text
            first = _marker_pattern("a" if lower else "A", style)
            for m in first.finditer(padded):
                chain = _chain_options(
                    padded[m.start():], 0, lower, style, min_markers=3
                )
                if chain is not None:
                    return padded[: m.start()].strip(), chain[1]
    return text, []


def _match_option(line: str) -> tuple[str, str, str, bool] | None:
    """Match an option line; return (LETTER, text, style, lowercase) or None."""
    m = _PAREN_OPTION_RE.match(line)
    style = "paren"
    if m is None:
        m = _OPTION_RE.match(line)
        if m is None:
            return None
        style = m.group("sep")
    letter = m.group("letter")
    if letter.islower() and style in ":-–—":
        # "a: int = 5" (a type annotation) and "b - a" are code far more often
        # than options; lowercase options use "a." or "a)" in practice.
        return None
    return letter.upper(), m.group("text").strip(), style, letter.islower()


def _parse_answer_rest(rest: str) -> str | None:
    """Extract the key from what follows "Đáp án"; ``None`` if nothing is there."""
    rest = rest.strip().strip("*_").strip()
    if not rest:
        return None
    m = _ANSWER_LETTER_RE.match(rest)
    if m:
        return m.group("letter").upper()
    # Not a letter ("Đáp án: 2", "Đáp án: không có"): keep the first token so
    # validation can say the answer is not one of A-D.
    token = re.split(r"[\s.,;:)]+", rest.lstrip("("), maxsplit=1)[0]
    return token.upper() or None


def _split_lines(text: str) -> list[str]:
    """Split into right-stripped, non-blank lines; cut inline answer lines."""
    lines: list[str] = []
    for line in text.split("\n"):
        for piece in _INLINE_ANSWER_SPLIT_RE.split(line):
            if piece.strip():
                lines.append(piece.rstrip())
    return lines


def parse_mcq(text: str) -> MCQ:
    """Parse one MCQ from free text, best effort; never raises.

    Tolerated: NFD input; blank lines and stray spaces; the prefixes
    ``Câu hỏi:``, ``Câu hỏi 1:``, ``Câu 1:`` or none (then the first non-option
    line is the question, and following non-option lines continue it);
    options written ``A.``, ``A)``, ``A:``, ``A -``, ``(A)``, lowercase letters,
    Markdown bold, or several options on one line (``A. x B. y C. z D. w``, or a
    two-column ``A. x<TAB>B. y``); answers written ``Đáp án: B``, ``Đáp án: B.``,
    ``Đáp án B``, ``Đáp án: (B)``, ``Đáp án: B. <option text>``, ``Đáp án đúng
    là B`` or with the letter on the next line.

    Only the first MCQ counts: parsing stops at the answer line, at a second
    question prefix after options, or at a repeated option letter (a model that
    runs on without writing an answer).

    Args:
        text: Model output or pasted text.  Non-strings are converted with
            ``str()``; ``None`` is treated as empty.

    Returns:
        The parsed :class:`MCQ`; fields that were not found are ``None`` or
        empty.  ``raw`` is the input unchanged.
    """
    raw = "" if text is None else text if isinstance(text, str) else str(text)
    try:
        return _parse(raw)
    except Exception:  # pragma: no cover - defensive: GUI must never crash here
        return MCQ(question=None, options={}, answer=None, raw=raw)


def _parse(raw: str) -> MCQ:
    """Implementation of :func:`parse_mcq` (may raise on unforeseen input)."""
    question_lines: list[str] | None = None  # None = no question seen yet
    question_prefixed = False
    options: dict[str, str] = {}
    answer: str | None = None
    awaiting_answer = False  # "Đáp án:" with the letter on the next line

    def add_options(parts: list[tuple[str, str]]) -> bool:
        """Record options; return False on a repeated letter (next MCQ begins)."""
        for letter, body in parts:
            if letter in options:
                return False
            options[letter] = body
        return True

    for line in _split_lines(_normalize_text(raw)):
        stripped = line.strip()

        if awaiting_answer:
            m = _ANSWER_LETTER_RE.match(stripped)
            if m:
                answer = m.group("letter").upper()
            break

        m = _ANSWER_RE.match(stripped)
        if m:
            rest = m.group("rest")
            if m.group("sep"):
                answer = _parse_answer_rest(rest)
                if answer is None:
                    awaiting_answer = True
                    continue
                break
            # Without a separator, only a lone letter makes this an answer line;
            # "Đáp án nào sau đây đúng?" is a question stem.
            lm = _ANSWER_LETTER_RE.match(rest.strip())
            if lm:
                answer = lm.group("letter").upper()
                break

        m = _QUESTION_RE.match(stripped)
        if m:
            if options or (question_prefixed and question_lines and any(question_lines)):
                break  # a second question: only the first MCQ counts
            body, inline = _split_question_options(m.group("text").strip())
            question_lines = [body] if body else []
            question_prefixed = True
            if inline and not add_options(inline):
                break
            continue

        opt = _match_option(stripped)
        if opt is not None:
            letter, body, style, lower = opt
            parts = [(letter, body)]
            chain = _chain_options(
                " " + body,
                _OPTION_LETTERS.index(letter) + 1,
                lower,
                style,
                min_markers=1,
            )
            if chain is not None:
                head, more = chain
                parts = [(letter, head.strip()), *more]
            if not add_options(parts):
                break
            continue

        # Any other line.
        if options:
            # Explanations or chatter between the options and the answer; they
            # belong to no option, and guessing would corrupt option texts.
            continue
        if not question_lines:
            body, inline = _split_question_options(stripped)
            question_lines = [body] if body else []
            if inline and not add_options(inline):
                break
        else:
            # Multi-line stem (typically a code snippet): keep indentation.
            question_lines.append(line)

    question = "\n".join(question_lines).strip() if question_lines else ""
    ordered = {k: options[k] for k in _OPTION_LETTERS if k in options}
    return MCQ(question=question or None, options=ordered, answer=answer, raw=raw)


# The answer line of the answer-first task (``core.tasks.mcq``): "Ý cần hỏi: <answer>" before the question.
ANSWER_LINE = "Ý cần hỏi:"


def split_answer_line(text: str) -> tuple[str | None, str]:
    """``"Ý cần hỏi: CPU\nCâu hỏi: …"`` → ``("CPU", "Câu hỏi: …")``; text without the line comes back as it is."""
    head, sep, rest = text.lstrip().partition("\n")
    if head.startswith(ANSWER_LINE):
        return head[len(ANSWER_LINE):].strip() or None, rest if sep else ""
    return None, text
