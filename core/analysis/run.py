"""Analysing an adapter: every adapted layer of a PEFT model (:func:`analyze_peft_model`), and a run folder's adapter
loaded with the same checks as every other path (:func:`analyze_run`, what the CLI and the GUI call)."""

from __future__ import annotations

import gc
import json
import logging
import math
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import torch

from core.analysis.intruders import count_intruders
from core.analysis.result import AnalysisResult, IntruderReport, ModuleFactors, ModuleStats, aggregates
from core.analysis.spectra import (DEFAULT_CACHE, DEFAULT_EPSILON, DEFAULT_NITER, DEFAULT_OVERSAMPLE, DEFAULT_TOP_K,
                                   Method, SpectrumCache, base_svd, delta_svd, effective_rank, lora_factors,
                                   module_group)
from core.config import AnalysisConfig
from core.run import RunFolder

log = logging.getLogger(__name__)


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

    base_U, _ = cache.get_or_compute(W) if cache is not None else base_svd(W)
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
        group=module_group(f.name, f.module_type),
        out_features=int(W.shape[0]), in_features=int(W.shape[1]), r=f.r, scale=f.scale,
        delta_norm=delta_norm, base_norm=base_norm, rel_change=rel,
        singular_values=[float(x) for x in S_d], effective_rank=effective_rank(S_d),
        intruders=rep.count, intruder_indices=rep.indices, intruder_max_cos=rep.max_cos,
        quantization=f.quantization, dora=f.dora, merged=f.merged, approximated=rep.approximated,
    )


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
    cache: SpectrumCache | None = DEFAULT_CACHE,
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
    layer_rows, type_rows, group_rows, totals = aggregates(modules)

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
# A run folder's adapter
# --------------------------------------------------------------------------------------
_LOCK = threading.Lock()  # one analysis at a time per process: each holds a whole base model in memory


def saved_analysis(run_dir: str | Path) -> AnalysisResult | None:
    """The run's analysis.json when it exists, reads back and is newer than the adapter; else None."""
    folder = RunFolder(Path(run_dir))
    if not folder.analysis.exists() or folder.analysis.stat().st_mtime < folder.adapter_stamp():
        return None
    try:
        return AnalysisResult.from_json(folder.analysis)
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        log.warning("ignoring unreadable %s; recomputing", folder.analysis)
        return None


def analyze_run(run_dir: str | Path, settings: AnalysisConfig | None = None, *, reuse: bool = False,
                progress: Callable[[int, int, str], None] | None = None) -> tuple[AnalysisResult, bool]:
    """Analyse a run's adapter on its base as trained (4-bit included) and save analysis.json in the run folder.

    The base and the adapter are loaded by :meth:`core.inference.modelset.ModelSet.from_run`, with the adapter's
    checks (files, NaN, base name, shapes), as for a merge or a comparison.

    Args:
        run_dir: a run folder with an adapter.
        settings: top-k, ε and method (default: the paper's).
        reuse: return the saved analysis when it is newer than the adapter and made with the same settings.
        progress: ``(done, total, module name)`` after each module.
    Returns:
        (the result, True when it was reused from analysis.json)
    Raises:
        AdapterError / ModelLoadError: the run's adapter or base cannot be loaded.
    """
    from core.inference.modelset import ADAPTER, ModelSet

    settings = settings or AnalysisConfig()
    folder = RunFolder(Path(run_dir))
    if reuse:
        saved = saved_analysis(folder.path)
        same = saved is not None and all(saved.config.get(k) == getattr(settings, k)
                                         for k in ("top_k", "epsilon", "method"))
        if same:
            return saved, True
    with _LOCK:
        models = ModelSet.from_run(folder.path)
        result = analyze_peft_model(models.model, adapter_name=ADAPTER, top_k=settings.top_k,
                                    epsilon=settings.epsilon, method=settings.method, label=folder.name,
                                    progress=progress)
        del models  # free the weights before the next analysis
        gc.collect()
    result.save_json(folder.analysis)
    return result, False
