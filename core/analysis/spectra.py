"""Spectra of LoRA updates: the factors (A, B, scale, W) of every adapted layer, ΔW's singular values from the
rank-r factors alone, effective rank, and the cache of the base weights' SVDs.

Everything is computed on CPU in float32/float64; the matrices of the small models this app targets
(576×576, 576×1536, 640×2048, …) make a dense SVD of each base weight affordable, and the spectrum of ΔW is
always obtained from the rank-r factors without ever forming a dense SVD of ΔW.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from typing import Literal, Sequence

import torch

from core.analysis.result import FactorList, ModuleFactors, SkippedModule

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
        U, S = base_svd(W)
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


DEFAULT_CACHE = SpectrumCache()


def clear_spectrum_cache() -> None:
    """Free the module-level base-SVD cache (e.g. after switching base model)."""
    DEFAULT_CACHE.clear()


def base_svd(W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # Thin SVD, as the paper's code does (full_matrices=False): for a tall W the
    # extra left vectors would span only the null space of Wᵀ and carry no weight.
    U, S, _ = torch.linalg.svd(work_dtype(W), full_matrices=False)
    return U, S


# --------------------------------------------------------------------------------------
# Extracting factors from a PEFT model
# --------------------------------------------------------------------------------------
def clean_name(name: str) -> str:
    return name[len(_PEFT_PREFIX):] if name.startswith(_PEFT_PREFIX) else name


def layer_index(name: str) -> int | None:
    m = _LAYER_RE.search(name)
    return int(m.group(1)) if m else None


def module_group(name: str, module_type: str) -> str:
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


def work_dtype(t: torch.Tensor) -> torch.Tensor:
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
        name = clean_name(full_name)
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
            name=name, layer=layer_index(name), module_type=name.rsplit(".", 1)[-1],
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
    return S.to(work_dtype(A).dtype)


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
