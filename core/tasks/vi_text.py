"""Vietnamese text for the MCQ checks: syllables (NFC, lowercased, punctuation at the edges stripped), a
tone-insensitive fold, function words, and how well a paragraph supports a phrase.

Support and copying use the exact syllables, tones included (``bảng`` "table" and ``bằng`` "by" are different
words); :func:`fold` is for comparing two options a typo apart. Pure functions of the standard library.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# ---------------------------------------------------------------------------
# Vietnamese text
# ---------------------------------------------------------------------------

def _words(text: str) -> frozenset[str]:
    """The whitespace-separated words of a literal list."""
    return frozenset(text.split())


#: Function words left out of the overlap measures (they are in every sentence).
STOP_WORDS: frozenset[str] = _words(
    """
    là của và các những một được có trong cho với để khi này đó nào gì thì mà như từ ra vào về bị do
    sau đây hay hoặc cũng đã sẽ đang nên không bằng theo tại thường nhiều rất cái việc sự ai đâu bao nhiêu
    mấy sao thế vậy ở lại nếu vì nhưng còn đều chỉ mỗi rồi hơn nhất cùng qua tới đến
    """
)

# Words that change what an option says; two options differing by one of them are distinct distractors.
MEANING_WORDS = _words("không chưa chẳng chỉ mọi tất cả luôn đúng sai trước sau nhất hơn kém rất quá")
# Characters that make an option code or a formula.
CODE_CHARS = frozenset("=[]{}+*/%<>$#\\_^|&~")
# Leading words dropped when comparing options ("Là thanh ghi" = "Thanh ghi", "Các tệp" = "Tệp").
_LEADING_ARTICLES = _words("là các những một cái chiếc")

_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)
_SPACES = dict.fromkeys(map(ord, "\u00a0\u2007\u202f\u3000"), " ")
# Sentence punctuation and quotes/brackets around a token; code symbols ($ = + / \ < > ~ #) are kept by the
# option key, so "$A1" and "A1", "==" and "=" stay different.
_WRAP = "\"'“”‘’„«»()[]{}<>*_`"
_TRAILING = ".,;:!?…"
BLANK_RE = re.compile(r"_{2,}|\.{3,}|…+|\(\s*\)|\[\s*\]")


def nfc(text: str) -> str:
    """NFC with invisible characters removed and exotic spaces unified."""
    return unicodedata.normalize("NFC", str(text)).translate(_INVISIBLE).translate(_SPACES)


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "PS"


def _strip_edges(token: str) -> str:
    """Strip punctuation and symbols at both ends of a token (internal ones stay: "a1:a4", "192.168.1.10")."""
    start, end = 0, len(token)
    while start < end and _is_punct(token[start]):
        start += 1
    while end > start and _is_punct(token[end - 1]):
        end -= 1
    return token[start:end]


def syllables(text: str) -> list[str]:
    """The syllables of ``text``: NFC, lowercased, split on whitespace, punctuation at the edges stripped.

    Args:
        text: Any text (NFD is accepted).

    Returns:
        The non-empty syllables in order; a token made of punctuation only ("...", "==") gives none.
    """
    out = []
    for token in nfc(text).lower().split():
        token = _strip_edges(token)
        if token:
            out.append(token)
    return out


def fold(text: str) -> str:
    """Tone-mark-insensitive normal form: NFD, combining marks removed, đ → d, lowercased, spaces collapsed.

    ``fold("Thanh ghi") == fold("Thành ghì") == "thanh ghi"``. Note that the vowel marks (ă, â, ê, ô, ơ, ư) go
    too, so this is for spotting duplicates, never for meaning.
    """
    decomposed = unicodedata.normalize("NFD", nfc(text))
    bare = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    bare = bare.replace("đ", "d").replace("Đ", "D")
    return " ".join(unicodedata.normalize("NFC", bare).casefold().split())


_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")


def sentences(paragraph: str) -> list[str]:
    """The sentences of a paragraph (split after . ! ? or ; followed by a space: "3,5 mm", "192.168.1.2" and
    "v.v." inside a sentence stay whole), stripped, empty ones dropped."""
    return [s.strip() for s in _SENTENCE_END.split(nfc(paragraph).strip()) if s.strip()]


def content_syllables(tokens: Sequence[str]) -> list[str]:
    """The tokens that are not stop-words."""
    return [t for t in tokens if t not in STOP_WORDS]


def option_tokens(text: str) -> list[str]:
    """Tokens of an option for comparing options: casefolded, wrapping quotes/brackets and trailing sentence
    punctuation removed, symbols kept, leading articles dropped."""
    tokens = []
    for raw in nfc(text).casefold().split():
        token = raw.strip(_WRAP).rstrip(_TRAILING).strip(_WRAP)
        tokens.append(token or raw)
    while len(tokens) > 1 and tokens[0] in _LEADING_ARTICLES:
        tokens = tokens[1:]
    return [t for t in tokens if t]


def option_key(text: str) -> tuple[str, ...]:
    """Tone-folded comparison key of an option (see :func:`option_tokens`)."""
    return tuple(fold(t) for t in option_tokens(text))


def has_digit(token: str) -> bool:
    return any(ch.isdigit() for ch in token)


# Support of one option: a content syllable found in the paragraph inside a matching bigram of the option earns
# 1, found only on its own (scattered) 0.5. Why: distractors of the same kind share single words with the
# paragraph ("Bộ nhớ RAM" shares "bộ nhớ"), the answer is usually a contiguous phrase of it.
SCATTERED_WEIGHT = 0.5

# Anchoring on the question: an option's support is scaled by how close, in the paragraph, it stands to the
# question's own words: ``support * (ANCHOR_FLOOR + (1 - ANCHOR_FLOOR) * relevance)``, where relevance is the
# mean over the question's content syllables of exp(-distance / ANCHOR_TAU) (distance in syllables, same
# sentence only). Why: distractors are often terms of the same paragraph ("Linux", "iOS", "macOS" all appear
# in it); the answer stands next to the words the question asks about. On the gold MCQs the key is the unique
# best-supported option in 197/341 without anchoring, 258/341 with it (tau 8, floor 0.5; tau 4 → 257,
# tau 15 → 259, floor 0.3 → 258, floor 0.7 → 259): the exact decay matters little, 8 syllables is about a clause.
ANCHOR_FLOOR = 0.5
ANCHOR_TAU = 8.0


# ---------------------------------------------------------------------------
# Support
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Paragraph:
    """A paragraph's syllables, the sentence of each, and lookups."""

    text: str
    tokens: tuple[str, ...]
    sentence: tuple[int, ...]
    positions: Mapping[str, tuple[int, ...]]
    bigrams: frozenset[tuple[str, str]]

    @classmethod
    @functools.lru_cache(maxsize=64)  # a batch checks several questions and options against one paragraph
    def of(cls, text: str) -> Paragraph:
        tokens: list[str] = []
        sentence: list[int] = []
        for number, piece in enumerate(re.split(r"(?<=[.!?;])\s+", nfc(text))):
            words = syllables(piece)
            tokens += words
            sentence += [number] * len(words)
        positions: dict[str, list[int]] = {}
        for i, token in enumerate(tokens):
            positions.setdefault(token, []).append(i)
        return cls(
            text=" ".join(nfc(text).split()),
            tokens=tuple(tokens),
            sentence=tuple(sentence),
            positions={k: tuple(v) for k, v in positions.items()},
            bigrams=frozenset(itertools.pairwise(tokens)),
        )


def _lexical_support(option: Sequence[str], paragraph: Paragraph, ignore: frozenset[str]) -> float:
    """Share of the option's content syllables found in the paragraph: 1 for one inside a bigram of the option
    that the paragraph also has, SCATTERED_WEIGHT for one found on its own; ``ignore``d syllables do not count."""
    scored = [i for i, t in enumerate(option) if t not in STOP_WORDS and t not in ignore]
    if not scored:
        # An option of stop-words only ("Không có") is judged on all of its syllables.
        scored = [i for i, t in enumerate(option) if t not in ignore]
    if not scored:
        return 0.0
    in_bigram: set[int] = set()
    for i in range(len(option) - 1):
        if (option[i], option[i + 1]) in paragraph.bigrams:
            in_bigram.update((i, i + 1))
    total = 0.0
    for i in scored:
        if option[i] in paragraph.positions:
            total += 1.0 if (len(option) == 1 or i in in_bigram) else SCATTERED_WEIGHT
    return total / len(scored)


def _anchors(option: Sequence[str], paragraph: Paragraph) -> set[int]:
    """Where the option stands in the paragraph: the places of its bigrams when some occur there (so "Thanh
    ghi" stands where "thanh ghi" is, not at every "ghi"), else of its content syllables."""
    places: set[int] = set()
    for first, second in itertools.pairwise(option):
        if (first, second) in paragraph.bigrams:
            for i in paragraph.positions[first]:
                if i + 1 < len(paragraph.tokens) and paragraph.tokens[i + 1] == second:
                    places.update((i, i + 1))
    if places:
        return places
    return {i for t in content_syllables(option) or list(option) for i in paragraph.positions.get(t, ())}


def _relevance(option: Sequence[str], question: Sequence[str], paragraph: Paragraph) -> float:
    """How close, in the paragraph, the option stands to the question's words, in [0, 1].

    For every place the option occurs (:func:`_anchors`), the mean over the question's content syllables
    (those in the paragraph and not in the option) of exp(-distance / ANCHOR_TAU) to their nearest occurrence
    in the same sentence; the best place counts. 1.0 when the question has no such syllable (nothing to
    anchor on), 0.0 when the option does not occur.
    """
    own = set(option)
    asked = sorted({t for t in content_syllables(question) if t not in own and t in paragraph.positions})
    if not asked:
        return 1.0
    anchors = _anchors(option, paragraph)
    best = 0.0
    for a in anchors:
        total = 0.0
        for word in asked:
            distances = [abs(i - a) for i in paragraph.positions[word] if paragraph.sentence[i] == paragraph.sentence[a]]
            if distances:
                total += math.exp(-min(distances) / ANCHOR_TAU)
        best = max(best, total / len(asked))
    return best


def anchored_support(option: str, paragraph: Paragraph, question: str | None) -> float:
    """Support of one option text by a prepared paragraph (see :func:`option_support`)."""
    tokens = syllables(option)
    if BLANK_RE.fullmatch(option.strip()):
        return 0.0
    if not tokens:
        # Symbols only ("==", "/", "..."): supported if written as such in the paragraph.
        text = " ".join(nfc(option).split())
        return 1.0 if text and text in paragraph.text else 0.0
    if question is None:
        return _lexical_support(tokens, paragraph, frozenset())
    asked = syllables(question)
    # A number the option repeats from the question ("Với 4 bit …" → "4") is an echo, not evidence.
    echoed = frozenset(t for t in tokens if has_digit(t) and t in asked)
    lexical = _lexical_support(tokens, paragraph, echoed)
    if lexical == 0.0:
        return 0.0
    return lexical * (ANCHOR_FLOOR + (1.0 - ANCHOR_FLOOR) * _relevance(tokens, asked, paragraph))


def option_support(option: str, paragraph: str, question: str | None = None) -> float:
    """How well the paragraph supports an option, in [0, 1].

    The share of the option's content syllables (stop-words excluded) found in the paragraph, exact syllables
    with tones; a syllable that is part of a bigram of the option also found in the paragraph counts 1, a
    scattered one :data:`SCATTERED_WEIGHT`. With ``question``, numbers echoed from the question do not count
    and the score is scaled by how close the option stands to the question's words in the paragraph
    (see :data:`ANCHOR_TAU`); :func:`check_content` always passes the question.

    Args:
        option: One option text.
        paragraph: The paragraph the MCQ was written from.
        question: The question stem, to anchor the support on; ``None`` for the lexical share alone.

    Returns:
        0.0 (nothing of the option is in the paragraph) to 1.0 (a phrase of it, next to the question's words).
    """
    return anchored_support(option, Paragraph.of(paragraph), question)
