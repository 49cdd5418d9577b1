"""The app's words: one table per language, ``assets/locale/<lang>.json``, keys ``area.key``.

The engine returns data and codes (a run's stage, a merge's verdict, a check's reason); whoever shows them
looks the words up here — the GUI in the page's language, the CLI and the files a run writes (the merge
report) in English and Vietnamese. Setting labels and help stay with the settings (``core.config``'s
metadata). A test checks that both tables have the same keys and placeholders and no key twice.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from core.paths import ASSETS_DIR

LANGS = ("vi", "en")
LOCALE_DIR = ASSETS_DIR / "locale"


def _no_duplicates(pairs: list[tuple[str, str]]) -> dict[str, str]:
    seen: dict[str, str] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"the key {key!r} is defined twice")
        seen[key] = value
    return seen


@lru_cache(maxsize=None)
def table(lang: str) -> dict[str, str]:
    """Every key of ``lang``'s table (``vi`` or ``en``)."""
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {LANGS}, got {lang!r}")
    path = Path(LOCALE_DIR / f"{lang}.json")
    return json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicates)


def text(key: str, lang: str = "en", /, **fmt: object) -> str:
    """The words of ``key`` in ``lang``, formatted with ``fmt``; a missing key is a bug and raises KeyError."""
    words = table(lang)[key]
    return words.format(**fmt) if fmt else words


def has(key: str) -> bool:
    return key in table("en")
