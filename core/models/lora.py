"""The LoRA config (peft's LoraConfig, a plain unpacking of the lora section), the checks of its module names
against the model, and exact parameter counts (all on the meta device: no weight is read)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.config import Issue, LoraSection, RunConfig
from core.models.registry import resolve_model


ALL_LINEAR = "all-linear"


def build_lora_config(lora: LoraSection, model=None):
    """peft's LoraConfig from the lora section: a plain unpacking, names are peft's own.

    Args:
        model: the base model (or its meta-device copy). Needed only for ``all-linear`` together with
            ``layers_to_transform``, which peft refuses; the shorthand is then resolved to the names of the
            model's linear layers, so that the combination works.
    """
    from peft import LoraConfig

    init: Any = True if lora.init_lora_weights == "default" else lora.init_lora_weights
    targets: Any = lora.target_modules
    if lora.layers_to_transform and isinstance(targets, str) and targets == ALL_LINEAR and model is not None:
        targets = linear_module_names(model)
    return LoraConfig(
        task_type="CAUSAL_LM", r=lora.r, lora_alpha=lora.lora_alpha, lora_dropout=lora.lora_dropout, bias=lora.bias,
        target_modules=targets, modules_to_save=list(lora.modules_to_save) or None,
        use_rslora=lora.use_rslora, use_dora=lora.use_dora, init_lora_weights=init,
        layers_to_transform=list(lora.layers_to_transform) or None,
    )


def linear_module_names(model) -> list[str]:
    """What ``all-linear`` means for this model, as peft resolves it: the last name part of every linear layer
    (q_proj, …, down_proj), the output head excluded."""
    from peft import LoraConfig
    from peft.tuners.tuners_utils import _maybe_include_all_linear_layers

    resolved = _maybe_include_all_linear_layers(LoraConfig(target_modules=ALL_LINEAR, task_type="CAUSAL_LM"), model)
    return sorted({name.rsplit(".", 1)[-1] for name in resolved.target_modules})


def meta_model(cfg: RunConfig, *, resolved: str | None = None):
    """The base model's architecture on the meta device (no weights read) and its transformers config."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    path = resolved or resolve_model(cfg.model.name_or_path)
    mconf = AutoConfig.from_pretrained(path, trust_remote_code=cfg.model.trust_remote_code)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(mconf, trust_remote_code=cfg.model.trust_remote_code), mconf


def _matches(key: str, names: list[str], regex: bool) -> bool:
    """peft's rule: a list entry matches a module whose name is it or ends with ``.it``; a string is a regex."""
    import re

    if regex:
        return any(re.fullmatch(key, n) for n in names)
    return any(n == key or n.endswith("." + key) for n in names)


def check_modules(cfg: RunConfig, model=None, *, resolved: str | None = None) -> list[Issue]:
    """``target_modules``, ``modules_to_save`` and ``layers_to_transform`` against the model's own module names,
    before any weight is loaded (peft would fail after the load, or silently ignore an unknown modules_to_save).

    Returns:
        Errors naming the field and the value that matches nothing, with the names that would.
    """
    if model is None:
        model, _ = meta_model(cfg, resolved=resolved)
    names = [n for n, _ in model.named_modules() if n]
    leaves = sorted({n.rsplit(".", 1)[-1] for n in names})
    lo, issues = cfg.lora, []
    targets = lo.target_modules
    if isinstance(targets, str) and targets != ALL_LINEAR:
        if not _matches(targets, names, regex=True):
            issues.append(Issue("lora.target_modules", f"the pattern {targets!r} matches no module of the model "
                                                       f"(module names end in: {', '.join(leaves)})"))
    elif isinstance(targets, list):
        unknown = [k for k in targets if not _matches(k, names, regex=False)]
        if unknown:
            issues.append(Issue("lora.target_modules", f"{', '.join(unknown)} names no module of the model (module "
                                                       f"names end in: {', '.join(leaves)})"))
    unknown = [k for k in lo.modules_to_save if not _matches(k, names, regex=False)]
    if unknown:
        issues.append(Issue("lora.modules_to_save", f"{', '.join(unknown)} names no module of the model (e.g. "
                                                    "lm_head, embed_tokens)"))
    n_layers = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    beyond = [i for i in lo.layers_to_transform if n_layers is not None and i >= n_layers]
    if beyond:
        issues.append(Issue("lora.layers_to_transform", f"the model has {n_layers} layers (0–{n_layers - 1}), got "
                                                        f"{', '.join(map(str, beyond))}"))
    return issues


# --------------------------------------------------------------------------- size and memory

@dataclass
class ParamCount:
    total: int
    trainable: int
    lora: int
    full_modules: int  # modules_to_save copies

    @property
    def trainable_percent(self) -> float:
        return 100.0 * self.trainable / max(1, self.total)


def count_parameters(cfg: RunConfig, *, resolved: str | None = None) -> tuple[ParamCount, Any]:
    """Exact trainable/total counts, from the model built on the meta device (no weights read).

    Returns:
        (ParamCount, the model's transformers config)
    """
    import torch
    from peft import get_peft_model

    base, mconf = meta_model(cfg, resolved=resolved)
    lora = build_lora_config(cfg.lora, base)
    lora.init_lora_weights = True  # olora/pissa need real weights; the count does not depend on init
    total_base = sum(p.numel() for p in base.parameters())
    with torch.device("meta"):
        peft_model = get_peft_model(base, lora)
    lora_n = full = 0
    for name, p in peft_model.named_parameters():
        if not p.requires_grad:
            continue
        if "lora_" in name:
            lora_n += p.numel()
        else:
            full += p.numel()
    return ParamCount(total_base + lora_n + full, lora_n + full, lora_n, full), mconf
