"""Price prediction (the seeds' book-price recipe): title + description in, "Price is $N.00" out.

Owns the prompt, the answer's parser, the metric (mean absolute error over the answers that parse) and
the non-model baselines fitted on the run's own training rows (the data card's: the mean price, and
least squares on pages and a one-hot format).
"""

from __future__ import annotations

import re

from core.errors import DataError
from core.tasks.base import Task
from core.templates import Formatted, TemplateContext, generation_prompt, need, pair

PRICE_QUESTION = "How much does this cost to the nearest dollar?"
PRICE_PREFIX = "Price is $"
_PRICE = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def price_prompt(row: dict) -> str:
    parts = [str(row.get(k) or "").strip() for k in ("title", "description")]
    body = "\n".join(p for p in parts if p)
    return f"{PRICE_QUESTION}\n\n{body}\n\n{PRICE_PREFIX}"


def format_price(row: dict, ctx: TemplateContext) -> Formatted:
    try:
        price = float(need(row, "price"))
    except ValueError:
        raise DataError(f"`price` must be a number, got {row.get('price')!r}", field="price") from None
    completion = f"{round(price)}.00"
    if ctx.chat is not None:
        return pair(price_prompt(row), completion, ctx)
    prompt = price_prompt(row)
    text = prompt + completion + ctx.eos_token
    return Formatted(text, [(len(prompt), len(text))], prompt=prompt, reference=completion)


def prompt_price(row: dict, ctx: TemplateContext) -> str:
    return generation_prompt(price_prompt(row), ctx)


def parse_price(text: str) -> float | None:
    """The first number of an answer ("$12.50", "1,299"), or None."""
    m = _PRICE.search(text.replace("$", " "))
    if not m:
        return None
    try:
        return float(m.group(0).replace(",", ""))
    except ValueError:
        return None


def judge(texts: list[str], rows: list[dict]) -> dict:
    """Mean absolute error of the parsed prices against the rows' prices; unparsed answers are counted."""
    truth = [float(r["price"]) for r in rows]
    guesses = [parse_price(t) for t in texts]
    errors = [abs(g - y) for g, y in zip(guesses, truth) if g is not None]
    return {"mae": round(sum(errors) / len(errors), 3) if errors else None,
            "n_unparsed": sum(g is None for g in guesses)}


def baselines(train_rows: list[dict], eval_rows: list[dict]) -> dict[str, float]:
    """MAE of the baselines fitted on the run's training rows: the mean price, least squares on pages and a one-hot
    format (the data card's baselines, on this run's split), and, when scikit-learn is installed (it is optional:
    ``pip install scikit-learn``), its HistGradientBoostingRegressor on the same features."""
    import numpy as np

    def prices(rows):
        return np.array([float(r["price"]) for r in rows])

    formats = sorted({str(r.get("format", "")) for r in train_rows})

    def features(rows):
        cols = [[1.0, float(r.get("pages") or 0)] + [float(str(r.get("format", "")) == f) for f in formats[1:]]
                for r in rows]
        return np.array(cols)

    y_train, y_eval = prices(train_rows), prices(eval_rows)
    mean_mae = float(np.abs(y_eval - y_train.mean()).mean())
    coef, *_ = np.linalg.lstsq(features(train_rows), y_train, rcond=None)
    lin_mae = float(np.abs(features(eval_rows) @ coef - y_eval).mean())
    out = {"mean": round(mean_mae, 3), "linear_regression": round(lin_mae, 3)}
    try:
        from sklearn.ensemble import HistGradientBoostingRegressor
    except ImportError:
        return out
    gbr = HistGradientBoostingRegressor(random_state=0).fit(features(train_rows)[:, 1:], y_train)
    out["gradient_boosting"] = round(float(np.abs(gbr.predict(features(eval_rows)[:, 1:]) - y_eval).mean()), 3)
    return out


TASK = Task(name="price_qa", schema="price", needs=("price",), format=format_price, prompt=prompt_price,
            prompt_roles=("title", "description"), judge=judge, baselines=baselines)
