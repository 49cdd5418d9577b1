"""The memory estimate shown before Start: weights, trainable parameters, optimizer, activations, logits.

Activations are counted on the model's own architecture (a one- and a two-layer copy run under
``saved_tensors_hooks``), logits where a real batch of the data computes them. The figures are bytes and
codes (advice); the GUI and the CLI put them into words.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from core.config import RunConfig
from core.models.load import (DeviceInfo, TrainingPrecision, device_info, load_tokenizer, resolve_dtype,
                              resolve_training)
from core.models.lora import ParamCount, build_lora_config, count_parameters
from core.models.registry import resolve_model

log = logging.getLogger(__name__)


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
    checkpointing: bool = False  # counted with gradient checkpointing
    # train.gradient_checkpointing=auto turned it on: without it the run would need this many bytes
    auto_checkpointing_from: int = 0
    auto_checkpointing_why: str = ""  # not_fit | activations
    precision: TrainingPrecision | None = None  # how the run will compute and hold its weights, and why

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

    def padding_fraction(self, batch_size: int, *, grouped: bool = False, seed: int = 0) -> float:
        """The share of a batch's tokens that are padding over one epoch of the profiled rows, drawn at random or
        grouped by length as ``train.train_sampling_strategy=group_by_length`` does (transformers' own grouping, on these rows)."""
        import torch
        from transformers.trainer_pt_utils import get_length_grouped_indices

        lengths = [n for n, _ in self.rows]
        if not lengths:
            return 0.0
        gen = torch.Generator().manual_seed(seed)
        order = (get_length_grouped_indices(lengths, batch_size, generator=gen) if grouped
                 else torch.randperm(len(lengths), generator=gen).tolist())
        padded = sum(max(lengths[i] for i in order[k:k + batch_size]) * len(order[k:k + batch_size])
                     for k in range(0, len(order), batch_size))
        return 1 - sum(lengths) / padded

    def batch_shape(self, batch_size: int, *, samples: int = 400, seed: int = 0) -> BatchShape:
        """The 95th percentile over random batches of ``batch_size`` rows, as the trainer draws them.

        A batch is padded to its longest row, and :func:`core.train.loss.sparse_logits_loss` (its ``logits_to_keep``
        path) keeps a position when any row of the batch learns the token after it, so a batch computes more logits
        than its rows learn: the answers sit at different offsets (measured on the demo data, batch 4: a row learns 25% of the
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

    from core import data as D

    key = _json.dumps([asdict(cfg.data), cfg.model.name_or_path], sort_keys=True, default=str)
    if key not in _PROFILES:
        tok = load_tokenizer(resolve_model(cfg.model.name_or_path), cfg.model.trust_remote_code)
        _PROFILES[key] = profile_of(D.prepare(cfg.data, tok, seed=cfg.train.seed), cfg.data.max_length)
    return _PROFILES[key]


def profile_of(prepared: Any, max_length: int) -> DataProfile:
    """The profile of data already prepared (:class:`core.data.PreparedData`): what a training job has in hand."""
    import random

    examples = prepared.train or prepared.validation
    total = sum(len(e.input_ids) for e in examples) or 1
    learned = sum(sum(1 for x in e.labels if x != -100) for e in examples)
    sample = examples if len(examples) <= PROFILE_ROWS else random.Random(0).sample(examples, PROFILE_ROWS)
    rows = tuple((min(len(e.input_ids), max_length),
                  frozenset(i for i, x in enumerate(e.labels[1:max_length]) if x != -100)) for e in sample)
    return DataProfile(rows, learned / total, min(int(prepared.stats.p95), max_length), prepared.stats)


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
    cfg = resolve_training(cfg)[0]
    prec = cfg.train.precision
    key = _json.dumps([mconf.to_dict(), asdict(cfg.lora), cfg.model.dtype, cfg.model.attn_implementation,
                       cfg.model.load_in_4bit,
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
        attn = {} if cfg.model.attn_implementation in ("auto", "flash_attention_2") else {
            "attn_implementation": cfg.model.attn_implementation}  # eager keeps each layer's attention matrix
        model = AutoModelForCausalLM.from_config(c, dtype=dtype, trust_remote_code=cfg.model.trust_remote_code,
                                                 **attn)
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
    """Predict peak training memory before Start, with gradient checkpointing as the run will have it.

    ``train.gradient_checkpointing=auto`` turns it on when the run would not fit comfortably without it (the
    verdict is not "fits"), or when the activations kept for backward would be more than half of its memory:
    recomputing them then costs about 50% more time per step (bf16 on this project's CPU; 40% in float32) and
    saves most of the memory (the SmolLM2 defaults: 1.5 GiB instead of 4.7; docs/BENCHMARKS.md, section 5), as
    LLaMA-Factory's default of always on does. The estimate says so
    (``auto_checkpointing_from``: the bytes without it; ``auto_checkpointing_why``: not_fit | activations).
    See :func:`_estimate` for what is counted.
    """
    mode = cfg.train.gradient_checkpointing
    est = _estimate(cfg, resolved=resolved, seq_len=seq_len, profile=profile, checkpointing=mode == "on")
    if mode == "auto":
        why = "not_fit" if est.verdict != "fits" else "activations" if est.activations > est.total / 2 else ""
        if why:
            without = est.total
            est = _estimate(cfg, resolved=resolved, seq_len=seq_len, profile=profile, checkpointing=True)
            est.auto_checkpointing_from, est.auto_checkpointing_why = without, why
    return est


def _estimate(cfg: RunConfig, *, resolved: str | None, seq_len: int | None, profile: DataProfile | None,
              checkpointing: bool) -> MemoryEstimate:
    """The estimate with gradient checkpointing on or off.

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
    cfg, precision = resolve_training(cfg)
    dtype = resolve_dtype(cfg.model.dtype, dev)
    prec = precision.compute
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
    if profile is not None and 0 < len(profile.rows) < batch:
        batch = len(profile.rows)  # a batch cannot hold more rows than the data have (all of them are profiled)
    length = seq_len or cfg.data.max_length
    positions = length
    if profile is not None and seq_len is None:
        if cfg.data.packing:  # rows packed into max_length: every batch is full, answers everywhere
            length = cfg.data.max_length
            positions = int(length * (1 - (1 - profile.learned_fraction) ** batch))
        else:
            shape = profile.batch_shape(batch)
            length, positions = shape.padded_length, shape.logit_positions
    sparse = cfg.train.skip_prompt_logits and cfg.data.completion_only_loss
    if not sparse:
        positions = length  # trl's own loss path computes the logits of every position
    tokens = batch * length

    probe = activation_bytes(cfg, mconf, length, layer_params=(base_params - emb) // max(1, layers))
    if probe is None:  # ≈ 18 values of the hidden size plus 4 of the MLP width per token and layer
        probe = ((18 * hidden + 4 * inter) * act_bytes, 0.0)
    per_layer, outside = probe
    if checkpointing:  # each layer's input is kept; one layer is recomputed at a time
        per_token = layers * hidden * act_bytes + per_layer + outside
    else:
        per_token = layers * per_layer + outside
    activations = int(BACKWARD_SLACK * tokens * per_token)
    if prec != "fp32" and wbytes == 4 and not (cfg.model.load_in_4bit or cfg.model.load_in_8bit):
        activations += base_params * act_bytes  # autocast keeps a 16-bit copy of each frozen weight for backward
    logit_bytes = act_bytes if prec != "fp32" else wbytes
    from core.train.loss import chunk_positions, fused_loss_applies

    if sparse and fused_loss_applies(getattr(mconf, "model_type", ""), cfg.lora.modules_to_save):
        # the chunked loss: one chunk's logits at a time (the matmul's output, float32 logits, the exp's temporary)
        logits = min(batch * positions, chunk_positions(vocab)) * vocab * (8 + (logit_bytes if logit_bytes < 4 else 0))
    else:
        # the logits, their float32 copy, log-softmax kept for backward, its gradient and the logits' gradient
        logits = batch * positions * vocab * (16 + (2 * logit_bytes if logit_bytes < 4 else 0))
    overhead = (500 << 20) if dev.kind == "cuda" else (700 << 20)  # CUDA context / the Python process itself
    est = MemoryEstimate(weights, trainable, trainable, optimizer, activations, logits, overhead, dev, params,
                         batch_size=batch, length=length, logit_positions=positions,
                         from_data=profile is not None and seq_len is None, checkpointing=checkpointing,
                         precision=precision)
    est.advice = memory_advice(cfg, est)
    return est


def memory_advice(cfg: RunConfig, est: MemoryEstimate) -> list[str]:
    """The fixes users know, largest expected saving first; codes the GUI translates."""
    if est.verdict == "fits":
        return []
    tips = []
    if est.activations + est.logits > est.weights and cfg.train.per_device_train_batch_size > 1:
        tips.append("smaller_batch_more_accumulation")
    if not est.checkpointing:
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
