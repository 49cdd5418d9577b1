"""Evaluation of a run: loss and perplexity, MCQ structure validity, forgetting, price MAE.

Every number is measured on rows the adapter did not train on: the data's own test split when it
has one (the bundled MCQ sample does), else the run's validation rows. The report is written to
``RUN_DIR/eval_report.json``.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from core import data as D
from core import locale, tasks
from core.config import DecodingConfig
from core.errors import DataError
from core.inference.generate import model_device
from core.inference.modelset import ADAPTER, BASE, MERGED, WHICH, ModelSet
from core.paths import SAMPLES_DIR
from core.run import RunFolder, write_json_atomic

log = logging.getLogger(__name__)

GENERAL_TEXT = SAMPLES_DIR / "general_text.jsonl"
SPLITS = ("test", "validation", "train")


def _log_stage(stage: str, **args) -> None:
    log.info(locale.text(f"evaluate.stage.{stage}", "en", **args))


def split_rows(prepared: D.PreparedData, split: str) -> tuple[list[int], str]:
    """Row indices of the frame for ``split``; "test" falls back to validation when the data has no test split."""
    if split not in SPLITS:
        raise DataError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}", field="split")
    if split == "test" and prepared.test_index:
        return list(prepared.test_index), "test"
    if split in ("test", "validation"):
        if not prepared.validation:
            raise DataError("this run has neither a test split nor validation rows to evaluate on "
                            "(set data.validation_fraction > 0)", field="split")
        return [e.index for e in prepared.validation], "validation"
    return [e.index for e in prepared.train], "train"


def nll(model, examples: Iterable[tuple[list[int], list[int]]]) -> tuple[float, int]:
    """Summed negative log-likelihood over learned tokens and their count.

    The output layer runs only where a token is learned (``logits_to_keep``), as in training.
    """
    import torch


    device = model_device(model)
    total, count = 0.0, 0
    with torch.no_grad():
        for ids, labels in examples:
            target = torch.tensor(labels[1:], device=device)
            keep = torch.nonzero(target != -100).squeeze(1)
            if keep.numel() == 0:
                continue
            logits = model(input_ids=torch.tensor([ids], device=device), logits_to_keep=keep).logits[0].float()
            total += torch.nn.functional.cross_entropy(logits, target[keep], reduction="sum").item()
            count += keep.numel()
    return total, count


def _ppl(total: float, count: int) -> dict[str, float | None]:
    if not count:
        return {"loss": None, "perplexity": None}
    loss = total / count
    return {"loss": round(loss, 4), "perplexity": round(math.exp(min(loss, 50)), 3)}


def general_examples(tokenizer, max_length: int, limit: int | None = None) -> list[tuple[list[int], list[int]]]:
    """The held-aside everyday text (not informatics), loss on every token: the forgetting probe."""
    if not GENERAL_TEXT.exists():
        return []
    rows = D.read_table(GENERAL_TEXT).to_dict(orient="records")[:limit]
    out = []
    for r in rows:
        ids = D.encode_prompt(tokenizer, str(r["text"]))[:max_length]
        out.append((ids, list(ids)))
    return out


def evaluate_run(run_dir: str | Path, *, split: str = "test", which: Iterable[str] = WHICH,
                 limit: int | None = None, max_new_tokens: int | None = None,
                 repetition_penalty: float | None = None,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Evaluate base, adapter and (when merged/ exists) merged model of a run, and save eval_report.json.

    Args:
        run_dir: a finished run folder.
        split: "test" (the data's own held-out rows; validation rows when there are none), "validation", "train".
        which: the models to evaluate; "merged" is skipped when the run has no merged/ folder.
        limit: at most this many generation prompts (distinct contexts for MCQ); None for all.
        max_new_tokens: generation budget; default: 1.25 × the longest answer in the training data.
        repetition_penalty: on the answer's own tokens, for every model alike; default: MCQ_REPETITION_PENALTY
            for MCQ generation (what the Classroom tab uses), 1.0 (plain greedy) otherwise.
        progress: called as ``progress(stage, **args)`` as each part starts (words: ``evaluate.stage.*``).
    Returns:
        The report (also written to ``RUN_DIR/eval_report.json``).
    """
    def say(stage: str, **args) -> None:
        (progress or _log_stage)(stage, **args)

    t0 = time.monotonic()
    run_dir = Path(run_dir)
    folder = RunFolder(run_dir)
    which = [w for w in which if w != MERGED or folder.has_merged()]
    say("loading")
    ms = ModelSet.from_run(run_dir, merged=MERGED in which)
    cfg, tok = ms.cfg, ms.tokenizer
    frame = D.load_frame(cfg.data)
    prepared = D.prepare(cfg.data, tok, seed=cfg.train.seed, frame=frame)
    rows_idx, used_split = split_rows(prepared, split)
    records = frame.to_dict(orient="records")
    guess, ctx = prepared.guess, D.template_context(tok, cfg.data)
    task = tasks.get(prepared.template)

    # loss on the split's formatted rows, exactly as training computes it
    eval_examples = []
    for i in rows_idx:
        formatted = D.format_row(D.map_row(records[i], guess, cfg.data.clean), prepared.template, ctx)
        ids, labels = D.tokenize(formatted, tok, cfg.data.completion_only_loss)
        eval_examples.append((ids[: cfg.data.max_length], labels[: cfg.data.max_length]))

    # generation prompts: one per distinct group (MCQ: paragraph), since greedy decoding repeats itself on one
    gen_rows, seen = [], set()
    group_col = guess.column_map.get(task.group_role or "")
    for i in rows_idx:
        key = records[i].get(group_col, i) if group_col else i
        if key in seen:
            continue
        seen.add(key)
        gen_rows.append(i)
    gen_rows = gen_rows[:limit] if limit else gen_rows
    prompts = [ms.prompt_for(records[i]) for i in gen_rows]
    role = {v: k for k, v in guess.column_map.items()}

    def as_roles(indices) -> list[dict]:  # the mapped columns under their roles, the others as they are
        return [{role.get(k, k): v for k, v in records[i].items()} for i in indices]

    gen_roles = as_roles(gen_rows)
    if max_new_tokens is None:
        longest = max((sum(1 for x in e.labels if x != -100) for e in prepared.train), default=64)
        max_new_tokens = int(longest * 1.25) + 8
    if repetition_penalty is None:
        repetition_penalty = task.repetition_penalty
    decoding = DecodingConfig(max_new_tokens=max_new_tokens, repetition_penalty=float(repetition_penalty))
    general = general_examples(tok, cfg.data.max_length)

    report: dict[str, Any] = {
        "run": run_dir.name, "split": used_split, "template": prepared.template, "n_rows": len(eval_examples),
        "n_prompts": len(prompts), "max_new_tokens": max_new_tokens,
        "decoding": {"greedy": True, "repetition_penalty": float(repetition_penalty)}, "models": {}, "samples": [],
    }
    outputs: dict[str, list[str]] = {}
    for name in which:
        say("loss", model=name, n=len(eval_examples), split=used_split)
        m: dict[str, Any] = {}
        with ms.use(name) as model:
            m.update(_ppl(*nll(model, eval_examples)))
            if general:
                g = _ppl(*nll(model, general))
                m["general_loss"], m["general_perplexity"] = g["loss"], g["perplexity"]
        say("generating", model=name, n=len(prompts))
        t1 = time.monotonic()
        gens = ms.generate(prompts, name, decoding)
        m["generation_seconds"] = round(time.monotonic() - t1, 1)
        texts = [g.text for g in gens]
        outputs[name] = texts
        if task.judge is not None:
            m.update(task.judge(texts, gen_roles))
        report["models"][name] = m

    if BASE in report["models"] and ADAPTER in report["models"]:
        b, a = report["models"][BASE], report["models"][ADAPTER]
        if b.get("general_perplexity") and a.get("general_perplexity"):
            report["forgetting"] = {"general_perplexity_before": b["general_perplexity"],
                                    "general_perplexity_after": a["general_perplexity"],
                                    "ratio": round(a["general_perplexity"] / b["general_perplexity"], 3)}
    if task.baselines is not None:
        report["baselines_mae"] = task.baselines(as_roles(e.index for e in prepared.train), gen_roles)
    for j, i in enumerate(gen_rows[:5]):
        sample = {"prompt": prompts[j][-300:]}
        for name, texts in outputs.items():
            sample[name] = texts[j]
            if task.check is not None:
                sample.update({f"{name}_{k}": v for k, v in task.check(texts[j], gen_roles[j]).items()})
        report["samples"].append(sample)
    report["seconds"] = round(time.monotonic() - t0, 1)
    write_json_atomic(folder.eval_report, report)
    return report


def report_table(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model with the headline numbers, for the CLI and the GUI's table."""
    rows = []
    for name, m in report["models"].items():
        row = {"model": name, "loss": m.get("loss"), "perplexity": m.get("perplexity"),
               "general_perplexity": m.get("general_perplexity")}
        if "validity_rate" in m:
            row["validity"] = f"{m['n_valid']}/{m['n']} ({100 * m['validity_rate']:.0f}%)"
            row["answer_keys"] = " ".join(f"{k}:{v}" for k, v in m["answer_distribution"].items())
            row["failures"] = ", ".join(f"{k}:{v}" for k, v in m["reason_counts"].items() if v) or "-"
        if "mae" in m:
            row["mae"] = m["mae"]
        rows.append(row)
    return rows
