"""Generation for base | adapter | merged: one prompt at a time, greedy by default, and whole files to a CSV.

Prompts are generated one at a time, never padded into a batch: left padding changes the
numerics a little, and the point of comparing base, adapter and merged is that the only
difference between their outputs is the model.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from core.errors import DataError, StudioError

log = logging.getLogger(__name__)

WHICH = ("base", "adapter", "merged")

# How MCQs are generated for the evaluation and the Classroom tab, for the base and the fine-tuned model alike:
# greedy, with a mild penalty on tokens the answer has already used. A small model decoding greedily tends to
# write the same option twice; the penalty leaves the paragraph free to copy from (it does not count the prompt).
# Measured on the 23 test paragraphs: after the demo preset, greedy alone 11/23 valid (12 repeated an option
# word for word), 1.15 → 21/23. On an earlier, shorter run: greedy 5/23, 1.15 → 16/23, 1.3 → 12/23 (that strong a
# penalty hits the "A." … "Đáp án" scaffolding: 10 lost the key).
MCQ_REPETITION_PENALTY = 1.15


@dataclass
class Decoding:
    """How new tokens are chosen. Greedy (``do_sample=False``) is reproducible and is what the merge check uses."""

    max_new_tokens: int = 128
    do_sample: bool = False
    temperature: float = 0.7
    top_p: float = 0.9
    seed: int = 0
    # > 1 makes a token the model has already written in this answer less likely (the prompt is not counted,
    # so copying words from the paragraph is not penalised). 1.0: off. See MCQ_DECODING.
    repetition_penalty: float = 1.0

    def logits_processors(self, prompt_length: int):
        """The processors these settings add to generate(): the repetition penalty over the new tokens only."""
        from transformers.generation.logits_process import LogitsProcessorList, RepetitionPenaltyLogitsProcessor

        procs = LogitsProcessorList()
        if float(self.repetition_penalty) != 1.0:
            procs.append(RepetitionPenaltyLogitsProcessor(float(self.repetition_penalty),
                                                          prompt_ignore_length=int(prompt_length)))
        return procs

    def generation_config(self, model, tokenizer):
        """The model's own GenerationConfig (its EOS ids, e.g. ``<|im_end|>``) with these settings on top."""
        from transformers import GenerationConfig

        base = getattr(model, "generation_config", None)
        gc = copy.deepcopy(base) if base is not None else GenerationConfig()
        gc.max_new_tokens = int(self.max_new_tokens)
        gc.max_length = None  # else a model's own max_length (often 20) can cut max_new_tokens short
        gc.do_sample = bool(self.do_sample)
        if self.do_sample:
            gc.temperature, gc.top_p = float(self.temperature), float(self.top_p)
        else:  # unset the sampling knobs, so that transformers does not warn they are ignored
            gc.temperature = gc.top_p = gc.top_k = None
        gc.repetition_penalty = None  # ours (logits_processors) counts the new tokens only; the model's would count the prompt
        if gc.pad_token_id is None:
            gc.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if gc.eos_token_id is None:
            gc.eos_token_id = tokenizer.eos_token_id
        return gc


@dataclass
class Generation:
    """One prompt's output: ``text`` and ``token_ids`` are the new tokens only (the prompt excluded)."""

    prompt: str
    text: str
    token_ids: list[int]


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


def model_device(model):
    """The device of a model's first parameter (where its inputs must go)."""
    import torch

    try:
        return next(model.parameters()).device
    except StopIteration:  # an empty module: nothing to place
        return torch.device("cpu")


def generate(model, tokenizer, prompts: Iterable[str], decoding: Decoding | None = None) -> list[Generation]:
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

    decoding = decoding or Decoding()
    gc = decoding.generation_config(model, tokenizer)
    device = model_device(model)
    out: list[Generation] = []
    for prompt in prompts:
        ids = encode_prompt(tokenizer, prompt)
        input_ids = torch.tensor([ids], device=device)
        if decoding.do_sample:
            # the same seed before every prompt: base, adapter and merged draw the same random numbers, so a
            # difference in their outputs comes from the models, not from the sampler
            torch.manual_seed(decoding.seed)
        with torch.no_grad():
            seq = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), generation_config=gc,
                                 logits_processor=decoding.logits_processors(len(ids)))
        new = seq[0, len(ids):].tolist()
        out.append(Generation(prompt, tokenizer.decode(new, skip_special_tokens=True), new))
    return out


def parse_which(which: str | Iterable[str]) -> tuple[str, ...]:
    """``"base,adapter"`` or a list → a tuple of names, checked, without repeats."""
    names = [w.strip() for w in (which.split(",") if isinstance(which, str) else which) if w.strip()]
    if not names:
        raise StudioError(f"--which must name at least one of {', '.join(WHICH)}", field="which")
    unknown = [w for w in names if w not in WHICH]
    if unknown:
        raise StudioError(f"--which accepts {', '.join(WHICH)}, got {', '.join(unknown)}", field="which")
    return tuple(dict.fromkeys(names))


def generate_file(run_dir: str | Path, input_path: str | Path, out_csv: str | Path,
                  which: Iterable[str] = WHICH, decoding: Decoding | None = None) -> Path:
    """Generate for every row of a data file with the chosen models of a run; write a CSV.

    Each row goes through the run's own template (for MCQ generation only its ``context`` is
    needed). The output holds the input columns and one column per model, named base, adapter
    and merged.

    Args:
        run_dir: a run folder (``merged`` needs its merged/ folder: ``python -m core merge RUN_DIR``).
        input_path: a CSV / JSON / JSONL / Parquet file.
        out_csv: the CSV to write (UTF-8 with a BOM, so that Excel shows Vietnamese correctly).
        which: the models to generate with.
        decoding: generation settings (greedy by default).
    Returns:
        The CSV's path.
    Raises:
        DataError: unreadable input, or a row that lacks what the template needs (named by row).
        AdapterError / ModelLoadError: the run's adapter or merged model cannot be loaded.
    """
    from core.adapters import ModelSet
    from core.data import read_table

    names = parse_which(which)
    src = Path(input_path)
    if not src.is_file():
        raise DataError(f"input file not found: {src}", field="input")
    frame = read_table(src)
    models = ModelSet.from_run(run_dir, merged="merged" in names)
    prompts = []
    for i, row in enumerate(frame.to_dict(orient="records")):
        try:
            prompts.append(models.prompt_for(row))
        except DataError as e:
            raise DataError(f"{src.name} row {i + 1}: {e}", field=e.field) from None
    out = frame.copy()
    for name in names:
        log.info("generating %d rows with %s", len(prompts), name)
        out[name] = [g.text for g in models.generate(prompts, name, decoding or Decoding())]
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(out_csv, index=False, encoding="utf-8-sig")
    return out_csv
