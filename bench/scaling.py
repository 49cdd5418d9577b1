"""How the cost of a step grows with the work: max_length, batch size and LoRA rank, engine and bare trl side by side.

Every point trains a few steps in a fresh process (peak RSS is a process's own), on rows of exactly max_length
tokens: the bundled Vietnamese MCQs written as multi-turn conversations (the start of a paragraph → a question, again
and again),
so every answer is learned, as in the MCQ data, at every length, and no batch holds padding. The engine runs with
its defaults for the loss (the output layer only where a token is learned); both sides in bf16 with bfloat16
weights on a CPU with native bf16 (what auto picks there), else float32; neither recomputes activations, except
the engine rows marked "checkpointing on".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from core.paths import REPO_ROOT

MODEL = "embedded:smollm2-135m-instruct"
BASE = {"max_length": 512, "batch": 2, "rank": 16}
SWEEPS = {"max_length": (256, 512, 1024, 2048), "batch": (1, 2, 4, 8), "rank": (8, 64, 256)}
SIDES = ("engine", "trl")
STEPS = 3


def conversations(out: Path, max_length: int, rows: int) -> Path:
    """``rows`` conversations of the bundled MCQs, each long enough to fill ``max_length`` SmolLM2 tokens."""
    from core.data import iter_jsonl
    from core.models.load import load_tokenizer
    from core.models.registry import resolve_model

    tok = load_tokenizer(resolve_model(MODEL))
    items = [r for _, r in iter_jsonl(REPO_ROOT / "assets" / "samples" / "vi_informatics_mcq.jsonl")]
    turns = []
    for r in items:
        mcq = (f"Câu hỏi: {r['question']}\nA. {r['answer_a']}\nB. {r['answer_b']}\nC. {r['answer_c']}\n"
               f"D. {r['answer_d']}\nĐáp án: {r['correct_answer']}")
        # the paragraph's first 120 characters: a turn of ~200 tokens, so that even max_length 256 learns an answer
        context = r["context"][:120].rsplit(" ", 1)[0]
        turns.append(([{"role": "user", "content": f"Viết một câu hỏi trắc nghiệm về đoạn văn sau.\n{context}"},
                       {"role": "assistant", "content": mcq}], len(tok(context + mcq)["input_ids"]) + 24))
    lines, k = [], 0
    for _ in range(rows):
        messages, n = [], 0
        while n < max_length + 64:  # past max_length: the row is cut there, so every row is exactly max_length long
            pair, length = turns[k % len(turns)]
            messages += pair
            n += length
            k += 1
        lines.append(json.dumps({"messages": messages}, ensure_ascii=False))
    path = out / f"conversations-{max_length}.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def point_cfg(source: str, max_length: int, batch: int, rank: int, bf16: bool, checkpointing: bool):
    from bench.throughput import make_cfg
    from core import config as C

    cfg = make_cfg(MODEL, source, STEPS, batch, max_length, skip_prompt_logits=True, bf16=bf16)
    C.set_value(cfg, "lora.r", rank)
    C.set_value(cfg, "lora.lora_alpha", 2 * rank)
    C.set_value(cfg, "data.use_chat_template", True)
    if checkpointing:
        C.set_value(cfg, "train.gradient_checkpointing", "on")
    return cfg


def one(spec: dict) -> dict:
    """One point on one side, in this process: tokens/s (after the first step) and this process's peak RSS."""
    import resource

    from bench import throughput

    cfg = point_cfg(spec["source"], spec["max_length"], spec["batch"], spec["rank"], spec["bf16"],
                    spec.get("checkpointing", False))
    with tempfile.TemporaryDirectory() as tmp:
        if spec["side"] == "trl":
            rate = throughput.trl_run(cfg, Path(tmp) / "trl", bf16=spec["bf16"])
        else:
            rate = throughput.engine_run(cfg, Path(tmp) / "runs")
    return {"tokens_per_s": round(rate, 1),
            "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def _spawn(spec: dict) -> dict:
    code = ("import json, sys; from bench.scaling import one; "
            "print('RESULT', json.dumps(one(json.loads(sys.argv[1]))))")
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TOKENIZERS_PARALLELISM="false")
    res = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], cwd=REPO_ROOT, capture_output=True,
                         text=True, env=env, timeout=3600)
    line = [x for x in res.stdout.splitlines() if x.startswith("RESULT ")]
    if not line:
        raise RuntimeError(f"scaling point {spec} failed: {res.stderr[-800:]}")
    return json.loads(line[0][len("RESULT "):])


def run(reps: int = 1) -> dict:
    """Every sweep's points on both sides (and the engine with checkpointing on along max_length)."""
    from bench.throughput import cpu_has_bf16
    from core.models.memory import estimate_memory

    bf16 = cpu_has_bf16()
    points = []
    with tempfile.TemporaryDirectory() as tmp:
        sources = {n: str(conversations(Path(tmp), n, rows=BASE["batch"] * 8 * (STEPS + 1)))
                   for n in sorted({*SWEEPS["max_length"], BASE["max_length"]})}
        for axis, values in SWEEPS.items():
            for value in values:
                shape = {**BASE, axis: value}
                sides = SIDES + (("engine_checkpointing",) if axis == "max_length" else ())
                for side in sides:
                    spec = {"side": "trl" if side == "trl" else "engine", "source": sources[shape["max_length"]],
                            "bf16": bf16, "checkpointing": side == "engine_checkpointing", **shape}
                    runs = [_spawn(spec) for _ in range(reps)]
                    cfg = point_cfg(spec["source"], shape["max_length"], shape["batch"], shape["rank"], bf16,
                                    spec["checkpointing"])
                    est = estimate_memory(cfg)
                    points.append({"axis": axis, "value": value, "side": side, **shape,
                                   "tokens_per_s": sorted(r["tokens_per_s"] for r in runs)[len(runs) // 2],
                                   "peak_rss": sorted(r["peak_rss"] for r in runs)[len(runs) // 2],
                                   "estimate": est.total, "estimate_activations": est.activations})
                    print(f"scaling {axis}={value} {side}: {points[-1]['tokens_per_s']} tokens/s, "
                          f"{points[-1]['peak_rss'] / 2**30:.2f} GiB", flush=True)
        crossover = _crossover(sources)
        learned = {n: _learned_fraction(src, n) for n, src in sources.items()}
    return {"model": MODEL, "base": BASE, "steps": STEPS, "bf16": bf16, "reps": reps, "points": points,
            "crossover": crossover, "learned_fraction": learned}


def _learned_fraction(source: str, max_length: int) -> float:
    """The share of a row's tokens that are learned (the answers), rows cut at max_length."""
    from core import data as D
    from core.models.load import load_tokenizer
    from core.models.registry import resolve_model

    cfg = point_cfg(source, max_length, BASE["batch"], BASE["rank"], False, False)
    rows = D.prepare(cfg.data, load_tokenizer(resolve_model(MODEL)), seed=0).train
    learned = sum(sum(1 for x in e.labels[:max_length] if x != -100) for e in rows)
    return round(learned / sum(min(len(e.input_ids), max_length) for e in rows), 3)


def _crossover(sources: dict[int, str]) -> list[dict]:
    """Where ``gradient_checkpointing: auto`` turns on along max_length (batch 2 and 8), by the memory estimate."""
    from core.models.memory import estimate_memory

    out = []
    for batch in (BASE["batch"], 8):
        for n in (256, 512, 1024, 2048, 4096):
            src = sources.get(n) or sources[max(sources)]
            cfg = point_cfg(src, n, batch, BASE["rank"], False, False)
            from core import config as C

            C.set_value(cfg, "train.gradient_checkpointing", "auto")
            C.set_value(cfg, "train.precision", "auto")
            C.set_value(cfg, "model.dtype", "auto")
            est = estimate_memory(cfg)
            out.append({"batch": batch, "max_length": n, "checkpointing": est.checkpointing,
                        "why": est.auto_checkpointing_why, "total": est.total, "activations": est.activations})
    return out


def figure(res: dict, path: Path) -> None:
    """tokens/s and peak RSS along each sweep, engine and trl, as one plotly figure saved as a PNG at ``path``."""
    from plotly.subplots import make_subplots

    axes = list(SWEEPS)
    fig = make_subplots(rows=2, cols=len(axes), subplot_titles=[f"tokens/s vs {a}" for a in axes]
                        + [f"peak RSS (GiB) vs {a}" for a in axes], vertical_spacing=0.14)
    colours = {"engine": "#1f77b4", "trl": "#d62728", "engine_checkpointing": "#2ca02c"}
    for c, axis in enumerate(axes, start=1):
        for side in colours:
            pts = [p for p in res["points"] if p["axis"] == axis and p["side"] == side]
            if not pts:
                continue
            xs = [p["value"] for p in pts]
            for row, key, scale in ((1, "tokens_per_s", 1), (2, "peak_rss", 2**-30)):
                fig.add_scatter(x=xs, y=[p[key] * scale for p in pts], row=row, col=c, name=side,
                                legendgroup=side, showlegend=row == 1 and c == 1, line={"color": colours[side]},
                                mode="lines+markers")
        fig.update_xaxes(type="log", tickvals=list(SWEEPS[axis]), row=1, col=c)
        fig.update_xaxes(type="log", tickvals=list(SWEEPS[axis]), title_text=axis, row=2, col=c)
    fig.update_layout(height=620, width=1100, margin={"t": 40, "l": 50, "r": 20, "b": 50})
    path.parent.mkdir(parents=True, exist_ok=True)
    # plotly.js inline: this machine renders it without the network, with the chromium the UI tests use
    html = fig.to_html(include_plotlyjs=True, full_html=True)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1100, "height": 620})
        page.set_content(html, wait_until="load")
        page.wait_for_selector(".main-svg")
        page.screenshot(path=str(path))
        browser.close()


def markdown(res: dict, figure_path: str) -> str:
    """The section's table, the figure and what they say (attention memory, the checkpointing crossover)."""
    from core.models.memory import human_bytes

    pts = {(p["axis"], p["value"], p["side"]): p for p in res["points"]}
    b = res["base"]
    rows = []
    for axis, values in SWEEPS.items():
        for v in values:
            e, t, g = (pts.get((axis, v, s)) for s in ("engine", "trl", "engine_checkpointing"))
            if not (e and t):
                continue
            gc = f"{g['tokens_per_s']:.0f} / {human_bytes(g['peak_rss'])}" if g else "—"
            rows.append(f"| {axis} = {v} | {e['batch'] * e['max_length']} | {e['tokens_per_s']:.0f} | "
                        f"{t['tokens_per_s']:.0f} | **{e['tokens_per_s'] / t['tokens_per_s']:.2f}** | "
                        f"{human_bytes(e['peak_rss'])} ({human_bytes(e['estimate'])}) | {human_bytes(t['peak_rss'])} | "
                        f"{gc} |")
    # memory per token of the batch along max_length: constant if attention memory grows linearly with length
    lens = [pts[("max_length", v, "engine")] for v in SWEEPS["max_length"] if ("max_length", v, "engine") in pts]
    slopes = [(q["peak_rss"] - p["peak_rss"]) / ((q["max_length"] - p["max_length"]) * p["batch"])
              for p, q in zip(lens, lens[1:])]
    growth = ""
    if len(slopes) >= 2 and slopes[0] > 0:
        ratio = slopes[-1] / slopes[0]
        growth = (f"Peak memory per extra token of the batch: {human_bytes(slopes[0])} from max_length "
                  f"{lens[0]['max_length']} to {lens[1]['max_length']}, {human_bytes(slopes[-1])} from "
                  f"{lens[-2]['max_length']} to {lens[-1]['max_length']} ({ratio:.2f}×). "
                  + ("So attention memory does **not** grow quadratically here: torch's CPU SDPA (a flash-attention "
                     "kernel) never holds the length × length scores; what grows is the activations kept per token, "
                     "linearly. `model.attn_implementation=eager` would hold them (quadratic)."
                     if ratio < 1.5 else
                     "Memory per token grows with the length: the attention scores are held (quadratic)."))
    costs = [(v, pts[("max_length", v, "engine")], pts[("max_length", v, "engine_checkpointing")])
             for v in SWEEPS["max_length"] if ("max_length", v, "engine_checkpointing") in pts]
    if costs:
        growth += (" What checkpointing costs and saves, by max_length: "
                     + "; ".join(f"max_length {v}: {1 - g['tokens_per_s'] / e['tokens_per_s']:.0%} fewer tokens/s, "
                               f"{1 - g['peak_rss'] / e['peak_rss']:.0%} less memory" for v, e, g in costs) + ".")
    cross = []
    for batch in sorted({c["batch"] for c in res["crossover"]}):
        on = [c["max_length"] for c in res["crossover"] if c["batch"] == batch and c["checkpointing"]]
        cross.append(f"batch {batch}: from max_length {min(on)}" if on else f"batch {batch}: not up to 4096")
    prec = "bf16 with bfloat16 weights" if res["bf16"] else "float32"
    return (f"Command: `python -m bench --only scaling` (about 30 minutes). `{res['model']}`, {prec} on both sides, "
            f"LoRA all-linear (alpha = 2·r); around max_length {b['max_length']}, batch {b['batch']}, rank "
            f"{b['rank']}, one setting changed at a time. Each point is {res['steps']} steps in a fresh process (its "
            f"peak RSS; tokens/s after the first step), on rows of exactly max_length tokens: the bundled MCQs as "
            f"multi-turn conversations, every answer learned (a row learns "
            f"{min(res['learned_fraction'].values()):.0%}–{max(res['learned_fraction'].values()):.0%} of its tokens; "
            f"no padding on either side). Neither side recomputes "
            f"activations, except the column with checkpointing on.\n\n"
            f"![tokens/s and peak memory against max_length, batch size and LoRA rank]({figure_path})\n\n"
            f"| setting | tokens/step | engine tokens/s | trl tokens/s | engine/trl | engine peak RSS (estimate) | "
            f"trl peak RSS | engine, checkpointing on: tokens/s / peak |\n|---|---|---|---|---|---|---|---|\n"
            + "\n".join(rows) + "\n\n" + growth +
            "\n\nWhere `train.gradient_checkpointing: auto` turns checkpointing on (the memory estimate: the run "
            "would not fit, or the activations would be over half of its memory), for these rows with every "
            "other field at its default: " + "; ".join(cross) + ".")
