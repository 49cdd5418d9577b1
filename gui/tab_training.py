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
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from core import config as C
from core import train as T
from gui.common import AppContext, effective_config, error_html, json_safe, note_html
from gui.i18n import register, t

log = logging.getLogger("lora_studio.gui")

TAB_TITLE = {"en": "Training", "vi": "Huấn luyện"}
POLL_S = 1.5
EMA_ALPHA = 0.2  # weight of the newest point in the smoothed loss
LOG_TAIL_BYTES = 6000

TEXT = register(__name__, {
    "tr.intro": {"en": "Start training with the dataset and settings of the first two tabs. You can close this page: "
                       "training goes on, and the page shows it again when you come back.",
                 "vi": "Bắt đầu huấn luyện với dữ liệu và thiết lập ở hai thẻ đầu. Bạn có thể đóng trang này: việc "
                       "huấn luyện vẫn tiếp tục, và trang sẽ hiện lại tiến độ khi bạn quay lại."},
    "tr.run_name": {"en": "Run name (optional)", "vi": "Tên lần chạy (không bắt buộc)"},
    "tr.run_name.info": {"en": "Empty: date, model and rank, e.g. 20250101-120000-smollm2-135m-instruct-r16",
                         "vi": "Để trống: ngày giờ, mô hình và hạng, ví dụ 20250101-120000-smollm2-135m-instruct-r16"},
    "tr.start": {"en": "▶ Start training", "vi": "▶ Bắt đầu huấn luyện"},
    "tr.stop": {"en": "■ Stop", "vi": "■ Dừng"},
    "tr.stopping": {"en": "Stopping after the current step; the adapter and a checkpoint will be saved.",
                    "vi": "Sẽ dừng sau bước hiện tại; adapter và checkpoint sẽ được lưu."},
    "tr.nothing": {"en": "No training is running.", "vi": "Không có lần huấn luyện nào đang chạy."},
    "tr.status.idle": {"en": "Ready", "vi": "Sẵn sàng"},
    "tr.status.loading": {"en": "Loading the model and data", "vi": "Đang nạp mô hình và dữ liệu"},
    "tr.status.training": {"en": "Training", "vi": "Đang huấn luyện"},
    "tr.status.stopping": {"en": "Stopping", "vi": "Đang dừng"},
    "tr.status.finished": {"en": "Finished", "vi": "Đã xong"},
    "tr.status.stopped": {"en": "Stopped", "vi": "Đã dừng"},
    "tr.status.failed": {"en": "Failed", "vi": "Thất bại"},
    "tr.status.running": {"en": "Running", "vi": "Đang chạy"},
    "tr.step": {"en": "step {s} / {m}", "vi": "bước {s} / {m}"},
    "tr.epoch": {"en": "epoch {e:.2f}", "vi": "epoch {e:.2f}"},
    "tr.elapsed": {"en": "elapsed {x}", "vi": "đã chạy {x}"},
    "tr.eta": {"en": "about {x} left", "vi": "còn khoảng {x}"},
    "tr.speed": {"en": "{x:,.0f} tokens/s", "vi": "{x:,.0f} token/giây"},
    "tr.loss": {"en": "loss {x:.4f}", "vi": "loss {x:.4f}"},
    "tr.eval_loss": {"en": "eval loss {x:.4f}", "vi": "eval loss {x:.4f}"},
    "tr.run_dir": {"en": "Run folder", "vi": "Thư mục lần chạy"},
    "tr.msg.loading": {"en": "loading the model", "vi": "đang nạp mô hình"},
    "tr.msg.preparing": {"en": "preparing the data", "vi": "đang chuẩn bị dữ liệu"},
    "tr.msg.resumed": {"en": "training, resumed from step {n}", "vi": "đang huấn luyện tiếp từ bước {n}"},
    "tr.msg.training": {"en": "training", "vi": "đang huấn luyện"},
    "tr.msg.evaluating": {"en": "computing the validation loss", "vi": "đang tính loss trên tập kiểm định"},
    "tr.msg.saving": {"en": "saving the adapter", "vi": "đang lưu adapter"},
    "tr.msg.stopping": {"en": "stopping after the current step", "vi": "sẽ dừng sau bước hiện tại"},
    "tr.msg.finished": {"en": "finished {n} steps; the adapter is saved",
                        "vi": "đã xong {n} bước; adapter đã được lưu"},
    "tr.msg.stopped": {"en": "stopped at step {n}; the adapter is saved",
                       "vi": "đã dừng ở bước {n}; adapter đã được lưu"},
    "tr.none_yet": {"en": "No run yet. Press Start.", "vi": "Chưa có lần chạy nào. Hãy bấm Bắt đầu."},
    "tr.from_disk": {"en": "last run (from disk)", "vi": "lần chạy gần nhất (đọc từ đĩa)"},
    "tr.curves": {"en": "Learning curves", "vi": "Đường cong học"},
    "tr.plot.loss": {"en": "Training loss", "vi": "Loss huấn luyện"},
    "tr.plot.lr": {"en": "Learning rate", "vi": "Tốc độ học"},
    "tr.plot.grad": {"en": "Gradient norm", "vi": "Chuẩn gradient"},
    "tr.plot.step": {"en": "step", "vi": "bước"},
    "tr.trace.raw": {"en": "loss (raw)", "vi": "loss (thô)"},
    "tr.trace.ema": {"en": "loss (smoothed)", "vi": "loss (làm mượt)"},
    "tr.trace.eval": {"en": "eval loss", "vi": "eval loss"},
    "tr.log": {"en": "Log (train.log)", "vi": "Nhật ký (train.log)"},
    "tr.warnings": {"en": "Warnings", "vi": "Cảnh báo"},
    "tr.past": {"en": "Past runs", "vi": "Các lần chạy trước"},
    "tr.past.pick": {"en": "Runs to compare", "vi": "Chọn các lần chạy để so sánh"},
    "tr.past.refresh": {"en": "↻ Refresh", "vi": "↻ Làm mới"},
    "tr.past.title": {"en": "Training loss (smoothed) of the chosen runs",
                      "vi": "Loss huấn luyện (làm mượt) của các lần chạy đã chọn"},
})


# --------------------------------------------------------------------------- the job the page follows

_lock = threading.Lock()
_started: T.TrainingJob | None = None  # the last job this app started (it stays readable after it ends)


def start_job(cfg: C.RunConfig, runs_dir: Path) -> T.TrainingJob:
    """Start a run in the background; JobError while another one holds the slot."""
    global _started
    with _lock:
        job = T.TrainingJob(cfg, runs_dir).start()
        _started = job
    return job


def current_job() -> T.TrainingJob | None:
    """The engine's active job, else the last one this app started (finished jobs leave the slot)."""
    return T.active_job() or _started


def _latest_run(runs_dir: Path) -> dict | None:
    runs = T.list_runs(runs_dir)
    return runs[0] if runs else None


@dataclass
class RunView:
    """What the page shows of one run, from a live job or from its folder."""

    status: dict  # JobStatus.to_dict() shape
    run_dir: str | None
    live: bool


def current_run(runs_dir: Path) -> RunView:
    """The live job if there is one, else the newest run folder, else an idle placeholder."""
    job = current_job()
    if job is not None:
        return RunView(job.status().to_dict(), str(job.run_dir) if job.run_dir else None, True)
    info = _latest_run(runs_dir)
    if info is None:
        return RunView(T.JobStatus("idle", None).to_dict(), None, False)
    status = T.JobStatus(status=info.get("status", "idle"), run_dir=info["run_dir"], step=int(info.get("step") or 0),
                         max_steps=int(info.get("max_steps") or 0), elapsed=float(info.get("train_seconds") or 0.0),
                         error=info.get("error"), warnings=list(info.get("warnings") or []))
    # note: a run.json may say "training" for a run of another process (the CLI) or of one that died;
    # it is shown as read, marked "from disk", and this app cannot stop it
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


def progress_html(status: dict, lang: str, live: bool = True) -> str:
    """A progress bar with step/max, epoch, elapsed, ETA, tokens/s, the last losses and the status."""
    state = status.get("status", "idle")
    step, max_steps = int(status.get("step") or 0), int(status.get("max_steps") or 0)
    pct = 100.0 * step / max_steps if max_steps else (100.0 if state == "finished" else 0.0)
    label = t(f"tr.status.{state}", lang) if f"tr.status.{state}" in TEXT else state
    if not live and status.get("run_dir"):
        label += f" · {t('tr.from_disk', lang)}"
    facts = []
    if max_steps:
        facts.append(t("tr.step", lang, s=step, m=max_steps))
    if status.get("epoch"):
        facts.append(t("tr.epoch", lang, e=float(status["epoch"])))
    if status.get("elapsed"):
        facts.append(t("tr.elapsed", lang, x=_clock(status["elapsed"])))
    if status.get("eta") is not None and state in ("training", "stopping"):
        facts.append(t("tr.eta", lang, x=_clock(status["eta"])))
    if status.get("tokens_per_s"):
        facts.append(t("tr.speed", lang, x=float(status["tokens_per_s"])))
    if status.get("loss") is not None:
        facts.append(t("tr.loss", lang, x=float(status["loss"])))
    if status.get("eval_loss") is not None:
        facts.append(t("tr.eval_loss", lang, x=float(status["eval_loss"])))
    running = " ls-running" if state in ("loading", "training", "stopping") else ""
    out = (f'<div class="ls-progress ls-state-{state}{running}" id="tr-progress" data-status="{html.escape(state)}" '
           f'data-step="{step}" data-max-steps="{max_steps}">'
           f'<div class="ls-progress-head"><span class="ls-badge ls-badge-{state}">{html.escape(label)}</span>'
           f'<span class="ls-progress-pct">{pct:.0f}%</span></div>'
           f'<div class="ls-bar"><div class="ls-bar-fill" style="width:{pct:.1f}%"></div></div>'
           f'<div class="ls-facts">{" · ".join(html.escape(f) for f in facts)}</div>')
    message = engine_message(status.get("message") or "", lang)
    if message and state not in ("failed",) and message.casefold() != label.casefold():
        out += f'<div class="ls-message">{html.escape(message)}</div>'
    if status.get("run_dir"):
        out += (f'<div class="ls-rundir">{html.escape(t("tr.run_dir", lang))}: '
                f'<code>{html.escape(str(status["run_dir"]))}</code></div>')
    out += "</div>"
    if state == "failed" and status.get("error"):
        out += f'<div class="ls-error" role="alert">{html.escape(t("error_prefix", lang))}: ' \
               f'{html.escape(str(status["error"]))}</div>'
    if status.get("warnings"):
        items = "".join(f"<li>{html.escape(str(w))}</li>" for w in status["warnings"])
        out += f'<div class="ls-note ls-warn"><b>{html.escape(t("tr.warnings", lang))}</b><ul>{items}</ul></div>'
    return out


_MESSAGES = (  # the engine's status lines (core/train.py), as users read them
    (re.compile(r"loading the model"), "tr.msg.loading"),
    (re.compile(r"preparing the data"), "tr.msg.preparing"),
    (re.compile(r"training from step (?P<n>\d+)"), "tr.msg.resumed"),
    (re.compile(r"training"), "tr.msg.training"),
    (re.compile(r"evaluating"), "tr.msg.evaluating"),
    (re.compile(r"saving the adapter"), "tr.msg.saving"),
    (re.compile(r"stopping after the current step"), "tr.msg.stopping"),
    (re.compile(r"finished (?P<n>\d+) steps; adapter saved"), "tr.msg.finished"),
    (re.compile(r"stopped at step (?P<n>\d+); adapter saved"), "tr.msg.stopped"),
)


def engine_message(message: str, lang: str) -> str:
    """The engine's English status line in the page's language (unknown lines are shown as they are)."""
    for pattern, key in _MESSAGES:
        m = pattern.fullmatch(message.strip())
        if m:
            return t(key, lang, **m.groupdict())
    return message


def ema(values: list[float], alpha: float = EMA_ALPHA) -> list[float]:
    out, acc = [], None
    for v in values:
        acc = v if acc is None else alpha * v + (1 - alpha) * acc
        out.append(acc)
    return out


def curves_figure(records: list[dict], lang: str):
    """Loss (raw, smoothed, eval) over the whole width; learning rate and gradient norm below."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    train = [r for r in records if r.get("loss") is not None]
    evals = [r for r in records if r.get("eval_loss") is not None]
    fig = make_subplots(rows=2, cols=2, specs=[[{"colspan": 2}, None], [{}, {}]], vertical_spacing=0.16,
                        horizontal_spacing=0.1, row_heights=[0.62, 0.38],
                        subplot_titles=(t("tr.plot.loss", lang), t("tr.plot.lr", lang), t("tr.plot.grad", lang)))
    steps = [r["step"] for r in train]
    losses = [r["loss"] for r in train]
    fig.add_trace(go.Scatter(x=steps, y=losses, mode="lines", name=t("tr.trace.raw", lang),
                             line=dict(color="rgba(20,184,166,0.35)", width=1.5)), row=1, col=1)
    fig.add_trace(go.Scatter(x=steps, y=ema(losses), mode="lines", name=t("tr.trace.ema", lang),
                             line=dict(color="#0f766e", width=3)), row=1, col=1)
    if evals:
        fig.add_trace(go.Scatter(x=[r["step"] for r in evals], y=[r["eval_loss"] for r in evals],
                                 mode="lines+markers", name=t("tr.trace.eval", lang),
                                 line=dict(color="#f97316", width=2), marker=dict(size=8)), row=1, col=1)
    lr = [r for r in train if r.get("learning_rate") is not None]
    fig.add_trace(go.Scatter(x=[r["step"] for r in lr], y=[r["learning_rate"] for r in lr], mode="lines",
                             name=t("tr.plot.lr", lang), line=dict(color="#6366f1", width=2), showlegend=False),
                  row=2, col=1)
    gn = [r for r in train if r.get("grad_norm") is not None]
    fig.add_trace(go.Scatter(x=[r["step"] for r in gn], y=[r["grad_norm"] for r in gn], mode="lines",
                             name=t("tr.plot.grad", lang), line=dict(color="#e11d48", width=1.5), showlegend=False),
                  row=2, col=2)
    fig.update_layout(template="plotly_white", height=520, margin=dict(l=55, r=20, t=40, b=40),
                      legend=dict(orientation="h", yanchor="bottom", y=1.04, xanchor="right", x=1),
                      uirevision="curves")  # keeps the user's zoom across updates
    fig.update_xaxes(title_text=t("tr.plot.step", lang), row=2, col=1)
    fig.update_xaxes(title_text=t("tr.plot.step", lang), row=2, col=2)
    fig.update_yaxes(exponentformat="e", row=2, col=1)
    return fig


def runs_overlay_figure(run_dirs: list[str], lang: str):
    import plotly.graph_objects as go

    fig = go.Figure()
    for d in run_dirs or []:
        records = [r for r in T.read_metrics(Path(d)) if r.get("loss") is not None]
        if not records:
            continue
        fig.add_trace(go.Scatter(x=[r["step"] for r in records], y=ema([r["loss"] for r in records]), mode="lines",
                                 name=Path(d).name, line=dict(width=2.5)))
        evals = [r for r in T.read_metrics(Path(d)) if r.get("eval_loss") is not None]
        if evals:
            fig.add_trace(go.Scatter(x=[r["step"] for r in evals], y=[r["eval_loss"] for r in evals],
                                     mode="markers", name=f"{Path(d).name} · eval", marker=dict(size=9)))
    fig.update_layout(template="plotly_white", height=380, margin=dict(l=55, r=20, t=40, b=40),
                      title=t("tr.past.title", lang), xaxis_title=t("tr.plot.step", lang), yaxis_title="loss",
                      legend=dict(orientation="h", yanchor="top", y=-0.2))
    return fig


def log_tail(run_dir: str | None, n_bytes: int = LOG_TAIL_BYTES) -> str:
    """The last lines of the run's train.log (whole lines only)."""
    if not run_dir:
        return ""
    path = Path(run_dir) / "train.log"
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - n_bytes))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    if size > n_bytes and "\n" in data:
        data = data.split("\n", 1)[1]
    return data


def run_choices(runs_dir: Path) -> list[tuple[str, str]]:
    out = []
    for r in T.list_runs(runs_dir):
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


def stop_training(lang: str) -> str:
    job = T.active_job()
    if job is None or job.state in T.FINAL:
        return note_html(t("tr.nothing", lang), "info")
    job.stop()
    return note_html(t("tr.stopping", lang), "warn")


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
        records = T.read_metrics(Path(run_dir)) if run_dir else []
    key = f"{run_dir}|{len(records)}|{status.get('status')}"
    plot = curves_figure(records, lang) if key != last else gr.skip()
    progress = progress_html(status, lang, view.live) if run_dir or view.live else note_html(t("tr.none_yet", lang))
    new_selected = run_dir if run_dir and run_dir != seen_run else gr.skip()
    new_seen = run_dir if run_dir and run_dir != seen_run else gr.skip()
    # the past-runs list changes when a run appears or ends
    choices = gr.update(choices=run_choices(runs_dir)) if key.split("|")[::2] != last.split("|")[::2] else gr.skip()
    return progress, plot, log_tail(run_dir), key, new_selected, new_seen, choices


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

    gr.Markdown(t("tr.intro", lang), elem_classes=["ls-intro"])
    with gr.Row(equal_height=False):
        run_name = gr.Textbox(label=t("tr.run_name", lang), info=t("tr.run_name.info", lang), scale=3,
                              elem_id="tr-run-name")
        with gr.Column(scale=2, min_width=320):
            with gr.Row():
                start = gr.Button(t("tr.start", lang), variant="primary", size="lg", scale=2, elem_id="tr-start")
                stop = gr.Button(t("tr.stop", lang), variant="stop", size="lg", scale=1, elem_id="tr-stop")
    message = gr.HTML(elem_id="tr-message")
    progress = gr.HTML(elem_id="tr-status")
    gr.Markdown(f"### {t('tr.curves', lang)}")
    plot = gr.Plot(show_label=False, elem_id="tr-plot")
    log_box = gr.Textbox(label=t("tr.log", lang), lines=10, max_lines=10, interactive=False, autoscroll=True,
                         elem_id="tr-log", elem_classes=["ls-log"])
    with gr.Accordion(t("tr.past", lang), open=False, elem_id="tr-past"):
        with gr.Row(equal_height=True):
            runs = gr.Dropdown(run_choices(runs_dir), multiselect=True, label=t("tr.past.pick", lang), scale=4,
                               elem_id="tr-runs")
            refresh = gr.Button(t("tr.past.refresh", lang), size="sm", scale=0, min_width=120)
        overlay = gr.Plot(show_label=False, elem_id="tr-overlay")
    timer = gr.Timer(POLL_S)
    last = gr.State("")
    seen_run = gr.State(None)

    def _start(config, dataset, run_name):  # the names gradio_client shows
        return start_training(config, dataset, run_name, lang, runs_dir)

    def _poll(l, seen):
        return poll(l, seen, lang, runs_dir)

    def _status() -> dict:
        return training_status(runs_dir)

    poll_outputs = [progress, plot, log_box, last, ctx.selected_run, seen_run, runs]
    start.click(_start, [ctx.config, ctx.dataset, run_name], message, api_name="start_training"
                ).then(_poll, [last, seen_run], poll_outputs, api_name=False)
    stop.click(lambda: stop_training(lang), None, message, api_name="stop_training")
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
