"""Intruder dimensions (Shuttleworth et al., 2024, arXiv:2410.21228): top singular vectors of W + ΔW that resemble
none of the base weight's singular vectors; the randomized top-k SVD that makes it affordable."""

from __future__ import annotations


import torch

from core.analysis.result import IntruderReport
from core.analysis.spectra import (DEFAULT_EPSILON, DEFAULT_NITER, DEFAULT_OVERSAMPLE, DEFAULT_TOP_K, Method, base_svd,
                                   work_dtype)

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
    M = work_dtype(M.detach())
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
    Wt = work_dtype(W_tuned.detach())
    if base_U is None:
        base_U, _ = base_svd(W.detach().to(Wt.dtype))
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
