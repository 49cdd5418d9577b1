"""The analysis as data: per-module rows, aggregates by layer / module type / attention-vs-MLP, JSON in and out,
and the difference between two runs. No linear algebra here (``spectra``, ``intruders``) and no words (``explain``).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable

import torch

from core.run import RunFolder, write_json_atomic

# Display order for the usual Llama/Qwen/SmolLM module names; others follow sorted.
_TYPE_ORDER = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# --------------------------------------------------------------------------------------
# Data containers
# --------------------------------------------------------------------------------------
@dataclass
class ModuleFactors:
    """The raw material for one LoRA-adapted linear layer.

    All tensors are detached float32 CPU copies in the standard ``out × in``
    orientation (``fan_in_fan_out`` weights are transposed back), so that
    ``ΔW = scale · B @ A`` has the same shape as ``W``.
    """

    name: str
    layer: int | None
    module_type: str
    A: torch.Tensor  # r × in
    B: torch.Tensor  # out × r
    scale: float
    W: torch.Tensor  # out × in, float32, dequantized if needed
    r: int
    quantization: str | None = None  # "4bit" | "8bit" | None
    dora: bool = False
    fan_in_fan_out: bool = False
    merged: bool = False
    variant: str | None = None


@dataclass
class SkippedModule:
    """A LoRA part that was not (or only partly) analysed, and why."""

    name: str
    part: str  # "embedding" | "dora_magnitude" | "conv" | "weight" | ...
    reason: str


class FactorList(list):
    """A ``list[ModuleFactors]`` that also carries ``skipped`` (list of SkippedModule)."""

    def __init__(self, items: Iterable[ModuleFactors] = (), skipped: Iterable[SkippedModule] = ()):
        super().__init__(items)
        self.skipped: list[SkippedModule] = list(skipped)


@dataclass
class IntruderReport:
    """Outcome of :func:`count_intruders` for one weight matrix."""

    count: int
    indices: list[int]  # positions (0 = largest singular value) of the intruders among the top-k
    max_cos: list[float]  # for each of the top-k tuned vectors, max |cos| with the base's vectors
    tuned_singular_values: list[float]  # top-k singular values of W + ΔW
    k: int
    epsilon: float
    method: str
    approximated: bool  # True when the tuned top-k came from the randomized solver


@dataclass
class ModuleStats:
    """Per-module numbers stored in :class:`AnalysisResult` (all JSON-friendly)."""

    name: str
    layer: int | None
    module_type: str
    group: str  # "attention" | "mlp" | "other"
    out_features: int
    in_features: int
    r: int
    scale: float
    delta_norm: float
    base_norm: float
    rel_change: float | None  # None when ‖W‖ = 0
    singular_values: list[float]
    effective_rank: float
    intruders: int
    intruder_indices: list[int]
    intruder_max_cos: list[float]
    quantization: str | None = None
    dora: bool = False
    merged: bool = False
    approximated: bool = False  # tuned top-k came from the randomized solver

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModuleStats":
        """Rebuild from :meth:`AnalysisResult.to_dict` output, ignoring unknown keys."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class AnalysisResult:
    """Diagnostics of one adapter.

    Attributes:
        modules: per-module rows.
        config: analysis and adapter settings (k, ε, method, r, alpha, rslora, …,
            plus ``approximations``: a sentence saying what was approximated).
        by_layer: aggregates per block index (``layer`` None = outside blocks).
        by_type: aggregates per module type (q_proj, down_proj, …).
        by_group: aggregates for attention vs MLP vs other.
        totals: whole-adapter aggregates.
        skipped: parts that were not analysed, with reasons.
        notes: caveats worth showing to the user.
        runtime_s: wall time of the analysis.
        label: run label used in overlaid figures.
    """

    modules: list[ModuleStats]
    config: dict[str, Any]
    by_layer: list[dict[str, Any]]
    by_type: list[dict[str, Any]]
    by_group: list[dict[str, Any]]
    totals: dict[str, Any]
    skipped: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    runtime_s: float = 0.0
    label: str = ""
    schema_version: int = 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (non-finite floats become None, tensors become lists).

        Returns:
            A dict that ``json.dumps`` accepts and :meth:`from_dict` reads back.
        """
        return json_safe(asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AnalysisResult":
        """Rebuild a result from :meth:`to_dict` output.

        Args:
            d: the dict (e.g. loaded from ``analysis.json``).

        Returns:
            The AnalysisResult.
        """
        return cls(
            modules=[ModuleStats.from_dict(m) for m in d.get("modules", [])],
            config=dict(d.get("config", {})),
            by_layer=list(d.get("by_layer", [])),
            by_type=list(d.get("by_type", [])),
            by_group=list(d.get("by_group", [])),
            totals=dict(d.get("totals", {})),
            skipped=list(d.get("skipped", [])),
            notes=list(d.get("notes", [])),
            runtime_s=float(d.get("runtime_s", 0.0) or 0.0),
            label=str(d.get("label", "") or ""),
            schema_version=int(d.get("schema_version", 1)),
        )

    def save_json(self, path: str | Path) -> Path:
        """Write the result as JSON.

        Args:
            path: a directory (``analysis.json`` is written inside it) or a file
                path ending in ``.json``.

        Returns:
            The path of the written file.
        """
        p = Path(path)
        if p.suffix.lower() != ".json":
            p = RunFolder(p).analysis
        p.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(p, self.to_dict())
        return p

    @classmethod
    def from_json(cls, path: str | Path) -> "AnalysisResult":
        """Load a result written by :meth:`save_json`.

        Args:
            path: the ``.json`` file, or the directory holding ``analysis.json``.

        Returns:
            The AnalysisResult.
        """
        p = Path(path)
        if p.is_dir():
            p = RunFolder(p).analysis
        return cls.from_dict(json.loads(p.read_text(encoding="utf-8")))

    def module(self, name: str) -> ModuleStats | None:
        """Look a module row up by its (prefix-stripped) name.

        Args:
            name: e.g. ``"model.layers.0.self_attn.q_proj"``.

        Returns:
            The row, or None.
        """
        for m in self.modules:
            if m.name == name:
                return m
        return None


def _agg(rows: list[ModuleStats]) -> dict[str, Any]:
    d2 = sum(m.delta_norm**2 for m in rows)
    b2 = sum(m.base_norm**2 for m in rows)
    rels = [m.rel_change for m in rows if m.rel_change is not None]
    eranks = [m.effective_rank for m in rows]
    return {
        "n_modules": len(rows),
        "intruders": int(sum(m.intruders for m in rows)),
        "modules_with_intruders": int(sum(1 for m in rows if m.intruders > 0)),
        "delta_norm": math.sqrt(d2),
        # ‖ΔW‖/‖W‖ of the stacked block: weights big matrices more than a plain mean.
        "rel_change": math.sqrt(d2) / math.sqrt(b2) if b2 > 0 else None,
        "mean_rel_change": sum(rels) / len(rels) if rels else None,
        "mean_effective_rank": sum(eranks) / len(eranks) if eranks else 0.0,
        "max_effective_rank": max(eranks) if eranks else 0.0,
    }


def type_sort_key(t: str) -> tuple[int, str]:
    return (_TYPE_ORDER.index(t), t) if t in _TYPE_ORDER else (len(_TYPE_ORDER), t)


def aggregates(modules: list[ModuleStats]) -> tuple[list[dict], list[dict], list[dict], dict]:
    by_layer: dict[int | None, list[ModuleStats]] = {}
    by_type: dict[str, list[ModuleStats]] = {}
    by_group: dict[str, list[ModuleStats]] = {}
    for m in modules:
        by_layer.setdefault(m.layer, []).append(m)
        by_type.setdefault(m.module_type, []).append(m)
        by_group.setdefault(m.group, []).append(m)
    layers = sorted(by_layer, key=lambda x: (x is None, -1 if x is None else x))
    layer_rows = [{"layer": L, **_agg(by_layer[L])} for L in layers]
    type_rows = [{"module_type": t, "group": by_type[t][0].group, **_agg(by_type[t])}
                 for t in sorted(by_type, key=type_sort_key)]
    group_rows = [{"group": g, **_agg(by_group[g])}
                  for g in sorted(by_group, key=lambda g: ["attention", "mlp", "other"].index(g))]
    eranks = sorted(m.effective_rank for m in modules)
    totals = _agg(modules)
    totals["median_effective_rank"] = eranks[len(eranks) // 2] if eranks else 0.0
    totals["approximated_modules"] = int(sum(1 for m in modules if m.approximated))
    rs = sorted(m.r for m in modules)
    totals["median_r"] = rs[len(rs) // 2] if rs else None
    return layer_rows, type_rows, group_rows, totals


# --------------------------------------------------------------------------------------
# JSON helpers
# --------------------------------------------------------------------------------------
def json_safe(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, torch.Tensor):
        return json_safe(x.tolist())
    if isinstance(x, bool) or x is None or isinstance(x, (str, int)):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, Path):
        return str(x)
    try:  # numpy scalars and the like
        return json_safe(x.item())
    except Exception:  # noqa: BLE001
        return str(x)


# --------------------------------------------------------------------------------------
# Comparing runs
# --------------------------------------------------------------------------------------
def _delta(a: Any, b: Any) -> Any:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return b - a
    return None


def _rows_delta(rows_a: list[dict], rows_b: list[dict], key: str) -> list[dict]:
    ia = {r[key]: r for r in rows_a}
    ib = {r[key]: r for r in rows_b}
    keys = list(ia) + [k for k in ib if k not in ia]
    out = []
    for k in keys:
        ra, rb = ia.get(k, {}), ib.get(k, {})
        row: dict[str, Any] = {key: k}
        for metric in ("intruders", "rel_change", "delta_norm", "mean_effective_rank"):
            va, vb = ra.get(metric), rb.get(metric)
            row[f"{metric}_a"], row[f"{metric}_b"], row[f"{metric}_delta"] = va, vb, _delta(va, vb)
        out.append(row)
    return out


def compare(a: AnalysisResult, b: AnalysisResult) -> dict[str, Any]:
    """Aggregate differences between two runs (``b − a``), for overlays and tables.

    Args:
        a: reference run.
        b: other run.

    Returns:
        JSON-safe dict with ``labels``, ``totals`` ({metric: {a, b, delta}}),
        ``by_layer`` / ``by_type`` / ``by_group`` rows with ``*_a``, ``*_b``,
        ``*_delta``, ``config_diff`` ({key: [a, b]}), ``comparable`` (same k, ε and
        method, so intruder counts mean the same thing), and ``common_modules``.
    """
    totals = {}
    for key in sorted(set(a.totals) | set(b.totals)):
        va, vb = a.totals.get(key), b.totals.get(key)
        totals[key] = {"a": va, "b": vb, "delta": _delta(va, vb)}
    cfg_keys = ("r", "alpha", "rslora", "dora", "scale", "target_modules", "top_k", "epsilon", "method")
    config_diff = {k: [a.config.get(k), b.config.get(k)] for k in cfg_keys if a.config.get(k) != b.config.get(k)}
    names_a = {m.name for m in a.modules}
    out = {
        "labels": [a.label, b.label],
        "totals": totals,
        "by_layer": _rows_delta(a.by_layer, b.by_layer, "layer"),
        "by_type": _rows_delta(a.by_type, b.by_type, "module_type"),
        "by_group": _rows_delta(a.by_group, b.by_group, "group"),
        "config_diff": config_diff,
        "comparable": all(a.config.get(k) == b.config.get(k) for k in ("top_k", "epsilon", "method")),
        "common_modules": sum(1 for m in b.modules if m.name in names_a),
    }
    return json_safe(out)
