"""Strict layers: the engine is usable without the GUI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORE_MODULES = sorted(p.stem for p in (REPO / "core").glob("*.py") if p.stem != "__main__")


def test_core_imports_without_gradio():
    code = ("import sys\n"
            + "".join(f"import core.{m}\n" for m in CORE_MODULES)
            + "import core.__main__\n"
            + "bad = [m for m in sys.modules if m == 'gradio' or m.startswith('gradio.')]\n"
            + "assert not bad, bad\nprint('ok', len(sys.modules))\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.startswith("ok")


def test_no_gradio_import_statement_in_core():
    import re

    stmt = re.compile(r"^\s*(import gradio|from gradio)", re.MULTILINE)
    for path in (REPO / "core").glob("*.py"):
        assert not stmt.search(path.read_text(encoding="utf-8")), path.name
