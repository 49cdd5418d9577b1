"""The words: one table per language, the same keys and placeholders in both, every key the code names exists,
and every key of the table is named somewhere in the code."""

from __future__ import annotations

import ast
import json
import re
import string
from pathlib import Path

import pytest

from core import locale

REPO = Path(__file__).resolve().parent.parent
CODE = sorted((REPO / "core").rglob("*.py")) + sorted((REPO / "gui").rglob("*.py")) + [REPO / "app.py"]
LOOKUPS = {"t", "text", "has"}  # core.locale.text (imported as t in gui), core.locale.has


def placeholders(words: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(words) if name}


def _pattern(node: ast.AST) -> str | None:
    """A string the code builds, as a regex of the keys it can be: "a.b", f"a.{x}", "a." + x."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return re.escape(node.value)
    if isinstance(node, ast.JoinedStr):
        return "".join(re.escape(v.value) if isinstance(v, ast.Constant) else ".+" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left = _pattern(node.left)
        return None if left is None else left + ".+"
    return None


def code_strings() -> tuple[set[str], set[str]]:
    """(every key-shaped string the code builds, as regexes; the plain literals passed to a lookup)."""
    patterns, looked_up = set(), set()
    for path in CODE:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            p = _pattern(node) if isinstance(node, (ast.Constant, ast.JoinedStr, ast.BinOp)) else None
            # key-shaped: "area.…" built from an area name, or f"{area}.key" (each tab's title)
            if p and (re.match(r"[a-z_]+\\\.", p) or re.fullmatch(r"\.\+\\\.[a-z_]+", p)):
                patterns.add(p)
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) and \
                    getattr(node.func, "id", getattr(node.func, "attr", None)) in LOOKUPS:
                value = node.args[0].value
                if isinstance(value, str) and re.fullmatch(r"[a-z_]+\.[\w.\- ]+", value):
                    looked_up.add(value)
    return patterns, looked_up


def test_both_languages_have_the_same_keys_and_placeholders():
    en, vi = locale.table("en"), locale.table("vi")
    assert set(en) == set(vi), (set(en) ^ set(vi))
    for key in en:
        assert placeholders(en[key]) == placeholders(vi[key]), key
        assert en[key].strip() and vi[key].strip(), key


def test_every_key_is_area_dot_key_and_defined_once(tmp_path):
    for lang in locale.LANGS:
        raw = (locale.LOCALE_DIR / f"{lang}.json").read_text(encoding="utf-8")
        keys = [k for k, _ in json.loads(raw, object_pairs_hook=lambda pairs: pairs)]
        assert len(keys) == len(set(keys)), f"{lang}: a key is defined twice"
        assert all(re.fullmatch(r"[a-z_]+(\.[\w\- ]+)+", k) for k in keys), [k for k in keys if "." not in k]
    twice = tmp_path / "vi.json"
    twice.write_text('{"a.b": "x", "a.b": "y"}', encoding="utf-8")
    with pytest.raises(ValueError, match="defined twice"):
        json.loads(twice.read_text(), object_pairs_hook=locale._no_duplicates)


def test_every_key_the_code_looks_up_exists():
    _, looked_up = code_strings()
    assert looked_up, "the scan found no lookups: it is broken"
    assert not looked_up - set(locale.table("en")), sorted(looked_up - set(locale.table("en")))


def test_every_key_of_the_table_is_named_by_the_code():
    patterns, _ = code_strings()
    regex = re.compile("|".join(f"(?:{p})" for p in sorted(patterns)))
    unused = [key for key in locale.table("en") if not regex.fullmatch(key)]
    assert not unused, unused


def test_a_missing_key_is_a_bug_not_a_silent_blank():
    with pytest.raises(KeyError):
        locale.text("nowhere.nothing", "vi")


def test_vietnamese_words_carry_their_diacritics():
    # a table that lost its accents would read "Bat dau huan luyen"; every sentence of ours has some
    for key, words in locale.table("vi").items():
        if len(re.findall(r"[^\W\d_]{2,}", words)) >= 4:
            assert re.search(r"[àáảãạăằắẳẵặâầấẩẫậèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵđ]", words,
                             flags=re.I), key
