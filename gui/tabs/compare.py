"""Compare: the same prompt through the base, base + adapter and the merged model, side by side.

The models are the process's one cache (:data:`core.inference.modelset.MODELS`, shared with the Classroom):
one base in memory, and a second run on the same base adds its adapter instead of loading the base again.
Prompts and held-out rows are the run's own (:mod:`core.inference.batch`).
"""

from __future__ import annotations

import csv
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from core import tasks
from core.analysis.explain import num
from core.config import DecodingConfig
from core.errors import StudioError
from core.inference.batch import heldout_rows, run_prompt, run_template
from core.inference.generate import first_divergence
from core.inference.modelset import ADAPTER, MERGED, MODELS
from core.locale import text as t
from core.run import RunFolder
from gui.edge import error_html, note_html, shows_errors
from gui.render.compare import render_panes
from gui.state import AppContext
from gui.widgets.run_picker import default_run, resolve_run, run_picker

log = logging.getLogger("lora_studio.gui.compare")


def _single_input(run_dir: Path) -> str | None:
    """The one role a person types for this run's task (MCQ: the paragraph), or None for a whole prompt."""
    template = run_template(run_dir)
    return tasks.get(template).single_input if template in tasks.TASKS else None


def example_input(run: str | None, index: int, runs_dir: str) -> tuple[str, str]:
    """The (prompt, context) to prefill for the ``index``-th held-out row of the run (test, else validation)."""
    if not run:
        return "", ""
    try:
        run_dir = resolve_run(runs_dir, run)
        rows = heldout_rows(run_dir, "test") or heldout_rows(run_dir, "validation")
    except (StudioError, OSError) as e:
        log.info("no example for %s: %s", run, e)
        return "", ""
    if not rows:
        return "", ""
    row = rows[index % len(rows)]["row"]
    role = _single_input(run_dir)
    if role:
        return "", str(row.get(role) or "")
    try:
        return run_prompt(run_dir, row), ""
    except StudioError:
        return "", ""


def decoding_from(mode: str, temperature: float, top_p: float, seed: float, max_new_tokens: float) -> DecodingConfig:
    return DecodingConfig(max_new_tokens=int(max_new_tokens), do_sample=mode == "sampling",
                          temperature=float(temperature), top_p=float(top_p), seed=int(seed))


def generate_all(run_dir: Path, prompts: list[str], decoding: DecodingConfig, lang: str, progress) -> dict[str, list]:
    """Every model of the run (base, adapter, merged when present) on the same prompts, with a progress bar."""
    progress(0.0, desc=t("compare.loading_models", lang))

    def on_model(i: int, n: int, which: str) -> None:
        progress((i + 1) / (n + 1), desc=t("compare.generating", lang, which=t(f"compare.pane_{which}", lang)))

    return MODELS.generate_all(run_dir, prompts, decoding, on_model)


@shows_errors(lambda err: ("", "", "", err))
def compare(run: str | None, prompt: str, context: str, mode: str, temperature: float, top_p: float, seed: float,
            max_new_tokens: float, lang: str, runs_dir: str, progress: gr.Progress = gr.Progress()
            ) -> tuple[str, str, str, str]:
    """Generate with base, adapter and (if the run is merged) the merged model.

    Returns:
        (base pane HTML, adapter pane HTML, merged pane HTML, status HTML)
    """
    blank = ("", "", "")
    if not run:
        return (*blank, note_html(t("runs.pick_run", lang), "warn"))
    run_dir = resolve_run(runs_dir, run)
    role = _single_input(run_dir)
    if role:
        if not (context or "").strip():
            return (*blank, note_html(t("compare.empty_prompt", lang), "warn"))
        text = run_prompt(run_dir, {role: context.strip()})
    else:
        if not (prompt or "").strip():
            return (*blank, note_html(t("compare.empty_prompt", lang), "warn"))
        text = prompt
    t0 = time.monotonic()
    outputs = generate_all(run_dir, [text], decoding_from(mode, temperature, top_p, seed, max_new_tokens), lang,
                           progress)
    gens = {which: out[0] for which, out in outputs.items()}
    status = note_html(t("compare.timing", lang, n=len(gens), s=num(time.monotonic() - t0, lang)))
    template = run_template(run_dir)
    if template in tasks.TASKS and tasks.get(template).key_first:  # every key here is A: say why
        status += note_html(t("compare.key_first", lang))
    return (*render_panes(gens, lang), status)


@shows_errors(lambda err: (None, None, err))
def batch(run: str | None, split: str, n_rows: float, mode: str, temperature: float, top_p: float, seed: float,
          max_new_tokens: float, lang: str, runs_dir: str, progress: gr.Progress = gr.Progress()
          ) -> tuple[str | None, Any, str]:
    """Generate for the first ``n_rows`` rows of a held-out split with every model; write a CSV.

    Returns:
        (CSV path or None, preview DataFrame, status HTML)
    """
    if not run:
        return None, None, note_html(t("runs.pick_run", lang), "warn")
    run_dir = resolve_run(runs_dir, run)
    rows = heldout_rows(run_dir, split)[: max(1, int(n_rows))]
    if not rows:
        return None, None, note_html(t("compare.no_heldout", lang, split=t(f"compare.split_{split}", lang)), "warn")
    prompts = [run_prompt(run_dir, r["row"]) for r in rows]
    outputs = generate_all(run_dir, prompts, decoding_from(mode, temperature, top_p, seed, max_new_tokens), lang,
                           progress)
    records = []
    for k, (r, p) in enumerate(zip(rows, prompts)):
        rec = {"row": r["index"], "prompt": p, "reference": r["reference"]}
        for which, gens in outputs.items():
            rec[which] = gens[k].text
        if MERGED in outputs:
            rec["merged_identical"] = first_divergence(outputs[ADAPTER][k].token_ids,
                                                       outputs[MERGED][k].token_ids) is None
        records.append(rec)
    frame = pd.DataFrame(records)
    out = Path(tempfile.mkdtemp(prefix="lora-studio-compare-")) / f"{run_dir.name}-{split}.csv"
    frame.to_csv(out, index=False, quoting=csv.QUOTE_NONNUMERIC, encoding="utf-8-sig")  # BOM: Excel reads UTF-8
    if MERGED in outputs:
        msg = t("compare.batch_done", lang, n=len(records), same=int(frame["merged_identical"].sum()))
    else:
        msg = t("compare.batch_done_nomerge", lang, n=len(records))
    return str(out), frame.drop(columns=["prompt"]).head(20), note_html(msg, "ok")


def on_run_change(run: str | None, lang: str, runs_dir: str) -> tuple[dict, dict, int, str, str, str]:
    """Show the prompt box, or the paragraph box for an MCQ run, prefilled from the test split; clear the panes.

    Returns:
        (prompt update, context update, example index, base pane, adapter pane, merged pane)
    """
    single, merged = None, ""
    if run:
        try:
            run_dir = resolve_run(runs_dir, run)
            single = _single_input(run_dir)
            if not RunFolder(run_dir).has_merged():
                merged = note_html(t("compare.merge_first", lang), "warn")
        except StudioError as e:
            merged = error_html(e, lang)
    prompt, context = example_input(run, 0, runs_dir)
    return (gr.update(value=prompt, visible=not single), gr.update(value=context, visible=bool(single)), 0, "", "",
            merged)


def next_example(run: str | None, index: int, runs_dir: str) -> tuple[str, str, int]:
    index = int(index or 0) + 1
    prompt, context = example_input(run, index, runs_dir)
    return prompt, context, index


@dataclass
class CompareTab:
    run: gr.Dropdown
    refresh: gr.Button
    prompt: gr.Textbox
    context: gr.Textbox
    other: gr.Button
    mode: gr.Radio
    temperature: gr.Slider
    top_p: gr.Slider
    seed: gr.Number
    max_new_tokens: gr.Slider
    generate: gr.Button
    status: gr.HTML
    base: gr.HTML
    adapter: gr.HTML
    merged: gr.HTML
    split: gr.Radio
    n_rows: gr.Number
    batch: gr.Button
    batch_file: gr.File
    batch_preview: gr.Dataframe
    batch_status: gr.HTML


def build(ctx: AppContext) -> CompareTab:
    lang = ctx.lang
    lang_state = gr.State(lang)
    runs_state = gr.State(str(ctx.runs_dir))
    example_index = gr.State(0)
    first = default_run(ctx.runs_dir)
    prompt0, context0 = example_input(first, 0, str(ctx.runs_dir))
    single0 = bool(first) and bool(_single_input(resolve_run(ctx.runs_dir, first)))
    gr.Markdown(t("compare.cmp_intro", lang))
    with gr.Row():
        run, refresh = run_picker(ctx)
    prompt = gr.Textbox(value=prompt0, label=t("compare.prompt", lang), lines=6, visible=not single0)
    context = gr.Textbox(value=context0, label=t("compare.context", lang), info=t("compare.context_info", lang),
                         lines=6, visible=single0)
    with gr.Row():
        other = gr.Button(t("compare.other_row", lang), size="sm", scale=0, min_width=240)
    with gr.Accordion(t("compare.decoding", lang), open=False):
        with gr.Row():
            mode = gr.Radio(choices=[(t("compare.greedy", lang), "greedy"), (t("compare.sampling", lang), "sampling")],
                            value="greedy", label=t("compare.decoding", lang))
            max_new_tokens = gr.Slider(16, 512, value=160, step=16, label=t("compare.max_new_tokens", lang))
        with gr.Row():
            temperature = gr.Slider(0.05, 2.0, value=0.7, step=0.05, label=t("compare.temperature", lang))
            top_p = gr.Slider(0.05, 1.0, value=0.9, step=0.05, label=t("compare.top_p", lang))
            seed = gr.Number(value=0, precision=0, label=t("compare.seed", lang))
    generate = gr.Button(t("compare.generate", lang), variant="primary")
    status = gr.HTML()
    with gr.Row(equal_height=True):
        base = gr.HTML()
        adapter = gr.HTML()
        merged = gr.HTML()
    with gr.Accordion(t("compare.batch_title", lang), open=False):
        with gr.Row():
            split = gr.Radio(choices=[(t("compare.split_test", lang), "test"),
                                      (t("compare.split_validation", lang), "validation")],
                             value="test", label=t("compare.split", lang))
            n_rows = gr.Number(value=8, minimum=1, maximum=500, precision=0, label=t("compare.n_rows", lang))
        batch_btn = gr.Button(t("compare.batch_button", lang))
        batch_status = gr.HTML()
        batch_file = gr.File(label=t("compare.batch_file", lang), interactive=False)
        batch_preview = gr.Dataframe(interactive=False, wrap=True)

    decoding_inputs = [mode, temperature, top_p, seed, max_new_tokens]
    # on page load and when the run changes
    gr.on(None, on_run_change, [run, lang_state, runs_state], [prompt, context, example_index, base, adapter, merged],
          api_visibility="private", show_progress="hidden")
    other.click(next_example, [run, example_index, runs_state], [prompt, context, example_index],
                api_visibility="private")
    generate.click(compare, [run, prompt, context, *decoding_inputs, lang_state, runs_state],
                   [base, adapter, merged, status], api_name="compare", concurrency_limit=1, concurrency_id="models")
    batch_btn.click(batch, [run, split, n_rows, *decoding_inputs, lang_state, runs_state],
                    [batch_file, batch_preview, batch_status], api_name="compare_batch", concurrency_limit=1,
                    concurrency_id="models")
    return CompareTab(run, refresh, prompt, context, other, mode, temperature, top_p, seed, max_new_tokens, generate,
                      status, base, adapter, merged, split, n_rows, batch_btn, batch_file, batch_preview, batch_status)
