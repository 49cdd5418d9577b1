"""LoRA weight diagnostics: what did an adapter do to the base weights?

For every LoRA-adapted linear layer this module measures

* how big the change is: ‖ΔW‖_F and ‖ΔW‖_F / ‖W‖_F, with ΔW = scale · B · A;
* how many directions the change really uses: the singular values of ΔW and
  their entropy-based *effective rank* (Roy & Vetterli, 2007);
* whether the change created *intruder dimensions*: high-ranking singular
  vectors of the tuned weight W + ΔW that resemble none of the base weight's
  singular vectors (Shuttleworth, Andreas, Torralba & Sharma, "LoRA vs Full
  Fine-tuning: An Illusion of Equivalence", arXiv:2410.21228, 2024).

It also builds Plotly figures and a plain-language reading (Vietnamese or
English) for non-programmers. This is engine code: it must never import gradio.

Everything is computed on CPU in float32/float64 by default; the matrices of the
small models this app targets (576×576, 576×1536, 640×2048, …) make a dense SVD
of each base weight affordable, and the spectrum of ΔW is always obtained from
the rank-r factors without ever forming a dense SVD of ΔW.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, Sequence

import torch

if TYPE_CHECKING:  # plotly is imported lazily: it is only needed for figures
    import plotly.graph_objects as go

__all__ = [
    "DEFAULT_TOP_K",
    "DEFAULT_EPSILON",
    "ModuleFactors",
    "FactorList",
    "SkippedModule",
    "ModuleStats",
    "IntruderReport",
    "AnalysisResult",
    "SpectrumCache",
    "lora_factors",
    "delta_svd",
    "delta_singular_values",
    "effective_rank",
    "topk_singular_vectors",
    "count_intruders",
    "analyze_module",
    "analyze_peft_model",
    "fig_spectra",
    "fig_norm_heatmap",
    "fig_intruders",
    "explain",
    "compare",
    "clear_spectrum_cache",
]

# --------------------------------------------------------------------------------------
# Paper defaults
# --------------------------------------------------------------------------------------
# Shuttleworth et al. (2024), arXiv:2410.21228, define an intruder dimension as a
# singular vector y_j of the tuned weight whose max_i |cos(y_j, x_i)| over *all*
# singular vectors x_i of the pre-trained weight is below a threshold ε, and they
# look at the top-k (highest singular value) vectors of the tuned matrix. The
# authors' reference code (github.com/reeceshuttle/intruder-dimensions,
# find_intruder_dimensions.py) uses the LEFT singular vectors
# (einsum('ji,jk->ik', U_tuned, U_base)), k=10 by default, and its README/CLI use
# `--intruder_dimension_threshold=0.5`. PEFT's own port
# (peft.tuners.lora.intruders.reduce_intruder_dimension) uses the same defaults:
# top_k=10, threshold_epsilon=0.5. The paper also reports counts over a range of ε
# (the threshold is a knob, not a constant) — its full text was not available when
# this was written, so the defaults above are taken from the two codebases. Per
# module we store the top-k max-cosines, so counts for any other ε can be derived.
DEFAULT_TOP_K: int = 10
DEFAULT_EPSILON: float = 0.5

# Randomized ("lowrank") SVD parameters (Halko, Martinsson & Tropp, 2011). The
# textbook recipe (oversample ~10, 2-4 power iterations) is fine for decaying
# spectra, but random-init or lightly trained weights have a flat top spectrum
# (Marchenko-Pastur bulk) where it mis-estimated the max-cosines by up to ~0.1 and
# flipped intruder counts in our checks on 576×1536 matrices. Oversample 20 with 8
# iterations (plus the warm start in `_randomized_topk`) brought the worst max-cos
# error to ~2e-3 while staying ~3× cheaper than a dense SVD of W + ΔW.
DEFAULT_OVERSAMPLE: int = 20
DEFAULT_NITER: int = 8

Method = Literal["exact", "lowrank"]
Lang = Literal["vi", "en"]

_LAYER_RE = re.compile(r"(?:^|\.)(?:layers|layer|h|blocks|block)\.(\d+)(?:\.|$)")
_PEFT_PREFIX = "base_model.model."

_ATTN_TYPES = {
    "q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj", "query", "key", "value",
    "out_proj", "c_attn", "query_key_value", "Wqkv", "wq", "wk", "wv", "wo",
}
_MLP_TYPES = {
    "gate_proj", "up_proj", "down_proj", "gate_up_proj", "fc1", "fc2", "c_fc",
    "w1", "w2", "w3", "dense_h_to_4h", "dense_4h_to_h",
}
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
        return _json_safe(asdict(self))

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
            p = p / "analysis.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
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
            p = p / "analysis.json"
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


# --------------------------------------------------------------------------------------
# Base-spectrum cache
# --------------------------------------------------------------------------------------
class SpectrumCache:
    """Bounded LRU cache of base-weight SVDs (U, S), keyed by the weight's content.

    The base model is frozen, so its SVD is the same for every adapter trained
    on it; comparing two runs (or re-running with another ε) should not redo the
    most expensive step. Keys are a hash of the float32 bytes, so two different
    base models can never collide on a module name.
    """

    def __init__(self, max_bytes: int = 512 * 2**20) -> None:
        """Args:
        max_bytes: memory budget; least recently used entries are evicted beyond it.
        """
        self.max_bytes = int(max_bytes)
        self._store: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(W: torch.Tensor) -> str:
        """Content hash of a weight (shape + float32 bytes)."""
        w = W.detach().to("cpu", torch.float32).contiguous()
        h = hashlib.blake2b(digest_size=16)
        h.update(str(tuple(w.shape)).encode())
        h.update(w.numpy().tobytes())
        return h.hexdigest()

    def get_or_compute(self, W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (U, S) of the thin SVD of ``W``, computing and caching it if needed.

        Args:
            W: out × in matrix.

        Returns:
            U (out × min) and S (min,), same dtype/device as the computation.
        """
        k = self.key(W)
        if k in self._store:
            self.hits += 1
            self._store.move_to_end(k)
            U, S = self._store[k]
            return U.to(W.device), S.to(W.device)
        self.misses += 1
        U, S = _base_svd(W)
        size = U.numel() * U.element_size() + S.numel() * S.element_size()
        if size <= self.max_bytes:
            self._store[k] = (U.cpu(), S.cpu())
            self._bytes += size
            while self._bytes > self.max_bytes and self._store:
                _, (u, s) = self._store.popitem(last=False)
                self._bytes -= u.numel() * u.element_size() + s.numel() * s.element_size()
        return U, S

    def clear(self) -> None:
        """Drop every cached entry."""
        self._store.clear()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._store)


_DEFAULT_CACHE = SpectrumCache()


def clear_spectrum_cache() -> None:
    """Free the module-level base-SVD cache (e.g. after switching base model)."""
    _DEFAULT_CACHE.clear()


def _base_svd(W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # Thin SVD, as the paper's code does (full_matrices=False): for a tall W the
    # extra left vectors would span only the null space of Wᵀ and carry no weight.
    U, S, _ = torch.linalg.svd(_work_dtype(W), full_matrices=False)
    return U, S


# --------------------------------------------------------------------------------------
# Extracting factors from a PEFT model
# --------------------------------------------------------------------------------------
def _clean_name(name: str) -> str:
    return name[len(_PEFT_PREFIX):] if name.startswith(_PEFT_PREFIX) else name


def _layer_index(name: str) -> int | None:
    m = _LAYER_RE.search(name)
    return int(m.group(1)) if m else None


def _module_group(name: str, module_type: str) -> str:
    parts = name.lower().split(".")
    # The path is more reliable than the leaf name (GPT-2 uses c_proj in both halves).
    if any("attn" in p or "attention" in p for p in parts[:-1]):
        return "attention"
    if any(p in ("mlp", "ffn", "feed_forward", "experts", "moe") or "mlp" in p for p in parts[:-1]):
        return "mlp"
    if module_type in _ATTN_TYPES:
        return "attention"
    if module_type in _MLP_TYPES:
        return "mlp"
    return "other"


def _work_dtype(t: torch.Tensor) -> torch.Tensor:
    # Linear algebra kernels do not support half precision on every backend, and
    # float16 would lose the small singular values anyway.
    if t.dtype in (torch.float32, torch.float64):
        return t
    return t.float()


def _base_weight_float32(weight: torch.Tensor) -> tuple[torch.Tensor, str | None]:
    """Return the base weight as float32 (dequantized for bitsandbytes), and its quantization."""
    cls = type(weight).__name__
    if cls == "Params4bit":
        if getattr(weight, "quant_state", None) is None:  # not yet quantized: plain floats
            return weight.detach().float(), None
        import bitsandbytes.functional as bnbF  # lazy: only QLoRA users need bitsandbytes

        return bnbF.dequantize_4bit(weight.data, weight.quant_state).float(), "4bit"
    if cls == "Int8Params":
        if weight.dtype != torch.int8:
            return weight.detach().float(), None
        scb = getattr(weight, "SCB", None)
        if scb is None:
            raise ValueError("8-bit weight without SCB scales cannot be dequantized")
        import bitsandbytes.functional as bnbF

        return bnbF.int8_vectorwise_dequant(weight.data, scb.to(weight.device)).float(), "8bit"
    if not torch.is_floating_point(weight):
        raise ValueError(f"unsupported quantized weight type {cls} ({weight.dtype})")
    return weight.detach().float(), None


@torch.no_grad()
def lora_factors(peft_model: torch.nn.Module, adapter_name: str = "default") -> FactorList:
    """Collect the LoRA factors and base weights of every adapted linear layer.

    Args:
        peft_model: a ``PeftModel`` (or any module with PEFT LoRA layers injected).
        adapter_name: which adapter to read.

    Returns:
        A :class:`FactorList` (a ``list[ModuleFactors]``) whose ``skipped``
        attribute lists parts that are not analysed: embedding LoRA, conv LoRA,
        weights that cannot be dequantized, and — for DoRA — the magnitude vector
        (the analysis then covers the low-rank direction update only).
    """
    from peft.tuners.lora.layer import LoraLayer

    out = FactorList()
    for full_name, mod in peft_model.named_modules():
        if not isinstance(mod, LoraLayer):
            continue
        name = _clean_name(full_name)
        if adapter_name in getattr(mod, "lora_embedding_A", {}):
            out.skipped.append(SkippedModule(
                name, "embedding",
                "embedding LoRA is not analysed (a vocab × dim lookup table; the intruder analysis is defined for linear layers)"))
            continue
        if adapter_name not in getattr(mod, "lora_A", {}):
            continue
        A_w = mod.lora_A[adapter_name].weight
        B_w = mod.lora_B[adapter_name].weight
        if A_w.ndim != 2 or B_w.ndim != 2:
            out.skipped.append(SkippedModule(name, "conv", "convolutional LoRA is not analysed"))
            continue
        if A_w.is_meta or B_w.is_meta:
            out.skipped.append(SkippedModule(name, "weight", "adapter weights are offloaded (meta device)"))
            continue
        base = mod.get_base_layer()
        weight = getattr(base, "weight", None)
        if weight is None or weight.is_meta:
            out.skipped.append(SkippedModule(name, "weight", "base weight is missing or offloaded"))
            continue
        try:
            W, quant = _base_weight_float32(weight)
        except Exception as exc:  # noqa: BLE001 - report, don't crash the whole analysis
            out.skipped.append(SkippedModule(name, "weight", f"base weight could not be read: {exc}"))
            continue
        fan_in_fan_out = bool(getattr(mod, "fan_in_fan_out", False))
        if fan_in_fan_out:  # GPT-2 Conv1D stores in × out; LoRA's B @ A is out × in
            W = W.T
        A = A_w.detach().to("cpu", torch.float32)
        B = B_w.detach().to("cpu", torch.float32)
        W = W.to("cpu", torch.float32).contiguous()
        if W.shape != (B.shape[0], A.shape[1]):
            out.skipped.append(SkippedModule(
                name, "weight", f"shape mismatch: W {tuple(W.shape)} vs B·A {(B.shape[0], A.shape[1])}"))
            continue
        scale = float(mod.scaling[adapter_name])
        dora = adapter_name in getattr(mod, "lora_magnitude_vector", {}) or bool(
            getattr(mod, "use_dora", {}).get(adapter_name, False))
        variant_obj = getattr(mod, "lora_variant", {}).get(adapter_name)
        variant = type(variant_obj).__name__ if variant_obj is not None else None
        merged = adapter_name in getattr(mod, "merged_adapters", [])
        if merged:
            if dora:
                out.skipped.append(SkippedModule(
                    name, "weight", "DoRA adapter is merged into the base weight; unmerge it first"))
                continue
            # A merged adapter has already been added into the base weight; take it
            # back out so "W" really is the pre-trained matrix.
            W = W - scale * (B @ A)
        if dora:
            out.skipped.append(SkippedModule(
                name, "dora_magnitude",
                "DoRA magnitude vector not analysed: the numbers cover the low-rank direction update only"))
        out.append(ModuleFactors(
            name=name, layer=_layer_index(name), module_type=name.rsplit(".", 1)[-1],
            A=A, B=B, scale=scale, W=W, r=int(A.shape[0]), quantization=quant, dora=dora,
            fan_in_fan_out=fan_in_fan_out, merged=merged, variant=variant,
        ))
    return out


# --------------------------------------------------------------------------------------
# Pure linear algebra
# --------------------------------------------------------------------------------------
@torch.no_grad()
def delta_svd(A: torch.Tensor, B: torch.Tensor, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD of ΔW = scale · B · A computed from the rank-r factors only.

    With B = Q_B R_B and Aᵀ = Q_A R_A (thin QR), ΔW = Q_B (scale · R_B R_Aᵀ) Q_Aᵀ,
    so the SVD of the tiny r×r core gives the SVD of ΔW: cost O((out+in)·r²)
    instead of O(out·in·min(out, in)) for a dense SVD.

    Args:
        A: r × in factor (``lora_A.weight``).
        B: out × r factor (``lora_B.weight``).
        scale: LoRA scaling (α/r, or α/√r for rsLoRA).

    Returns:
        (U, S, V) in float64: U out×k and V in×k with orthonormal columns, S (k,)
        descending, k = min(r, out, in); ΔW = U diag(S) Vᵀ.
    """
    if A.ndim != 2 or B.ndim != 2 or A.shape[0] != B.shape[1]:
        raise ValueError(f"expected A (r×in) and B (out×r), got {tuple(A.shape)} and {tuple(B.shape)}")
    # float64 is cheap at this size and keeps the small singular values (which
    # drive the effective rank) accurate.
    Qb, Rb = torch.linalg.qr(B.detach().to(torch.float64))
    Qa, Ra = torch.linalg.qr(A.detach().to(torch.float64).T)
    core = float(scale) * (Rb @ Ra.T)
    Uc, S, Vch = torch.linalg.svd(core, full_matrices=False)
    return Qb @ Uc, S, Qa @ Vch.T


def delta_singular_values(A: torch.Tensor, B: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Singular values of ΔW = scale · B · A, from the factors (no dense SVD).

    Args:
        A: r × in factor.
        B: out × r factor.
        scale: LoRA scaling.

    Returns:
        Descending singular values (length min(r, out, in)) in A's dtype
        (float32 for half-precision inputs).
    """
    _, S, _ = delta_svd(A, B, scale)
    return S.to(_work_dtype(A).dtype)


def effective_rank(s: torch.Tensor | Sequence[float]) -> float:
    """Entropy-based effective rank (Roy & Vetterli, 2007).

    erank = exp(H(p)) with p_i = σ_i / Σ_j σ_j and H the Shannon entropy. It is 1
    for a rank-1 matrix, n for n equal singular values, and in between when the
    energy is unevenly spread.

    Args:
        s: singular values (non-negative).

    Returns:
        The effective rank; 0.0 when all singular values are zero.
    """
    t = torch.as_tensor(s, dtype=torch.float64).abs().flatten()
    total = t.sum()
    if not torch.isfinite(total) or total <= 0:
        return 0.0
    p = t / total
    p = p[p > 0]  # 0·log 0 = 0
    return float(torch.exp(-(p * p.log()).sum()))


def _orth(Y: torch.Tensor) -> torch.Tensor:
    return torch.linalg.qr(Y).Q


def _randomized_topk(
    M: torch.Tensor, k: int, oversample: int, niter: int, start: torch.Tensor | None, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Randomized subspace iteration (Halko et al., 2011, Alg. 4.4), optionally warm-started.

    ``start`` (m × s) is prepended to the random sketch M·Ω. When we already know
    where the answer lives — the base's top singular vectors plus the column
    space of B for W + ΔW — this makes a few iterations essentially exact, while
    the random columns keep the method honest for directions we did not guess.
    A local, seeded generator keeps results reproducible without touching the
    global RNG.
    """
    m, n = M.shape
    q = min(k + oversample, min(m, n))
    gen = torch.Generator(device=M.device).manual_seed(int(seed))
    omega = torch.randn(n, q, generator=gen, dtype=M.dtype, device=M.device)
    Y = M @ omega
    if start is not None and start.numel():
        Y = torch.cat([start.to(M.dtype), Y], dim=1)
    if Y.shape[1] >= min(m, n):
        # The sketch would span the whole space: a dense SVD is cheaper and exact.
        U, S, Vh = torch.linalg.svd(M, full_matrices=False)
        return U[:, :k], S[:k], Vh[:k].T
    Q = _orth(Y)
    for _ in range(niter):  # re-orthonormalise every half step: plain powers lose the small directions
        Z = _orth(M.T @ Q)
        Q = _orth(M @ Z)
    Ub, S, Vh = torch.linalg.svd(Q.T @ M, full_matrices=False)
    return (Q @ Ub)[:, :k], S[:k], Vh[:k].T


@torch.no_grad()
def topk_singular_vectors(
    M: torch.Tensor,
    k: int,
    method: Method = "exact",
    *,
    oversample: int = DEFAULT_OVERSAMPLE,
    niter: int = DEFAULT_NITER,
    start: torch.Tensor | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-k singular triplets of a matrix.

    Args:
        M: m × n matrix (half precision is upcast to float32).
        k: how many triplets (clipped to min(m, n)).
        method: ``"exact"`` (dense thin SVD) or ``"lowrank"`` (seeded randomized
            subspace iteration with ``oversample`` extra columns and ``niter``
            power iterations).
        oversample: extra sketch columns for ``"lowrank"``.
        niter: power iterations for ``"lowrank"``.
        start: optional m × s basis believed to contain the top left singular
            vectors; added to the random sketch (``"lowrank"`` only).
        seed: RNG seed for the random sketch.

    Returns:
        (U, S, V): U m×k and V n×k with orthonormal columns, S (k,) descending.
    """
    if method not in ("exact", "lowrank"):
        raise ValueError(f"method must be 'exact' or 'lowrank', got {method!r}")
    M = _work_dtype(M.detach())
    k = max(0, min(int(k), *M.shape))
    if method == "exact":
        U, S, Vh = torch.linalg.svd(M, full_matrices=False)
        return U[:, :k], S[:k], Vh[:k].T
    return _randomized_topk(M, k, oversample, niter, start, seed)


@torch.no_grad()
def count_intruders(
    W: torch.Tensor,
    W_tuned: torch.Tensor,
    k: int = DEFAULT_TOP_K,
    epsilon: float = DEFAULT_EPSILON,
    method: Method = "exact",
    *,
    base_U: torch.Tensor | None = None,
    start: torch.Tensor | None = None,
    oversample: int = DEFAULT_OVERSAMPLE,
    niter: int = DEFAULT_NITER,
    seed: int = 0,
) -> IntruderReport:
    """Count intruder dimensions (Shuttleworth et al., 2024).

    A top-k left singular vector y_j of ``W_tuned`` is an intruder when
    max_i |cos(y_j, x_i)| < ε over ALL left singular vectors x_i of ``W``.

    Args:
        W: base weight, out × in.
        W_tuned: tuned weight W + ΔW, same shape.
        k: number of top tuned singular vectors examined (paper: 10).
        epsilon: cosine threshold (paper's code default: 0.5).
        method: how to get the tuned top-k: ``"exact"`` or ``"lowrank"``. The
            base always gets an exact SVD (every base vector is needed).
        base_U: precomputed left singular vectors of W (skips the base SVD).
        start: extra warm-start basis for the ``"lowrank"`` solver (e.g. the
            column space of ΔW); the base's top vectors are always added.
        oversample: sketch oversampling for ``"lowrank"``.
        niter: power iterations for ``"lowrank"``.
        seed: RNG seed for ``"lowrank"``.

    Returns:
        An :class:`IntruderReport` (``.count`` is the number of intruders).
    """
    if W.shape != W_tuned.shape:
        raise ValueError(f"shape mismatch: {tuple(W.shape)} vs {tuple(W_tuned.shape)}")
    Wt = _work_dtype(W_tuned.detach())
    if base_U is None:
        base_U, _ = _base_svd(W.detach().to(Wt.dtype))
    base_U = base_U.to(Wt.dtype)
    kk = max(0, min(int(k), *Wt.shape))
    warm = None
    approximated = False
    if method == "lowrank":
        q = min(kk + oversample, base_U.shape[1])
        parts = [base_U[:, :q]] + ([start.to(Wt.dtype)] if start is not None else [])
        warm = torch.cat(parts, dim=1)
        # The randomized solver falls back to a dense SVD when the sketch would cover everything.
        approximated = warm.shape[1] + min(kk + oversample, min(Wt.shape)) < min(Wt.shape)
    U_t, S_t, _ = topk_singular_vectors(Wt, kk, method, oversample=oversample, niter=niter, start=warm, seed=seed)
    max_cos = (U_t.T @ base_U).abs().amax(dim=1) if kk else torch.zeros(0)
    idx = [int(i) for i in torch.nonzero(max_cos < epsilon).flatten()]
    return IntruderReport(
        count=len(idx), indices=idx, max_cos=[float(x) for x in max_cos],
        tuned_singular_values=[float(x) for x in S_t], k=kk, epsilon=float(epsilon),
        method=method, approximated=approximated,
    )


# --------------------------------------------------------------------------------------
# Whole-model analysis
# --------------------------------------------------------------------------------------
@torch.no_grad()
def analyze_module(
    f: ModuleFactors,
    *,
    top_k: int = DEFAULT_TOP_K,
    epsilon: float = DEFAULT_EPSILON,
    method: Method = "lowrank",
    cache: SpectrumCache | None = None,
    oversample: int = DEFAULT_OVERSAMPLE,
    niter: int = DEFAULT_NITER,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> ModuleStats:
    """Compute the per-module diagnostics.

    Args:
        f: factors from :func:`lora_factors`.
        top_k: tuned singular vectors examined for intruders.
        epsilon: cosine threshold for intruders.
        method: ``"exact"`` or ``"lowrank"`` for the tuned top-k.
        cache: base-SVD cache (None: no caching).
        oversample: sketch oversampling for ``"lowrank"``.
        niter: power iterations for ``"lowrank"``.
        seed: RNG seed for ``"lowrank"``.
        device: where to run the dense linear algebra.

    Returns:
        A :class:`ModuleStats` row.
    """
    W = f.W.to(device, torch.float32)
    U_d, S_d, _V_d = delta_svd(f.A.to(device), f.B.to(device), f.scale)
    # ‖ΔW‖_F² = Σσ², so the norm comes for free from the factor spectrum.
    delta_norm = float(torch.sqrt((S_d**2).sum()))
    base_norm = float(torch.linalg.vector_norm(W.double()))
    rel = delta_norm / base_norm if base_norm > 0 else None

    base_U, _ = cache.get_or_compute(W) if cache is not None else _base_svd(W)
    base_U = base_U.to(device)
    kk = min(top_k, *W.shape)
    if delta_norm == 0.0:
        # Untouched adapter (B = 0 at init): W + ΔW = W, its vectors are the base's own.
        rep = IntruderReport(0, [], [1.0] * kk, [], kk, float(epsilon), method, False)
    else:
        dW = (U_d * S_d) @ _V_d.T  # dense ΔW once (O(out·in·r)), needed for W + ΔW
        W_tuned = W + dW.to(W.dtype)
        rep = count_intruders(
            W, W_tuned, top_k, epsilon, method, base_U=base_U,
            start=U_d.to(W.dtype) if method == "lowrank" else None,
            oversample=oversample, niter=niter, seed=seed,
        )
    return ModuleStats(
        name=f.name, layer=f.layer, module_type=f.module_type,
        group=_module_group(f.name, f.module_type),
        out_features=int(W.shape[0]), in_features=int(W.shape[1]), r=f.r, scale=f.scale,
        delta_norm=delta_norm, base_norm=base_norm, rel_change=rel,
        singular_values=[float(x) for x in S_d], effective_rank=effective_rank(S_d),
        intruders=rep.count, intruder_indices=rep.indices, intruder_max_cos=rep.max_cos,
        quantization=f.quantization, dora=f.dora, merged=f.merged, approximated=rep.approximated,
    )


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


def _type_sort_key(t: str) -> tuple[int, str]:
    return (_TYPE_ORDER.index(t), t) if t in _TYPE_ORDER else (len(_TYPE_ORDER), t)


def _aggregates(modules: list[ModuleStats]) -> tuple[list[dict], list[dict], list[dict], dict]:
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
                 for t in sorted(by_type, key=_type_sort_key)]
    group_rows = [{"group": g, **_agg(by_group[g])}
                  for g in sorted(by_group, key=lambda g: ["attention", "mlp", "other"].index(g))]
    eranks = sorted(m.effective_rank for m in modules)
    totals = _agg(modules)
    totals["median_effective_rank"] = eranks[len(eranks) // 2] if eranks else 0.0
    totals["approximated_modules"] = int(sum(1 for m in modules if m.approximated))
    rs = sorted(m.r for m in modules)
    totals["median_r"] = rs[len(rs) // 2] if rs else None
    return layer_rows, type_rows, group_rows, totals


def _adapter_config(peft_model: torch.nn.Module, adapter_name: str, factors: list[ModuleFactors]) -> dict[str, Any]:
    cfg = getattr(peft_model, "peft_config", {}) or {}
    c = cfg.get(adapter_name) if isinstance(cfg, dict) else None
    out: dict[str, Any] = {}
    if c is not None:
        r, alpha = getattr(c, "r", None), getattr(c, "lora_alpha", None)
        rslora = bool(getattr(c, "use_rslora", False))
        tm = getattr(c, "target_modules", None)
        if isinstance(tm, (set, list, tuple)):
            tm = sorted({str(t).rsplit(".", 1)[-1] for t in tm})
        out.update(
            r=r, alpha=alpha, rslora=rslora, dora=bool(getattr(c, "use_dora", False)),
            target_modules=tm, rank_pattern=bool(getattr(c, "rank_pattern", None)),
            alpha_pattern=bool(getattr(c, "alpha_pattern", None)),
            base_model=getattr(c, "base_model_name_or_path", None),
        )
        if r and alpha is not None:
            out["scale"] = alpha / math.sqrt(r) if rslora else alpha / r
    elif factors:
        out.update(r=factors[0].r, alpha=None, rslora=None, dora=any(f.dora for f in factors), scale=factors[0].scale)
    return out


@torch.no_grad()
def analyze_peft_model(
    peft_model: torch.nn.Module,
    adapter_name: str = "default",
    *,
    top_k: int = DEFAULT_TOP_K,
    epsilon: float = DEFAULT_EPSILON,
    method: Method = "lowrank",
    label: str | None = None,
    cache: SpectrumCache | None = _DEFAULT_CACHE,
    oversample: int = DEFAULT_OVERSAMPLE,
    niter: int = DEFAULT_NITER,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int, str], None] | None = None,
) -> AnalysisResult:
    """Analyse every LoRA layer of an adapter.

    Args:
        peft_model: model with the LoRA adapter loaded.
        adapter_name: adapter to analyse.
        top_k: tuned singular vectors examined for intruders (paper: 10).
        epsilon: cosine threshold for intruders (paper's code: 0.5).
        method: ``"lowrank"`` (randomized top-k of W + ΔW) or ``"exact"``.
        label: run label for overlaid figures (default: adapter name).
        cache: base-SVD cache; the module default is shared between calls so that
            comparing runs on the same base reuses it. None disables caching.
        oversample: sketch oversampling for ``"lowrank"``.
        niter: power iterations for ``"lowrank"``.
        seed: RNG seed for ``"lowrank"`` (results are reproducible).
        device: where to run the dense linear algebra (default CPU).
        progress: optional callback ``(done, total, module_name)`` for a UI bar.

    Returns:
        An :class:`AnalysisResult`.
    """
    if method not in ("exact", "lowrank"):
        raise ValueError(f"method must be 'exact' or 'lowrank', got {method!r}")
    t0 = time.perf_counter()
    factors = lora_factors(peft_model, adapter_name)
    modules: list[ModuleStats] = []
    for i, f in enumerate(factors):
        modules.append(analyze_module(
            f, top_k=top_k, epsilon=epsilon, method=method, cache=cache,
            oversample=oversample, niter=niter, seed=seed, device=device,
        ))
        if progress is not None:
            progress(i + 1, len(factors), f.name)
    layer_rows, type_rows, group_rows, totals = _aggregates(modules)

    config = _adapter_config(peft_model, adapter_name, factors)
    if method == "exact":
        approx = "none: dense SVDs of W and W+ΔW; ΔW spectrum exact from its factors"
    else:
        approx = (f"top-{top_k} singular vectors of W+ΔW from a seeded randomized subspace iteration "
                  f"(oversample={oversample}, niter={niter}, warm-started with the base's top singular "
                  "vectors and the column space of ΔW; modules too small to gain use a dense SVD, see "
                  "each module's `approximated`); base SVD exact; ΔW spectrum exact from its factors")
    config.update(adapter_name=adapter_name, top_k=top_k, epsilon=epsilon, method=method,
                  oversample=oversample, niter=niter, seed=seed, approximations=approx)

    notes: list[str] = []
    if any(f.dora for f in factors):
        notes.append("DoRA: analysis covers the low-rank direction update scale·B·A only, not the magnitude vector.")
    if any(f.quantization for f in factors):
        notes.append("Base weights were dequantized from bitsandbytes storage; W includes quantization error.")
    if any(f.merged for f in factors):
        notes.append("Some adapters were merged; the base weight was recovered as W_merged − ΔW.")
    variants = sorted({f.variant for f in factors if f.variant and not f.dora})
    if variants:
        notes.append(f"LoRA variants {variants}: analysis assumes ΔW = scale·B·A.")
    if not factors:
        notes.append("No LoRA linear layers found for this adapter.")

    return AnalysisResult(
        modules=modules, config=config, by_layer=layer_rows, by_type=type_rows, by_group=group_rows,
        totals=totals, skipped=[asdict(s) for s in factors.skipped], notes=notes,
        runtime_s=time.perf_counter() - t0, label=label if label is not None else adapter_name,
    )


# --------------------------------------------------------------------------------------
# JSON helpers
# --------------------------------------------------------------------------------------
def _json_safe(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, torch.Tensor):
        return _json_safe(x.tolist())
    if isinstance(x, bool) or x is None or isinstance(x, (str, int)):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, Path):
        return str(x)
    try:  # numpy scalars and the like
        return _json_safe(x.item())
    except Exception:  # noqa: BLE001
        return str(x)


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------
_TXT: dict[str, dict[str, str]] = {
    "vi": {
        "sv_x": "Thứ tự hướng (i)",
        "sv_y": "Giá trị kỳ dị σᵢ của ΔW (thang log)",
        "sv_title": "Phổ giá trị kỳ dị của thay đổi ΔW",
        "layer": "Khối (layer)",
        "type": "Loại mô-đun",
        "norm_title": "Mức thay đổi tương đối ‖ΔW‖/‖W‖ theo khối và loại mô-đun",
        "norm_bar": "‖ΔW‖/‖W‖",
        "intr_y": "Số chiều xâm nhập",
        "intr_title": "Chiều xâm nhập theo khối (top-{k}, ε = {eps})",
        "outside": "ngoài khối",
        "run": "lần chạy",
    },
    "en": {
        "sv_x": "Direction index (i)",
        "sv_y": "Singular value σᵢ of ΔW (log scale)",
        "sv_title": "Singular value spectrum of the change ΔW",
        "layer": "Block (layer)",
        "type": "Module type",
        "norm_title": "Relative change ‖ΔW‖/‖W‖ by block and module type",
        "norm_bar": "‖ΔW‖/‖W‖",
        "intr_y": "Intruder dimensions",
        "intr_title": "Intruder dimensions per block (top-{k}, ε = {eps})",
        "outside": "outside blocks",
        "run": "run",
    },
}

_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf"]
_PATTERNS = ["", "/", "x", ".", "\\", "+", "-", "|"]


def _t(lang: str) -> dict[str, str]:
    return _TXT["en" if lang == "en" else "vi"]


def _as_list(results: "AnalysisResult | Sequence[AnalysisResult]") -> list[AnalysisResult]:
    return [results] if isinstance(results, AnalysisResult) else list(results)


def _labels(results: list[AnalysisResult], lang: str) -> list[str]:
    # Overlays need distinct legend names even when runs share an adapter name.
    out: list[str] = []
    for i, r in enumerate(results):
        lab = r.label or f"{_t(lang)['run']} {i + 1}"
        if lab in out:
            lab = f"{lab} ({i + 1})"
        out.append(lab)
    return out


def _layer_cat(layer: int | None, lang: str) -> str:
    return str(layer) if layer is not None else _t(lang)["outside"]


def fig_spectra(
    results: "AnalysisResult | Sequence[AnalysisResult]",
    modules: Sequence[str] | None = None,
    *,
    lang: Lang = "vi",
) -> "go.Figure":
    """Singular values of ΔW per module, log y axis; several runs overlaid.

    Args:
        results: one result or several (each run gets its own colour and legend group).
        modules: module names (``model.layers.0.self_attn.q_proj``) or module types
            (``q_proj``) to show; None shows every analysed module.
        lang: axis language, ``"vi"`` or ``"en"``.

    Returns:
        A Plotly figure with one line per (run, shown module).
    """
    import plotly.graph_objects as go

    runs = _as_list(results)
    labels = _labels(runs, lang)
    T = _t(lang)
    fig = go.Figure()
    for ri, (res, lab) in enumerate(zip(runs, labels)):
        color = _PALETTE[ri % len(_PALETTE)]
        for m in res.modules:
            if modules is not None and m.name not in modules and m.module_type not in modules:
                continue
            # log axes cannot show exact zeros: leave a gap instead of a fake value
            y = [s if s > 0 else None for s in m.singular_values]
            fig.add_trace(go.Scatter(
                x=list(range(1, len(y) + 1)), y=y, mode="lines+markers",
                name=f"{lab} · {m.name}" if len(runs) > 1 else m.name,
                legendgroup=lab, line={"color": color, "width": 1}, marker={"size": 4},
                hovertemplate=f"{lab}<br>{m.name}<br>σ%{{x}} = %{{y:.4g}}<extra></extra>",
            ))
    fig.update_layout(title=T["sv_title"], xaxis_title=T["sv_x"], yaxis_title=T["sv_y"],
                      template="plotly_white")
    fig.update_yaxes(type="log")
    return fig


def fig_norm_heatmap(result: AnalysisResult, *, lang: Lang = "vi") -> "go.Figure":
    """Heatmap of ‖ΔW‖/‖W‖ with module types as rows and blocks as columns.

    Args:
        result: one analysis result.
        lang: axis language, ``"vi"`` or ``"en"``.

    Returns:
        A Plotly figure with a single heatmap trace.
    """
    import plotly.graph_objects as go

    T = _t(lang)
    layers = sorted({m.layer for m in result.modules}, key=lambda x: (x is None, -1 if x is None else x))
    types = sorted({m.module_type for m in result.modules}, key=_type_sort_key)
    d2: dict[tuple, float] = {}
    b2: dict[tuple, float] = {}
    for m in result.modules:  # several matrices may share a cell (e.g. two towers): aggregate
        key = (m.module_type, m.layer)
        d2[key] = d2.get(key, 0.0) + m.delta_norm**2
        b2[key] = b2.get(key, 0.0) + m.base_norm**2
    z = [[(math.sqrt(d2[(t, L)] / b2[(t, L)]) if (t, L) in b2 and b2[(t, L)] > 0 else None) for L in layers]
         for t in types]
    fig = go.Figure(go.Heatmap(
        z=z, x=[_layer_cat(L, lang) for L in layers], y=types, colorscale="Viridis",
        colorbar={"title": T["norm_bar"]},
        hovertemplate=f"{T['layer']}: %{{x}}<br>{T['type']}: %{{y}}<br>{T['norm_bar']} = %{{z:.3g}}<extra></extra>",
    ))
    fig.update_layout(title=T["norm_title"], xaxis_title=T["layer"], yaxis_title=T["type"],
                      template="plotly_white")
    fig.update_xaxes(type="category")
    return fig


def fig_intruders(
    results: "AnalysisResult | Sequence[AnalysisResult]",
    *,
    lang: Lang = "vi",
) -> "go.Figure":
    """Intruder count per block, stacked by module type; several runs side by side.

    Args:
        results: one result or several runs (each run becomes its own bar group,
            told apart by a fill pattern; colours stay tied to module types).
        lang: axis language, ``"vi"`` or ``"en"``.

    Returns:
        A Plotly figure with one bar trace per (run, module type).
    """
    import plotly.graph_objects as go

    runs = _as_list(results)
    labels = _labels(runs, lang)
    T = _t(lang)
    all_layers = sorted({m.layer for r in runs for m in r.modules}, key=lambda x: (x is None, -1 if x is None else x))
    all_types = sorted({m.module_type for r in runs for m in r.modules}, key=_type_sort_key)
    xcat = [_layer_cat(L, lang) for L in all_layers]
    fig = go.Figure()
    multi = len(runs) > 1
    for ri, (res, lab) in enumerate(zip(runs, labels)):
        types = [t for t in all_types if any(m.module_type == t for m in res.modules)]
        base = [0] * len(all_layers)
        for t in types:
            counts = [sum(m.intruders for m in res.modules if m.module_type == t and m.layer == L)
                      for L in all_layers]
            color = _PALETTE[all_types.index(t) % len(_PALETTE)]
            kw: dict[str, Any] = {}
            if multi:
                # Stacked-within-group bars: same offsetgroup per run, explicit base.
                kw = {"offsetgroup": str(ri), "base": list(base),
                      "marker": {"color": color, "pattern": {"shape": _PATTERNS[ri % len(_PATTERNS)]}}}
            else:
                kw = {"marker": {"color": color}}
            fig.add_trace(go.Bar(
                x=xcat, y=counts, name=f"{lab} · {t}" if multi else t, legendgroup=lab if multi else t,
                hovertemplate=f"{lab} · {t}<br>{T['layer']}: %{{x}}<br>{T['intr_y']}: %{{y}}<extra></extra>",
                **kw,
            ))
            base = [b + c for b, c in zip(base, counts)]
    k = runs[0].config.get("top_k", DEFAULT_TOP_K) if runs else DEFAULT_TOP_K
    eps = runs[0].config.get("epsilon", DEFAULT_EPSILON) if runs else DEFAULT_EPSILON
    fig.update_layout(
        title=T["intr_title"].format(k=k, eps=_num(eps, lang, 2)),
        xaxis_title=T["layer"], yaxis_title=T["intr_y"], template="plotly_white",
        barmode="group" if multi else "stack",
    )
    fig.update_xaxes(type="category")
    return fig


# --------------------------------------------------------------------------------------
# Plain-language reading
# --------------------------------------------------------------------------------------
def _num(x: float, lang: str, nd: int = 1) -> str:
    s = f"{x:.{nd}f}"
    return s.replace(".", ",") if lang != "en" else s


def _pct(x: float, lang: str) -> str:
    p = 100.0 * x
    nd = 0 if p >= 10 else (1 if p >= 1 else 2)
    return _num(p, lang, nd) + "%"


def _join(items: list[str], lang: str) -> str:
    if len(items) <= 1:
        return "".join(items)
    sep = " và " if lang != "en" else " and "
    return ", ".join(items[:-1]) + sep + items[-1]


def _suggest_rank(erank: float, r: int) -> int | None:
    # Twice the effective rank, rounded up to a power of two, leaves head-room for
    # the weaker directions the entropy measure discounts.
    target = max(2, math.ceil(2 * erank))
    s = 1 << (target - 1).bit_length()
    return s if s < r else None


def explain(result: AnalysisResult, lang: Lang = "vi") -> str:
    """A short plain-language reading of the diagnostics for non-programmers.

    Args:
        result: the analysis.
        lang: ``"vi"`` (Vietnamese) or ``"en"`` (English).

    Returns:
        3–6 sentences: where the change sits (attention vs MLP, which blocks), how
        many intruder dimensions appeared and where, what the effective rank says
        about the chosen r, and a caution linking intruders to forgetting.
    """
    en = lang == "en"
    mods = result.modules
    if not mods:
        return ("No LoRA layers were found for this adapter, so there is nothing to analyse."
                if en else "Không tìm thấy lớp LoRA nào trong adapter này nên chưa có gì để phân tích.")
    tot = result.totals or _aggregates(mods)[3]
    if not tot.get("delta_norm"):
        return ("The adapter has not changed any weight yet (ΔW = 0): it looks untrained. "
                "Train it first, then run the analysis again."
                if en else "Adapter chưa làm thay đổi trọng số nào (ΔW = 0), có vẻ như chưa được huấn luyện. "
                "Hãy huấn luyện trước rồi chạy lại phân tích.")

    sentences: list[str] = []
    # 1) Size and location of the change.
    groups = {g["group"]: g for g in result.by_group}
    overall = tot.get("rel_change")
    gname = {"attention": "attention" if en else "phần attention (chú ý)",
             "mlp": "the MLP (feed-forward) part" if en else "phần MLP (mạng truyền thẳng)"}
    att, mlp = groups.get("attention"), groups.get("mlp")
    if att and mlp and att.get("rel_change") is not None and mlp.get("rel_change") is not None:
        hi, lo = (att, mlp) if att["rel_change"] >= mlp["rel_change"] else (mlp, att)
        if en:
            where = (f"the change is concentrated in {gname[hi['group']]} — "
                     f"{_pct(hi['rel_change'], lang)} vs {_pct(lo['rel_change'], lang)} in {gname[lo['group']]} —")
        else:
            where = (f"thay đổi tập trung ở {gname[hi['group']]} — "
                     f"{_pct(hi['rel_change'], lang)} so với {_pct(lo['rel_change'], lang)} ở {gname[lo['group']]} —")
    else:
        only = (att or mlp or next(iter(groups.values())))["group"]
        label = gname.get(only, "other layers" if en else "các lớp khác")
        where = (f"only {label} was adapted" if en else f"adapter chỉ gắn vào {label}")
    layer_rows = [row for row in result.by_layer if row["layer"] is not None and row.get("rel_change") is not None]
    top_layers = sorted(layer_rows, key=lambda row: -row["rel_change"])[: min(3, max(1, len(layer_rows) // 3))]
    blocks = _join([str(row["layer"]) for row in sorted(top_layers, key=lambda row: row["layer"])], lang)
    if where.endswith("—"):
        sep = " "  # no comma right after a closing dash
    else:  # single-group sentence: name the subject again
        sep = "; the change is " if en else "; thay đổi "
    if en:
        s = f"Overall the adapter changed the weights by about {_pct(overall or 0.0, lang)} of their size; {where}"
        s += f"{sep}strongest in block{'s' if len(top_layers) > 1 else ''} {blocks}." if top_layers else "."
    else:
        s = f"Nhìn chung, adapter thay đổi trọng số khoảng {_pct(overall or 0.0, lang)} so với độ lớn ban đầu; {where}"
        s += f"{sep}mạnh nhất ở khối {blocks}." if top_layers else "."
    s = s.replace(" —.", ".")
    sentences.append(s)

    # 2) Intruder dimensions.
    k = result.config.get("top_k", DEFAULT_TOP_K)
    n_int = int(tot.get("intruders", 0))
    if n_int > 0:
        with_layer = [row for row in result.by_layer if row["intruders"] > 0]
        worst = max(with_layer, key=lambda row: row["intruders"])
        wname = (f"block {worst['layer']}" if en else f"khối {worst['layer']}") if worst["layer"] is not None else (
            "outside the blocks" if en else "ngoài các khối")
        n_layers = len(with_layer)
        if en:
            where_int = (f"all in {wname}" if n_layers == 1 else
                         f"spread over {n_layers} blocks, most in {wname} ({worst['intruders']} of them)")
            sentences.append(
                f"The tuned weights gained {n_int} intruder dimension{'s' if n_int != 1 else ''} (new directions "
                f"that resemble nothing in the original model) among their top {k} directions, {where_int}.")
        else:
            where_int = (f"tất cả đều ở {wname}" if n_layers == 1 else
                         f"rải ở {n_layers} khối, nhiều nhất ở {wname} ({worst['intruders']} hướng)")
            sentences.append(
                f"Có {n_int} chiều xâm nhập (hướng mới lạ, không giống hướng nào có sẵn trong mô hình gốc) xuất hiện "
                f"trong top {k} hướng mạnh nhất của trọng số, {where_int}.")
    else:
        sentences.append(
            f"No intruder dimensions: the {k} strongest directions of every tuned weight still match directions "
            "that already existed in the original model." if en else
            f"Không có chiều xâm nhập nào: {k} hướng mạnh nhất của mỗi ma trận sau tinh chỉnh vẫn trùng với các "
            "hướng vốn có trong mô hình gốc.")

    # 3) Effective rank vs r.
    changed = [m for m in mods if m.delta_norm > 0]
    er = sum(m.effective_rank for m in changed) / len(changed) if changed else 0.0
    r = result.config.get("r") or tot.get("median_r") or max(m.r for m in mods)
    r = int(r)
    suggestion = _suggest_rank(er, r)
    if er <= r / 4 and suggestion is not None:
        sentences.append(
            f"The effective rank is about {_num(er, lang)} of r = {r}: the change uses only a few directions, so a "
            f"smaller rank (around r = {suggestion}) would likely do." if en else
            f"Hạng hiệu dụng trung bình ≈ {_num(er, lang)} trên r = {r}: thay đổi chỉ dùng vài hướng, nên một hạng "
            f"nhỏ hơn (khoảng r = {suggestion}) có lẽ cũng đủ.")
    elif er >= 0.75 * r:
        sentences.append(
            f"The effective rank is about {_num(er, lang)} of r = {r}: the adapter uses nearly all of its capacity; "
            "if results are not good enough, a larger r may help." if en else
            f"Hạng hiệu dụng trung bình ≈ {_num(er, lang)} trên r = {r}: adapter dùng gần hết sức chứa; nếu kết quả "
            "chưa đạt, có thể thử r lớn hơn.")
    else:
        sentences.append(
            f"The effective rank is about {_num(er, lang)} of r = {r}, so the chosen rank looks reasonable." if en else
            f"Hạng hiệu dụng trung bình ≈ {_num(er, lang)} trên r = {r}, nên hạng đã chọn có vẻ hợp lý.")

    # 4) Caution (always: the user should know why intruders matter).
    if n_int > 0:
        sentences.append(
            "Caution: research (Shuttleworth et al., 2024) has linked many intruder dimensions to the model "
            "forgetting what it knew before; if general answers got worse, try a lower learning rate or fewer "
            "epochs, or a larger r with rsLoRA." if en else
            "Lưu ý: nghiên cứu (Shuttleworth và cộng sự, 2024) cho thấy nhiều chiều xâm nhập thường đi kèm việc mô "
            "hình quên bớt kiến thức cũ; nếu câu trả lời thông thường kém đi, hãy thử giảm tốc độ học hoặc số "
            "epoch, hay dùng r lớn hơn kèm rsLoRA.")
    else:
        sentences.append(
            "That is a good sign: many intruder dimensions have been linked to forgetting earlier knowledge "
            "(Shuttleworth et al., 2024)." if en else
            "Đây là dấu hiệu tốt, vì nhiều chiều xâm nhập thường đi kèm việc mô hình quên bớt kiến thức cũ "
            "(Shuttleworth và cộng sự, 2024).")
    if any(m.dora for m in mods):
        sentences.append(
            "For DoRA, these numbers describe only the low-rank direction update, not the magnitude vector." if en
            else "Với DoRA, các con số trên chỉ xét phần cập nhật hướng thấp hạng, không xét vectơ độ lớn.")
    return " ".join(sentences)


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
    return _json_safe(out)
