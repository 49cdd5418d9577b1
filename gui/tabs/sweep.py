"""The Sweep section of the Training tab: the current settings trained over a grid of values, one run after
another (:mod:`core.sweep`), with every run's curve overlaid and the results table, the best marked.

The sweep runs in a background thread of the app; each of its runs is an ordinary TrainingJob, so the Training
tab's progress panel and its Stop button follow and stop the live run. Starting a stopped sweep again (same
name) resumes it where it stopped.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from core import config as C
from core.errors import ConfigError
from core.locale import text as t
from core.run import RunFolder, write_text_atomic
from core.sweep import Sweep, parse_grid, sweep_folder
from core.train.job import active_job
from gui.edge import error_html, note_html
from gui.render.figures import runs_overlay_figure
from gui.state import AppContext, effective_config

log = logging.getLogger("lora_studio.gui")

PRESET = "preset.yaml"  # the settings a GUI sweep started from, next to its sweep.json
_lock = threading.Lock()
_thread: threading.Thread | None = None
# the seeds' advice: keep the effective scale (alpha/r, or alpha/√r with rsLoRA) between 1 and 4
SCALE_LOW, SCALE_HIGH = 1.0, 4.0


def _lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip() and not line.strip().startswith("#")]


def plan_sweep(config: dict, dataset: dict | None, grid_text: str, sets_text: str, name: str,
               runs_dir: Path) -> Sweep:
    """The sweep of the form's settings over the grid; its starting settings are written once, next to sweep.json.

    Raises:
        ConfigError: a bad grid line or setting, or a sweep of that name that started from other settings.
    """
    grid = parse_grid(_lines(grid_text), flag="grid")
    sets = _lines(sets_text)
    cfg = effective_config(config, dataset)
    for expr in sets:  # every extra setting checked before anything is written (the grid: by Sweep.plan)
        C.set_value(cfg, *C.parse_set(expr))
    C.check(cfg)
    cfg = effective_config(config, dataset)
    name = (name or "").strip() or "gui-" + "-".join(k.rpartition(".")[2] for k in grid)
    preset = sweep_folder(runs_dir, name) / PRESET
    text = C.dump_yaml(cfg)
    if preset.exists() and preset.read_text(encoding="utf-8") != text:
        raise ConfigError(f"sweep {name!r} already exists and started from other settings; choose another name "
                          "(or put the settings back to resume it)", field="name")
    new = not preset.exists()
    if new:
        preset.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(preset, text)
    try:
        return Sweep.plan(preset, grid, runs_dir, sets=sets, name=name)
    except Exception:
        if new:  # a refused grid leaves nothing behind
            preset.unlink(missing_ok=True)
        raise


def start_sweep(config: dict, dataset: dict | None, grid_text: str, sets_text: str, name: str, lang: str,
                runs_dir: Path) -> tuple[str, str]:
    """Plan and start in the background: (message HTML, the sweep's name for the view; "" when refused)."""
    global _thread
    try:
        with _lock:
            if (_thread is not None and _thread.is_alive()) or active_job() is not None:
                return note_html(t("sweep.busy", lang), "warn"), gr.skip()
            sweep = plan_sweep(config, dataset, grid_text, sets_text, name, runs_dir)
            sweep.save()
            _thread = threading.Thread(target=_run, args=(sweep,), name="lora-studio-sweep", daemon=True)
            _thread.start()
    except Exception as e:  # noqa: BLE001 - the GUI edge: a bad grid, a name taken by other settings
        return error_html(e, lang), ""
    return note_html(t("sweep.started", lang, name=sweep.name, n=len(sweep.runs)), "info"), sweep.name


_failures: dict[str, BaseException] = {}  # a sweep's failed run, by sweep name: shown by view()


def _run(sweep: Sweep) -> None:
    _failures.pop(sweep.name, None)
    try:
        sweep.run(log=log.info)
    except Exception as e:  # noqa: BLE001 - a thread: the failure is logged, kept for the page, in sweep.json
        log.exception("sweep %s failed", sweep.name)
        _failures[sweep.name] = e


def advice(scale: float) -> str:
    """A code of the seeds' advice on the effective LoRA scale (sweep.advice.<code>)."""
    return "low" if scale < SCALE_LOW else "high" if scale > SCALE_HIGH else "ok"


def table_rows(sweep: Sweep, lang: str) -> tuple[list[str], list[list]]:
    """The results table: one row per run, the grid's values (the only settings that differ between runs)."""
    keys = list(sweep.grid)
    head = ["", t("sweep.col.run", lang), *keys, "alpha/r", "alpha/√r", t("sweep.col.advice", lang),
            t("sweep.col.state", lang), t("sweep.col.final_loss", lang), t("sweep.col.best_eval", lang),
            t("sweep.col.seconds", lang)]
    rows = []
    scales = {e["index"]: e.get("scale", e["alpha_over_r"]) for e in sweep.runs}
    for n, r in enumerate(sweep.table()):
        rows.append(["★" if r["best"] else "", r["run"], *[r[k] for k in keys], r["alpha/r"], r["alpha/√r"],
                     t("sweep.advice." + advice(scales[n]), lang), t("training.status." + r["state"], lang)
                     if r["state"] != "pending" else t("sweep.pending", lang), _num(r.get("final_train_loss")),
                     _num(r.get("best_eval_loss")), _num(r.get("train_seconds"), "{:.0f}")])
    return head, rows


def _num(x, fmt: str = "{:.4f}") -> str:
    return fmt.format(x) if isinstance(x, (int, float)) else "—"


def view(name: str | None, last: str, lang: str, runs_dir: Path) -> tuple:
    """One tick: (table, overlay, status line, key); unchanged parts are skipped."""
    sweep = Sweep.load(runs_dir, name) if name else None
    if sweep is None:
        return gr.skip(), gr.skip(), gr.skip(), last
    dirs = [e["run_dir"] for e in sweep.runs if e.get("run_dir")]
    metrics = [RunFolder(Path(d)).metrics for d in dirs]
    sizes = [m.stat().st_size if m.exists() else 0 for m in metrics]
    key = json.dumps([sweep.name, [e["state"] for e in sweep.runs], sizes, sweep.name in _failures])
    if key == last:
        return gr.skip(), gr.skip(), gr.skip(), last
    head, rows = table_rows(sweep, lang)
    done = sum(e["state"] == "finished" for e in sweep.runs)
    status = note_html(t("sweep.status", lang, name=sweep.name, done=done, n=len(sweep.runs)),
                       "ok" if sweep.complete else "info")
    for e in sweep.runs:
        if e.get("error"):
            status += note_html(f"{e['run_name']}: {e['error']}", "error")
    if sweep.name in _failures:
        status += error_html(_failures[sweep.name], lang)
    return gr.update(value=rows, headers=head), runs_overlay_figure(dirs, lang), status, key


@dataclass
class SweepSection:
    grid: gr.Textbox
    sets: gr.Textbox
    name: gr.Textbox
    start: gr.Button
    message: gr.HTML
    table: gr.Dataframe
    overlay: gr.Plot


def build(ctx: AppContext) -> SweepSection:
    """The section, inside the Training tab (an accordion)."""
    lang, runs_dir = ctx.lang, ctx.runs_dir
    with gr.Accordion(t("sweep.title", lang), open=False, elem_id="tr-sweep"):
        gr.Markdown(t("sweep.intro", lang))
        with gr.Row(equal_height=False):
            grid = gr.Textbox(label=t("sweep.grid", lang), info=t("sweep.grid.info", lang), lines=3,
                              value="lora.r=8,16,64\nlora.use_rslora=false,true", elem_id="sw-grid", scale=3)
            sets = gr.Textbox(label=t("sweep.sets", lang), info=t("sweep.sets.info", lang), lines=3,
                              elem_id="sw-sets", scale=2)
        with gr.Row(equal_height=True):
            name = gr.Textbox(label=t("sweep.name", lang), info=t("sweep.name.info", lang), elem_id="sw-name", scale=3)
            start = gr.Button(t("sweep.start", lang), variant="primary", elem_id="sw-start", scale=1)
        message = gr.HTML(elem_id="sw-message")
        table = gr.Dataframe(interactive=False, wrap=True, elem_id="sw-table", label=t("sweep.table", lang))
        overlay = gr.Plot(show_label=False, elem_id="sw-overlay")
    current = gr.State("")
    last = gr.State("")
    timer = gr.Timer(3.0)

    def _start(config, dataset, g, s, n):
        return start_sweep(config, dataset, g, s, n, lang, runs_dir)

    start.click(_start, [ctx.config, ctx.dataset, grid, sets, name], [message, current], api_name="start_sweep")
    timer.tick(lambda n, k: view(n, k, lang, runs_dir), [current, last], [table, overlay, message, last],
               api_name=False, show_progress="hidden")
    return SweepSection(grid, sets, name, start, message, table, overlay)

