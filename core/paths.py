"""Where things live: the repo's bundled assets, the model cache, the runs folder."""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import DataError

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = REPO_ROOT / "assets"
SAMPLES_DIR = ASSETS_DIR / "samples"
PRESETS_DIR = REPO_ROOT / "presets"


def default_runs_dir() -> Path:
    """``$LORA_STUDIO_RUNS`` or ``<repo>/runs`` (gitignored)."""
    return Path(os.environ.get("LORA_STUDIO_RUNS", REPO_ROOT / "runs")).expanduser()


def cache_dir() -> Path:
    """Materialised embedded models: ``$LORA_STUDIO_CACHE`` or ``~/.cache/lora-studio``."""
    return Path(os.environ.get("LORA_STUDIO_CACHE", Path.home() / ".cache" / "lora-studio")).expanduser()


def safe_join(root: str | Path, name: str | Path) -> Path:
    """Resolve ``name`` inside ``root`` and refuse anything that escapes it (``..``, absolute paths, links).

    Raises:
        DataError: naming the offending path.
    """
    root = Path(root).resolve()
    candidate = (root / name).resolve()
    if candidate != root and root not in candidate.parents:
        raise DataError(f"path {str(name)!r} escapes its folder {root}", field=str(name))
    return candidate
