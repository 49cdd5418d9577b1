"""Whole-run benchmarks: model load, memory, time to a verified merge, UI latency, the classroom demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.system import summary
from core.paths import REPO_ROOT

DEMO = "presets/demo.yaml"


def _cli(*args: str, timeout: float = 3600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TOKENIZERS_PARALLELISM="false")
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def _run_dir(res: subprocess.CompletedProcess) -> Path:
    if res.returncode != 0:
        raise RuntimeError(f"python -m core failed: {res.stderr.strip().splitlines()[-1]}")
    return Path(res.stdout.strip().splitlines()[-1])


CLIENTS = 8  # the ui section's concurrent callers of training_status


def train_demo(runs_dir: Path) -> Path:
    """Train the demo preset into ``runs_dir`` (for a section that needs a trained demo run and was given none)."""
    return _run_dir(_cli("train", DEMO, "--runs-dir", str(runs_dir)))


def load(reps: int = 3) -> dict:
    """Embedded SmolLM2: from the safetensors cache vs dequantizing its GGUF file."""
    import torch
    from transformers import AutoModelForCausalLM

    from core.models.registry import EMBEDDED, resolve_model

    cached = resolve_model("embedded:smollm2-135m-instruct")
    gguf = EMBEDDED["smollm2-135m-instruct"].gguf()
    times: dict[str, list[float]] = {"cache": [], "gguf": []}
    for _ in range(reps):
        t = time.perf_counter()
        AutoModelForCausalLM.from_pretrained(cached, dtype=torch.float32)
        times["cache"].append(time.perf_counter() - t)
        t = time.perf_counter()
        AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        times["gguf"].append(time.perf_counter() - t)
    s = {k: summary(v) for k, v in times.items()}
    ratio = s["gguf"]["median"] / s["cache"]["median"]
    md = (f"Command: `python -m bench --only load`. SmolLM2-135M, float32.\n\n| from | seconds |\n|---|---|\n"
          f"| safetensors cache | {s['cache']['median']:.2f} ({s['cache']['min']:.2f}–{s['cache']['max']:.2f}) |\n"
          f"| GGUF (dequantize) | {s['gguf']['median']:.2f} ({s['gguf']['min']:.2f}–{s['gguf']['max']:.2f}) |\n\n"
          f"The cache loads **{ratio:.0f}×** faster.")
    return {"seconds": s, "ratio": ratio, "markdown": md}


MEMORY_CASES = (
    # (label, preset (None: every default), --set overrides, steps): enough steps for the batches to reach their tail
    ("demo preset: Gemma-3-270M, bfloat16", DEMO, [], 20),
    ("defaults: SmolLM2-135M, precision and checkpointing auto", None, [], 10),
    ("defaults, gradient checkpointing off", None, ["train.gradient_checkpointing=off"], 10),
    ("defaults in float32, checkpointing off (the defaults until 2026-12)", None,
     ["train.precision=fp32", "model.dtype=float32", "train.gradient_checkpointing=off"], 10),
)


def _step_seconds(runs_dir: Path) -> float | None:
    """The median time between logged steps after the first of the one run under ``runs_dir``."""
    import json
    import statistics

    metrics = sorted(Path(runs_dir).glob("*/metrics.jsonl"))
    if not metrics:
        return None
    elapsed = [json.loads(x)["elapsed"] for x in metrics[0].read_text().splitlines()
               if x.strip() and "loss" in json.loads(x)]
    gaps = [b - a for a, b in zip(elapsed[1:], elapsed[2:])]
    return round(statistics.median(gaps), 2) if gaps else None


def memory(reps: int = 3) -> dict:
    """Peak RSS of short training runs against the estimator's prediction for the same configs."""
    from core import config as C
    from core.models.memory import data_profile, estimate_memory, human_bytes

    cases, rows_md, parts_md = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        defaults = Path(tmp) / "defaults.yaml"
        defaults.write_text("{}\n", encoding="utf-8")  # every field at its default: what a new user starts from
        for n, (label, preset, extra, steps) in enumerate(MEMORY_CASES):
            preset = str(REPO_ROOT / preset) if preset else str(defaults)
            overrides = [*extra, f"train.max_steps={steps}", "data.validation_fraction=0", "train.save_steps=1000"]
            cfg = C.load_yaml(preset, overrides)
            profile = data_profile(cfg)
            est = estimate_memory(cfg, profile=profile)
            bound = estimate_memory(cfg)  # without the data: every row max_length long, every logit computed
            peaks, steps_s = [], []
            for i in range(reps):
                runs = f"{tmp}/{n}-r{i}"
                args = ["train", preset, *[x for o in overrides for x in ("--set", o)], "--runs-dir", runs]
                code = ("import resource, runpy, sys; sys.argv = ['core'] + " + repr(args) + "\n"
                        "try:\n    runpy.run_module('core', run_name='__main__')\nexcept SystemExit:\n    pass\n"
                        "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
                res = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                                     env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), timeout=3600)
                line = [x for x in res.stdout.splitlines() if x.startswith("PEAK")]
                if not line:
                    raise RuntimeError(f"memory run failed: {res.stderr[-500:]}")
                peaks.append(int(line[0].split()[1]) * 1024.0)
                step_s = _step_seconds(Path(runs))
                if step_s is not None:
                    steps_s.append(step_s)
            s = summary(peaks)
            pace = summary(steps_s) if steps_s else None
            err = 100 * (est.total - s["median"]) / s["median"]
            err_bound = 100 * (bound.total - s["median"]) / s["median"]
            cases.append({"label": label, "preset": Path(preset).name if preset != str(defaults) else None,
                          "overrides": extra, "steps": steps, "peak_rss": s,
                          "estimate": est.breakdown(), "error_percent": round(err, 1),
                          "upper_bound": bound.breakdown(), "upper_bound_error_percent": round(err_bound, 1),
                          "step_seconds": pace, "checkpointing": est.checkpointing,
                          "precision": est.precision.compute, "weights": est.precision.weights,
                          "batch": {"size": est.batch_size, "length": est.length,
                                    "logit_positions": est.logit_positions}})
            how = f"{est.precision.compute}, {'on' if est.checkpointing else 'off'}"
            rows_md.append(f"| {label} | {how} | {steps} | {human_bytes(s['median'])} ({human_bytes(s['min'])}–"
                           f"{human_bytes(s['max'])}) | **{human_bytes(est.total)}** ({err:+.0f}%) | "
                           f"{human_bytes(bound.total)} ({err_bound:+.0f}%) | "
                           + (f"{pace['median']:.2f} ({pace['min']:.2f}–{pace['max']:.2f}) |" if pace else "— |"))
            parts_md.append((label, est, bound))
    head = " | ".join(label.split(":")[0] for label, _, _ in parts_md)
    table = "\n".join(
        f"| {k} | " + " | ".join(f"{human_bytes(e.breakdown()[k])} / {human_bytes(b.breakdown()[k])}"
                                 for _, e, b in parts_md) + " |" for k in parts_md[0][1].breakdown())
    bases = "; ".join(f"{label.split(':')[0]}: batch {e.batch_size} padded to {e.length} tokens, logits at "
                      f"{e.logit_positions} positions per row" for label, e, _ in parts_md)
    md = (f"Command: `python -m bench --only memory`. Each configuration (the demo preset; every default, which is SmolLM2-135M on the bundled MCQs) trains in a fresh "
          f"process, {reps} times; peak RSS against the estimate shown before Start (the Hyperparameters tab, "
          f"`python -m core estimate`), which is computed from the data's own rows: a large batch (95th "
          f"percentile; {bases}), activations counted on the architecture itself (`core.models.activation_bytes`). "
          f"The upper bound is what the estimate says without the data (every row max_length long, every logit "
          f"computed). s/step: the median time between logged steps after the first, the price of a setting that "
          f"saves memory. precision, checkpointing: as this machine resolved them (auto: bf16 with bfloat16 weights "
          f"on a CPU with native bf16; checkpointing on when the activations would be over half of the memory)."
          f"\n\n| configuration | precision, checkpointing | steps | measured peak RSS | estimate (error) | "
          f"upper bound (error) | s/step |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows_md) +
          f"\n\n| estimate part (from the data / upper bound) | {head} |\n|---|{'---|' * len(parts_md)}\n{table}")
    md += memory_summary(cases)
    return {"cases": cases, "error_percent": cases[0]["error_percent"], "markdown": md}


def memory_summary(cases: list[dict]) -> str:
    """The defaults' figure against the ≤ 3 GiB target, and what it costs in time (MEMORY_CASES' order)."""
    from core.models.memory import human_bytes

    auto, off, before = cases[1], cases[2], cases[3]
    pace = lambda c: c["step_seconds"]["median"] if c["step_seconds"] else float("nan")  # noqa: E731
    return (f"\n\nThe defaults as they now resolve ({auto['precision']}, checkpointing "
            f"{'on' if auto['checkpointing'] else 'off'}) peak at **{human_bytes(auto['peak_rss']['median'])}** "
            f"(target ≤ 3 GiB; estimate {auto['error_percent']:+.0f}%), at {pace(auto):.2f} s/step: "
            f"{pace(auto) / pace(off):.2f}× the time of the same precision without checkpointing "
            f"({human_bytes(off['peak_rss']['median'])}) and {pace(auto) / pace(before):.2f}× that of the float32 "
            f"defaults before ({human_bytes(before['peak_rss']['median'])}). Set train.gradient_checkpointing=off "
            f"to trade the memory back for speed.")


def e2e(reps: int = 3, runs_dir: str | Path | None = None) -> dict:
    """From Start to a merged and verified model, for the demo preset (train → merge → report).

    The runs are written under ``runs_dir`` (a temporary folder when None); ``run_dirs`` in the result lists
    them, so that the demo section can evaluate one instead of training again.
    """
    from core.merge.markdown import summary as merge_summary
    from core.merge.run import merge_run

    phases: dict[str, list[float]] = {"train": [], "merge_and_verify": [], "total": []}
    passed, runs, merge_summaries = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(runs_dir) if runs_dir else Path(tmp)
        for i in range(reps):
            t0 = time.perf_counter()
            run_dir = _run_dir(_cli("train", DEMO, "--runs-dir", str(root / f"r{i}")))
            t1 = time.perf_counter()
            report = merge_run(run_dir)
            t2 = time.perf_counter()
            passed.append(report.passed)
            runs.append(str(run_dir))
            merge_summaries.append(merge_summary(report))
            phases["train"].append(t1 - t0)
            phases["merge_and_verify"].append(t2 - t1)
            phases["total"].append(t2 - t0)
    s = {k: summary(v) for k, v in phases.items()}
    md = ("Command: `python -m bench --only e2e`. `python -m core train presets/demo.yaml`, then the merge with its "
          "verification report, in one process each.\n\n| phase | seconds |\n|---|---|\n"
          + "\n".join(f"| {k} | {v['median']:.0f} ({v['min']:.0f}–{v['max']:.0f}) |" for k, v in s.items())
          + f"\n\nVerification passed in {sum(passed)}/{len(passed)} runs. Last report: {merge_summaries[-1]}")
    return {"seconds": s, "passed": passed, "merge": merge_summaries, "run_dirs": runs, "markdown": md}


def ui(reps: int = 3, calls: int = 60) -> dict:
    """p50 / p95 latency of the ``training_status`` API, idle and while training, with 1 and 8 callers.

    Each call is one HTTP POST to the endpoint's REST route (``/gradio_api/run/training_status``: what a script or
    a page's poll sends); one row is measured through ``gradio_client`` for comparison, whose own client-side
    machinery (a job thread per call) adds about 60 ms to every call on this machine.
    """
    import urllib.request

    from gradio_client import Client

    from bench.app_process import serve
    from bench.ui_driver import start_training_via_api

    with tempfile.TemporaryDirectory() as tmp:
        app, url = serve(Path(tmp), Path(tmp) / "app.log")
        route = url.rstrip("/") + "/gradio_api/run/training_status"
        plain = url.rstrip("/") + "/api/training_status"
        try:
            client = Client(url, verbose=False)
            seen: dict[str, set] = {}

            def poster(session: str):
                """One caller: its own session, kept across calls (as a page does; a call without one makes Gradio
                build a new session state, the config of every component, each time: ~25 ms here)."""
                body = json.dumps({"data": [], "session_hash": session}).encode()

                def post() -> dict:
                    req = urllib.request.Request(route, data=body, headers={"Content-Type": "application/json"})
                    with urllib.request.urlopen(req, timeout=30) as r:
                        return json.loads(r.read())["data"][0]
                return post

            post = poster("bench-0")

            def get() -> dict:
                with urllib.request.urlopen(plain, timeout=30) as r:
                    return json.loads(r.read())

            def sample(n: int, label: str, call=None) -> list[float]:
                call = call or post
                out = []
                for _ in range(n):
                    t = time.perf_counter()
                    status = call()
                    out.append(1000 * (time.perf_counter() - t))
                    seen.setdefault(label, set()).add(status.get("status") if isinstance(status, dict) else None)
                    time.sleep(0.05)
                return out

            idle = sample(calls, "idle")
            start_training_via_api(client)
            time.sleep(5)  # into the steps, past model loading
            busy = sample(calls, "training")
            def together(label: str, calls_of: list) -> list[float]:
                """One sample per call function, all at once (8 pages or scripts polling together)."""
                with ThreadPoolExecutor(len(calls_of)) as pool:
                    return [x for xs in pool.map(lambda call: sample(calls, label, call), calls_of) for x in xs]

            many = together(f"training, {CLIENTS} clients", [poster(f"bench-{i}") for i in range(CLIENTS)])
            via_client = sample(calls, "training, gradio_client",
                                lambda: client.predict(api_name="/training_status"))
            scripts = [client] + [Client(url, verbose=False) for _ in range(CLIENTS - 1)]  # each its own Client
            many_clients = together(f"training, {CLIENTS} clients, gradio_client",
                                    [lambda c=c: c.predict(api_name="/training_status") for c in scripts])
            plain_one = sample(calls, "training, plain route", get)
            plain_many = together(f"training, {CLIENTS} clients, plain route", [get] * CLIENTS)
        finally:
            app.terminate()
            try:
                app.wait(30)
            except subprocess.TimeoutExpired:  # a training thread in the middle of a step: no need to wait
                app.kill()
                app.wait(30)

    def pct(xs: list[float], q: float) -> float:
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(q * len(xs)))]

    res = {k: {"p50_ms": round(pct(v, 0.5), 1), "p95_ms": round(pct(v, 0.95), 1), "n": len(v),
               "job_status_seen": sorted(map(str, seen.get(k, ())))}
           for k, v in (("idle", idle), ("training", busy), (f"training, {CLIENTS} clients", many),
                        ("training, gradio_client", via_client),
                        (f"training, {CLIENTS} clients, gradio_client", many_clients),
                        ("training, plain route", plain_one),
                        (f"training, {CLIENTS} clients, plain route", plain_many))}
    md = ("Command: `python -m bench --only ui`. `app.py` in its own process; `/training_status` is called "
          f"{calls} times by one caller, idle and while the app trains the demo preset; then by {CLIENTS} callers at "
          "once, "
          f"{calls} calls each (every call's latency counted). A call is one HTTP POST to the endpoint's REST route "
          "(`/gradio_api/run/training_status`, with the caller's own `session_hash`, kept across its calls as a "
          "page keeps it); the gradio_client rows go through that library, which always takes the queue protocol (join, "
          "then an SSE stream, a new connection per call): measured idle, 55 ms of the caller's CPU and 14 ms of the "
          "app's per call, so 8 such callers at 20 calls/s each ask for about 5 times what 2 cores have, and their "
          "rows measure the callers' load more than the endpoint; the plain route "
          "is `GET /api/training_status`, the same JSON served beside Gradio. A call without a session_hash makes "
          "Gradio build a new session state, the config of all ~380 components, every time (~25 ms of CPU here: "
          "8 such pollers had p95 696 ms). Target: p95 ≤ 200 ms with "
          f"{CLIENTS} clients on 2 cores.\n\n"
          "| state | p50 ms | p95 ms | job status reported during the sample |\n|---|---|---|---|\n"
          + "\n".join(f"| {k} | {v['p50_ms']} | {v['p95_ms']} | {', '.join(v['job_status_seen'])} |"
                      for k, v in res.items()))
    return {**res, "markdown": md}


def demo(reps: int = 1, run_dir: str | None = None) -> dict:
    """The classroom result: train the demo preset, then MCQ validity of base vs fine-tuned on the test split.

    With ``run_dir`` (``--demo-run``), an already trained demo run is evaluated (or its eval_report.json read).
    """
    from core.evaluate import evaluate_run
    from core.inference.modelset import ADAPTER, BASE
    from core.run import RunFolder

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        if run_dir is None:
            run = _run_dir(_cli("train", DEMO, "--runs-dir", tmp))
            wall = time.perf_counter() - t0
        else:
            run, wall = Path(run_dir), float("nan")
        folder = RunFolder(run)
        info = folder.read_info()
        saved = folder.eval_report
        report = (json.loads(saved.read_text(encoding="utf-8")) if run_dir and saved.exists()
                  else evaluate_run(run, split="test", which=(BASE, ADAPTER)))
    steps = [r for r in _metrics(run) if "loss" in r]
    gaps = sorted(b["elapsed"] - a["elapsed"] for a, b in zip(steps, steps[1:]))
    step_s = gaps[len(gaps) // 2] if gaps else float("nan")
    b, a = report["models"][BASE], report["models"][ADAPTER]
    md = ("Command: `python -m bench --only demo` (trains `presets/demo.yaml`, then "
          "`python -m core evaluate RUN --split test`; run together with `e2e`, it evaluates e2e's first run "
          "instead of training once more). Contexts from the test split, never trained on. Both models "
          f"decode greedily with repetition penalty {report.get('decoding', {}).get('repetition_penalty', 1.0):g} on "
          "the answer's own tokens (`core.generate.MCQ_REPETITION_PENALTY`, what the Classroom tab uses).\n\n"
          f"| model | structurally valid MCQs | loss on test answers | general-text perplexity |\n|---|---|---|---|\n"
          f"| base | {b['n_valid']}/{b['n']} ({100 * b['validity_rate']:.0f}%) | {b['loss']} | {b.get('general_perplexity')} |\n"
          f"| fine-tuned | {a['n_valid']}/{a['n']} ({100 * a['validity_rate']:.0f}%) | {a['loss']} | "
          f"{a.get('general_perplexity')} |\n\n"
          + "Why answers fail (fine-tuned): "
          + (", ".join(f"{k} {v}" for k, v in a["reason_counts"].items() if v) or "none") + ".\n\n"
          + f"Training: {len(steps)} steps at a median {step_s:.1f} s/step ≈ {len(steps) * step_s / 60:.1f} min of "
          f"steps on this machine (run.json train_seconds: {info.get('train_seconds', 0):.0f} s"
          + (f", {wall:.0f} s wall with loading" if wall == wall else "") + ").")
    return {"train_seconds": info.get("train_seconds"), "median_step_seconds": round(step_s, 2),
            "wall_seconds": round(wall, 1) if wall == wall else None, "report": report, "markdown": md}


def _metrics(run: Path) -> list[dict]:
    from core.run import read_metrics

    return read_metrics(run)
