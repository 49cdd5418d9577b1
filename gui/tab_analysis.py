"""LoRA weight diagnostics: how big the change ΔW is, where it sits, and whether it created intruder dimensions.

The numbers come from core.analysis; this tab loads base + adapter once per run, caches the result as
RUN/analysis.json (reused while it is newer than the adapter) and draws the figures.
"""

from __future__ import annotations

import gc
import json
import logging
import threading
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable

import gradio as gr
import pandas as pd

from core.analysis import (AnalysisResult, analyze_peft_model, compare, explain, fig_intruders, fig_norm_heatmap,
                           fig_spectra)
from gui.common import AppContext, error_html, note_html
from gui.i18n import register, t
from gui.tab_merge import (default_run, link_run_picker, no_runs_info, num, read_run_info,
                           refresh_runs, resolve_run, run_choices)

log = logging.getLogger("lora_studio.gui.analysis")

TAB_TITLE = {"en": "Weight diagnostics", "vi": "Chẩn đoán trọng số"}

TEXT = register(__name__, {
    "an_intro": {
        "en": "What did training change inside the model? For every adapted layer: how large the change ΔW is "
              "compared with the original weight W, how many directions it really uses (effective rank), and "
              "whether it created *intruder dimensions* — new strong directions that the original model did not "
              "have, which research links to forgetting.",
        "vi": "Huấn luyện đã thay đổi gì bên trong mô hình? Với mỗi lớp có adapter: thay đổi ΔW lớn cỡ nào so "
              "với trọng số gốc W, thực sự dùng bao nhiêu hướng (hạng hiệu dụng), và có tạo ra *chiều xâm nhập* "
              "hay không — những hướng mạnh mới mà mô hình gốc không có, thường đi kèm việc mô hình quên kiến "
              "thức cũ."},
    "an_run_b": {"en": "Compare with a second run (optional)", "vi": "So sánh với lần huấn luyện thứ hai (tuỳ chọn)"},
    "an_none": {"en": "— none —", "vi": "— không —"},
    "an_button": {"en": "Analyze", "vi": "Phân tích"},
    "an_recompute": {"en": "Recompute even if a saved analysis exists",
                     "vi": "Tính lại dù đã có kết quả phân tích được lưu"},
    "an_modules": {"en": "Draw the spectra of", "vi": "Vẽ phổ cho"},
    "an_modules_info": {"en": "module types (q_proj…) or single modules; empty = all",
                        "vi": "loại mô-đun (q_proj…) hoặc từng mô-đun; để trống = tất cả"},
    "an_reading": {"en": "Reading", "vi": "Diễn giải"},
    "an_loading": {"en": "Loading the base model and the adapter of {run}…", "vi": "Đang nạp mô hình gốc và adapter của {run}…"},
    "an_progress": {"en": "Analysing {run}: {module}", "vi": "Đang phân tích {run}: {module}"},
    "an_reused": {"en": "{run}: saved analysis reused (analysis.json is newer than the adapter).",
                  "vi": "{run}: dùng lại kết quả đã lưu (analysis.json mới hơn adapter)."},
    "an_computed": {"en": "{run}: analysed {n} modules in {s} s; saved to {path}.",
                    "vi": "{run}: đã phân tích {n} mô-đun trong {s} giây; đã lưu vào {path}."},
    "an_compare": {"en": "Comparison", "vi": "So sánh"},
    "an_metric": {"en": "Measure", "vi": "Chỉ số"},
    "an_delta": {"en": "Difference (B − A)", "vi": "Chênh lệch (B − A)"},
    "m_rel_change": {"en": "Overall ‖ΔW‖/‖W‖", "vi": "‖ΔW‖/‖W‖ toàn bộ"},
    "m_mean_rel_change": {"en": "Mean ‖ΔW‖/‖W‖ per module", "vi": "‖ΔW‖/‖W‖ trung bình mỗi mô-đun"},
    "m_mean_effective_rank": {"en": "Mean effective rank", "vi": "Hạng hiệu dụng trung bình"},
    "m_median_r": {"en": "Rank r", "vi": "Hạng r"},
    "m_intruders": {"en": "Intruder dimensions", "vi": "Số chiều xâm nhập"},
    "m_modules_with_intruders": {"en": "Modules with intruders", "vi": "Số mô-đun có chiều xâm nhập"},
    "m_n_modules": {"en": "Modules analysed", "vi": "Số mô-đun đã phân tích"},
})

# one analysis at a time: each holds a full base model in memory
_LOCK = threading.Lock()
COMPARED = ("rel_change", "mean_rel_change", "mean_effective_rank", "median_r", "intruders",
            "modules_with_intruders", "n_modules")


def _adapter_mtime(run_dir: Path) -> float:
    return max((p.stat().st_mtime for p in (run_dir / "adapter").iterdir() if p.is_file()), default=0.0)


def saved_analysis(run_dir: Path) -> AnalysisResult | None:
    """RUN/analysis.json when it exists, reads back and is newer than the adapter; else None."""
    path = run_dir / "analysis.json"
    if not path.exists() or path.stat().st_mtime < _adapter_mtime(run_dir):
        return None
    try:
        return AnalysisResult.from_json(path)
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        log.warning("ignoring unreadable %s; recomputing", path)
        return None


def analyse_run(run_dir: Path, progress: Callable[[int, int, str], None] | None = None) -> AnalysisResult:
    """Load the run's base as it was trained (4-bit included) with its adapter, analyse, save analysis.json.

    Raises:
        ModelLoadError: the base model cannot be loaded.
        AdapterError: the adapter does not fit the base.
    """
    from peft import PeftModel

    from core import config as C
    from core import models as M
    from core.errors import AdapterError

    cfg = C.load_yaml(run_dir / "config.yaml")
    info = read_run_info(run_dir)
    resolved = info.get("resolved_base_model") or None
    with _LOCK:
        model, _tok, _ = M.load_model(cfg.model, resolved=resolved)
        try:
            peft_model = PeftModel.from_pretrained(model, str(run_dir / "adapter"))
        except (RuntimeError, ValueError, KeyError) as e:  # shape mismatch: an adapter of another base
            raise AdapterError(f"the adapter of {run_dir.name} does not fit its base model: "
                               f"{str(e).strip().splitlines()[0][:200]}", field="adapter") from None
        result = analyze_peft_model(peft_model, label=run_dir.name, progress=progress)
        del peft_model, model  # free the weights before the next analysis
        gc.collect()
    result.save_json(run_dir / "analysis.json")
    return result


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

        rows.append({t("an_metric", lang): t(f"m_{key}", lang), a.label or "A": fmt(cell.get("a")),
                     (b.label if b.label != a.label else f"{b.label} (B)") or "B": fmt(cell.get("b")),
                     t("an_delta", lang): fmt(cell.get("delta"))})
    return pd.DataFrame(rows)


def analyze(run: str | None, run_b: str | None, force: bool, lang: str, runs_dir: str,
            progress: gr.Progress = gr.Progress()) -> tuple:
    """Analyse one run (and optionally a second), reusing saved analyses.

    Returns:
        (status HTML, reading Markdown, heatmap A, heatmap B update, spectra, intruders,
         module selector update, comparison frame update, results for the state)
    """
    empty = (None, gr.update(visible=False), None, None, gr.update(), gr.update(visible=False), [])
    if not run:
        return (note_html(t("pick_run", lang), "warn"), "", *empty)
    picked = [run] + ([run_b] if run_b and run_b != run else [])
    results: list[AnalysisResult] = []
    notes: list[str] = []
    try:
        for i, name in enumerate(picked):
            run_dir = resolve_run(runs_dir, name)
            result = None if force else saved_analysis(run_dir)
            if result is not None:
                notes.append(t("an_reused", lang, run=name))
            else:
                progress((i / len(picked)), desc=t("an_loading", lang, run=name))

                def report(done: int, total: int, module: str, i: int = i, name: str = name) -> None:
                    progress((i + done / max(total, 1)) / len(picked), desc=t("an_progress", lang, run=name,
                                                                               module=module))

                result = analyse_run(run_dir, report)
                notes.append(t("an_computed", lang, run=name, n=len(result.modules), s=num(result.runtime_s, lang),
                               path=run_dir / "analysis.json"))
            result.label = name
            results.append(result)
    except Exception as e:  # noqa: BLE001 - the GUI edge: every failure becomes a message (traceback logged)
        return (error_html(e, lang), "", *empty)

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


_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
            "#17becf")


def spectra_figure(results: list[AnalysisResult], modules: list[str] | None, lang: str):
    """core's spectra figure; with a single run each module gets its own colour (core colours by run)."""
    fig = fig_spectra(results, modules or None, lang=lang)
    if len(results) == 1:
        for i, trace in enumerate(fig.data):
            trace.line.color = _PALETTE[i % len(_PALETTE)]
    return fig


def intruders_figure(results: list[AnalysisResult], lang: str):
    fig = fig_intruders(results, lang=lang)
    fig.update_yaxes(rangemode="nonnegative")  # counts: no negative axis when every count is zero
    return fig


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
    choices = [(t("an_none", lang), "")] + run_choices(runs_dir, lang)
    return gr.update(choices=choices, value=run_b if run_b in [v for _, v in choices] else "")


def _refresh_both(run: str | None, run_b: str | None, lang: str, runs_dir: str) -> tuple[dict, dict]:
    return refresh_runs(run, lang, runs_dir), refresh_run_b(run_b, lang, runs_dir)


def build(ctx: AppContext) -> AnalysisTab:
    lang = ctx.lang
    lang_state = gr.State(lang)
    runs_state = gr.State(str(ctx.runs_dir))
    choices = run_choices(ctx.runs_dir, lang)
    gr.Markdown(t("an_intro", lang))
    with gr.Row():
        run = gr.Dropdown(choices=choices, value=default_run(ctx.runs_dir), label=t("run", lang),
                          info=no_runs_info(choices, lang), scale=3)
        run_b = gr.Dropdown(choices=[(t("an_none", lang), "")] + choices, value="", label=t("an_run_b", lang),
                            scale=3)
        refresh = gr.Button(t("refresh_runs", lang), scale=1, size="sm")
    with gr.Row():
        analyze_btn = gr.Button(t("an_button", lang), variant="primary", scale=2)
        force = gr.Checkbox(value=False, label=t("an_recompute", lang), scale=3)
    status = gr.HTML()
    reading = gr.Markdown(label=t("an_reading", lang))
    comparison = gr.Dataframe(label=t("an_compare", lang), visible=False, interactive=False)
    with gr.Row():
        heatmap = gr.Plot(show_label=False)
        heatmap_b = gr.Plot(show_label=False, visible=False)
    modules = gr.Dropdown(choices=[], value=[], multiselect=True, label=t("an_modules", lang),
                          info=t("an_modules_info", lang))
    with gr.Row():
        spectra = gr.Plot(show_label=False)
        intruders = gr.Plot(show_label=False)
    results = gr.State([])

    refresh.click(_refresh_both, [run, run_b, lang_state, runs_state], [run, run_b], api_visibility="private")
    link_run_picker(ctx, run)
    # the second dropdown is re-listed on page load and when opened, as link_run_picker does for the first
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
