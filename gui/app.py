"""The app's frame: header, language switch, the tabs in order, the shared state, and the server.

Language: one Blocks is built per language, every label in it from the locale table (``core.locale``), and both are
served by one FastAPI app: the ``--lang`` one at ``/`` and the other at ``/<lang>/``. The header's
"English | Tiếng Việt" link switches between them. Training state lives in the engine
(``core.train.job``), so both pages show the same run.
"""

from __future__ import annotations

import html
import logging
import traceback
from pathlib import Path

import gradio as gr

from core import config as C
from core.locale import LANGS
from core.locale import text as t
from core.paths import default_runs_dir
from gui.state import AppContext, allow_data_dir
from gui.tabs import analysis, classroom, compare, dataset, merge, params, training

log = logging.getLogger("lora_studio.gui")

TITLE = "LoRA Studio"
CSS_PATH = Path(__file__).with_name("theme.css")
# The tabs in display order: (name = locale area and element id "tab-<name>", module). The first three are the
# path to a run; a later one that fails to build shows why instead of taking the app down.
TABS = (("dataset", dataset), ("params", params), ("training", training), ("merge", merge), ("compare", compare),
        ("classroom", classroom), ("analysis", analysis))
ESSENTIAL = ("dataset", "params", "training")
LANG_NAMES = {"vi": "Tiếng Việt", "en": "English"}
UPLOADS = "_uploads"  # under runs_dir; list_runs ignores it (no run.json)



def theme() -> gr.themes.Theme:
    """A soft, friendly theme with large type; system fonts only (the app runs offline)."""
    return gr.themes.Soft(
        primary_hue="teal", secondary_hue="amber", neutral_hue="slate", text_size=gr.themes.sizes.text_lg,
        radius_size=gr.themes.sizes.radius_lg,
        font=["Noto Sans", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "DejaVu Sans", "sans-serif"],
        font_mono=["DejaVu Sans Mono", "Consolas", "monospace"],
    ).set(block_title_text_weight="600", button_large_text_weight="600")


def css() -> str:
    return CSS_PATH.read_text(encoding="utf-8")


def header_html(lang: str, switch: dict[str, str] | None) -> str:
    """The title, the tagline and the language links (the current language is not a link)."""
    links = []
    for code in LANGS[::-1]:  # English | Tiếng Việt
        name = html.escape(LANG_NAMES[code])
        if code == lang or not switch or code not in switch:
            links.append(f'<span class="ls-lang-current" lang="{code}">{name}</span>')
        else:
            links.append(f'<a href="{html.escape(switch[code])}" lang="{code}" id="lang-{code}">{name}</a>')
    return (f'<header class="ls-header"><div class="ls-brand"><span class="ls-logo">◆</span>'
            f'<div><h1>{TITLE}</h1><p>{html.escape(t("app.tagline", lang))}</p></div></div>'
            f'<nav class="ls-lang" aria-label="{html.escape(t("app.language", lang))}">{" | ".join(links)}</nav>'
            f'</header>')


def build_app(lang: str = "vi", runs_dir: str | Path | None = None, *, switch: dict[str, str] | None = None
              ) -> gr.Blocks:
    """Build the whole app in one language.

    Args:
        lang: "vi" or "en".
        runs_dir: parent of the run folders (default ``core.paths.default_runs_dir()``).
        switch: language → link to the page in that language (shown in the header), or None.
    Returns:
        The Blocks; serve it with :func:`create_server` (or ``.launch(theme=theme(), css=css())``).
    """
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {LANGS}, got {lang!r}")
    runs_dir = Path(runs_dir or default_runs_dir()).resolve()
    upload_dir = allow_data_dir(runs_dir / UPLOADS)
    cfg0 = params.initial_config()
    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        gr.HTML(header_html(lang, switch))
        ctx = AppContext(
            lang=lang, runs_dir=runs_dir, upload_dir=upload_dir,
            config=gr.JSON(C.to_dict(cfg0), visible=False, elem_id="state-config"),
            dataset=gr.JSON({"source": cfg0.data.source, "hub_split": cfg0.data.hub_split,
                             "column_map": dict(cfg0.data.column_map)}, visible=False, elem_id="state-dataset"),
            selected_run=gr.State(None),
        )
        built = {}
        with gr.Tabs(elem_id="ls-tabs"):
            for name, module in TABS:
                with gr.Tab(t(f"{name}.tab", lang), id=f"tab_{name}", elem_id=f"tab-{name}"):
                    try:
                        built[name] = module.build(ctx)
                    except Exception as e:  # noqa: BLE001 - a later tab that fails to build shows why
                        if name in ESSENTIAL:
                            raise
                        log.warning("tab gui.tabs.%s failed to build\n%s", name, traceback.format_exc())
                        gr.HTML(f'<div class="ls-error">{html.escape(t("app.tab_missing", lang, err=e))}</div>')
        # what a page shows on open: the dataset, the checks and memory, the run in progress
        for name, module in TABS:
            if name not in ESSENTIAL:
                continue
            fn, inputs, outputs = module.initial_load(built[name], ctx)
            demo.load(fn, inputs, outputs, api_name=False)
    return demo


def preload_ml_stack() -> None:
    """Import transformers and peft once, before the server starts.

    note: their lazy modules are not thread-safe on first import; the handlers a page runs at load
    (dataset preview, memory estimate) would otherwise race, and one of them fails with
    "cannot import name 'AutoTokenizer'".
    """
    import peft  # noqa: F401
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer  # noqa: F401


def create_server(lang: str = "vi", runs_dir: str | Path | None = None, *, host: str = "127.0.0.1",
                  port: int = 7860, data_dirs: tuple[str | Path, ...] = ()):
    """A FastAPI app serving the ``lang`` Blocks at / and the other language at /<other>/.

    Args:
        data_dirs: folders (besides the upload folder) whose data files the page and its API may read.
    """
    from core.merge.run import clean_stale_merges

    for folder in data_dirs:
        allow_data_dir(folder)
    for tmp in clean_stale_merges(Path(runs_dir or default_runs_dir())):
        log.info("removed %s, left by a merge that was killed", tmp)
    from gui.tabs.training import reattach

    reattach(Path(runs_dir or default_runs_dir()))  # a multi-process run outlives the app: follow it again
    from fastapi import FastAPI
    from fastapi.responses import RedirectResponse

    preload_ml_stack()
    other = next(code for code in LANGS if code != lang)
    # relative links, so that the switch also works behind a proxy that adds a path prefix
    root_switch = {lang: "./", other: f"{other}/"}
    other_switch = {lang: "../", other: "./"}
    app = FastAPI(title=TITLE, docs_url=None, redoc_url=None, openapi_url=None)

    from gui.tabs.training import training_status

    status_runs = Path(runs_dir or default_runs_dir())

    @app.get("/api/training_status", include_in_schema=False)
    async def _status() -> dict:
        """The followed job's status as plain JSON, the same dict as the ``training_status`` API.

        Served beside Gradio's routes and on the event loop itself: the reply is copied from the job's in-memory
        snapshot (a live run) or from run.json, so it needs neither Gradio's per-call processing (~25 ms here)
        nor a worker thread, and 8 pollers stay fast while the training thread has both cores.
        """
        return training_status(status_runs)

    @app.get(f"/{other}", include_in_schema=False)
    def _slash() -> RedirectResponse:  # "/en" → "/en/" (the root app would answer 404)
        return RedirectResponse(f"/{other}/")

    common = dict(theme=theme(), css=css(), server_name=host, server_port=port, footer_links=["api"])
    gr.mount_gradio_app(app, build_app(other, runs_dir, switch=other_switch), path=f"/{other}", **common)
    gr.mount_gradio_app(app, build_app(lang, runs_dir, switch=root_switch), path="", **common)
    return app
