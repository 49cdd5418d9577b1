"""LoRA weight diagnostics: how big the change ΔW is, where it sits, and whether it created intruder dimensions.

The numbers are :func:`core.analysis.run.analyze_run`'s, as on the command line (the run's base and adapter
loaded with the adapter checks, the result kept as RUN/analysis.json and reused while it is newer than the
adapter); this tab draws them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

import gradio as gr
import pandas as pd

from core.analysis.explain import explain, num
from core.analysis.result import AnalysisResult, compare
from core.analysis.run import analyze_run
from core.config import AnalysisConfig
from core.locale import text as t
from core.run import RunFolder
from gui.edge import note_html, shows_errors
from gui.render.figures import fig_norm_heatmap, intruders_figure, spectra_figure
from gui.state import AppContext
from gui.widgets.run_picker import resolve_run, run_choices, run_picker

log = logging.getLogger("lora_studio.gui.analysis")

COMPARED = ("rel_change", "mean_rel_change", "mean_effective_rank", "median_r", "intruders",
            "modules_with_intruders", "n_modules")


def _type_order(result: AnalysisResult) -> list[str]:
    return [row["module_type"] for row in result.by_type if "module_type" in row] or \
        sorted({m.module_type for m in result.modules})


def module_choices(results: list[AnalysisResult]) -> list[str]:
    """Module types first (q_proj, …), then every module name of the first run."""
    types: list[str] = []
    for r in results:
        types += [x for x in _type_order(r) if x not in types]
    names = [m.name for m in results[0].modules] if results else []
    return types + names


def default_modules(results: list[AnalysisResult]) -> list[str]:
    types = module_choices(results)
    return [x for x in types if "." not in x][:2]


def comparison_frame(a: AnalysisResult, b: AnalysisResult, lang: str) -> pd.DataFrame:
    """The totals of two runs side by side, with translated measure names."""
    totals = compare(a, b)["totals"]
    rows = []
    for key in COMPARED:
        if key not in totals:
            continue
        cell = totals[key]

        def fmt(x: Any) -> str:
            if isinstance(x, float):
                return num(x, lang, 4 if "rel_change" in key else 2)
            return "" if x is None else str(x)

        rows.append({t("analysis.metric", lang): t(f"analysis.m_{key}", lang), a.label or "A": fmt(cell.get("a")),
                     (b.label if b.label != a.label else f"{b.label} (B)") or "B": fmt(cell.get("b")),
                     t("analysis.delta", lang): fmt(cell.get("delta"))})
    return pd.DataFrame(rows)


@shows_errors(lambda err: (err, "", None, gr.update(visible=False), None, None, gr.update(), gr.update(visible=False),
                           []))
def analyze(run: str | None, run_b: str | None, force: bool, lang: str, runs_dir: str,
            progress: gr.Progress = gr.Progress()) -> tuple:
    """Analyse one run (and optionally a second), reusing saved analyses.

    Returns:
        (status HTML, reading Markdown, heatmap A, heatmap B update, spectra, intruders,
         module selector update, comparison frame update, results for the state)
    """
    empty = (None, gr.update(visible=False), None, None, gr.update(), gr.update(visible=False), [])
    if not run:
        return (note_html(t("runs.pick_run", lang), "warn"), "", *empty)
    picked = [run] + ([run_b] if run_b and run_b != run else [])
    results: list[AnalysisResult] = []
    notes: list[str] = []
    for i, name in enumerate(picked):
        run_dir = resolve_run(runs_dir, name)
        progress(i / len(picked), desc=t("analysis.loading", lang, run=name))

        def report(done: int, total: int, module: str, i: int = i, name: str = name) -> None:
            progress((i + done / max(total, 1)) / len(picked), desc=t("analysis.progress", lang, run=name,
                                                                       module=module))

        result, reused = analyze_run(run_dir, AnalysisConfig(), reuse=not force, progress=report)
        if reused:
            notes.append(t("analysis.reused", lang, run=name))
        else:
            notes.append(t("analysis.computed", lang, run=name, n=len(result.modules), s=num(result.runtime_s, lang),
                           path=RunFolder(run_dir).analysis))
        result.label = name
        results.append(result)

    reading = "\n\n".join(f"**{r.label}** — {explain(r, lang)}" if len(results) > 1 else explain(r, lang)
                          for r in results)
    mods = default_modules(results)
    heat_b = (gr.update(value=fig_norm_heatmap(results[1], lang=lang), visible=True) if len(results) > 1
              else gr.update(value=None, visible=False))
    table = (gr.update(value=comparison_frame(results[0], results[1], lang), visible=True) if len(results) > 1
             else gr.update(visible=False))
    return (note_html(" ".join(notes), "ok"), reading, fig_norm_heatmap(results[0], lang=lang), heat_b,
            spectra_figure(results, mods, lang), intruders_figure(results, lang),
            gr.update(choices=module_choices(results), value=mods), table, results)


def redraw_spectra(modules: list[str] | None, results: list[AnalysisResult] | None, lang: str):
    """The spectra figure for other modules, from the results already computed."""
    if not results:
        return None
    return spectra_figure(results, modules, lang)


@dataclass
class AnalysisTab:
    run: gr.Dropdown
    run_b: gr.Dropdown
    refresh: gr.Button
    force: gr.Checkbox
    analyze: gr.Button
    status: gr.HTML
    reading: gr.Markdown
    heatmap: gr.Plot
    heatmap_b: gr.Plot
    modules: gr.Dropdown
    spectra: gr.Plot
    intruders: gr.Plot
    comparison: gr.Dataframe
    results: gr.State


def refresh_run_b(run_b: str | None, lang: str, runs_dir: str) -> dict:
    """The optional second-run dropdown: "none" first, then the runs now on disk."""
    choices = [(t("analysis.none", lang), "")] + run_choices(runs_dir, lang)
    return gr.update(choices=choices, value=run_b if run_b in [v for _, v in choices] else "")


def build(ctx: AppContext) -> AnalysisTab:
    lang = ctx.lang
    lang_state = gr.State(lang)
    runs_state = gr.State(str(ctx.runs_dir))
    gr.Markdown(t("analysis.intro", lang))
    with gr.Row():
        run, refresh = run_picker(ctx, scale=3)
        run_b = gr.Dropdown(choices=[(t("analysis.none", lang), "")] + run_choices(ctx.runs_dir, lang), value="",
                            label=t("analysis.run_b", lang), scale=3, allow_custom_value=True)
    with gr.Row():
        analyze_btn = gr.Button(t("analysis.button", lang), variant="primary", scale=2)
        force = gr.Checkbox(value=False, label=t("analysis.recompute", lang), scale=3)
    status = gr.HTML()
    reading = gr.Markdown(label=t("analysis.reading", lang))
    comparison = gr.Dataframe(label=t("analysis.compare", lang), visible=False, interactive=False)
    with gr.Row():
        heatmap = gr.Plot(show_label=False)
        heatmap_b = gr.Plot(show_label=False, visible=False)
    modules = gr.Dropdown(choices=[], value=[], multiselect=True, label=t("analysis.modules", lang),
                          info=t("analysis.modules_info", lang))
    with gr.Row():
        spectra = gr.Plot(show_label=False)
        intruders = gr.Plot(show_label=False)
    results = gr.State([])

    refresh.click(refresh_run_b, [run_b, lang_state, runs_state], run_b, api_visibility="private")
    # the second dropdown is re-listed on page load and when opened, as the run picker does for the first
    gr.on(None, partial(refresh_run_b, "", lang, str(ctx.runs_dir)), None, run_b, api_visibility="private",
          show_progress="hidden")
    run_b.focus(refresh_run_b, [run_b, lang_state, runs_state], run_b, api_visibility="private",
                show_progress="hidden")
    analyze_btn.click(analyze, [run, run_b, force, lang_state, runs_state],
                      [status, reading, heatmap, heatmap_b, spectra, intruders, modules, comparison, results],
                      api_name="analyze", concurrency_limit=1, concurrency_id="models")
    modules.change(redraw_spectra, [modules, results, lang_state], spectra, api_visibility="private")
    return AnalysisTab(run, run_b, refresh, force, analyze_btn, status, reading, heatmap, heatmap_b, modules,
                       spectra, intruders, comparison, results)
