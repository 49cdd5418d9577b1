"""The one run dropdown of the result tabs (Merge, Compare, Classroom, Analysis): which runs it lists, their
labels, refreshing, following the run chosen elsewhere, and turning a picked name into a checked folder.

The list is read from the runs folder when the page opens, when the dropdown is opened and on Refresh, and
a call through the API may name any run folder of the runs folder (``allow_custom_value``): the name is
checked when the call arrives (:func:`resolve_run`), not against the list the page was built with.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import gradio as gr

from core import tasks
from core.errors import AdapterError, StudioError
from core.locale import text as t
from core.paths import safe_join
from core.run import FINAL, INTERRUPTED, RunFolder, list_runs
from gui.state import AppContext


def adapter_runs(runs_dir: str | Path, family: str | None = None) -> list[dict]:
    """Runs (newest first) that have a saved adapter; ``family`` keeps only runs of that family of tasks (MCQ)."""
    return [info for info in list_runs(Path(runs_dir)) if RunFolder(Path(info["run_dir"])).has_adapter()
            and (family is None or tasks.family_of(str(info.get("template") or "")) == family)]


def run_label(info: dict, lang: str) -> str:
    status = info.get("status", "")
    key = f"runs.status_{status}" if status in {str(s) for s in FINAL} | {INTERRUPTED} else "runs.status_other"
    return f"{info['name']} · {info.get('template') or '?'} · {t(key, lang)}"


def run_choices(runs_dir: str | Path, lang: str, family: str | None = None) -> list[tuple[str, str]]:
    """(label, run name) pairs for a run dropdown."""
    return [(run_label(info, lang), info["name"]) for info in adapter_runs(runs_dir, family)]


def no_runs_info(choices: list, lang: str, family: str | None = None) -> str:
    """The hint under an empty run dropdown ("" once there is a run)."""
    if choices:
        return ""
    return t("runs.no_mcq_runs" if family == tasks.MCQ else "runs.no_runs", lang)


def _update(choices: list[tuple[str, str]], value: str | None, lang: str, family: str | None) -> dict:
    return gr.update(choices=choices, value=value, info=no_runs_info(choices, lang, family))


def default_run(runs_dir: str | Path, family: str | None = None) -> str | None:
    """The run a tab opens on: the newest finished run with an adapter, else the newest with one."""
    runs = adapter_runs(runs_dir, family)
    finished = [r for r in runs if r.get("status") == "finished"]
    return (finished or runs or [{"name": None}])[0]["name"]


def initial_runs(lang: str, runs_dir: str, family: str | None = None) -> dict:
    """On page load: the runs on disk now (the page may have been built before they finished)."""
    return _update(run_choices(runs_dir, lang, family), default_run(runs_dir, family), lang, family)


def refresh_runs(current: str | None, lang: str, runs_dir: str, family: str | None = None) -> dict:
    """A dropdown update with the runs now on disk, keeping the current pick when it still exists."""
    choices = run_choices(runs_dir, lang, family)
    names = [value for _, value in choices]
    value = current if current in names else (names[0] if names else None)
    return _update(choices, value, lang, family)


def follow_selected(folder: str | None, current: str | None, lang: str, runs_dir: str, family: str | None = None
                    ) -> dict:
    """Point a run dropdown at the run chosen elsewhere (``ctx.selected_run``) when it has an adapter here."""
    choices = run_choices(runs_dir, lang, family)
    names = [value for _, value in choices]
    if folder and Path(folder).parent.resolve() == Path(runs_dir).resolve() and Path(folder).name in names:
        return _update(choices, Path(folder).name, lang, family)
    return _update(choices, current if current in names else (names[0] if names else None), lang, family)


def resolve_run(runs_dir: str | Path, name: str) -> Path:
    """The folder of a picked run, refusing anything outside the runs folder or without an adapter.

    Raises:
        DataError: the name escapes the runs folder.
        AdapterError: the run has no adapter.
    """
    folder = RunFolder(safe_join(runs_dir, name))
    if not folder.has_adapter():
        raise AdapterError(f"{folder.name} has no {folder.adapter.name}/ folder (the run did not finish saving)",
                           field="run")
    return folder.path


def selected_folder(run: str | None, runs_dir: str) -> Any:
    """The folder to share as ``ctx.selected_run`` when the user picks a run here (no change if it is not valid)."""
    if not run:
        return gr.skip()
    try:
        return str(resolve_run(runs_dir, run))
    except StudioError:
        return gr.skip()


def run_picker(ctx: AppContext, *, family: str | None = None, label: str = "runs.run", scale: int = 4,
               elem_id: str | None = None) -> tuple[gr.Dropdown, gr.Button]:
    """The run dropdown and its Refresh button, in the current row; kept fresh and in step with the other tabs.

    Only the user's own pick (``.input``) is shared back as ``ctx.selected_run``, so that tabs following each
    other never loop.
    """
    lang, runs_dir = ctx.lang, str(ctx.runs_dir)
    choices = run_choices(runs_dir, lang, family)
    run = gr.Dropdown(choices=choices, value=default_run(runs_dir, family), label=t(label, lang),
                      info=no_runs_info(choices, lang, family), scale=scale, allow_custom_value=True,
                      elem_id=elem_id)
    refresh = gr.Button(t("runs.refresh_runs", lang), scale=1, size="sm")
    lang_state, runs_state, family_state = gr.State(lang), gr.State(runs_dir), gr.State(family)
    refresh.click(refresh_runs, [run, lang_state, runs_state, family_state], run, api_visibility="private")
    # triggers=None with no inputs: runs once, when the page loads
    gr.on(None, partial(initial_runs, lang, runs_dir, family), None, run, api_visibility="private",
          show_progress="hidden")
    run.focus(refresh_runs, [run, lang_state, runs_state, family_state], run, api_visibility="private",
              show_progress="hidden")
    if ctx.selected_run is not None:
        ctx.selected_run.change(follow_selected, [ctx.selected_run, run, lang_state, runs_state, family_state], run,
                                api_visibility="private", show_progress="hidden")
        run.input(selected_folder, [run, runs_state], ctx.selected_run, api_visibility="private",
                  show_progress="hidden")
    return run, refresh
