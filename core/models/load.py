"""Loading a base model and its tokenizer as the model section says: dtype, device, 4-bit or 8-bit.

Also what "the same arithmetic as training" needs at inference: the device and dtype rules, the
bitsandbytes config, and :func:`exact_4bit`.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import ModelConfig
from core.errors import ModelLoadError
from core.models.registry import hub_error, resolve_model

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- devices and dtypes

@dataclass(frozen=True)
class DeviceInfo:
    kind: str  # cuda | mps | cpu
    name: str
    total_bytes: int
    available_bytes: int
    bf16: bool


def device_info() -> DeviceInfo:
    import torch

    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        return DeviceInfo("cuda", torch.cuda.get_device_name(0), total, free, torch.cuda.is_bf16_supported())
    total = available = 0
    try:  # Linux: MemAvailable is what a new process can really use
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        total = int(info["MemTotal"].split()[0]) * 1024
        available = int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        pass
    return DeviceInfo("cpu", f"CPU ({os.cpu_count()} cores)", total, available, cpu_native_bf16())


def cpu_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16, from /proc/cpuinfo's flags).

    torch also runs bfloat16 on other CPUs, emulated: there it is slower than float32. Off the reader's Linux
    flags (another OS, a container hiding them) the answer is no, and training stays in float32.
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return bool(flags & {"avx512_bf16", "amx_bf16"})
    return False


def resolve_dtype(name: str, dev: DeviceInfo | None = None):
    import torch

    dev = dev or device_info()
    if name == "auto":
        if dev.kind == "cuda":
            return torch.bfloat16 if dev.bf16 else torch.float16
        return torch.float32
    return getattr(torch, name)


def bnb_available() -> tuple[bool, str]:
    try:
        importlib.import_module("bitsandbytes")
    except Exception as e:  # ImportError, or a broken native library (OSError/RuntimeError)
        return False, f"{type(e).__name__}: {e}"
    return True, ""


def quantization_config(cfg: ModelConfig):
    """The BitsAndBytesConfig for 4/8-bit loading, or None; a clear error without bitsandbytes."""
    if not (cfg.load_in_4bit or cfg.load_in_8bit):
        return None
    ok, why = bnb_available()
    if not ok:
        key = "model.load_in_4bit" if cfg.load_in_4bit else "model.load_in_8bit"
        raise ModelLoadError(f"{key}=true needs bitsandbytes, which cannot be imported ({why}); "
                             "install it or turn quantization off", field=key)
    from transformers import BitsAndBytesConfig

    if cfg.load_in_8bit:
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=cfg.llm_int8_threshold,
                                  llm_int8_skip_modules=list(cfg.llm_int8_skip_modules) or None,
                                  llm_int8_enable_fp32_cpu_offload=cfg.llm_int8_enable_fp32_cpu_offload)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=cfg.bnb_4bit_quant_type,
                              bnb_4bit_use_double_quant=cfg.bnb_4bit_use_double_quant,
                              bnb_4bit_compute_dtype=resolve_dtype(cfg.bnb_4bit_compute_dtype))


# --------------------------------------------------------------------------- loading

def load_tokenizer(path: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise hub_error(path, e) from None
    if tok.pad_token is None:  # trl and batching need one; EOS is the usual stand-in
        tok.pad_token = tok.eos_token
    return tok


def load_model(cfg: ModelConfig, *, resolved: str | None = None):
    """Load the base model and tokenizer as ``cfg`` says.

    Args:
        cfg: the model section.
        resolved: an already resolved path or id (skips :func:`resolve_model`).
    Returns:
        (model, tokenizer, resolved path or id)
    Raises:
        ModelLoadError: with the field and value at fault.
    """
    from transformers import AutoModelForCausalLM

    quant = quantization_config(cfg)  # fails fast, before any download
    path = resolved or resolve_model(cfg.name_or_path)
    tok = load_tokenizer(path, cfg.trust_remote_code)
    dev = device_info()
    kwargs: dict[str, Any] = {"dtype": resolve_dtype(cfg.dtype, dev), "trust_remote_code": cfg.trust_remote_code,
                              **attention_kwargs(cfg, dev)}
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = {"": 0} if dev.kind == "cuda" else {"": "cpu"}
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as e:
        raise hub_error(path, e) from None
    if quant is None and dev.kind == "cuda":
        model.to("cuda")
    if quant is not None:
        exact_4bit(model)
    return model, tok, path


def attention_kwargs(cfg: ModelConfig, dev: DeviceInfo | None = None) -> dict[str, str]:
    """``attn_implementation`` for from_pretrained / from_config: none for auto (the model's default).

    Raises:
        ModelLoadError: flash_attention_2 without a GPU or without the flash-attn package.
    """
    if cfg.attn_implementation == "auto":
        return {}
    if cfg.attn_implementation == "flash_attention_2":
        dev = dev or device_info()
        if dev.kind != "cuda":
            raise ModelLoadError("model.attn_implementation=flash_attention_2 needs a CUDA GPU; this machine has "
                                 f"{dev.name}: use auto, sdpa or eager", field="model.attn_implementation")
        if importlib.util.find_spec("flash_attn") is None:
            raise ModelLoadError("model.attn_implementation=flash_attention_2 needs the flash-attn package "
                                 "(pip install flash-attn); use auto or sdpa", field="model.attn_implementation")
    return {"attn_implementation": cfg.attn_implementation}


def exact_4bit(model):
    """Make 4-bit layers compute as they did in training, also in eval mode on a CPU.

    On a CPU with AVX512-BF16, bitsandbytes (0.50) switches an eval-mode Linear4bit to a packed
    inference kernel that casts the activations to bfloat16, whatever bnb_4bit_compute_dtype says.
    Training never takes that path, so "base + adapter" in eval would differ from the adapter as
    trained by bfloat16 rounding (measured: 4e-3 on the logits of a micro model, 30x the float32
    rounding). Turning the shortcut off keeps the training arithmetic: dequantize to the compute dtype,
    then an ordinary matmul — the very weights ``--onto dequantized`` merges into.

    Returns:
        The same model.
    """
    try:
        import bitsandbytes as bnb
    except Exception:  # noqa: BLE001 - no (working) bitsandbytes: nothing is quantized
        return model
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit) and getattr(module, "support_avx512bf16_for_cpu", False):
            module.support_avx512bf16_for_cpu = False
    return model


@dataclass(frozen=True)
class TrainingPrecision:
    """How a training run computes and holds its frozen weights on this machine, and why (a code)."""

    compute: str  # bf16 | fp16 | fp32: the trainer's mixed precision
    weights: str  # the frozen weights' dtype: float32 | bfloat16 | float16 (a 4-bit base: its compute dtype)
    # chosen | chosen_emulated | cuda_bf16 | cuda_fp16 | cpu_native_bf16 | cpu_no_bf16 | quantized | weights_float32
    why: str

    @property
    def emulated(self) -> bool:
        """16-bit arithmetic a CPU without native bfloat16 would emulate (see :func:`training_precision`)."""
        return self.why == "chosen_emulated"


def training_precision(model: ModelConfig, precision: str, dev: DeviceInfo | None = None) -> TrainingPrecision:
    """What ``train.precision`` and ``model.dtype`` mean for training on this machine.

    ``auto`` precision: bf16 on a GPU that has it, else fp16; on a CPU with native bfloat16 (AVX512-BF16 / AMX)
    bf16 too, unless the base is quantized (QLoRA keeps its float32 compute, which the checked merge relies on)
    or its weights are pinned to float32 (measured: bf16 autocast over float32 weights is slower than float32);
    float32 on other CPUs. ``auto`` weights on a CPU follow the compute: bfloat16 under bf16 (1.2-1.7x faster
    steps than float32 on this project's CPU, docs/BENCHMARKS.md), else float32. Inference keeps its own rule
    (:func:`resolve_dtype`, :func:`runnable_dtype`).

    A 16-bit precision or weights dtype chosen on a CPU without native bfloat16 is kept, with the reason
    ``chosen_emulated``: torch emulates the arithmetic there (measured on a 2-core AVX2 EPYC: a demo step 9 s in
    float32, 560 s in bf16), and the estimate and the run say so.
    """
    dev = dev or device_info()
    quantized = model.load_in_4bit or model.load_in_8bit
    if precision != "auto":
        compute, why = precision, "chosen"
    elif dev.kind == "cuda":
        compute, why = ("bf16", "cuda_bf16") if dev.bf16 else ("fp16", "cuda_fp16")
    elif not dev.bf16:
        compute, why = "fp32", "cpu_no_bf16"
    elif quantized:
        compute, why = "fp32", "quantized"
    elif model.dtype not in ("auto", "bfloat16"):
        compute, why = "fp32", "weights_float32"
    else:
        compute, why = "bf16", "cpu_native_bf16"
    if quantized:
        weights = model.bnb_4bit_compute_dtype if model.load_in_4bit else model.dtype
    else:
        weights = model.dtype
    if weights == "auto":
        weights = ("bfloat16" if compute == "bf16" and dev.kind == "cpu" and not quantized
                   else str(resolve_dtype("auto", dev)).removeprefix("torch."))
    if dev.kind == "cpu" and not dev.bf16 and (  # only a choice gets here: auto never picks 16-bit on such a CPU
            compute in ("bf16", "fp16") or (not quantized and weights in ("bfloat16", "float16"))):
        why = "chosen_emulated"
    return TrainingPrecision(compute, weights, why)


def runnable_dtype(name: str, dev: DeviceInfo | None = None) -> str:
    """The weights dtype to *run* a model in here: ``name`` (a ``model.dtype``), except that 16-bit weights run
    in float32 on a CPU without native bfloat16 — a run trained where bf16 is native, opened on another machine.
    The upcast is exact; the arithmetic is then float32's instead of emulated 16-bit (measured on a 2-core AVX2
    EPYC, Gemma-3-270M: a 300-token prompt 0.8 s in float32 against 3.6 s in bfloat16, 20 new tokens 3.0 against
    4.7 s). Training keeps its own rule (:func:`training_precision`)."""
    dev = dev or device_info()
    if dev.kind == "cpu" and not dev.bf16 and name in ("bfloat16", "float16"):
        return "float32"
    return name


def resolve_training(cfg):
    """``cfg`` (a RunConfig) with ``train.precision`` and a non-quantized ``model.dtype`` resolved from ``auto``
    for training on this machine (:func:`training_precision`), and that precision. A resolved config resolves
    to itself, so a run folder's config.yaml says what the run did and a resumed run does the same."""
    from dataclasses import replace

    p = training_precision(cfg.model, cfg.train.precision)
    model = cfg.model
    if model.dtype == "auto" and not (model.load_in_4bit or model.load_in_8bit):
        model = replace(model, dtype=p.weights)
    return replace(cfg, model=model, train=replace(cfg.train, precision=p.compute)), p


# Peak training memory is more than the tensors autograd keeps for backward: the backward pass holds each
# layer's gradients and temporaries while it runs, and the allocator keeps what it freed. Measured on this
# project's CPU (peak RSS of a step against the bytes the probe counts; Gemma-3-270M and SmolLM2-135M, LoRA
# dropout on and off): about 1.5 in bfloat16 and 2.0 in float32. Whole runs of 20 steps (docs/BENCHMARKS.md,
# section 5) land within 10% of the estimate with the middle value.
