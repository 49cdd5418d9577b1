"""Automatic content checks of a Vietnamese MCQ against the paragraph it was written from.

What "correct" means for a teacher:

* the question can be answered from the paragraph alone;
* exactly one option is right according to the paragraph, and the key names it;
* the three distractors are wrong according to the paragraph but of the same kind as the answer
  (other devices, other commands, other numbers);
* no option repeats another option or the question;
* the question is not a copied sentence of the paragraph with a blank in it.

None of that can be decided by string matching, so every check here is a SIGNAL, not the verdict: a flag
says "a teacher should look at this", a pass says nothing was noticed. The signals are proxies and can be
gamed — a generator that always keys the option with the most words in common with the paragraph would never
raise ``key_unsupported`` and still write wrong keys whenever the answer needs reasoning (arithmetic, a
binary conversion, a path). Do not train on them or rank models by them alone; a person reviews.

Each failure has a stable reason code (:data:`CONTENT_CODES`, in a fixed order); the GUI translates the code,
the numbers behind it are in :attr:`ContentFlag.detail`. This module owns the checks and their thresholds;
the structure checks (four options, a key) are ``core.tasks.mcq_checks``', and it never imports gradio.

Vietnamese: text is NFC-normalised and compared by syllables (whitespace tokens, lowercased, punctuation at
the edges stripped). Support and copying use the exact syllables, tones included (``bảng`` "table" and ``bằng``
"by" are different words); the near-duplicate check also compares a tone-insensitive :func:`fold`, since two
options differing only by a tone mark (a typo) are the same option to a student.

Measured on the 341 bundled gold MCQs (``assets/samples/vi_informatics_mcq.jsonl``, all correct), flags raised
per code — the false-flag rate of each check::

    key_unsupported           7  (2.1%)  keys the paragraph words differently ("Đĩa DVD" for "đĩa quang"),
                                         answers that need reasoning (a path, a Python name), questions
                                         whose distractors are what the paragraph warns about
    no_option_supported       0
    near_duplicate_options    0
    placeholder_options       0
    question_off_topic        0
    question_copied           0
    option_repeats_question   1  (0.3%)  a key whose words all stand in its question ("Số lớn hơn trong hai
                                         số" for "… tìm số lớn hơn trong hai số a và b, đầu ra là gì?")
    not_a_question            0
    passed                  333  (97.7%)

``key_unsupported`` fires on 66.3% of the gold MCQs with the key moved to a distractor (each of the three: 1023
cases), 76.6% of the 885 whose options are not numbers; it misses mostly where the distractors are terms of
the paragraph too. Numeric options (46 MCQs: "16", "2048 GB", "1010₂") are exempt from the two support checks:
the paragraph states the rule, the answer is computed.

Reproduce with ``python -m bench --only mcq-checks`` (``bench/mcq_checks.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.tasks.mcq_format import MCQ, parse_mcq
from core.tasks.vi_text import (BLANK_RE, CODE_CHARS, MEANING_WORDS, STOP_WORDS, Paragraph, content_syllables, fold,
                                has_digit, nfc, option_key, option_support, option_tokens, anchored_support, syllables)

__all__ = [
    "KEY_UNSUPPORTED",
    "NO_OPTION_SUPPORTED",
    "NEAR_DUPLICATE_OPTIONS",
    "PLACEHOLDER_OPTIONS",
    "QUESTION_OFF_TOPIC",
    "QUESTION_COPIED",
    "NOT_A_QUESTION",
    "OPTION_REPEATS_QUESTION",
    "CONTENT_CODES",
    "STOP_WORDS",
    "ContentFlag",
    "ContentCheck",
    "check_content",
    "option_support",
    "syllables",
    "fold",
    "summarize_content",
]

# ---------------------------------------------------------------------------
# Reason codes
# ---------------------------------------------------------------------------

#: The keyed option is much less supported by the paragraph than another option (the key is probably wrong);
#: ``options`` is ``(key, better_letter)``.
KEY_UNSUPPORTED = "key_unsupported"
#: No option is supported by the paragraph: the question cannot be answered from it (or needs reasoning).
NO_OPTION_SUPPORTED = "no_option_supported"
#: Two options are the same after normalisation, or nearly the same; ``options`` is the pair.
NEAR_DUPLICATE_OPTIONS = "near_duplicate_options"
#: Options that are placeholders ("1", "...", a lone letter, "1.1"…"1.4"); ``options`` lists them.
PLACEHOLDER_OPTIONS = "placeholder_options"
#: The question shares almost no content syllable with the paragraph.
QUESTION_OFF_TOPIC = "question_off_topic"
#: The question is a (normalised) copy of a sentence or long span of the paragraph, possibly with a blank.
QUESTION_COPIED = "question_copied"
#: An option is the question itself, or a long span of it; ``options`` lists them.
OPTION_REPEATS_QUESTION = "option_repeats_question"
#: The stem asks nothing: no question word (gì, nào, bao nhiêu…), no blank, no completion cue — a statement, or a
#: yes/no sentence, given four options.
NOT_A_QUESTION = "not_a_question"

#: Every content code, in the order :func:`check_content` reports them.
CONTENT_CODES: tuple[str, ...] = (
    KEY_UNSUPPORTED,
    NO_OPTION_SUPPORTED,
    NEAR_DUPLICATE_OPTIONS,
    PLACEHOLDER_OPTIONS,
    QUESTION_OFF_TOPIC,
    QUESTION_COPIED,
    OPTION_REPEATS_QUESTION,
    NOT_A_QUESTION,
)

_LETTERS = ("A", "B", "C", "D")

# ---------------------------------------------------------------------------
# Thresholds (each measured on the 341 bundled gold MCQs; see the module docstring)
# ---------------------------------------------------------------------------

# key_unsupported: another option must beat the key by this much, and be supported at least this well.
# Why: on the gold MCQs a margin of 0.1 falsely flags 12 keys, 0.15 → 7, 0.2 → 6, 0.25 → 4, while keys moved
# to a distractor are caught at 71% / 66% / 61% / 58%. 0.15 keeps the false flags near 2% and still catches two
# moved keys in three. The floor barely matters (0.3 and 0.5 move the catch rate by 1%); it keeps "better" to
# options the paragraph really holds.
KEY_MARGIN = 0.15
KEY_BETTER_MIN = 0.4

# no_option_supported: the best option's support is below this. Why: on the 295 gold MCQs whose options are
# not numbers, the best-supported option scores at least 0.19 (the key ≥ 0.5 in 95%); a question about
# something the paragraph does not say scores 0 for every option.
NO_SUPPORT_MAX = 0.15

# question_off_topic: the share of the question's content syllables found in the paragraph is below this.
# Why: gold questions share at least 0.2 (1% below 0.35, median 0.89); each gold question put next to a
# paragraph of another topic shares 0.11 on median. 0.15 flags no gold question and 60% of those mismatches
# (0.2 would flag 67% but sits on the lowest gold question).
OFF_TOPIC_MAX = 0.15

# question_copied: syllables of the question covered by runs of at least COPY_MIN_RUN syllables that occur
# verbatim in the paragraph. Copied when the share is ≥ COPY_SHARE, or ≥ COPY_SHARE_BLANK with a blank in
# the question, on questions of at least COPY_MIN_SYLLABLES. Why: the highest share among gold questions is
# 0.92 (one that reuses a long phrase of the paragraph and asks "dưới dạng nào?"); every sentence of the
# bundled paragraphs (531 of 8+ words) with its middle word replaced by "___" scores 1.0 at the 5th percentile.
COPY_MIN_RUN = 4
COPY_SHARE = 0.95
COPY_SHARE_BLANK = 0.8
COPY_MIN_SYLLABLES = 6

# near_duplicate_options: beyond an equal normal form (tone-folded), two options are near duplicates when the
# shorter, of at least NEAR_MIN_SYLLABLES syllables, is the longer with at most max(1, NEAR_EXTRA_SHARE ×
# length) syllables left out — unless an added syllable is a negation or degree word ("không", "kém"), a
# number, or the options are code. Substitutions and reorderings never count: they are how good distractors
# differ ("tốc độ càng nhanh" / "càng chậm", "n // 2" / "n % 2", "WWW chạy trên Internet" / "Internet chạy trên
# WWW"); allowing one substituted syllable flagged 11 gold MCQs, the same syllables reordered 4, this rule none.
# Shorter options ("Máy in" / "Máy in phun") differ in meaning by one syllable.
NEAR_MIN_SYLLABLES = 4
NEAR_EXTRA_SHARE = 0.15

# placeholder_options: a number alone is a placeholder only with at most this many digits and only when the
# question does not ask for a quantity. Why: gold options include passwords ("12345678", "01012010") and the
# answers of computing questions ("16", "480 000"); a placeholder is a short count ("1", "123").
PLACEHOLDER_MAX_DIGITS = 4

# option_repeats_question: an option equal to the question (normalised), or one holding the other verbatim and
# covering at least this share of it. Why: gold options reuse spans of their question as long as 6 of its 14
# syllables ("Số lớn hơn trong hai số"), that is 0.43; an option that is most of the question answers nothing.
REPEAT_SHARE = 0.6
# ... and the keyed option when every one of its content syllables (at least this many) is in the question: the
# question gives the answer away ("… có thể trả lời câu hỏi, tóm tắt văn bản hay gợi ý ý tưởng nào?" keyed "Câu
# hỏi, tóm tắt văn bản và gợi ý ý tưởng"). Why: 1 of the 341 gold keys does so ("Số lớn hơn trong hai số");
# of the 19 generated keys read by 2026-12-07 that do, 1 was judged correct. With 3 syllables, 2 gold keys
# ("Ngôn ngữ máy" for "… ngôn ngữ nào?").
KEY_IN_QUESTION_MIN = 4
_NUMBER_SYLLABLE = re.compile(r"[\d.,]+")

# not_a_question: the question words of Vietnamese (as syllables, tones included: "gi" is not "gì"). Why: every
# one of the 341 gold questions holds one; of the 297 generated stems read by 2026-12-03
# (assets/reviews/mcq.jsonl), the 35 without one were all judged wrong and the 41 judged correct all hold one.
# Those 35 are statements copied from the paragraph, or yes/no sentences ("… có thể cắm theo cả hai chiều?")
# given entity options. "hay"/"không" are left out: "đúng hay sai?" and "… không?" ask for yes or no, which four
# options do not answer. A blank ("___") or a stem ending in a completion cue ("là", ":", "…") asks too, and is
# left to the other checks.
QUESTION_WORDS = ("gì", "nào", "sao", "bao nhiêu", "thế nào", "ai", "đâu", "mấy", "bao giờ", "bao lâu")
_QUESTION_CUES = tuple(tuple(word.split()) for word in QUESTION_WORDS)
_COMPLETION_END = re.compile(r"(?:\blà|:|…|\.\.\.)\s*$", re.IGNORECASE)
# A stem ending in a full stop states, whatever words it holds ("… sắp xếp dãy số sao cho phần tử lớn nhất được
# đưa về cuối cùng.": "sao" there is "so that"). Why: all 341 gold questions end in "?"; of the 27 generated stems
# read by 2026-12-07 that end in a full stop, none was judged correct (25 nonsense, 2 invalid structure).
_STATEMENT_END = re.compile(r"(?<!\.)\.\s*$")

# ---------------------------------------------------------------------------
# Individual checks
# ---------------------------------------------------------------------------


def _is_code(text: str) -> bool:
    """Whether an option reads as code or a formula ("n // 2 == 0", "=A1+B1"), where one symbol is meaning."""
    return any(ch in CODE_CHARS for ch in text)


def _near_duplicates(options: Mapping[str, str]) -> list[ContentFlag]:
    """One flag per pair of options that are the same after normalisation, or nearly the same."""
    letters = [x for x in _LETTERS if x in options and options[x].strip()]
    keys = {x: option_key(options[x]) for x in letters}
    meaning = {fold(w) for w in MEANING_WORDS}
    flags = []
    for n, first in enumerate(letters):
        for second in letters[n + 1:]:
            a, b = keys[first], keys[second]
            digits = any(has_digit(t) for t in a + b)
            if a == b or ("".join(a) == "".join(b) and not digits):
                flags.append(ContentFlag(NEAR_DUPLICATE_OPTIONS, (first, second), {"kind": "same"}))
                continue
            if digits or _is_code(options[first]) or _is_code(options[second]):
                continue
            short, long_ = (a, b) if len(a) <= len(b) else (b, a)
            extra = len(long_) - len(short)
            if len(short) < NEAR_MIN_SYLLABLES or not 0 < extra <= max(1, int(NEAR_EXTRA_SHARE * len(long_))):
                continue
            added = _added_syllables(short, long_)
            if added is not None and not any(t in meaning for t in added):
                flags.append(ContentFlag(NEAR_DUPLICATE_OPTIONS, (first, second),
                                         {"kind": "contained", "extra_syllables": extra}))
    return flags


def _added_syllables(short: Sequence[str], long_: Sequence[str]) -> list[str] | None:
    """The syllables ``long_`` adds when it is ``short`` with a few syllables inserted, else ``None``."""
    added: list[str] = []
    i = 0
    for token in long_:
        if i < len(short) and token == short[i]:
            i += 1
        else:
            added.append(token)
    return added if i == len(short) else None


# A question asks for a number when it says so (or holds a number to compute with); then "16" is a real
# option. Matched as whole syllables: "tính" alone would match every "máy tính" (computer).
_QUANTITY_CUES = tuple(
    tuple(cue.split())
    for cue in ("bao nhiêu", "mấy", "giá trị", "kết quả", "số nào", "năm nào", "ngày nào", "in ra", "trả về",
                "số lượng", "đếm")
)
# Questions about letters, where a lone letter is a real option ("chữ cái nào", "ngôn ngữ C", "ổ đĩa D").
_LETTER_CUES = tuple(tuple(cue.split()) for cue in ("chữ", "kí tự", "ký tự", "kí hiệu", "ký hiệu", "ngôn ngữ",
                                                    "cột", "ổ"))
_NUMBER_RE = re.compile(r"^[+-]?\d+(?:[.,]\d+)*$")
# "Câu 1" … "Câu 4", "1.1" … "1.4", "Phương án A" … "Phương án D": a prefix and a counter.
_COUNTER_RE = re.compile(r"^(.*?)(\d+|(?<=\s)[A-D])$")
_BLANK_OPTIONS = frozenset({"?", "-", "—", "–"})


def _mentions(tokens: Sequence[str], cues: Sequence[tuple[str, ...]]) -> bool:
    """Whether one of the syllable sequences ``cues`` occurs in ``tokens``."""
    return any(tuple(tokens[i:i + len(cue)]) == cue for cue in cues for i in range(len(tokens) - len(cue) + 1))


def _counter(texts: Sequence[str]) -> str | None:
    """The shared prefix when the four options count ("Câu 1" … "Câu 4", "1" … "4", "… A" … "… D")."""
    parts = [_COUNTER_RE.match(t) for t in texts]
    if len(texts) != 4 or not all(parts) or len({p.group(1) for p in parts}) != 1:
        return None
    counters = [p.group(2) for p in parts]
    if counters == list("ABCD"):
        return parts[0].group(1)
    if all(c.isdigit() for c in counters):
        numbers = [int(c) for c in counters]
        if numbers[0] in (0, 1) and numbers == list(range(numbers[0], numbers[0] + 4)):
            return parts[0].group(1)
    return None


def _placeholders(options: Mapping[str, str], question: str) -> tuple[list[str], str]:
    """Letters of placeholder options and the kind found ("" if none)."""
    letters = [x for x in _LETTERS if x in options]
    texts = {x: " ".join(nfc(options[x]).split()) for x in letters}
    asked = syllables(question)
    quantity = _mentions(asked, _QUANTITY_CUES) or any(ch.isdigit() for ch in question)
    prefix = _counter([texts[x] for x in letters])
    # A counter with words around it always is a placeholder; bare "1" … "4" may answer "bao nhiêu".
    if prefix is not None and (prefix.strip() or not quantity):
        return letters, "counter"
    letter_question = _mentions(asked, _LETTER_CUES)
    found: list[str] = []
    kinds: list[str] = []
    for x in letters:
        text = texts[x]
        if BLANK_RE.fullmatch(text) or text in _BLANK_OPTIONS:
            kind = "blank"
        elif _NUMBER_RE.match(text) and sum(ch.isdigit() for ch in text) <= PLACEHOLDER_MAX_DIGITS and not quantity:
            kind = "number"
        elif len(text) == 1 and text.isascii() and text.isalpha() and not letter_question:
            kind = "letter"
        else:
            continue
        found.append(x)
        kinds.append(kind)
    return found, (kinds[0] if kinds else "")


def _numeric_options(texts: Iterable[str]) -> bool:
    """Whether every option is a number, or a number with the same words around it ("1024 GB", "512 GB")."""
    frames = set()
    for text in texts:
        tokens = option_tokens(text)
        if not any(has_digit(t) for t in tokens):
            return False
        frames.add(tuple("#" if has_digit(t) else t for t in tokens))
    return len(frames) == 1 or all(frame == ("#",) * len(frame) for frame in frames)


def _copied_share(question: Sequence[str], paragraph: Paragraph) -> float:
    """Share of the question's syllables inside runs of ≥ COPY_MIN_RUN syllables found verbatim in the
    paragraph."""
    if not question:
        return 0.0
    ngrams = {tuple(paragraph.tokens[i:i + COPY_MIN_RUN]) for i in range(len(paragraph.tokens) - COPY_MIN_RUN + 1)}
    covered = [False] * len(question)
    for i in range(len(question) - COPY_MIN_RUN + 1):
        if tuple(question[i:i + COPY_MIN_RUN]) in ngrams:
            for j in range(i, i + COPY_MIN_RUN):
                covered[j] = True
    return sum(covered) / len(question)


def _asks(question: str, asked: Sequence[str]) -> bool:
    """Whether a stem asks something: a blank, a completion cue at its end, or a question word among its
    syllables ``asked`` in a stem that does not end as a statement does (a full stop)."""
    text = nfc(question).strip()
    if BLANK_RE.search(text) or _COMPLETION_END.search(text):
        return True
    return not _STATEMENT_END.search(text) and _mentions(asked, _QUESTION_CUES)


def _given_away(option: str, asked: Sequence[str]) -> bool:
    """Every content syllable of ``option`` (KEY_IN_QUESTION_MIN or more, not all numbers) is in the question."""
    words = content_syllables(syllables(option))
    if len(words) < KEY_IN_QUESTION_MIN or all(_NUMBER_SYLLABLE.fullmatch(w) for w in words):
        return False
    return set(words) <= set(asked)


def _repeats(option: str, question: str) -> bool:
    """The option is the question, or one holds the other and covers ≥ REPEAT_SHARE of it."""
    a, q = option_key(option), option_key(question)
    if not a or not q:
        return False
    if a == q:
        return True
    short, long_ = (a, q) if len(a) <= len(q) else (q, a)
    if len(short) < REPEAT_SHARE * len(long_):
        return False
    return any(long_[i:i + len(short)] == short for i in range(len(long_) - len(short) + 1))


# ---------------------------------------------------------------------------
# The check
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ContentFlag:
    """One content signal raised on an MCQ.

    Attributes:
        code: One of :data:`CONTENT_CODES`.
        options: Letters involved: ``("C",)``, ``("A", "B")``; for ``key_unsupported`` ``(key, better_letter)``.
        detail: The numbers behind the flag (scores, shares), JSON-safe.
    """

    code: str
    options: tuple[str, ...] = ()
    detail: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ContentCheck:
    """Result of :func:`check_content`.

    Attributes:
        flags: Every signal raised, in :data:`CONTENT_CODES` order (a code may appear more than once, e.g. one
            flag per duplicate pair).
        support: Letter → support of that option by the paragraph, anchored on the question, in [0, 1].
        best_supported: The letter with the highest support (the first on ties), ``None`` if every support is
            about 0 — "the paragraph's choice".
    """

    flags: tuple[ContentFlag, ...]
    support: dict[str, float]
    best_supported: str | None

    @property
    def passed(self) -> bool:
        """True when no signal was raised."""
        return not self.flags

    @property
    def codes(self) -> tuple[str, ...]:
        """The distinct codes raised, in :data:`CONTENT_CODES` order."""
        raised = {f.code for f in self.flags}
        return tuple(c for c in CONTENT_CODES if c in raised)


_EPS = 1e-9


def check_content(mcq: MCQ | str, paragraph: str) -> ContentCheck:
    """Run every content check of an MCQ against its paragraph.

    A structurally invalid MCQ (see ``core.tasks.mcq_checks.validate_mcq``) still gets the checks that apply: without a
    question, the question checks are skipped; without a key A–D, ``key_unsupported``; missing options are
    simply not compared. Options that are all numbers (computed answers) skip the two support checks.

    Args:
        mcq: An :class:`~core.tasks.mcq_format.MCQ`, or text parsed with :func:`~core.tasks.mcq_format.parse_mcq`.
        paragraph: The paragraph the MCQ was written from.

    Returns:
        A :class:`ContentCheck`: the flags, the support of each option and the best-supported letter.
    """
    if not isinstance(mcq, MCQ):
        mcq = parse_mcq(mcq)
    para = Paragraph.of(paragraph)
    question = (mcq.question or "").strip()
    options = {x: mcq.options[x] for x in _LETTERS if x in mcq.options}
    present = {x: t for x, t in options.items() if t.strip()}

    support = {x: round(anchored_support(t, para, question or None), 4) for x, t in present.items()}
    best = max(support, key=lambda x: support[x]) if support else None
    if best is not None and support[best] <= _EPS:
        best = None

    flags: list[ContentFlag] = []
    # Computed answers ("16", "2048 GB", "1010₂"): the paragraph states the rule, not the result, so the
    # support of a number says nothing about the key.
    computed = len(present) > 1 and _numeric_options(present.values())
    key = mcq.answer if mcq.answer in present and not computed else None
    if key is not None:
        others = {x: s for x, s in support.items() if x != key}
        if others:
            better = max(others, key=lambda x: others[x])
            if others[better] >= KEY_BETTER_MIN and others[better] - support[key] >= KEY_MARGIN:
                flags.append(ContentFlag(KEY_UNSUPPORTED, (key, better),
                                         {"key_support": support[key], "better_support": others[better]}))
    if support and not computed and max(support.values()) < NO_SUPPORT_MAX:
        flags.append(ContentFlag(NO_OPTION_SUPPORTED, tuple(present), {"best_support": max(support.values())}))

    flags += _near_duplicates(present)

    placeholder, kind = _placeholders(present, question)
    if placeholder:
        flags.append(ContentFlag(PLACEHOLDER_OPTIONS, tuple(placeholder), {"kind": kind}))

    asked = syllables(question)
    if asked:
        content = content_syllables(asked) or asked
        shared = sum(t in para.positions for t in content) / len(content)
        if shared < OFF_TOPIC_MAX:
            flags.append(ContentFlag(QUESTION_OFF_TOPIC, (), {"shared": round(shared, 4)}))
        blank = bool(BLANK_RE.search(nfc(question)))
        copied = _copied_share(asked, para)
        if len(asked) >= COPY_MIN_SYLLABLES and copied >= (COPY_SHARE_BLANK if blank else COPY_SHARE):
            flags.append(ContentFlag(QUESTION_COPIED, (), {"copied": round(copied, 4), "blank": blank}))
        repeating = tuple(x for x, t in present.items()
                          if _repeats(t, question) or (x == mcq.answer and _given_away(t, asked)))
        if repeating:
            flags.append(ContentFlag(OPTION_REPEATS_QUESTION, repeating))
        if not _asks(question, asked):
            flags.append(ContentFlag(NOT_A_QUESTION, ()))

    order = {code: n for n, code in enumerate(CONTENT_CODES)}
    flags.sort(key=lambda f: order[f.code])  # stable: pairs stay in letter order
    return ContentCheck(flags=tuple(flags), support=support, best_supported=best)


def summarize_content(checks: Iterable[ContentCheck]) -> dict[str, Any]:
    """Aggregate content checks over many MCQs.

    Args:
        checks: Results of :func:`check_content`.

    Returns:
        A JSON-safe dict: ``n``, ``n_passed``, ``pass_rate`` (0.0 when ``n`` is 0) and ``code_counts`` (every
        code of :data:`CONTENT_CODES`, 0 included; an MCQ counts once per code however many flags it has).
    """
    n = n_passed = 0
    counts = {code: 0 for code in CONTENT_CODES}
    for check in checks:
        n += 1
        n_passed += check.passed
        for code in check.codes:
            counts[code] += 1
    return {"n": n, "n_passed": n_passed, "pass_rate": (n_passed / n) if n else 0.0, "code_counts": counts}
