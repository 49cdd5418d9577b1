"""Invariants of the bundled sample data in assets/samples/.

Reads the JSONL files directly (no import of core). A missing file is a
FAILURE, not a skip: all three files are meant to ship with the app.
The price-data tests also run assets/samples/make_books_price.py and check
that README.md (the data card) quotes its current rule and baseline MAEs.
"""

from __future__ import annotations

import collections
import functools
import importlib.util
import json
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "assets" / "samples"
CARD = SAMPLES / "README.md"
PRICE_SCRIPT = SAMPLES / "make_books_price.py"

MCQ = "vi_informatics_mcq.jsonl"
BOOK = "informatics_book.jsonl"
PRICE = "books_price.jsonl"

SCHEMAS = {
    MCQ: {"id", "context_id", "topic", "context", "question", "answer_a", "answer_b",
          "answer_c", "answer_d", "correct_answer", "split"},
    BOOK: {"title", "context"},
    PRICE: {"title", "description", "format", "pages", "price", "synthetic"},
}
MIN_ROWS = {MCQ: 300, BOOK: 80, PRICE: 200}
TEXT_FIELDS = {  # must be non-empty strings (after strip)
    MCQ: ["topic", "context", "question", "answer_a", "answer_b", "answer_c", "answer_d"],
    BOOK: ["title", "context"],
    PRICE: ["title", "description"],
}
OPTION_KEYS = ["answer_a", "answer_b", "answer_c", "answer_d"]
LETTERS = ["A", "B", "C", "D"]
PRICE_FORMATS = {"paperback", "hardcover", "ebook", "audiobook"}


# --- helpers -------------------------------------------------------------------

def _vietnamese_letters() -> frozenset[str]:
    """Letters that only occur with Vietnamese diacritics: đ/Đ, and every vowel of
    a ă â e ê i o ô ơ u ư y with a tone mark (grave, acute, hook, tilde, dot
    below), minus the six bare vowels. 67 lower + 67 upper, all precomposed (NFC)."""
    letters = {"đ", "Đ"}
    for base in "aăâeêioôơuưy":
        for tone in ("", "\u0300", "\u0301", "\u0309", "\u0303", "\u0323"):
            ch = unicodedata.normalize("NFC", base + tone)
            if ch not in "aeiouy":
                letters |= {ch, ch.upper()}
    return frozenset(letters)


VI_LETTERS = _vietnamese_letters()


def has_vietnamese(text: str) -> bool:
    return any(ch in VI_LETTERS for ch in unicodedata.normalize("NFC", text))


def norm(text: str) -> str:
    """Whitespace-collapsed, case-folded form used for duplicate checks."""
    return " ".join(unicodedata.normalize("NFC", text).split()).casefold()


@functools.lru_cache(maxsize=None)
def _load(name: str) -> tuple[dict, ...]:
    rows = []
    with open(SAMPLES / name, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            assert line.strip(), f"{name}:{lineno}: blank line"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise AssertionError(f"{name}:{lineno}: invalid JSON: {exc}") from None
            assert isinstance(row, dict), f"{name}:{lineno}: not a JSON object"
            rows.append(row)
    return tuple(rows)


def rows(name: str) -> tuple[dict, ...]:
    """All rows of a sample file; fails (never skips) when the file is missing."""
    path = SAMPLES / name
    if not path.is_file():
        pytest.fail(f"missing sample file: {path.relative_to(ROOT)}", pytrace=False)
    return _load(name)


def assert_none(offenders: list, what: str, limit: int = 5) -> None:
    """Fail listing the first few offenders (each a (line_no, detail) pair or similar)."""
    assert not offenders, f"{len(offenders)} {what}; first: {offenders[:limit]}"


def offending(name: str, bad) -> list:
    """(line number, row id/title) of rows for which bad(row) is truthy."""
    return [(i, r.get("id", r.get("title"))) for i, r in enumerate(rows(name), 1) if bad(r)]


def duplicates(values) -> list:
    return [v for v, c in collections.Counter(values).items() if c > 1]


def mcq_by_split() -> collections.Counter:
    return collections.Counter(r["split"] for r in rows(MCQ))


@functools.lru_cache(maxsize=None)
def price_module():
    spec = importlib.util.spec_from_file_location("make_books_price", PRICE_SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# --- sanity of the helpers themselves --------------------------------------------

def test_vietnamese_letter_set():
    assert len(VI_LETTERS) == 134
    for ch in VI_LETTERS:
        assert len(ch) == 1, ch
        decomposed = unicodedata.normalize("NFD", ch)
        assert ch in "đĐ" or any(unicodedata.combining(c) for c in decomposed), ch
    assert has_vietnamese("Hệ điều hành") and has_vietnamese("Tin học")
    assert has_vietnamese(unicodedata.normalize("NFD", "mạng"))
    assert not has_vietnamese("Python is a programming language")


# --- all files -----------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_file_present_and_minimum_size(name):
    assert len(rows(name)) >= MIN_ROWS[name], f"{name}: {len(rows(name))} rows < {MIN_ROWS[name]}"


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_schema_keys(name):
    expected = SCHEMAS[name]
    assert_none(offending(name, lambda r: set(r) != expected), f"rows of {name} without keys {sorted(expected)}")


@pytest.mark.parametrize("name,field", [(n, f) for n, fs in TEXT_FIELDS.items() for f in fs])
def test_text_fields_non_empty_strings(name, field):
    assert_none(offending(name, lambda r: not (isinstance(r.get(field), str) and r[field].strip())),
                f"rows of {name} with empty/non-string {field!r}")


@pytest.mark.parametrize("name,field", [(n, f) for n, fs in TEXT_FIELDS.items() for f in fs])
def test_text_is_nfc(name, field):
    # Mixed NFC/NFD Vietnamese breaks duplicate checks and tokenises differently.
    assert_none(offending(name, lambda r: isinstance(r.get(field), str)
                          and unicodedata.normalize("NFC", r[field]) != r[field]),
                f"rows of {name} whose {field!r} is not Unicode NFC")


@pytest.mark.parametrize("name,field", [(MCQ, "context"), (MCQ, "question"), (BOOK, "context")])
def test_vietnamese_diacritics_present(name, field):
    assert_none(offending(name, lambda r: not has_vietnamese(str(r.get(field, "")))),
                f"rows of {name} whose {field!r} has no Vietnamese diacritic letter")


@pytest.mark.parametrize("name,lo,hi", [(MCQ, 60, 200), (BOOK, 150, 500)])
def test_context_word_counts(name, lo, hi):
    counts = {r["context"]: len(r["context"].split()) for r in rows(name)}
    bad = sorted((n, text[:40]) for text, n in counts.items() if not lo <= n <= hi)
    assert_none(bad, f"contexts in {name} outside {lo}-{hi} words")


@pytest.mark.parametrize("name,key", [
    (MCQ, lambda r: r["id"]),
    (MCQ, lambda r: norm(r["question"])),
    (BOOK, lambda r: norm(r["title"])),
    (PRICE, lambda r: r["title"]),
], ids=["mcq-id", "mcq-question", "book-title", "price-title"])
def test_no_duplicates(name, key):
    assert_none(duplicates(key(r) for r in rows(name)), f"duplicate values in {name}")


# --- multiple-choice set -------------------------------------------------------

def test_mcq_options_distinct():
    def bad(r):
        opts = [str(r[k]).strip().casefold() for k in OPTION_KEYS]
        return not all(opts) or len(set(opts)) != 4
    assert_none(offending(MCQ, bad), "items with an empty or repeated option")


def test_mcq_correct_answer_is_a_letter():
    assert_none(offending(MCQ, lambda r: r["correct_answer"] not in LETTERS),
                "items whose correct_answer is not one of A-D")


@pytest.mark.parametrize("letter", LETTERS)
def test_mcq_answer_key_balanced(letter):
    share = sum(r["correct_answer"] == letter for r in rows(MCQ)) / len(rows(MCQ))
    assert 0.20 <= share <= 0.30, f"{letter} is the key for {share:.1%} of items (want 25% +- 5 pp)"


def test_mcq_split_values_and_share():
    by_split = mcq_by_split()
    assert set(by_split) <= {"train", "test"}, f"unexpected split values: {sorted(by_split)}"
    share = by_split["train"] / sum(by_split.values())
    assert 0.75 <= share <= 0.85, f"train share {share:.1%} (want 75-85%)"


def test_mcq_no_context_in_both_splits():
    splits = collections.defaultdict(set)
    for r in rows(MCQ):
        splits[norm(r["context"])].add(r["split"])
    assert_none([c[:60] for c, s in splits.items() if len(s) > 1], "contexts used in both splits")


def test_mcq_context_id_consistent():
    seen = collections.defaultdict(set)
    for r in rows(MCQ):
        seen[r["context_id"]].add((norm(r["context"]), r["split"]))
    assert_none([cid for cid, v in seen.items() if len(v) > 1],
                "context_ids with more than one context text or split")


# --- synthetic price set -------------------------------------------------------

def test_price_types_and_values():
    def bad(r):
        return not (
            r["format"] in PRICE_FORMATS
            and type(r["pages"]) is int and r["pages"] > 0
            and type(r["price"]) is float and r["price"] > 0
            and round(r["price"], 2) == r["price"]
            and r["synthetic"] is True
        )
    assert_none(offending(PRICE, bad), "price rows with bad format/pages/price/synthetic")


def test_price_description_names_format():
    # The recipe sees only title + description, so the format must be in the text.
    assert_none(offending(PRICE, lambda r: r["format"] not in r["description"].casefold()),
                "price rows whose description does not name the format")


def test_price_script_reproducible(tmp_path):
    outs = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    for out in outs:
        subprocess.run([sys.executable, str(PRICE_SCRIPT), "--out", str(out)],
                       cwd=ROOT, check=True, capture_output=True)
    assert outs[0].read_bytes() == outs[1].read_bytes(), "two runs differ"
    rows(PRICE)  # fail cleanly if the committed file is missing
    assert outs[0].read_bytes() == (SAMPLES / PRICE).read_bytes(), \
        "committed books_price.jsonl differs from a fresh run of make_books_price.py"


def test_price_card_matches_script():
    mod = price_module()
    regenerated, metas = mod.generate(with_meta=True)
    assert list(rows(PRICE)) == regenerated, "committed file is not the script's default output"
    card = CARD.read_text(encoding="utf-8")
    table = mod.baselines_markdown(mod.baselines(list(rows(PRICE)), metas))
    assert table in card, f"README.md baseline table is stale; expected:\n{table}"
    assert mod.rule_markdown() in card, "README.md pricing-rule tables are stale (see --print-rule)"


def test_price_baselines_sane():
    b = price_module().baselines(list(rows(PRICE)))
    assert b["n_test"] == round(0.2 * len(rows(PRICE))) and b["n_train"] + b["n_test"] == len(rows(PRICE))
    assert 0 < b["mae_linear"] < b["mae_train_mean"]
