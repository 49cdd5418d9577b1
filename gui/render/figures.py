"""Figures, in the page's language: the training curves and the analysis of an adapter's weights (plotly).

Pure functions from data (metric records, :class:`core.analysis.result.AnalysisResult`) to figures; no
gradio, so that they can be tested without a browser.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import plotly.graph_objects as go

from core import locale
from core.analysis.explain import num
from core.analysis.result import AnalysisResult, type_sort_key
from core.analysis.spectra import DEFAULT_EPSILON, DEFAULT_TOP_K
from core.locale import text as t
from core.run import read_metrics

EMA_ALPHA = 0.2  # weight of the newest point in the smoothed loss

_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf"]
_PATTERNS = ["", "/", "x", ".", "\\", "+", "-", "|"]


class _Words:
    """``T["key"]`` → the words of ``analysis.fig.key`` in one language."""

    def __init__(self, lang: str):
        self.lang = lang

    def __getitem__(self, key: str) -> str:
        return locale.text(f"analysis.fig.{key}", self.lang)


def _t(lang: str) -> _Words:
    return _Words("en" if lang == "en" else "vi")


def _as_list(results: "AnalysisResult | Sequence[AnalysisResult]") -> list[AnalysisResult]:
    return [results] if isinstance(results, AnalysisResult) else list(results)


def _labels(results: list[AnalysisResult], lang: str) -> list[str]:
    # Overlays need distinct legend names even when runs share an adapter name.
    out: list[str] = []
    for i, r in enumerate(results):
        lab = r.label or f"{_t(lang)['run']} {i + 1}"
        if lab in out:
            lab = f"{lab} ({i + 1})"
        out.append(lab)
    return out


def _layer_cat(layer: int | None, lang: str) -> str:
    return str(layer) if layer is not None else _t(lang)["outside"]


def fig_spectra(
    results: "AnalysisResult | Sequence[AnalysisResult]",
    modules: Sequence[str] | None = None,
    *,
    lang: str = "vi",
) -> go.Figure:
    """Singular values of ΔW per module, log y axis; several runs overlaid.

    Args:
        results: one result or several (each run gets its own colour and legend group).
        modules: module names (``model.layers.0.self_attn.q_proj``) or module types
            (``q_proj``) to show; None shows every analysed module.
        lang: axis language, ``"vi"`` or ``"en"``.

    Returns:
        A Plotly figure with one line per (run, shown module).
    """
    runs = _as_list(results)
    labels = _labels(runs, lang)
    T = _t(lang)
    fig = go.Figure()
    for ri, (res, lab) in enumerate(zip(runs, labels)):
        color = _PALETTE[ri % len(_PALETTE)]
        for m in res.modules:
            if modules is not None and m.name not in modules and m.module_type not in modules:
                continue
            # log axes cannot show exact zeros: leave a gap instead of a fake value
            y = [s if s > 0 else None for s in m.singular_values]
            fig.add_trace(go.Scatter(
                x=list(range(1, len(y) + 1)), y=y, mode="lines+markers",
                name=f"{lab} · {m.name}" if len(runs) > 1 else m.name,
                legendgroup=lab, line={"color": color, "width": 1}, marker={"size": 4},
                hovertemplate=f"{lab}<br>{m.name}<br>σ%{{x}} = %{{y:.4g}}<extra></extra>",
            ))
    fig.update_layout(title=T["sv_title"], xaxis_title=T["sv_x"], yaxis_title=T["sv_y"],
                      template="plotly_white")
    fig.update_yaxes(type="log")
    return fig


def fig_norm_heatmap(result: AnalysisResult, *, lang: str = "vi") -> go.Figure:
    """Heatmap of ‖ΔW‖/‖W‖ with module types as rows and blocks as columns.

    Args:
        result: one analysis result.
        lang: axis language, ``"vi"`` or ``"en"``.

    Returns:
        A Plotly figure with a single heatmap trace.
    """
    T = _t(lang)
    layers = sorted({m.layer for m in result.modules}, key=lambda x: (x is None, -1 if x is None else x))
    types = sorted({m.module_type for m in result.modules}, key=type_sort_key)
    d2: dict[tuple, float] = {}
    b2: dict[tuple, float] = {}
    for m in result.modules:  # several matrices may share a cell (e.g. two towers): aggregate
        key = (m.module_type, m.layer)
        d2[key] = d2.get(key, 0.0) + m.delta_norm**2
        b2[key] = b2.get(key, 0.0) + m.base_norm**2
    z = [[(math.sqrt(d2[(mt, L)] / b2[(mt, L)]) if (mt, L) in b2 and b2[(mt, L)] > 0 else None) for L in layers]
         for mt in types]
    fig = go.Figure(go.Heatmap(
        z=z, x=[_layer_cat(L, lang) for L in layers], y=types, colorscale="Viridis",
        colorbar={"title": T["norm_bar"]},
        hovertemplate=f"{T['layer']}: %{{x}}<br>{T['type']}: %{{y}}<br>{T['norm_bar']} = %{{z:.3g}}<extra></extra>",
    ))
    fig.update_layout(title=T["norm_title"], xaxis_title=T["layer"], yaxis_title=T["type"],
                      template="plotly_white")
    fig.update_xaxes(type="category")
    return fig


def fig_intruders(
    results: "AnalysisResult | Sequence[AnalysisResult]",
    *,
    lang: str = "vi",
) -> go.Figure:
    """Intruder count per block, stacked by module type; several runs side by side.

    Args:
        results: one result or several runs (each run becomes its own bar group,
            told apart by a fill pattern; colours stay tied to module types).
        lang: axis language, ``"vi"`` or ``"en"``.

    Returns:
        A Plotly figure with one bar trace per (run, module type).
    """
    runs = _as_list(results)
    labels = _labels(runs, lang)
    T = _t(lang)
    all_layers = sorted({m.layer for r in runs for m in r.modules}, key=lambda x: (x is None, -1 if x is None else x))
    all_types = sorted({m.module_type for r in runs for m in r.modules}, key=type_sort_key)
    xcat = [_layer_cat(L, lang) for L in all_layers]
    fig = go.Figure()
    multi = len(runs) > 1
    for ri, (res, lab) in enumerate(zip(runs, labels)):
        types = [mt for mt in all_types if any(m.module_type == mt for m in res.modules)]
        base = [0] * len(all_layers)
        for mtype in types:
            counts = [sum(m.intruders for m in res.modules if m.module_type == mtype and m.layer == L)
                      for L in all_layers]
            color = _PALETTE[all_types.index(mtype) % len(_PALETTE)]
            kw: dict[str, Any] = {}
            if multi:
                # Stacked-within-group bars: same offsetgroup per run, explicit base.
                kw = {"offsetgroup": str(ri), "base": list(base),
                      "marker": {"color": color, "pattern": {"shape": _PATTERNS[ri % len(_PATTERNS)]}}}
            else:
                kw = {"marker": {"color": color}}
            fig.add_trace(go.Bar(
                x=xcat, y=counts, name=f"{lab} · {mtype}" if multi else mtype, legendgroup=lab if multi else mtype,
                hovertemplate=f"{lab} · {mtype}<br>{T['layer']}: %{{x}}<br>{T['intr_y']}: %{{y}}<extra></extra>",
                **kw,
            ))
            base = [b + c for b, c in zip(base, counts)]
    k = runs[0].config.get("top_k", DEFAULT_TOP_K) if runs else DEFAULT_TOP_K
    eps = runs[0].config.get("epsilon", DEFAULT_EPSILON) if runs else DEFAULT_EPSILON
    fig.update_layout(
        title=T["intr_title"].format(k=k, eps=num(eps, lang, 2)),
        xaxis_title=T["layer"], yaxis_title=T["intr_y"], template="plotly_white",
        barmode="group" if multi else "stack",
    )
    fig.update_xaxes(type="category")
    return fig


def spectra_figure(results: list[AnalysisResult], modules: list[str] | None, lang: str):
    """The spectra figure as the tab shows it: with a single run each module gets its own colour (fig_spectra colours by
    run)."""
    fig = fig_spectra(results, modules or None, lang=lang)
    if len(results) == 1:
        for i, trace in enumerate(fig.data):
            trace.line.color = _PALETTE[i % len(_PALETTE)]
    return fig


def intruders_figure(results: list[AnalysisResult], lang: str):
    fig = fig_intruders(results, lang=lang)
    fig.update_yaxes(rangemode="nonnegative")  # counts: no negative axis when every count is zero
    return fig


# --------------------------------------------------------------------------- training curves

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
                        subplot_titles=(t("training.plot.loss", lang), t("training.plot.lr", lang), t("training.plot.grad", lang)))
    steps = [r["step"] for r in train]
    losses = [r["loss"] for r in train]
    fig.add_trace(go.Scatter(x=steps, y=losses, mode="lines", name=t("training.trace.raw", lang),
                             line=dict(color="rgba(20,184,166,0.35)", width=1.5)), row=1, col=1)
    fig.add_trace(go.Scatter(x=steps, y=ema(losses), mode="lines", name=t("training.trace.ema", lang),
                             line=dict(color="#0f766e", width=3)), row=1, col=1)
    if evals:
        fig.add_trace(go.Scatter(x=[r["step"] for r in evals], y=[r["eval_loss"] for r in evals],
                                 mode="lines+markers", name=t("training.trace.eval", lang),
                                 line=dict(color="#f97316", width=2), marker=dict(size=8)), row=1, col=1)
    lr = [r for r in train if r.get("learning_rate") is not None]
    fig.add_trace(go.Scatter(x=[r["step"] for r in lr], y=[r["learning_rate"] for r in lr], mode="lines",
                             name=t("training.plot.lr", lang), line=dict(color="#6366f1", width=2), showlegend=False),
                  row=2, col=1)
    gn = [r for r in train if r.get("grad_norm") is not None]
    fig.add_trace(go.Scatter(x=[r["step"] for r in gn], y=[r["grad_norm"] for r in gn], mode="lines",
                             name=t("training.plot.grad", lang), line=dict(color="#e11d48", width=1.5), showlegend=False),
                  row=2, col=2)
    fig.update_layout(template="plotly_white", height=520, margin=dict(l=55, r=20, t=40, b=40),
                      legend=dict(orientation="h", yanchor="bottom", y=1.04, xanchor="right", x=1),
                      uirevision="curves")  # keeps the user's zoom across updates
    fig.update_xaxes(title_text=t("training.plot.step", lang), row=2, col=1)
    fig.update_xaxes(title_text=t("training.plot.step", lang), row=2, col=2)
    fig.update_yaxes(exponentformat="e", row=2, col=1)
    return fig


def runs_overlay_figure(run_dirs: list[str], lang: str):
    import plotly.graph_objects as go

    fig = go.Figure()
    for d in run_dirs or []:
        records = [r for r in read_metrics(Path(d)) if r.get("loss") is not None]
        if not records:
            continue
        fig.add_trace(go.Scatter(x=[r["step"] for r in records], y=ema([r["loss"] for r in records]), mode="lines",
                                 name=Path(d).name, line=dict(width=2.5)))
        evals = [r for r in read_metrics(Path(d)) if r.get("eval_loss") is not None]
        if evals:
            fig.add_trace(go.Scatter(x=[r["step"] for r in evals], y=[r["eval_loss"] for r in evals],
                                     mode="markers", name=f"{Path(d).name} · eval", marker=dict(size=9)))
    fig.update_layout(template="plotly_white", height=380, margin=dict(l=55, r=20, t=40, b=40),
                      title=t("training.past.title", lang), xaxis_title=t("training.plot.step", lang), yaxis_title="loss",
                      legend=dict(orientation="h", yanchor="top", y=-0.2))
    return fig
