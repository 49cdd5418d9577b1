"""The merge matrix: every merge a user can click, each trained 2 steps, merged and checked.

``python -m bench --only merge-matrix [--full] [--tiny]``. A cell is one combination of

* the model: both embedded models (``--tiny``: a micro random Llama and Qwen2, what CI runs);
* the method: LoRA; QLoRA nf4 and fp4, each with and without double quantization; 8-bit;
* the weights' dtype: float32 or bfloat16;
* the adapter's init: default, rsLoRA, DoRA, OLoRA, PiSSA;
* ``modules_to_save`` empty, or lm_head + embed_tokens (the continued pre-training recipe).

Each cell trains 2 steps, then ``core.merge.merge_run`` merges onto the run's default target and measures every
target the run allows (original; after QLoRA also the dequantized weights and the 4-bit re-quantized merge) on
the run's prompts. A target passes within its tolerance, or is *lossy* by design and says by how much.

The full product is 2 × 6 × 2 × 5 × 2 = 240 cells (hours on 2 cores). The default is one factor at a time
around a baseline (LoRA, float32, default init, no modules_to_save) plus the combinations most often clicked
together (QLoRA with DoRA / PiSSA / modules_to_save, bfloat16 QLoRA): about 16 cells a model.
"""

from __future__ import annotations

import itertools
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.micro import micro_models
from core.paths import REPO_ROOT

SHORT = REPO_ROOT / "tests" / "data" / "short_mcq.jsonl"
MODELS = {"smollm2": "embedded:smollm2-135m-instruct", "gemma3": "embedded:gemma3-270m"}
METHODS: dict[str, dict[str, Any]] = {
    "lora": {},
    "qlora-nf4": {"model.load_in_4bit": True, "model.bnb_4bit_quant_type": "nf4",
                  "model.bnb_4bit_use_double_quant": False},
    "qlora-nf4-dq": {"model.load_in_4bit": True, "model.bnb_4bit_quant_type": "nf4",
                     "model.bnb_4bit_use_double_quant": True},
    "qlora-fp4": {"model.load_in_4bit": True, "model.bnb_4bit_quant_type": "fp4",
                  "model.bnb_4bit_use_double_quant": False},
    "qlora-fp4-dq": {"model.load_in_4bit": True, "model.bnb_4bit_quant_type": "fp4",
                     "model.bnb_4bit_use_double_quant": True},
    "8bit": {"model.load_in_8bit": True},
}
DTYPES = ("float32", "bfloat16")
INITS: dict[str, dict[str, Any]] = {
    "default": {},
    "rslora": {"lora.use_rslora": True},
    "dora": {"lora.use_dora": True},
    "olora": {"lora.init_lora_weights": "olora"},
    "pissa": {"lora.init_lora_weights": "pissa_niter_4"},
}
SAVE = {"none": {}, "lm_head+embed": {"lora.modules_to_save": "[lm_head,embed_tokens]"}}


@dataclass(frozen=True)
class Cell:
    model: str
    method: str = "lora"
    dtype: str = "float32"
    init: str = "default"
    save: str = "none"

    def overrides(self, model_path: str) -> list[str]:
        sets: dict[str, Any] = {
            "model.name_or_path": model_path, "model.dtype": self.dtype,
            "train.precision": "bf16" if self.dtype == "bfloat16" else "auto",
            "data.source": str(SHORT), "data.max_length": 256, "data.validation_fraction": 0,
            "train.max_steps": 2, "train.per_device_train_batch_size": 1, "train.save_steps": 100,
            "train.logging_steps": 1, "train.learning_rate": 1e-3,
            # a 2-step update is tiny; a large lr makes ΔW big enough that a wrong merge shows
            **METHODS[self.method], **INITS[self.init], **SAVE[self.save]}
        if "model.load_in_4bit" in sets and self.dtype == "bfloat16":
            sets["model.bnb_4bit_compute_dtype"] = "bfloat16"
        return [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in sets.items()]


def cells(models: list[str], full: bool = False) -> list[Cell]:
    """The cells to run: the full product, or one factor at a time plus the usual combinations."""
    if full:
        return [Cell(*c) for c in itertools.product(models, METHODS, DTYPES, INITS, SAVE)]
    out: list[Cell] = []
    for m in models:
        chosen = [Cell(m)]
        chosen += [Cell(m, method=x) for x in METHODS if x != "lora"]
        chosen += [Cell(m, dtype="bfloat16"), Cell(m, method="qlora-nf4", dtype="bfloat16")]
        chosen += [Cell(m, init=x) for x in INITS if x != "default"]
        chosen += [Cell(m, method="qlora-nf4", init=x) for x in ("dora", "pissa")]
        chosen += [Cell(m, save="lm_head+embed"), Cell(m, method="qlora-nf4", save="lm_head+embed")]
        out += list(dict.fromkeys(chosen))
    return out


def _target(r) -> dict:
    """One target's verdict and distance (a ``core.merge.report.TargetResult``), JSON-safe."""
    return {"passed": r.passed, "lossy": r.lossy, "max_abs_dlogit": r.max_abs_dlogit, "kl_mean": r.kl_mean,
            "greedy_agreement": r.greedy_agreement, "identical": f"{r.identical_generations}/{r.n_prompts}"}


def run_cell(cell: Cell, model_path: str, runs_dir: Path) -> dict:
    """Train 2 steps, merge, verify: every target's verdict and numbers, or the error that stopped the cell."""
    from core import config as C
    from core.errors import ConfigError
    from core.merge.run import merge_run
    from core.train.job import TrainingJob

    row: dict[str, Any] = {"cell": cell.__dict__.copy()}
    t0 = time.perf_counter()
    try:
        cfg = C.load_yaml(REPO_ROOT / "presets" / "demo.yaml", cell.overrides(model_path))
        run = TrainingJob(cfg, runs_dir).run()
        report = merge_run(run, dtype="float32", onto="auto", n_prompts=2, max_new_tokens=12)
        row["target"] = report.target
        row["verdict"] = report.verdict
        row["targets"] = {name: _target(r) for name, r in report.results.items()}
        if cfg.model.load_in_4bit:  # the 4-bit target is measured only when chosen: merge once more onto it
            again = merge_run(run, dtype="float32", onto="4bit", out=Path(run) / "merged-4bit", n_prompts=2,
                              max_new_tokens=12)
            row["targets"]["4bit"] = _target(again.chosen)
    except ConfigError as e:  # refused before any work, naming the field: a combination the form does not offer
        row["verdict"] = "refused"
        row["error"] = str(e).splitlines()[0][:300]
    except Exception as e:  # a cell that cannot run is a finding, not a crash of the matrix
        row["verdict"] = "error"
        row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
        row["trace"] = traceback.format_exc(limit=3)[-1500:]
    row["seconds"] = round(time.perf_counter() - t0, 1)
    return row


def run(tmp: Path, *, full: bool = False, tiny: bool = False, only: list[Cell] | None = None,
        progress=print) -> dict:
    """Every chosen cell, its rows, a summary and the markdown table."""
    tmp.mkdir(parents=True, exist_ok=True)
    paths = micro_models(tmp) if tiny else MODELS
    chosen = only or cells(list(paths), full=full)
    rows = []
    for n, cell in enumerate(chosen, 1):
        row = run_cell(cell, paths[cell.model], tmp / "runs")
        rows.append(row)
        progress(f"[{n}/{len(chosen)}] {cell.model} {cell.method} {cell.dtype} {cell.init} {cell.save}: "
                 f"{row['verdict']} ({row['seconds']} s){' — ' + row['error'] if 'error' in row else ''}")
    ok = sum(r["verdict"] in ("passed", "lossy") for r in rows)
    refused = sum(r["verdict"] == "refused" for r in rows)
    return {"rows": rows, "n": len(rows), "n_ok": ok, "n_refused": refused, "full": full, "tiny": tiny, "markdown": markdown(rows, full)}


def _num(x: float) -> str:
    return f"{x:.1e}" if x else "0"


def markdown(rows: list[dict], full: bool = False) -> str:
    lines = ["Command: `python -m bench --only merge-matrix` (" + ("every cell" if full else
             "one factor at a time around LoRA / float32 / default init, plus the combinations clicked together; "
             "`--full` runs all 240") + "). Each cell trains 2 steps (lr 1e-3 so that ΔW is large enough for a "
             "wrong merge to show), merges in float32 onto the run's default target and measures every target "
             "against base + adapter as trained on the run's prompts. **passed**: within the tolerance of its "
             "dtype; **lossy**: a target that by design is not the trained model (4-bit re-quantized, or the "
             "original weights after QLoRA), with its distance. CI runs `tests/test_merge_matrix.py`: a subset on "
             "micro Llama and Qwen2 models in both dtypes.", "",
             "| model | method | weights | init | modules_to_save | saved target | verdict | every target: max "
             "\\|Δlogit\\|, KL (verdict) | s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        c = r["cell"]
        if r["verdict"] == "refused":
            detail = f"refused before training: {r['error']}"
        elif "error" in r:
            detail = f"error: {r['error']}"
        else:
            detail = "; ".join(f"{name} {_num(t['max_abs_dlogit'])}, {_num(t['kl_mean'])} "
                               f"({'lossy' if t['lossy'] else 'passed' if t['passed'] else 'FAILED'})"
                               for name, t in r["targets"].items())
        if r.get("rerun_after_fix"):
            detail += f" — first run: {r['rerun_after_fix']}; run again after the fix"
        lines.append(f"| {c['model']} | {c['method']} | {c['dtype']} | {c['init']} | {c['save']} | "
                     f"{r.get('target', '—')} | **{r['verdict']}** | {detail} | {r['seconds']} |")
    ok = sum(r["verdict"] in ("passed", "lossy") for r in rows)
    refused = sum(r["verdict"] == "refused" for r in rows)
    lines += ["", f"{ok}/{len(rows)} cells passed or are lossy by design"
              + (f"; {refused} refused by the config's own check before any work (not a merge)" if refused else "")
              + "."]
    return "\n".join(lines)
