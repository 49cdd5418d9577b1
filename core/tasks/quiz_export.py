"""Quiz files teachers import into their platforms: Moodle GIFT, Moodle XML, Kahoot and Quizizz spreadsheets.

Input is a list of :class:`QuizItem` — the MCQs the teacher kept, in order; nothing here filters or reorders
them. Each format has a ``to_*`` function that returns the file's content and a ``write_*`` that writes it
to a temporary name beside the target and renames it, so a crash never leaves half a quiz under the real
name; :data:`WRITERS` names them all (CSV too). This module owns the layouts and their escaping, and it never
imports gradio.

Limits: Kahoot cuts a question at 120 characters and an answer at 75. Texts over a limit are kept whole
(the teacher decides what to shorten) and reported as :class:`ExportWarning` records — codes and numbers,
never UI words. ``to_kahoot_xlsx`` / ``to_quizizz_xlsx`` return ``(content, warnings)``; every ``write_*``
returns the warnings (empty for the Moodle formats, which have no length limit).

Layouts:

* GIFT (https://docs.moodle.org/en/GIFT_format): ``::Q1::[plain]question{=right ~wrong ~wrong ~wrong}``,
  one question per block, a blank line between; ``~ = # { } :`` and backslash escaped with a backslash and
  newlines written ``\\n``, as Moodle's own importer (``question/format/gift/format.php``) unescapes them.
  ``[plain]`` makes Moodle show ``<`` and ``&`` as typed, in the question and, by GIFT's rule, in the answers.
* Moodle XML: ``<quiz>`` of ``<question type="multichoice">`` with the texts as escaped HTML in CDATA.
* Kahoot: the sheet of Kahoot's template — the title at B2, notes below, the header on row 8 from column B,
  one question per row from row 9 with its number in column A; "Correct answer(s)" is 1–4.
* Quizizz: the header on row 1 (Question Text, Question Type, Option 1–5, Correct Answer, Time in seconds,
  Image Link, Answer explanation), one question per row from row 2; "Correct Answer" is 1–5.
"""

from __future__ import annotations

import html
import io
import os
import tempfile
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "KEYS",
    "STATUSES",
    "TOO_LONG",
    "KAHOOT_QUESTION_MAX",
    "KAHOOT_ANSWER_MAX",
    "KAHOOT_TIME_LIMITS",
    "KAHOOT_HEADER",
    "KAHOOT_HEADER_ROW",
    "QUIZIZZ_HEADER",
    "QuizItem",
    "ExportWarning",
    "to_gift",
    "to_moodle_xml",
    "to_kahoot_xlsx",
    "to_quizizz_xlsx",
    "write_gift",
    "write_moodle_xml",
    "write_kahoot_xlsx",
    "write_quizizz_xlsx",
    "CSV_HEADER",
    "to_csv",
    "write_csv",
    "WRITERS",
]

#: The option letters, in order; ``QuizItem.key`` is one of them.
KEYS: tuple[str, ...] = ("A", "B", "C", "D")
#: What the review said of an item: ``ok``, or ``flagged`` by a check and kept by the teacher anyway.
STATUSES: tuple[str, ...] = ("ok", "flagged")

#: Warning code: a text is longer than the platform shows (see :class:`ExportWarning`).
TOO_LONG = "too_long"

# Kahoot's template: "Question - max 120 characters", "Answer … - max 75 characters", and the time limits
# its importer accepts.
KAHOOT_QUESTION_MAX = 120
KAHOOT_ANSWER_MAX = 75
KAHOOT_TIME_LIMITS: tuple[int, ...] = (5, 10, 20, 30, 60, 90, 120, 240)
KAHOOT_HEADER_ROW = 8  # rows 1-7 are the template's title and notes; questions start on the row after
KAHOOT_HEADER: tuple[str, ...] = (
    "",
    "Question - max 120 characters",
    "Answer 1 - max 75 characters",
    "Answer 2 - max 75 characters",
    "Answer 3 - max 75 characters",
    "Answer 4 - max 75 characters",
    "Time limit (sec) – 5, 10, 20, 30, 60, 90, 120, or 240 secs",
    "Correct answer(s) - choose at least one",
)
QUIZIZZ_HEADER: tuple[str, ...] = (
    "Question Text",
    "Question Type",
    "Option 1",
    "Option 2",
    "Option 3",
    "Option 4",
    "Option 5",
    "Correct Answer",
    "Time in seconds",
    "Image Link",
    "Answer explanation",
)
DEFAULT_TIME_LIMIT = 30  # seconds: Kahoot's and Quizizz's own default for a question


@dataclass(frozen=True)
class QuizItem:
    """One MCQ the teacher keeps for a quiz.

    Attributes:
        paragraph: The paragraph the question was written from.
        question: The question stem.
        options: The four option texts, A–D (a list is accepted and stored as a tuple).
        key: The correct option's letter, ``"A"``–``"D"``.
        status: ``"ok"``, or ``"flagged"`` when a check raised something and the teacher kept it anyway.
        reasons: The codes behind a flag (structure or content check codes).

    Raises:
        ValueError: Not exactly four options, a key outside A–D, an unknown status, or an empty question.
    """

    paragraph: str
    question: str
    options: tuple[str, str, str, str]
    key: str
    status: Literal["ok", "flagged"] = "ok"
    reasons: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.options, str) or len(self.options) != len(KEYS):
            raise ValueError(f"QuizItem needs exactly 4 options, got {self.options!r}")
        object.__setattr__(self, "options", tuple(str(o) for o in self.options))
        object.__setattr__(self, "reasons", tuple(self.reasons))
        if self.key not in KEYS:
            raise ValueError(f"QuizItem key must be one of A, B, C, D, got {self.key!r}")
        if self.status not in STATUSES:
            raise ValueError(f"QuizItem status must be one of {', '.join(STATUSES)}, got {self.status!r}")
        if not str(self.question).strip():
            raise ValueError("QuizItem needs a non-empty question")

    @property
    def answer_index(self) -> int:
        """The key as a 1-based option number (the spreadsheets' "correct answer")."""
        return KEYS.index(self.key) + 1

    @property
    def right(self) -> str:
        """The correct option's text."""
        return self.options[KEYS.index(self.key)]


@dataclass(frozen=True)
class ExportWarning:
    """Something a platform will not take as written; the text was exported whole anyway.

    Attributes:
        number: The question's 1-based position in the quiz.
        field: ``"question"`` or the option letter ``"A"``–``"D"``.
        code: :data:`TOO_LONG`.
        limit: The platform's limit, in characters.
        length: The text's length, in characters.
    """

    number: int
    field: str
    code: str
    limit: int
    length: int


# ---------------------------------------------------------------------------
# Writing files
# ---------------------------------------------------------------------------


def _write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


# ---------------------------------------------------------------------------
# Moodle GIFT
# ---------------------------------------------------------------------------

_GIFT_SPECIAL = "\\~=#{}:"  # backslash first, so the escapes added after it are not escaped again


def _gift_escape(text: str) -> str:
    """Escape GIFT's control characters and write line breaks as ``\\n``, on one line."""
    text = str(text).replace("\r\n", "\n").replace("\r", "\n")
    for ch in _GIFT_SPECIAL:
        text = text.replace(ch, "\\" + ch)
    return text.replace("\n", "\\n")


def _stem(item: QuizItem, include_paragraph: bool) -> str:
    """The question text shown to students: the stem, after the paragraph when asked to."""
    stem = item.question.strip()
    return f"{item.paragraph.strip()}\n\n{stem}" if include_paragraph and item.paragraph.strip() else stem


def to_gift(
    items: Sequence[QuizItem],
    title: str | None = None,
    *,
    category: str | None = None,
    include_paragraph: bool = False,
) -> str:
    """The quiz as Moodle GIFT text.

    Args:
        items: The questions, in quiz order.
        title: Written as a ``//`` comment on the first line (GIFT has no title).
        category: When given, a ``$CATEGORY:`` line first, so Moodle files the questions under it.
        include_paragraph: Put the paragraph before each question (for "Theo đoạn văn, …" questions).

    Returns:
        The GIFT text, ending with a newline; UTF-8 when written. A flagged item gets a ``// flagged: …``
        comment line, which Moodle ignores and the teacher sees.
    """
    blocks: list[str] = []
    if title:
        blocks.append("// " + " ".join(str(title).split()))
    if category:
        blocks.append(f"$CATEGORY: {' '.join(str(category).split())}")
    for number, item in enumerate(items, start=1):
        lines = []
        if item.status == "flagged":
            lines.append("// flagged: " + (", ".join(item.reasons) or "unspecified"))
        lines.append(f"::Q{number}::[plain]{_gift_escape(_stem(item, include_paragraph))} {{")
        for letter, text in zip(KEYS, item.options):
            mark = "=" if letter == item.key else "~"
            lines.append(f"\t{mark}{_gift_escape(text.strip())}")
        lines.append("}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def write_gift(items: Sequence[QuizItem], path: str | os.PathLike, **options) -> tuple[ExportWarning, ...]:
    """Write :func:`to_gift` to ``path`` (UTF-8) via a temporary name; returns no warnings (no limits)."""
    _write_atomic(path, to_gift(items, **options).encode("utf-8"))
    return ()


# ---------------------------------------------------------------------------
# Moodle XML
# ---------------------------------------------------------------------------


def _cdata(text: str) -> str:
    """``text`` in a CDATA section; a ``]]>`` inside is split across two sections, so the XML stays valid.

    Our texts are escaped HTML, where ``>`` is ``&gt;``, so the split only guards a caller passing raw HTML.
    """
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _html_paragraphs(text: str) -> str:
    """Plain text as HTML: escaped, blank lines → paragraphs, line breaks → ``<br>``."""
    parts = [p for p in str(text).replace("\r\n", "\n").split("\n\n") if p.strip()]
    return "".join("<p>" + "<br>".join(html.escape(line, quote=False) for line in p.strip().split("\n")) + "</p>"
                   for p in parts)


def _xml_text(text: str) -> str:
    """Escape text for an XML element (names, tags, categories)."""
    return html.escape(str(text), quote=False)


def to_moodle_xml(
    items: Sequence[QuizItem],
    category: str | None = None,
    *,
    include_paragraph: bool = False,
    shuffle_answers: bool = True,
) -> str:
    """The quiz as Moodle XML (Question bank → Import → Moodle XML format).

    Args:
        items: The questions, in quiz order.
        category: When given, a category pseudo-question first (``$course$/top/<category>``), so Moodle files
            the questions under it.
        include_paragraph: Put the paragraph before each question.
        shuffle_answers: Let Moodle shuffle the options for each attempt (their letters then change; the key
            follows its text).

    Returns:
        The XML document. Texts are HTML-escaped inside CDATA, so ``<``, ``&`` and ``]]>`` come through as
        typed. Each question is single-answer, numbered ABCD, with fraction 100 on the key and 0 elsewhere;
        a flagged item carries a ``flagged`` tag and one tag per reason code.
    """
    out = ['<?xml version="1.0" encoding="UTF-8"?>', "<quiz>"]
    if category:
        out += [
            '  <question type="category">',
            f"    <category><text>{_xml_text('$course$/top/' + ' '.join(str(category).split()))}</text></category>",
            "  </question>",
        ]
    for number, item in enumerate(items, start=1):
        name = f"Q{number} - {textwrap.shorten(item.question, 60, placeholder=' …')}"
        out += [
            '  <question type="multichoice">',
            f"    <name><text>{_xml_text(name)}</text></name>",
            (f'    <questiontext format="html"><text>{_cdata(_html_paragraphs(_stem(item, include_paragraph)))}'
             "</text></questiontext>"),
            '    <generalfeedback format="html"><text></text></generalfeedback>',
            "    <defaultgrade>1</defaultgrade>",
            "    <penalty>0.3333333</penalty>",
            "    <hidden>0</hidden>",
            "    <single>true</single>",
            f"    <shuffleanswers>{'true' if shuffle_answers else 'false'}</shuffleanswers>",
            "    <answernumbering>ABCD</answernumbering>",
        ]
        for letter, text in zip(KEYS, item.options):
            fraction = 100 if letter == item.key else 0
            out += [
                f'    <answer fraction="{fraction}" format="html">',
                f"      <text>{_cdata(_html_paragraphs(text.strip()) or '<p></p>')}</text>",
                '      <feedback format="html"><text></text></feedback>',
                "    </answer>",
            ]
        if item.status == "flagged":
            tags = ["flagged", *item.reasons]
            out.append("    <tags>" + "".join(f"<tag><text>{_xml_text(t)}</text></tag>" for t in tags) + "</tags>")
        out.append("  </question>")
    out.append("</quiz>")
    return "\n".join(out) + "\n"


def write_moodle_xml(items: Sequence[QuizItem], path: str | os.PathLike, **options) -> tuple[ExportWarning, ...]:
    """Write :func:`to_moodle_xml` to ``path`` (UTF-8) via a temporary name; returns no warnings (no limits)."""
    _write_atomic(path, to_moodle_xml(items, **options).encode("utf-8"))
    return ()


# ---------------------------------------------------------------------------
# Spreadsheets (Kahoot, Quizizz)
# ---------------------------------------------------------------------------


# openpyxl is imported where a spreadsheet is built: the text formats work without it.


def _cell_text(text: str) -> str:
    """A string openpyxl can store: control characters other than tab and newline removed."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return ILLEGAL_CHARACTERS_RE.sub("", str(text))


def _put(sheet, row: int, column: int, value) -> None:
    """Write one cell (an empty text leaves it empty); a text stays text even when it starts with "="."""
    if value == "":
        return
    cell = sheet.cell(row=row, column=column, value=_cell_text(value) if isinstance(value, str) else value)
    if isinstance(value, str):
        cell.data_type = "s"  # openpyxl would store "=A2+B2" as a formula


def _workbook_bytes(book) -> bytes:
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _length_warnings(number: int, item: QuizItem, question_max: int, answer_max: int) -> list[ExportWarning]:
    found = []
    if len(item.question.strip()) > question_max:
        found.append(ExportWarning(number, "question", TOO_LONG, question_max, len(item.question.strip())))
    for letter, text in zip(KEYS, item.options):
        if len(text.strip()) > answer_max:
            found.append(ExportWarning(number, letter, TOO_LONG, answer_max, len(text.strip())))
    return found


def to_kahoot_xlsx(
    items: Sequence[QuizItem], title: str = "Quiz", *, time_limit: int = DEFAULT_TIME_LIMIT
) -> tuple[bytes, tuple[ExportWarning, ...]]:
    """The quiz as a Kahoot spreadsheet (Create → Import spreadsheet), in the layout of Kahoot's template.

    Args:
        items: The questions, in quiz order.
        title: Written at B2, where the template has its title.
        time_limit: Seconds per question, one of :data:`KAHOOT_TIME_LIMITS`.

    Returns:
        ``(xlsx bytes, warnings)``: one :data:`TOO_LONG` warning per question over
        :data:`KAHOOT_QUESTION_MAX` or answer over :data:`KAHOOT_ANSWER_MAX` characters (kept whole).

    Raises:
        ValueError: A time limit Kahoot does not accept.
    """
    if time_limit not in KAHOOT_TIME_LIMITS:
        raise ValueError(f"time_limit must be one of {', '.join(map(str, KAHOOT_TIME_LIMITS))} seconds for Kahoot, "
                         f"got {time_limit!r}")
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "Sheet1"
    _put(sheet, 2, 2, " ".join(str(title).split()) or "Quiz")
    _put(sheet, 4, 2, f"Questions: max {KAHOOT_QUESTION_MAX} characters; answers: max {KAHOOT_ANSWER_MAX} characters.")
    for column, header in enumerate(KAHOOT_HEADER, start=1):
        if header:
            _put(sheet, KAHOOT_HEADER_ROW, column, header)
    warnings: list[ExportWarning] = []
    for number, item in enumerate(items, start=1):
        row = KAHOOT_HEADER_ROW + number
        values = [number, item.question.strip(), *(o.strip() for o in item.options), time_limit, item.answer_index]
        for column, value in enumerate(values, start=1):
            _put(sheet, row, column, value)
        warnings += _length_warnings(number, item, KAHOOT_QUESTION_MAX, KAHOOT_ANSWER_MAX)
    for column, width in zip("ABCDEFGH", (6, 60, 30, 30, 30, 30, 18, 18)):
        sheet.column_dimensions[column].width = width
    return _workbook_bytes(book), tuple(warnings)


def to_quizizz_xlsx(
    items: Sequence[QuizItem], *, time_limit: int = DEFAULT_TIME_LIMIT
) -> tuple[bytes, tuple[ExportWarning, ...]]:
    """The quiz as a Quizizz (Wayground) spreadsheet: header on row 1, one question per row.

    Args:
        items: The questions, in quiz order.
        time_limit: Seconds per question (positive).

    Returns:
        ``(xlsx bytes, warnings)``; Quizizz publishes no length limit, so the warnings are empty.

    Raises:
        ValueError: A time limit that is not a positive whole number of seconds.
    """
    if not isinstance(time_limit, int) or time_limit <= 0:
        raise ValueError(f"time_limit must be a positive number of seconds, got {time_limit!r}")
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "Sheet1"
    for column, header in enumerate(QUIZIZZ_HEADER, start=1):
        _put(sheet, 1, column, header)
    for number, item in enumerate(items, start=1):
        values = [item.question.strip(), "Multiple Choice", *(o.strip() for o in item.options), "",
                  item.answer_index, time_limit, "", ""]
        for column, value in enumerate(values, start=1):
            _put(sheet, 1 + number, column, value)
    for column, width in zip("ABCDEFGHIJK", (60, 16, 28, 28, 28, 28, 10, 14, 14, 14, 20)):
        sheet.column_dimensions[column].width = width
    return _workbook_bytes(book), ()


def write_kahoot_xlsx(items: Sequence[QuizItem], path: str | os.PathLike, **options) -> tuple[ExportWarning, ...]:
    """Write :func:`to_kahoot_xlsx` to ``path`` via a temporary name; returns its warnings."""
    content, warnings = to_kahoot_xlsx(items, **options)
    _write_atomic(path, content)
    return warnings


def write_quizizz_xlsx(items: Sequence[QuizItem], path: str | os.PathLike, **options) -> tuple[ExportWarning, ...]:
    """Write :func:`to_quizizz_xlsx` to ``path`` via a temporary name; returns its warnings."""
    content, warnings = to_quizizz_xlsx(items, **options)
    _write_atomic(path, content)
    return warnings


# --------------------------------------------------------------------------- CSV, and one entry for every format

CSV_HEADER = ("paragraph", "question", "A", "B", "C", "D", "key", "status", "reasons")


def to_csv(items: Sequence[QuizItem]) -> str:
    """One row per question: paragraph, question, A–D, key, status (ok / flagged) and its reason codes."""
    import csv

    buf = io.StringIO()
    writer = csv.writer(buf, quoting=csv.QUOTE_ALL)
    writer.writerow(CSV_HEADER)
    for item in items:
        writer.writerow([item.paragraph, item.question, *item.options, item.key, item.status, ";".join(item.reasons)])
    return buf.getvalue()


def write_csv(items: Sequence[QuizItem], path: str | os.PathLike, **options) -> tuple[ExportWarning, ...]:
    """The CSV, UTF-8 with a BOM (Excel then reads Vietnamese correctly)."""
    _write_atomic(path, ("\ufeff" + to_csv(items)).encode("utf-8"))
    return ()


# format name → (writer, file suffix): what ``python -m core quiz --format`` and the Classroom's export offer
WRITERS = {"csv": (write_csv, ".csv"), "gift": (write_gift, ".gift.txt"), "moodle": (write_moodle_xml, ".xml"),
           "kahoot": (write_kahoot_xlsx, ".xlsx"), "quizizz": (write_quizizz_xlsx, ".xlsx")}
