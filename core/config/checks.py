"""Validation of a run config: every error and warning at once, each naming its field and value.

Bounds come from the fields' metadata; the cross-field rules and the seeds' advice (alpha/r, rsLoRA at high
rank, epochs on a small set) are written here with their reasons.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from core.config.schema import SECTIONS, RunConfig
from core.errors import ConfigError

# --------------------------------------------------------------------------- validation

@dataclass
class Issue:
    """One validation finding: ``field`` is the dotted key, ``message`` names the value."""

    field: str
    message: str
    level: Literal["error", "warning"] = "error"
    code: str = ""

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def validate_section(obj: Any, prefix: str = "", names: dict[str, str] | None = None) -> list[Issue]:
    """The bounds of every number in one config dataclass (from the fields' metadata).

    Args:
        obj: a section of RunConfig, or a DecodingConfig / MergeConfig / AnalysisConfig.
        prefix: prepended to the field name in the issue (``"lora."``).
        names: how to name a field instead (``{"max_new_tokens": "--max-new-tokens"}`` for the CLI).
    """
    issues = []
    for f in dataclasses.fields(obj):
        lo, hi = f.metadata.get("min"), f.metadata.get("max")
        value = getattr(obj, f.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        key = (names or {}).get(f.name, f"{prefix}{f.name}")
        if lo is not None and value < lo:
            issues.append(Issue(key, f"must be ≥ {lo}, got {value}", code="min"))
        if hi is not None and value > hi:
            issues.append(Issue(key, f"must be ≤ {hi}, got {value}", code="max"))
    return issues


def _bounds(cfg: RunConfig) -> list[Issue]:
    return [i for section in SECTIONS for i in validate_section(getattr(cfg, section), f"{section}.")]


def validate(cfg: RunConfig, *, n_rows: int | None = None, stats: Any = None) -> list[Issue]:
    """Collect every error and warning, each naming its field and value.

    Args:
        cfg: the config to check.
        n_rows: number of training rows, when known, for data-size advice.
        stats: the data's token statistics (``core.data.TokenStats``), when known: answers cut by max_length.
    Returns:
        Errors first, then warnings; an empty list means all is well.
    """
    issues = _bounds(cfg)
    m, lo, d, t = cfg.model, cfg.lora, cfg.data, cfg.train
    err = lambda k, msg, code="": issues.append(Issue(k, msg, "error", code))  # noqa: E731
    warn = lambda k, msg, code="": issues.append(Issue(k, msg, "warning", code))  # noqa: E731

    if not m.name_or_path.strip():
        err("model.name_or_path", "must name a model, got an empty value")
    if m.load_in_4bit and m.load_in_8bit:
        err("model.load_in_8bit", "cannot be combined with model.load_in_4bit=true; choose one")
    if t.learning_rate <= 0 and not any(i.field == "train.learning_rate" for i in issues):
        err("train.learning_rate", f"must be > 0, got {t.learning_rate}")
    if t.max_steps == 0:
        err("train.max_steps", "must be -1 (use epochs) or ≥ 1, got 0")
    if isinstance(lo.target_modules, list) and not lo.target_modules:
        err("lora.target_modules", "must name at least one module, got an empty list")
    if d.max_tokens and d.min_tokens and d.min_tokens > d.max_tokens:
        err("data.min_tokens", f"must be ≤ data.max_tokens ({d.max_tokens}), got {d.min_tokens}")
    if not d.source.strip():
        err("data.source", "must name a dataset, got an empty value")
    if any(x < 0 for x in lo.layers_to_transform):
        err("lora.layers_to_transform", f"layer indices must be ≥ 0, got {lo.layers_to_transform}")
    if lo.use_dora and (m.load_in_4bit or m.load_in_8bit) and lo.init_lora_weights != "default":
        warn("lora.init_lora_weights", "DoRA on a quantized base supports only the default initialisation")
    if lo.init_lora_weights in ("olora", "pissa", "pissa_niter_4") and (m.load_in_4bit or m.load_in_8bit):
        err("lora.init_lora_weights",
            f"{lo.init_lora_weights} needs full-precision base weights, got model.load_in_4bit/8bit=true")
    if lo.init_lora_weights in ("olora", "pissa", "pissa_niter_4") and lo.modules_to_save:
        # found by the merge matrix: peft's conversion of the changed base weights back to a plain LoRA does not
        # cover fully trained modules, and the saved adapter cannot be applied again
        err("lora.init_lora_weights",
            f"{lo.init_lora_weights} with lora.modules_to_save={list(lo.modules_to_save)} saves an adapter that "
            "cannot be applied again; use the default initialisation to train whole modules")

    # advice: the seeds' folklore, each with its reason
    if lo.r > 0 and lo.lora_alpha > 0:
        ratio = lo.lora_alpha / lo.r
        if lo.use_rslora:
            eff = lo.lora_alpha / math.sqrt(lo.r)
            if eff < 1:
                warn("lora.lora_alpha", f"with rsLoRA the scale alpha/√r = {eff:.2f} < 1: the update is damped; "
                                        f"raise alpha to at least √r = {math.sqrt(lo.r):.0f}", "rslora_scale")
        elif not 1 <= ratio <= 4:
            warn("lora.lora_alpha", f"alpha/r = {ratio:g} is outside 1–4 (alpha {lo.lora_alpha}, r {lo.r}): "
                                    "training may be too weak or unstable", "alpha_ratio")
        if lo.r >= 128 and not lo.use_rslora and lo.lora_alpha < 2 * lo.r:
            warn("lora.r", f"at rank {lo.r} use rsLoRA or alpha = 2r ({2 * lo.r}); with alpha/r the update "
                           "shrinks as rank grows", "high_rank")
    heavy = [x for x in lo.modules_to_save if x in ("lm_head", "embed_tokens")]
    if heavy:
        warn("lora.modules_to_save", f"{', '.join(heavy)} are trained in full: they cost much more memory and "
                                     "disk than the adapter (the vocabulary × hidden matrix each)", "heavy_modules")
    if t.num_train_epochs > 3 and t.max_steps < 0:
        warn("train.num_train_epochs", f"{t.num_train_epochs:g} epochs: many passes over a small set make the "
                                       "model forget what it knew; 1–3 is usual", "many_epochs")
    if n_rows is not None and n_rows < 4 * lo.r and lo.r >= 64:
        warn("lora.r", f"rank {lo.r} on {n_rows} rows: a rank this high can memorise a small set; 8–32 may do",
             "rank_vs_rows")
    cut = getattr(stats, "n_answer_cut", 0)
    if cut:
        warn("data.max_length", f"{cut} of {stats.n} rows are longer than {d.max_length} tokens and lose the end of "
                                f"their answer (an MCQ, its answer key): the model learns answers that stop short; "
                                f"raise data.max_length to {stats.suggested_max_length} (the longest row: "
                                f"{stats.max} tokens)", "answer_cut")
    if t.embedding_learning_rate and not heavy:
        warn("train.embedding_learning_rate", "is set but no embed_tokens / lm_head is in lora.modules_to_save, "
                                              "so it has no effect", "embedding_lr_unused")
    if lo.init_lora_weights != "default" and lo.use_dora:
        warn("lora.use_dora", f"DoRA with init_lora_weights={lo.init_lora_weights} is rarely tested; "
                              "prefer the default initialisation", "dora_init")
    issues.sort(key=lambda i: i.level != "error")
    return issues


def check(cfg: RunConfig, **kwargs: Any) -> list[Issue]:
    """Validate and raise one ConfigError listing every error; return the warnings."""
    issues = validate(cfg, **kwargs)
    errors = [i for i in issues if i.level == "error"]
    if errors:
        raise ConfigError("; ".join(map(str, errors)), field=errors[0].field, issues=errors)
    return [i for i in issues if i.level == "warning"]
