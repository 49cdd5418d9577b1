"""The price recipe, measured: presets/price_qlora.yaml on an embedded model against the bundled synthetic set, its
MAE on the held-out rows beside the baselines' (the mean, linear regression, gradient boosting), on the same split.

The preset names Llama-3.2-1B from the Hub; here it trains the embedded SmolLM2-135M-Instruct within a CPU budget
(the preset's own recipe otherwise: QLoRA, batch 1 × 16 accumulation, cosine). The synthetic set is not tuned
toward the model: whatever the figures are, they are reported.
"""

from __future__ import annotations

import time
from pathlib import Path

from core.paths import PRESETS_DIR

MODEL = "embedded:smollm2-135m-instruct"


def train(runs_dir: Path, epochs: float) -> Path:
    from core import config as C
    from core.train.job import TrainingJob

    cfg = C.load_yaml(PRESETS_DIR / "price_qlora.yaml",
                      [f"model.name_or_path={MODEL}", f"train.num_train_epochs={epochs}", "train.save_steps=1000",
                       "run_name=bench-price"])
    return TrainingJob(cfg, runs_dir).run()


def section(runs_dir: Path, *, run_dir: str | None = None, epochs: float = 2.0) -> dict:
    from core.evaluate import evaluate_run
    from core.run import RunFolder

    t0 = time.monotonic()
    run = Path(run_dir) if run_dir else train(runs_dir, epochs)
    train_s = RunFolder(run).read_info().get("train_seconds")
    report = evaluate_run(run, split="test", which=("base", "adapter"))
    models = report["models"]
    out = {"model": MODEL, "epochs": epochs, "train_seconds": train_s, "split": report["split"],
           "n_rows": report["n_prompts"],
           "mae": {"fine-tuned (adapter)": models["adapter"].get("mae"), "base model": models["base"].get("mae"),
                   **{k: v for k, v in report["baselines_mae"].items()}},
           "unparsed": {"fine-tuned (adapter)": models["adapter"].get("n_unparsed"),
                        "base model": models["base"].get("n_unparsed")},
           "seconds": round(time.monotonic() - t0, 1)}
    out["markdown"] = markdown(out)
    return out


NAMES = {"mean": "always the training rows' mean price", "linear_regression": "linear regression (pages, format)",
         "gradient_boosting": "gradient boosting (scikit-learn HistGradientBoostingRegressor; pages, format)"}


def markdown(r: dict) -> str:
    held_out = (f"the run's test split ({r['n_rows']} rows)" if r["split"] == "test" else
                f"the run's held-out {r['split']} rows ({r['n_rows']}; the set has no test split)")
    lines = [f"`presets/price_qlora.yaml` with `model.name_or_path={r['model']}` and `train.num_train_epochs="
             f"{r['epochs']}` (trained in {round(r['train_seconds'] or 0)} s on this CPU), on the bundled synthetic "
             f"`sample:books_price`; MAE in USD on {held_out}; the baselines are fitted on the same run's training "
             "rows and read no text. Made with `python -m bench --only price`.",
             "", "| predictor | MAE (USD) | answers without a price |", "|---|---|---|"]
    for name, mae in r["mae"].items():
        shown = NAMES.get(name, name)
        unparsed = r["unparsed"].get(name)
        lines.append(f"| {shown} | {mae if mae is not None else '—'} | "
                     f"{unparsed if unparsed is not None else '—'} |")
    tuned = r["mae"].get("fine-tuned (adapter)")
    base = {k: v for k, v in r["mae"].items() if k in NAMES and v is not None}
    if tuned is not None and base:
        beaten = [NAMES[k].split(" (")[0] for k, v in base.items() if tuned < v]
        missed = [f"{NAMES[k].split(' (')[0]} ({v})" for k, v in base.items() if tuned >= v]
        said = (f"beats {', '.join(beaten)}" + (f" but not {', '.join(missed)}" if missed else "") if beaten
                else f"beats none of the baselines: {', '.join(missed)}")
        lines += ["", f"Within this budget the fine-tuned model ({tuned} USD) {said}."
                      + f" Fine-tuning took the base model from {r['mae'].get('base model')} to {tuned} USD."]
    return "\n".join(lines)
