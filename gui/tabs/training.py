"""Training tab: Start / Stop, a live progress bar and curves, the run's log, and past runs overlaid.

The run lives in the engine (``core.train``), not in the page: closing or reloading the page does
not stop it, and a page opened later (in either language) re-attaches to the same job through
:func:`current_run`. A ``gr.Timer`` polls it every ``POLL_S`` seconds; the poll reads only
in-memory status and the tail of two small files, so it answers in milliseconds.
"""

from __future__ import annotations

import html
import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from core import config as C
from core import locale
from core.locale import text as t
from core.errors import JobError
from core.paths import safe_join
from core.run import FINAL, RunFolder, Status, list_runs, read_metrics
from core.train.job import JobStatus, TrainingJob, active_job, claim
from core.train.launch import FollowedRun, check_nproc, live_launched_runs, start_in_background
from core.train.resume import SCHEDULES, More
from gui.edge import error_html, note_html
from gui.render.figures import curves_figure, runs_overlay_figure
from gui.tabs import sweep as tab_sweep
from gui.state import AppContext, effective_config, json_safe

log = logging.getLogger("lora_studio.gui")

POLL_S = 1.5

# --------------------------------------------------------------------------- the job the page follows

_lock = threading.Lock()
_started: TrainingJob | FollowedRun | None = None  # the last job this app started (readable after it ends)


def start_job(cfg: C.RunConfig, runs_dir: Path, **kwargs) -> TrainingJob | FollowedRun:
    """Start a run in the background (``kwargs``: TrainingJob's resume_dir, more); JobError while another one
    holds the slot.

    With ``train.nproc`` > 1 the run is the CLI's launcher in a process of its own (``core.train.launch``), which
    goes on if the app is closed; the page follows it through its folder, as after a restart (:func:`reattach`).
    """
    global _started
    with _lock:
        if cfg.train.nproc > 1:
            check_nproc(cfg)  # before a process starts: its refusal here, in the page's message
            # the slot first: no process starts while another job trains
            job = claim(start=lambda: start_in_background(cfg, runs_dir, resume_dir=kwargs.get("resume_dir"),
                                                          more=kwargs.get("more")))
        else:
            job = TrainingJob(cfg, runs_dir, **kwargs).start()
        _started = job
    return job


def reattach(runs_dir: Path) -> FollowedRun | None:
    """At app start: follow a multi-process run of this runs folder that is still training (its processes outlive
    the app), so that its progress, curves and Stop are there again."""
    global _started
    for folder in live_launched_runs(runs_dir):
        run = FollowedRun(folder=folder, runs_dir=runs_dir)
        if run.state in FINAL:
            continue
        with _lock:
            try:
                claim(run)
            except JobError:
                return None
            _started = run
        log.info("following the multi-process run %s", folder.path)
        return run
    return None


def current_job() -> TrainingJob | FollowedRun | None:
    """The engine's active job, else the last one this app started (finished jobs leave the slot)."""
    return active_job() or _started


def _latest_run(runs_dir: Path) -> dict | None:
    runs = list_runs(runs_dir)
    return runs[0] if runs else None


@dataclass
class RunView:
    """What the page shows of one run, from a live job or from its folder."""

    status: dict  # JobStatus.to_dict() shape
    run_dir: str | None
    live: bool


def current_run(runs_dir: Path) -> RunView:
    """The running job if there is one, else the newest run folder as it is now, else an idle placeholder.

    A job of this app that has ended is shown from its folder, not from memory: another process (the CLI) may
    have resumed and finished it since.
    """
    job = current_job()
    if job is not None and job.state not in FINAL:
        return RunView(job.status().to_dict(), str(job.run_dir) if job.run_dir else None, True)
    info = _latest_run(runs_dir)
    if info is None:
        if job is not None:  # it ended before it made a folder (a bad setting): its message is all there is
            return RunView(job.status().to_dict(), None, True)
        return RunView(JobStatus("idle", None).to_dict(), None, False)
    status = JobStatus(status=info.get("status", "idle"), run_dir=info["run_dir"], step=int(info.get("step") or 0),
                         max_steps=int(info.get("max_steps") or 0), elapsed=float(info.get("train_seconds") or 0.0),
                         error=info.get("error"), warnings=list(info.get("warnings") or []))
    # note: "training" here is a run of another process (the CLI): this app cannot stop it; one whose process died
    # is "interrupted" (core.run.effective_status)
    return RunView(status.to_dict(), info["run_dir"], False)


def training_status(runs_dir: Path) -> dict:
    """The status of the job this app follows, JSON-safe; reads memory and run.json only (milliseconds)."""
    view = current_run(runs_dir)
    job = current_job()
    n = len(job.metrics) if job is not None and view.live else None
    return json_safe(dict(view.status, live=view.live, n_metrics=n))


# --------------------------------------------------------------------------- views (pure)

def _clock(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def stage_text(status: dict, lang: str) -> str:
    """What the job is doing (its stage code) in the page's language; a run read from disk has none."""
    stage = status.get("stage") or ""
    key = f"train.stage.{stage}"
    return t(key, lang, **(status.get("stage_args") or {})) if stage and locale.has(key) else ""


def progress_html(status: dict, lang: str, live: bool = True) -> str:
    """A progress bar with step/max, epoch, elapsed, ETA, tokens/s, the last losses and the status."""
    state = status.get("status", "idle")
    step, max_steps = int(status.get("step") or 0), int(status.get("max_steps") or 0)
    pct = 100.0 * step / max_steps if max_steps else (100.0 if state == "finished" else 0.0)
    label = t(f"training.status.{state}", lang) if locale.has(f"training.status.{state}") else state
    if not live and status.get("run_dir"):
        label += f" · {t('training.from_disk', lang)}"
    facts = []
    if max_steps:
        facts.append(t("training.step", lang, s=step, m=max_steps))
    if status.get("epoch"):
        facts.append(t("training.epoch", lang, e=float(status["epoch"])))
    if status.get("elapsed"):
        facts.append(t("training.elapsed", lang, x=_clock(status["elapsed"])))
    if status.get("eta") is not None and state in ("training", "stopping"):
        facts.append(t("training.eta", lang, x=_clock(status["eta"])))
    if status.get("tokens_per_s"):
        facts.append(t("training.speed", lang, x=float(status["tokens_per_s"])))
    if status.get("loss") is not None:
        facts.append(t("training.loss", lang, x=float(status["loss"])))
    if status.get("eval_loss") is not None:
        facts.append(t("training.eval_loss", lang, x=float(status["eval_loss"])))
    running = " ls-running" if state in ("loading", "training", "stopping") else ""
    out = (f'<div class="ls-progress ls-state-{state}{running}" id="tr-progress" data-status="{html.escape(state)}" '
           f'data-step="{step}" data-max-steps="{max_steps}">'
           f'<div class="ls-progress-head"><span class="ls-badge ls-badge-{state}">{html.escape(label)}</span>'
           f'<span class="ls-progress-pct">{pct:.0f}%</span></div>'
           f'<div class="ls-bar"><div class="ls-bar-fill" style="width:{pct:.1f}%"></div></div>'
           f'<div class="ls-facts">{" · ".join(html.escape(f) for f in facts)}</div>')
    message = stage_text(status, lang)
    if message and state not in ("failed",) and message.casefold() != label.casefold():
        out += f'<div class="ls-message">{html.escape(message)}</div>'
    if status.get("run_dir"):
        out += (f'<div class="ls-rundir">{html.escape(t("training.run_dir", lang))}: '
                f'<code>{html.escape(str(status["run_dir"]))}</code></div>')
    out += "</div>"
    if state == "failed" and status.get("error"):
        out += f'<div class="ls-error" role="alert">{html.escape(t("common.error_prefix", lang))}: ' \
               f'{html.escape(str(status["error"]))}</div>'
    if status.get("warnings"):
        items = "".join(f"<li>{html.escape(str(w))}</li>" for w in status["warnings"])
        out += f'<div class="ls-note ls-warn"><b>{html.escape(t("training.warnings", lang))}</b><ul>{items}</ul></div>'
    return out


def run_choices(runs_dir: Path) -> list[tuple[str, str]]:
    out = []
    for r in list_runs(runs_dir):
        out.append((f"{r['name']} · {r.get('status', '?')}", r["run_dir"]))
    return out


# --------------------------------------------------------------------------- handlers

def start_training(config: dict, dataset: dict, run_name: str, lang: str, runs_dir: Path) -> str:
    """Validate and start; every problem (a bad setting, a job already running) comes back as a message."""
    try:
        cfg = effective_config(config, dataset, run_name)
        C.check(cfg)
        start_job(cfg, runs_dir)
    except Exception as e:  # noqa: BLE001 - the GUI edge: a bad setting, a job already running (JobError)…
        return error_html(e, lang)
    return ""  # the progress panel shows the run from now on; this box is for problems


def continue_training(run_dir: str | None, more_steps: float | None, schedule: str, lang: str, runs_dir: Path) -> str:
    """The selected run again: a stopped or interrupted one resumes, a finished one trains ``more_steps`` more."""
    if not run_dir:
        return note_html(t("training.more.none", lang), "info")
    try:
        folder = RunFolder(safe_join(runs_dir, Path(run_dir).name))
        if not folder.is_run():
            raise JobError(f"not a run folder of {runs_dir}: {Path(run_dir).name}", field="resume")
        more = None
        if folder.read_info().get("status") == str(Status.FINISHED):
            more = More(steps=int(more_steps or 0), schedule=schedule)
        start_job(folder.read_config(), runs_dir, resume_dir=folder.path, more=more)
    except Exception as e:  # noqa: BLE001 - the GUI edge: no checkpoint, a job already running…
        return error_html(e, lang)
    return ""


def stop_training(lang: str) -> str:
    job = active_job()
    if job is None or job.state in FINAL:
        return note_html(t("training.nothing", lang), "info")
    job.stop()
    return note_html(t("training.stopping", lang), "warn")


def poll(last: str, seen_run: str | None, lang: str, runs_dir: Path) -> tuple:
    """One timer tick: progress, curves (only when new points arrived), log tail, selected run, run list.

    ``last`` is "<run_dir>|<n records>|<status>"; when it is unchanged the plot is not re-sent.
    """
    view = current_run(runs_dir)
    status, run_dir = view.status, view.run_dir
    job = current_job()
    if view.live and job is not None:
        records = job.metrics.since(0)
    else:
        records = read_metrics(Path(run_dir)) if run_dir else []
    key = f"{run_dir}|{len(records)}|{status.get('status')}"
    plot = curves_figure(records, lang) if key != last else gr.skip()
    progress = progress_html(status, lang, view.live) if run_dir or view.live else note_html(t("training.none_yet", lang))
    new_selected = run_dir if run_dir and run_dir != seen_run else gr.skip()
    new_seen = run_dir if run_dir and run_dir != seen_run else gr.skip()
    # the past-runs list changes when a run appears or ends
    choices = gr.update(choices=run_choices(runs_dir)) if key.split("|")[::2] != last.split("|")[::2] else gr.skip()
    return progress, plot, RunFolder(Path(run_dir)).log_tail() if run_dir else "", key, new_selected, new_seen, choices


# --------------------------------------------------------------------------- layout

@dataclass
class TrainingTab:
    run_name: gr.Textbox
    start: gr.Button
    stop: gr.Button
    message: gr.HTML
    progress: gr.HTML
    plot: gr.Plot
    log: gr.Textbox
    runs: gr.Dropdown
    refresh: gr.Button
    overlay: gr.Plot
    timer: gr.Timer
    last: gr.State
    seen_run: gr.State


def build(ctx: AppContext) -> TrainingTab:
    lang, runs_dir = ctx.lang, ctx.runs_dir

    gr.Markdown(t("training.intro", lang), elem_classes=["ls-intro"])
    with gr.Row(equal_height=False):
        run_name = gr.Textbox(label=t("training.run_name", lang), info=t("training.run_name.info", lang), scale=3,
                              elem_id="tr-run-name")
        with gr.Column(scale=2, min_width=320):
            with gr.Row():
                start = gr.Button(t("training.start", lang), variant="primary", size="lg", scale=2, elem_id="tr-start")
                stop = gr.Button(t("training.stop", lang), variant="stop", size="lg", scale=1, elem_id="tr-stop")
    message = gr.HTML(elem_id="tr-message")
    progress = gr.HTML(elem_id="tr-status")
    gr.Markdown(f"### {t('training.curves', lang)}")
    plot = gr.Plot(show_label=False, elem_id="tr-plot")
    log_box = gr.Textbox(label=t("training.log", lang), lines=10, max_lines=10, interactive=False, autoscroll=True,
                         elem_id="tr-log", elem_classes=["ls-log"])
    with gr.Accordion(t("training.past", lang), open=False, elem_id="tr-past"):
        with gr.Row(equal_height=True):
            runs = gr.Dropdown(run_choices(runs_dir), multiselect=True, label=t("training.past.pick", lang), scale=4,
                               elem_id="tr-runs")
            refresh = gr.Button(t("training.past.refresh", lang), size="sm", scale=0, min_width=120)
        overlay = gr.Plot(show_label=False, elem_id="tr-overlay")
        gr.Markdown(t("training.more.info", lang))
        with gr.Row(equal_height=True):
            more_steps = gr.Number(50, precision=0, minimum=1, label=t("training.more.steps", lang), scale=1,
                                   elem_id="tr-more-steps")
            schedule = gr.Radio([(t(f"training.more.{s}", lang), s) for s in SCHEDULES], value=SCHEDULES[0],
                                label=t("training.more.schedule", lang), scale=3, elem_id="tr-more-schedule")
            more = gr.Button(t("training.more.button", lang), scale=1, elem_id="tr-more")
    tab_sweep.build(ctx)
    timer = gr.Timer(POLL_S)
    last = gr.State("")
    seen_run = gr.State(None)

    def _start(config, dataset, run_name):  # the names gradio_client shows
        return start_training(config, dataset, run_name, lang, runs_dir)

    def _poll(l, seen):
        return poll(l, seen, lang, runs_dir)

    async def _status() -> dict:  # on the event loop: no worker thread per call (the reply is a memory copy)
        return training_status(runs_dir)

    poll_outputs = [progress, plot, log_box, last, ctx.selected_run, seen_run, runs]
    start.click(_start, [ctx.config, ctx.dataset, run_name], message, api_name="start_training"
                ).then(_poll, [last, seen_run], poll_outputs, api_name=False)
    stop.click(lambda: stop_training(lang), None, message, api_name="stop_training")
    more.click(lambda run, n, sch: continue_training(run, n, sch, lang, runs_dir), [ctx.selected_run, more_steps, schedule],
               message, api_name="continue_training").then(_poll, [last, seen_run], poll_outputs, api_name=False)
    timer.tick(_poll, [last, seen_run], poll_outputs, api_name=False, concurrency_limit=None,
               show_progress="hidden")
    refresh.click(lambda: gr.update(choices=run_choices(runs_dir)), None, runs, api_name=False)
    runs.change(lambda ds: runs_overlay_figure(ds, lang), runs, overlay, api_name=False)
    runs.input(lambda ds: ds[-1] if ds else gr.skip(), runs, ctx.selected_run, api_name=False)
    gr.api(_status, api_name="training_status", concurrency_limit=None, queue=False)
    return TrainingTab(run_name, start, stop, message, progress, plot, log_box, runs, refresh, overlay, timer, last,
                       seen_run)


def initial_load(tab: TrainingTab, ctx: AppContext):
    """Event args for gui.app's ``demo.load``: re-attach to the running (or latest) run at once."""
    return (lambda seen: poll("", seen, ctx.lang, ctx.runs_dir)), [tab.seen_run], [
        tab.progress, tab.plot, tab.log, tab.last, ctx.selected_run, tab.seen_run, tab.runs]
