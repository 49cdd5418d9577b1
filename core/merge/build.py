"""Building a merged model: the base loaded for a target, the adapter applied with stock peft and merged,
saved with its tokenizer, reloaded the way a user would.

The merge itself is peft's own: ``PeftModel.from_pretrained`` onto the base, then
``merge_and_unload(safe_merge=True)`` (which refuses NaN), always in float32, cast once to the
output dtype at the end, so that the only rounding is the final one. What each target means is in
:mod:`core.merge`'s docstring.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from core.errors import AdapterError, ConfigError
from core.inference.adapters import adapter_files, apply_adapter, load_base
from core.merge.markdown import precision_text
from core.merge.report import ONTO, TARGETS
from core.models.load import exact_4bit, resolve_dtype
from core.run import RunInfo

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "tokenizer.model", "spiece.model", "vocab.json", "merges.txt", "chat_template.jinja",
                   "chat_template.json")


def _torch_dtype(name: str):
    import torch

    return getattr(torch, name)


def _nan_guard(model, where: str) -> None:
    """Refuse a merged model with a NaN/inf weight, naming the parameter."""
    import torch

    for name, p in model.named_parameters():
        if p.is_floating_point() and not torch.isfinite(p).all():
            raise AdapterError(f"merging produced NaN/inf in {name} ({where}); the adapter or the base is broken",
                               field=name)


def build_merged(run: RunInfo, target: str, dtype: str):
    """The base loaded for ``target``, the run's adapter applied with stock peft and merged.

    Float targets merge in float32 and are cast to ``dtype`` once at the end; the 4bit target keeps
    its non-quantized modules in ``dtype``.

    Returns:
        (merged transformers model in eval mode, notes)
    Raises:
        AdapterError: broken adapter, NaN after merging.
    """
    if target == "original":
        base = load_base(run, load_in_4bit=False, load_in_8bit=False, dtype="float32")
    elif target == "dequantized":
        # the base exactly as training held it: loaded in the run's dtype, so the 4-bit codes and scales are
        # the very ones training used (quantizing the float32 weights instead flips codes and moves every
        # block's absmax: it is another 4-bit model)
        base = load_base(run)
        base = dequantize_as_computed(base)
    elif target == "4bit":
        base = load_base(run, load_in_4bit=True, load_in_8bit=False, dtype=dtype)
    else:
        raise ConfigError(f"unknown merge target {target!r} (one of {', '.join(TARGETS)})", field="onto")
    peft_model, notes = apply_adapter(base, run.adapter_dir, expected_bases=run.base_names)
    try:
        merged = peft_model.merge_and_unload(safe_merge=True)
    except ValueError as e:
        if "nan" in str(e).lower():
            raise AdapterError(f"merging the adapter {adapter_files(run.adapter_dir)[1]} produced NaN weights "
                               f"({target} target): {str(e).splitlines()[0][:200]}",
                               field=str(adapter_files(run.adapter_dir)[1])) from None
        raise
    if target != "4bit":
        merged = merged.to(_torch_dtype(dtype))
    _nan_guard(merged, f"{target} target, {dtype}")
    merged.eval()
    return merged, notes


def dequantize_as_computed(model):
    """Every 4/8-bit layer → a float32 ``nn.Linear`` holding the weights its forward pass multiplied by.

    transformers' ``dequantize`` is the stock conversion, but it dequantizes a 4-bit weight into the dtype the
    model was *loaded* in (``quant_state.dtype``), while the forward pass (``gemm_4bit``) dequantizes into the
    layer's *compute* dtype. For a run on bfloat16 weights with float32 compute (the CPU default) the stock
    result is every weight rounded to bfloat16 — measured on the demo preset with 4-bit: max |Δlogit| 6.25,
    KL 1.0e-2, greedy agreement 94%, a failed verification. Pointing each quant state at its layer's compute
    dtype first makes the conversion exact; the non-quantized modules (norms, embeddings) are then cast to
    float32, which is exact from any 16-bit dtype.

    Returns:
        The dequantized model (quantization config removed), in float32.
    """
    import torch

    for module in model.modules():
        weight = getattr(module, "weight", None)
        state = getattr(weight, "quant_state", None)
        compute = getattr(module, "compute_dtype", None)
        if state is not None and compute is not None and not getattr(state, "packing_format_for_cpu", False):
            state.dtype = compute
    return model.dequantize(dtype=torch.float32).to(torch.float32)


def upcast_unquantized(model):
    """Cast every parameter and buffer that is not 4/8-bit to float32, in place; the quantized weights stay.

    The reference of a float32 merge of a run held in 16 bits: the same quantized weights as training, the rest
    computed in float32, so that it and the dequantized merge differ only by the merge's own arithmetic.
    """
    import torch

    for module in model.modules():
        for name, p in list(module.named_parameters(recurse=False)):
            if p.is_floating_point() and p.dtype != torch.float32 and type(p).__name__ not in ("Params4bit",
                                                                                              "Int8Params"):
                p.data = p.data.to(torch.float32)
        recompute = False
        for name, b in list(module.named_buffers(recurse=False)):
            if b.is_floating_point() and b.dtype != torch.float32:
                setattr(module, name, b.to(torch.float32))
                recompute |= name in module._non_persistent_buffers_set
        if recompute:
            _recompute_buffers(model, module)
    return model


def _recompute_buffers(model, module) -> None:
    """Compute a module's non-persistent buffers again, now in float32, as a float32 load computes them.

    They are not saved with the model but made at load time in the model's dtype: Gemma's embedding scale √640
    is 25.25 in bfloat16 and 25.298 in float32, enough to move the logits by ~1. transformers makes them with
    the model's own ``_init_weights``; its parameters are kept out of reach meanwhile (that call would also
    re-initialise them).
    """
    import torch

    init = getattr(model, "_init_weights", None)
    if init is None:
        return
    params = dict(module.named_parameters(recurse=False))
    kept = {name: p.data for name, p in params.items()}
    try:
        for name, p in params.items():
            p.data = torch.empty_like(kept[name])
        init(module)
    finally:
        for name, p in params.items():
            p.data = kept[name]


def save_merged(merged, tokenizer, run: RunInfo, folder: Path) -> list[str]:
    """The merged model, its tokenizer (config, chat template, special tokens) and generation config."""
    merged.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    base = Path(run.base_path)
    if base.is_dir():  # what save_pretrained may not write back (a sentencepiece model, an older chat template)
        for name in TOKENIZER_FILES:
            if (base / name).is_file() and not (folder / name).exists():
                shutil.copy2(base / name, folder / name)
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def reload_merged(folder: Path, dtype: str, device):
    """The saved folder, loaded the way a user would: stock AutoModelForCausalLM."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": _torch_dtype(dtype)}
    if _is_quantized_folder(folder):
        kwargs["device_map"] = {"": str(device)}
    model = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
    if "device_map" not in kwargs:
        model.to(device)
    return exact_4bit(model.eval())


def _is_quantized_folder(folder: Path) -> bool:
    try:
        return "quantization_config" in json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False


def precision(run: RunInfo) -> dict:
    """How the base was held in training: 4bit | 8bit | float, with the details the text needs."""
    m = run.cfg.model
    kind = "4bit" if m.load_in_4bit else "8bit" if m.load_in_8bit else "float"
    return {"kind": kind, "dtype": dtype_name(m.dtype), "quant_type": m.bnb_4bit_quant_type,
            "double_quant": m.bnb_4bit_use_double_quant, "compute_dtype": dtype_name(m.bnb_4bit_compute_dtype)}


def trained_on(run: RunInfo, lang: str = "en") -> str:
    """How the run held its base, in words: ``4-bit nf4, …, compute float32 (QLoRA)`` or ``bfloat16``."""
    return precision_text(precision(run), lang)


def dtype_name(name: str) -> str:
    """A config dtype (``auto`` included) as this machine resolves it: ``float32``, ``bfloat16`` …"""
    return str(resolve_dtype(name)).removeprefix("torch.")


def resolve_onto(run: RunInfo, onto: str) -> str:
    """The merge target that ``onto`` means for this run (auto → dequantized after QLoRA, else original).

    Raises:
        ConfigError: an unknown value, or dequantized for a run trained in full precision.
    """
    if onto not in ONTO:
        raise ConfigError(f"--onto must be one of {', '.join(ONTO)}, got {onto!r}", field="onto")
    if onto == "auto":
        return "dequantized" if run.quantized else "original"
    if onto == "dequantized" and not run.quantized:
        raise ConfigError("--onto dequantized is for a run trained on a 4-bit base (QLoRA); this run was trained "
                          f"on {trained_on(run)} weights, so use --onto original (or auto)", field="onto")
    return onto
