"""Generation with one model: one prompt at a time, greedy by default, with the decoding of a DecodingConfig.

Prompts are generated one at a time, never padded into a batch: left padding changes the numerics a
little, and the point of comparing base, adapter and merged is that the only difference between their
outputs is the model.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Iterable, Sequence

from core.config import DecodingConfig


@dataclass
class Generation:
    """One prompt's output: ``text`` and ``token_ids`` are the new tokens only (the prompt excluded)."""

    prompt: str
    text: str
    token_ids: list[int]
    dtype: str = ""  # the dtype the model computed in ("bfloat16", "float32"): a merged model in another one
    # parts from base + adapter by rounding alone


def logits_processors(decoding: DecodingConfig, prompt_length: int):
    """What the settings add to generate(): the repetition penalty over the new tokens only.

    transformers' own ``repetition_penalty`` counts the prompt too, which would penalise copying from the
    paragraph; ``prompt_ignore_length`` leaves the prompt out.
    """
    from transformers.generation.logits_process import LogitsProcessorList, RepetitionPenaltyLogitsProcessor

    procs = LogitsProcessorList()
    if float(decoding.repetition_penalty) != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(float(decoding.repetition_penalty),
                                                      prompt_ignore_length=int(prompt_length)))
    return procs


def generation_config(decoding: DecodingConfig, model, tokenizer):
    """The model's own GenerationConfig (its EOS ids, e.g. ``<|im_end|>``) with the settings on top."""
    from transformers import GenerationConfig

    base = getattr(model, "generation_config", None)
    gc = copy.deepcopy(base) if base is not None else GenerationConfig()
    gc.max_new_tokens = int(decoding.max_new_tokens)
    gc.max_length = None  # else a model's own max_length (often 20) can cut max_new_tokens short
    gc.do_sample = bool(decoding.do_sample)
    if decoding.do_sample:
        gc.temperature, gc.top_p = float(decoding.temperature), float(decoding.top_p)
    else:  # unset the sampling knobs, so that transformers does not warn they are ignored
        gc.temperature = gc.top_p = gc.top_k = None
    gc.repetition_penalty = None  # ours (logits_processors) counts the new tokens only
    if gc.pad_token_id is None:
        gc.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if gc.eos_token_id is None:
        gc.eos_token_id = tokenizer.eos_token_id
    return gc


def first_divergence(a_ids: Sequence[int], b_ids: Sequence[int]) -> int | None:
    """Index of the first token where two generations differ; None when they are identical.

    When one is a strict prefix of the other (one model stopped earlier), the divergence is at
    the end of the shorter one.
    """
    for i, (a, b) in enumerate(zip(a_ids, b_ids)):
        if a != b:
            return i
    if len(a_ids) != len(b_ids):
        return min(len(a_ids), len(b_ids))
    return None


def _contiguous_input(module, args):
    return (args[0].contiguous(), *args[1:]) if args and not args[0].is_contiguous() else None


def contiguous_head(model):
    """Make the output layer's input contiguous before its matmul (once per model; the numbers do not change).

    generate() feeds the output layer only the prompt's last position, a strided slice of the hidden states. On a
    CPU, ``F.linear`` on such a 3-D slice in bfloat16 does not fold it into one matmul: it copies the weight once
    per row of the batch and runs a batched matmul instead. With Gemma's 262k-token vocabulary that is 4.7 s of a
    4-prompt batch's 15 s, against 0.03 s for the same product on a contiguous copy (bitwise equal results).
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None and not getattr(head, "_lora_studio_contiguous", False):
        head.register_forward_pre_hook(_contiguous_input)
        head._lora_studio_contiguous = True
    return model


def model_device(model):
    """The device of a model's first parameter (where its inputs must go)."""
    import torch

    try:
        return next(model.parameters()).device
    except StopIteration:  # an empty module: nothing to place
        return torch.device("cpu")


def generate(model, tokenizer, prompts: Iterable[str], decoding: DecodingConfig | None = None) -> list[Generation]:
    """Generate for each prompt with ``model`` (a transformers or PEFT model).

    Args:
        model: the model, in eval mode.
        tokenizer: its tokenizer.
        prompts: the full prompt texts (already through the run's template).
        decoding: the settings; greedy with 128 new tokens by default.
    Returns:
        One Generation per prompt, in order.
    """
    import torch

    from core.data import encode_prompt

    decoding = decoding or DecodingConfig()
    gc = generation_config(decoding, model, tokenizer)
    device = model_device(model)
    contiguous_head(model)
    out: list[Generation] = []
    dtype = str(getattr(model, "dtype", "")).removeprefix("torch.")
    for prompt in prompts:
        ids = encode_prompt(tokenizer, prompt)
        input_ids = torch.tensor([ids], device=device)
        if decoding.do_sample:
            # the same seed before every prompt: base, adapter and merged draw the same random numbers, so a
            # difference in their outputs comes from the models, not from the sampler
            torch.manual_seed(decoding.seed)
        with torch.no_grad():
            seq = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), generation_config=gc,
                                 logits_processor=logits_processors(decoding, len(ids)))
        new = seq[0, len(ids):].tolist()
        out.append(Generation(prompt, tokenizer.decode(new, skip_special_tokens=True), new, dtype))
    return out


def logits(model, input_ids: list[int]):
    """The logits of one token sequence (float32, on the CPU), for comparisons."""
    import torch

    with torch.no_grad():
        x = torch.tensor([input_ids], device=model_device(model))
        return model(input_ids=x).logits[0].float().cpu()
