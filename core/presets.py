"""Presets: saved configs holding only what differs from the defaults, each with its reason."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from core import config as C
from core.paths import PRESETS_DIR


@dataclass(frozen=True)
class Preset:
    name: str
    path: Path
    summary: str


def list_presets(folder: Path = PRESETS_DIR) -> list[Preset]:
    """Every ``*.yaml`` in presets/, with the first line of its description."""
    out = []
    for path in sorted(folder.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        summary = str(data.get("description", "")).strip().splitlines()
        out.append(Preset(path.stem, path, summary[0] if summary else ""))
    return out


def load_preset(name: str, folder: Path = PRESETS_DIR) -> C.RunConfig:
    return C.load_yaml(folder / f"{name}.yaml")
