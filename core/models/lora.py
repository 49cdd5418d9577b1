"""The LoRA config (peft's LoraConfig, a plain unpacking of the lora section) and exact parameter counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.config import LoraSection, RunConfig
from core.models.registry import resolve_model


def build_lora_config(lora: LoraSection):
    """peft's LoraConfig from the lora section: a plain unpacking, names are peft's own."""
    from peft import LoraConfig

    init: Any = True if lora.init_lora_weights == "default" else lora.init_lora_weights
    return LoraConfig(
        task_type="CAUSAL_LM", r=lora.r, lora_alpha=lora.lora_alpha, lora_dropout=lora.lora_dropout, bias=lora.bias,
        target_modules=lora.target_modules, modules_to_save=list(lora.modules_to_save) or None,
        use_rslora=lora.use_rslora, use_dora=lora.use_dora, init_lora_weights=init,
        layers_to_transform=list(lora.layers_to_transform) or None,
    )


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
    from transformers import AutoConfig, AutoModelForCausalLM

    path = resolved or resolve_model(cfg.model.name_or_path)
    mconf = AutoConfig.from_pretrained(path, trust_remote_code=cfg.model.trust_remote_code)
    lora = build_lora_config(cfg.lora)
    lora.init_lora_weights = True  # olora/pissa need real weights; the count does not depend on init
    with torch.device("meta"):
        base = AutoModelForCausalLM.from_config(mconf, trust_remote_code=cfg.model.trust_remote_code)
        total_base = sum(p.numel() for p in base.parameters())
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
