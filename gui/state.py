"""What the tabs share: the app context built once per language, and the RunConfig the page's forms describe.

Tabs share state only through the engine (run folders, ``core.train.job.active_job()``) and the components
of :class:`AppContext`, which ``gui.app`` creates before the tabs (so that any tab may use them as inputs or
outputs of its events). All three are JSON-safe so that gradio_client can pass them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import config as C
from core.data import contained_source

if TYPE_CHECKING:  # the tabs import gradio; this module stays importable without it
    import gradio as gr


@dataclass
class AppContext:
    """Built once per language by gui.app and handed to every tab's ``build``.

    Attributes:
        lang: "vi" or "en"; every label of this Blocks is in this language.
        runs_dir: parent folder of the run folders.
        upload_dir: uploaded datasets are copied here; typed file names are resolved inside it.
        config: hidden ``gr.JSON`` holding the Hyperparameters form as a RunConfig dict
            (``core.config.to_dict``; sections model, lora, data, train, plus run_name, description).
            Its ``data.source`` / ``data.column_map`` are NOT authoritative: see ``dataset``.
            Use :func:`effective_config` to get the RunConfig a run would use.
        dataset: hidden ``gr.JSON`` written by the Dataset tab:
            ``{"source": str, "hub_split": str, "column_map": {role: column}}``
            (source is "sample:…", an absolute path inside upload_dir, or a Hub id; column_map
            holds only what the user mapped by hand, ``{}`` = detected automatically).
        selected_run: ``gr.State`` holding the folder (str) of the run the user is working with,
            or None. The Training tab sets it when a run starts (as soon as its folder exists) and
            when the user picks a past run; Merge / Compare / Classroom / Analysis may read it as a
            default and may set it too. React to it with ``ctx.selected_run.change(...)``.
    """

    lang: str
    runs_dir: Path
    upload_dir: Path
    config: "gr.JSON | None" = None
    dataset: "gr.JSON | None" = None
    selected_run: "gr.State | None" = None


_DATA_ROOTS: list[Path] = []  # the folders the page and its API may read data files from (see allow_data_dir)


def allow_data_dir(folder: str | Path) -> Path:
    """Let the page and its API read data files inside ``folder`` (the upload folder; ``--data-dir`` at launch)."""
    folder = Path(folder).expanduser().resolve()
    if folder not in _DATA_ROOTS:
        _DATA_ROOTS.append(folder)
    return folder


def data_roots() -> tuple[Path, ...]:
    return tuple(_DATA_ROOTS)


def effective_config(config: dict | None, dataset: dict | None, run_name: str | None = None) -> C.RunConfig:
    """The RunConfig a run would use: the form's values with the Dataset tab's choices laid over them.

    Whatever the caller sent (a page, or a script through the API), a data file must lie inside the folders the
    app may read (:func:`allow_data_dir`): the same containment as the Dataset tab's own loading.

    Raises:
        ConfigError: naming every bad key of ``config`` (unknown keys included).
        DataError: a data file outside the allowed folders.
    """
    data = {k: v for k, v in (config or {}).items() if k in C.SECTIONS + C.TOP_LEVEL}
    cfg = C.from_dict(data, source="config")
    if dataset:
        if dataset.get("source"):
            C.set_value(cfg, "data.source", dataset["source"])
        if dataset.get("hub_split"):
            C.set_value(cfg, "data.hub_split", dataset["hub_split"])
        C.set_value(cfg, "data.column_map", dict(dataset.get("column_map") or {}))
    if run_name is not None and run_name.strip():
        C.set_value(cfg, "run_name", run_name.strip())
    cfg.data.source = contained_source(cfg.data.source, data_roots())
    return cfg


def json_safe(value: Any) -> Any:
    """Numbers, strings, lists and dicts only (NaN/inf become None), for API answers."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)
