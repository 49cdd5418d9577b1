"""Verification of a merged (or exported) model against the adapter as trained: the numbers and the limits.

The reference is computed once (its logits on prompt + expected answer, its greedy generations) and every
candidate is measured against it: max and mean |Δlogit|, KL(reference ‖ candidate), teacher-forced greedy
agreement, identical greedy generations and the first token where they differ. The limits per precision
are :data:`TOLERANCES`, each with the measurement that set it. The prompts are the run's own validation
rows through its template (:func:`prompt_set`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from core import data as D
from core.config import DecodingConfig
from core.errors import DataError
from core.inference.generate import first_divergence, generate, logits
from core.merge.report import TargetResult
from core.run import RunInfo
from core.tasks import format_row, inference_prompt


@dataclass(frozen=True)
class Tolerance:
    """Pass/fail limits for one precision; None means the measure is reported, not judged."""

    atol: float | None = None  # max |Δlogit| ≤ atol + rtol · max|reference logit|
    rtol: float | None = None
    kl_mean: float | None = None  # mean KL(reference ‖ merged) of the next-token distributions, nats
    agreement: float | None = None  # teacher-forced greedy-token agreement, fraction of positions

    def max_abs(self, scale: float) -> float | None:
        return None if self.atol is None else self.atol + (self.rtol or 0.0) * scale


# Why these numbers (measured on CPU, torch 2.13, SmolLM2-135M with a r-16 all-linear adapter, 421 tokens):
#   float32: a correct merge only reorders float32 arithmetic, (W + sBA)x instead of Wx + sB(Ax). On a
#     micro model the logits are tiny and the difference stays far below 1e-4, the bound peft's own tests
#     use (atol=1e-4). On a real model it cannot: the unmerged float32 model is itself 2.6e-4 away from the
#     same model in float64 (max logit 41, 30 layers), and merged vs unmerged measured 3.3e-4 — the
#     rounding floor, not a merge error. Hence allclose-style: 1e-4 plus 2e-5 × the largest reference
#     logit (≈ 3× that floor, 1e-5 relative; ≈ 9e-4 for SmolLM2, still ≈ 1e-4 for a micro model).
#     A merge that drops or doubles the adapter moves logits by the adapter's own effect (0.1–1 and more),
#     orders of magnitude above this.
#   bfloat16 keeps 8 significant bits (unit roundoff 2^-9 ≈ 2e-3): rounding every weight once moved
#     single logits by up to 1.9 and the mean by 0.15, so single logits cannot be judged. The distribution
#     can: mean KL measured 7.7e-4 nats with 99.5% greedy agreement; limits 1e-2 nats and 95%.
#   float16 keeps 11 bits (2^-12 ≈ 2.4e-4): measured max 0.6, mean KL 2e-5, 100% agreement; limits
#     1e-3 nats and 99%.
TOLERANCES: dict[str, Tolerance] = {
    "float32": Tolerance(atol=1e-4, rtol=2e-5),
    "float16": Tolerance(kl_mean=1e-3, agreement=0.99),
    "bfloat16": Tolerance(kl_mean=1e-2, agreement=0.95),
}
_PRECISION_RANK = {"float32": 0, "float16": 1, "bfloat16": 2}  # coarser last


def tolerance_for(*dtypes: str) -> tuple[str, Tolerance]:
    """The tolerance of the coarsest precision involved (a bfloat16 reference cannot be matched to 1e-4)."""
    key = max((d for d in dtypes if d in _PRECISION_RANK), key=_PRECISION_RANK.__getitem__, default="float32")
    return key, TOLERANCES[key]



# --------------------------------------------------------------------------- the prompt set

@dataclass
class PromptCase:
    """One verification prompt: the generation prompt, and the tokens of prompt + expected answer."""

    prompt: str
    input_ids: list[int]
    preview: str


_BUILTIN = [  # used only when the run's data cannot be read any more (a moved file, an offline Hub dataset)
    ("Bộ xử lí trung tâm (CPU) là", " bộ phận thực hiện các lệnh của chương trình."),
    ("Bộ nhớ trong của máy tính gồm", " RAM và ROM."),
    ("The central processing unit of a computer", " executes the instructions of a program."),
    ("Hệ điều hành là phần mềm", " quản lí tài nguyên của máy tính."),
]


def prompt_set(run: RunInfo, tokenizer, n: int) -> tuple[list[PromptCase], str, list[dict]]:
    """``n`` fixed prompts from the run's validation rows (else its training rows), through the run's template.

    A run records its validation rows in run.json (``validation_index``): only those ``n`` rows are formatted
    and tokenized. An older run, or one without validation rows, prepares its data again to find them.

    Returns:
        (cases, source: validation | train | builtin, notes as {"code", "args"})
    """
    cfg = run.cfg
    ctx = D.template_context(tokenizer, cfg.data)
    chosen = list(run.info.get("validation_index") or [])[:n]
    try:
        frame = D.load_frame(cfg.data)
        if chosen and max(chosen) < len(frame):
            guess = D.detect_schema(frame.columns, cfg.data.column_map)
            rows = [(i, D.map_row(frame.iloc[i].to_dict(), guess, cfg.data.clean)) for i in chosen]
            source, ids_of = "validation", None
        else:
            prepared = D.prepare(cfg.data, tokenizer, seed=cfg.train.seed, frame=frame)
            source, examples = ("validation", prepared.validation) if prepared.validation else ("train",
                                                                                                  prepared.train)
            rows = [(e.index, D.map_row(frame.iloc[e.index].to_dict(), prepared.guess, cfg.data.clean))
                    for e in examples[:n]]
            ids_of = {e.index: e.input_ids for e in examples[:n]}
    except DataError as e:
        cases = []
        for prompt, answer in _BUILTIN[:n]:
            ids = D.encode_prompt(tokenizer, prompt + answer)
            cases.append(PromptCase(prompt, ids, answer.strip()))
        return cases, "builtin", [{"code": "data_unreadable", "args": {"error": str(e)}}]
    cases = []
    for index, row in rows:
        formatted = format_row(row, run.template, ctx)
        ids = ids_of[index] if ids_of else D.tokenize(formatted, tokenizer, cfg.data.completion_only_loss)[0]
        preview = " ".join((formatted.reference or formatted.text).split())[:60]
        cases.append(PromptCase(inference_prompt(run.template, row, ctx), ids[: cfg.data.max_length], preview))
    return cases, source, []


# --------------------------------------------------------------------------- measuring

def _compare(ref, cand) -> dict:
    """Δlogit, KL(ref ‖ cand) and argmax agreement of two [positions, vocab] logit tensors."""
    import torch

    d = (ref - cand).abs()
    kl_parts = []
    for a in range(0, ref.shape[0], 128):  # float64 in chunks: a 262k vocabulary × 1k positions is 2 GiB
        lr = torch.log_softmax(ref[a:a + 128].double(), -1)
        lc = torch.log_softmax(cand[a:a + 128].double(), -1)
        kl_parts.append((lr.exp() * (lr - lc)).sum(-1).clamp_min(0.0))
    kl = torch.cat(kl_parts)
    return {"max": float(d.max()), "sum": float(d.double().sum()), "count": d.numel(), "kl_sum": float(kl.sum()),
            "kl_max": float(kl.max()), "positions": ref.shape[0], "scale": float(ref.abs().max()),
            "agree": int((ref.argmax(-1) == cand.argmax(-1)).sum()),
            "finite": bool(torch.isfinite(cand).all())}


class Reference:
    """The adapter as trained: its logits and greedy generations, computed once and reused for every target."""

    def __init__(self, model, tokenizer, cases: list[PromptCase], decoding: DecodingConfig):
        self.model, self.cases, self.decoding = model, cases, decoding
        self.generations = [g.token_ids for g in generate(model, tokenizer, [c.prompt for c in cases], decoding)]
        vocab = model.get_output_embeddings().weight.shape[0] if model.get_output_embeddings() is not None else 0
        # keep the reference logits when they fit in 1 GiB, else recompute them for each target
        self._cache = [] if sum(len(c.input_ids) for c in cases) * vocab * 4 <= (1 << 30) else None
        self.scale = 0.0

    def logits(self, i: int):
        if self._cache is not None and i < len(self._cache):
            return self._cache[i]
        out = logits(self.model, self.cases[i].input_ids)
        if self._cache is not None:
            self._cache.append(out)
        return out


def measure(reference: Reference, candidate, tokenizer, *, target: str, dtype: str, tolerance_dtypes: tuple,
            lossy: bool, saved: bool) -> TargetResult:
    """Compare one merged model with the adapter as trained on every prompt."""
    t0 = time.monotonic()
    agg = {"max": 0.0, "sum": 0.0, "count": 0, "kl_sum": 0.0, "kl_max": 0.0, "positions": 0, "agree": 0,
           "scale": 0.0, "finite": True}
    for i, case in enumerate(reference.cases):
        c = _compare(reference.logits(i), logits(candidate, case.input_ids))
        for k in ("sum", "count", "kl_sum", "positions", "agree"):
            agg[k] += c[k]
        for k in ("max", "kl_max", "scale"):
            agg[k] = max(agg[k], c[k])
        agg["finite"] &= c["finite"]
    gens = generate(candidate, tokenizer, [c.prompt for c in reference.cases], reference.decoding)
    first = [first_divergence(a, g.token_ids) for a, g in zip(reference.generations, gens)]
    tol_key, tol = tolerance_for(*tolerance_dtypes)
    n = max(1, agg["positions"])
    r = TargetResult(
        target=target, dtype=dtype, lossy=lossy, saved=saved, measured_from="saved folder" if saved else "memory",
        max_abs_dlogit=agg["max"], mean_abs_dlogit=agg["sum"] / max(1, agg["count"]), kl_mean=agg["kl_sum"] / n,
        kl_max=agg["kl_max"], greedy_agreement=agg["agree"] / n, first_divergence=first,
        identical_generations=sum(f is None for f in first), tolerance_dtype=tol_key,
        tolerance={"max_abs_dlogit": tol.max_abs(agg["scale"]), "kl_mean": tol.kl_mean, "agreement": tol.agreement,
                   "atol": tol.atol, "rtol": tol.rtol, "logit_scale": agg["scale"]},
        passed=False)
    ok = agg["finite"] and all(math.isfinite(x) for x in (r.max_abs_dlogit, r.kl_mean))
    limit = tol.max_abs(agg["scale"])
    ok &= limit is None or r.max_abs_dlogit <= limit
    ok &= tol.kl_mean is None or r.kl_mean <= tol.kl_mean
    ok &= tol.agreement is None or r.greedy_agreement >= tol.agreement
    r.passed = bool(ok)
    r.seconds = round(time.monotonic() - t0, 2)
    return r


