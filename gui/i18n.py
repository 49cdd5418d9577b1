"""Vietnamese and English UI text.

Each GUI module declares its own table ``TEXT = {key: {"en": ..., "vi": ...}}`` and registers it with
:func:`register`; :func:`t` looks a key up. Config labels and help come from the config's metadata,
never from here, so they cannot drift. A test checks that every registered key has both languages.
"""

from __future__ import annotations

LANGS = ("vi", "en")
_TABLES: dict[str, dict[str, dict[str, str]]] = {}


def register(module: str, table: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Register a module's text table (returns it, so ``TEXT = register(__name__, {...})`` reads well)."""
    _TABLES[module] = table
    return table


def t(key: str, lang: str, **fmt: object) -> str:
    """The text of ``key`` in ``lang``, formatted with ``fmt``; a missing key is a bug and raises KeyError."""
    for table in _TABLES.values():
        if key in table:
            text = table[key][lang]
            return text.format(**fmt) if fmt else text
    raise KeyError(f"no UI text for {key!r}")


def tables() -> dict[str, dict[str, dict[str, str]]]:
    return dict(_TABLES)
