"""Dataset tab: pick a sample, upload a file or name a Hub dataset; see the schema, the rows, the
exact training text of a row with its learned part highlighted, and the token lengths.

Previews use the tokenizer of the model chosen on the Hyperparameters tab (read from
``ctx.config``), so what is shown is what the trainer will see.
"""

from __future__ import annotations

import functools
import html
import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from core import config as C
from core import data as D
from core.errors import DataError, StudioError
from core.models.load import load_tokenizer
from core.models.registry import hub_reachable, resolve_model
from core.paths import safe_join
from gui.edge import error_html, error_message, note_html
from gui.state import AppContext, data_roots, effective_config
from core.locale import text as t

log = logging.getLogger("lora_studio.gui")

PAGE_SIZE = 10
CELL_CHARS = 160  # long paragraphs are cut in the table; the row preview shows them whole
ROLES = tuple(D.SYNONYMS)  # every role a column can play, in a stable order



# --------------------------------------------------------------------------- sources

_UNSAFE = re.compile(r"[^\w.\- ]+", flags=re.UNICODE)


def sanitize_filename(name: str) -> str:
    """A plain file name: no folders, no '..', no control or shell characters; the suffix kept."""
    base = Path(str(name).replace("\\", "/")).name
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    stem = _UNSAFE.sub("_", stem).strip(" ._") or "data"
    suffix = _UNSAFE.sub("", suffix).lower()
    return f"{stem[:80]}.{suffix}" if suffix else stem[:80]


def store_upload(file_path: str | Path, upload_dir: Path) -> Path:
    """Copy an uploaded file into ``upload_dir`` under a sanitized name; returns the copy's path.

    Raises:
        DataError: for an unsupported file type.
    """
    name = sanitize_filename(Path(file_path).name)
    if Path(name).suffix.lower() not in D.FILE_SUFFIXES:
        raise DataError(f"unsupported file type {Path(name).suffix or '(none)'} for {name}; use "
                        f"{', '.join(D.FILE_SUFFIXES)}", field="data.source")
    upload_dir.mkdir(parents=True, exist_ok=True)
    target = safe_join(upload_dir, name)
    shutil.copyfile(file_path, target)
    return target


def resolve_user_source(text: str, upload_dir: Path) -> str:
    """What the user typed → a data.source: a sample, a file inside ``upload_dir``, or a Hub id.

    Typed file names never reach outside ``upload_dir`` (an absolute path or '..' raises DataError).
    """
    text = (text or "").strip()
    if not text or text.startswith("sample:"):
        return text
    looks_like_file = Path(text).suffix.lower() in D.FILE_SUFFIXES or text.startswith((".", "/", "~", "\\"))
    if looks_like_file or (upload_dir / text).exists():
        path = safe_join(upload_dir, text)
        if not path.is_file():
            raise DataError(f"no uploaded file named {text!r}; upload it first", field="data.source")
        return str(path)
    return text


def display_source(source: str, upload_dir: Path) -> str:
    """The short name shown to the user (an uploaded file's name, not its full path)."""
    path = Path(source)
    if path.is_absolute() and path.parent == upload_dir.resolve():
        return path.name
    return source


def _is_hub(source: str) -> bool:
    return bool(source) and not source.startswith("sample:") and not Path(source).is_absolute()


def _mtime(source: str) -> float:
    try:
        return D.resolve_source(source).stat().st_mtime if not _is_hub(source) else 0.0
    except (DataError, OSError, AttributeError):
        return 0.0


@functools.lru_cache(maxsize=8)
def _frame_cached(source: str, hub_split: str, mtime: float) -> pd.DataFrame:
    return D.load_frame(C.DataConfig(source=source, hub_split=hub_split))


def load_frame(source: str, hub_split: str = "train") -> pd.DataFrame:
    """Load (cached by file time) the frame of a source; a quick, clear error for an offline Hub.

    The source may come from the API as it is: a file must lie inside the folders the app may read.
    """
    source = D.contained_source(source, data_roots())
    if _is_hub(source) and not hub_reachable():
        raise DataError(f"cannot load Hub dataset {source!r}: the Hugging Face Hub is unreachable", field="hub")
    return _frame_cached(source, hub_split or "train", _mtime(source)).copy()


@functools.lru_cache(maxsize=4)
def _tokenizer_cached(name: str, trust_remote_code: bool):
    return load_tokenizer(resolve_model(name), trust_remote_code)


def get_tokenizer(cfg: C.RunConfig):
    """The (cached) tokenizer of the model chosen on the Hyperparameters tab."""
    return _tokenizer_cached(cfg.model.name_or_path.strip(), cfg.model.trust_remote_code)


# --------------------------------------------------------------------------- views (pure)

def page_view(frame: pd.DataFrame, page: int, lang: str) -> tuple[pd.DataFrame, str, int]:
    """One page of raw rows for the table (a 1-based "#" column, long cells cut), its label, the clamped page."""
    n_pages = max(1, -(-len(frame) // PAGE_SIZE))
    page = min(max(0, int(page or 0)), n_pages - 1)
    a = page * PAGE_SIZE
    part = frame.iloc[a:a + PAGE_SIZE].copy()

    def cut(v: Any) -> Any:
        s = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str) if isinstance(
            v, (list, dict)) else v
        return s if not isinstance(s, str) or len(s) <= CELL_CHARS else s[:CELL_CHARS] + "…"

    part = part.apply(lambda col: col.map(cut)) if len(part) else part
    part.insert(0, "#", range(a + 1, a + 1 + len(part)))
    label = t("dataset.page", lang, p=page + 1, n=n_pages, a=a + 1 if len(frame) else 0, b=a + len(part), total=len(frame))
    return part, label, page


def segments_html(segments: list[tuple[str, bool]], lang: str) -> str:
    """The training text with the learned part in a coloured <mark> and the prompt in grey; all escaped."""
    parts = []
    for text, learned in segments:
        cls = "ls-learned" if learned else "ls-prompt"
        tag = "mark" if learned else "span"
        parts.append(f'<{tag} class="{cls}">{html.escape(text)}</{tag}>')
    legend = (f'<div class="ls-legend"><mark class="ls-learned">{html.escape(t("dataset.legend.learned", lang))}</mark> '
              f'<span class="ls-prompt">{html.escape(t("dataset.legend.prompt", lang))}</span></div>')
    return f'{legend}<pre class="ls-preview" id="ds-preview-text">{"".join(parts)}</pre>'


def row_preview(frame: pd.DataFrame, index: int, data_cfg: C.DataConfig, tokenizer, lang: str) -> tuple[str, str]:
    """(HTML of the exact training text of row ``index`` (0-based), its token count in markdown)."""
    formatted, segments = D.format_preview(frame, index, data_cfg, tokenizer)
    ids, labels = D.tokenize(formatted, tokenizer, data_cfg.completion_only_loss)
    learned = sum(1 for x in labels if x != -100)
    count = t("dataset.tokens", lang, n=len(ids), k=learned)
    if len(ids) > data_cfg.max_length:
        count += t("dataset.tokens.cut", lang, m=data_cfg.max_length)
    return segments_html(segments, lang), count


@dataclass
class TokenReport:
    """What the histogram shows (cheap to cache: no token ids kept)."""

    lengths: list[int]
    stats: D.TokenStats
    n_test: int
    schema: str
    template: str


def token_report(frame: pd.DataFrame, data_cfg: C.DataConfig, tokenizer, seed: int = 42) -> TokenReport:
    prepared = D.prepare(data_cfg, tokenizer, seed=seed, frame=frame)
    return TokenReport(list(prepared.lengths), prepared.stats, len(prepared.test_index), prepared.guess.schema,
                       prepared.template)


def histogram_figure(lengths: list[int], max_length: int, lang: str):
    import plotly.graph_objects as go

    fig = go.Figure(go.Histogram(x=lengths, nbinsx=40, marker_color="#14b8a6", marker_line_color="#0f766e",
                                 marker_line_width=1, hovertemplate="%{x}: %{y}<extra></extra>"))
    fig.add_vline(x=max_length, line_dash="dash", line_color="#e11d48", line_width=2,
                  annotation_text=f"max_length = {max_length}", annotation_position="top right",
                  annotation_font_color="#e11d48")
    fig.update_layout(template="plotly_white", height=300, margin=dict(l=50, r=20, t=30, b=45), bargap=0.05,
                      xaxis_title=t("dataset.hist.x", lang), yaxis_title=t("dataset.hist.y", lang), showlegend=False)
    return fig


def stats_markdown(report: TokenReport, lang: str) -> str:
    s = report.stats
    return t("dataset.stats", lang, n=s.n, median=s.median, p95=s.p95, max=s.max, m=s.max_length, trunc=s.n_truncated,
             filt=s.n_filtered, noloss=s.n_no_loss, cut=s.n_answer_cut, test=report.n_test)


def schema_markdown(guess: D.SchemaGuess, template: str, manual: bool, lang: str) -> str:
    how = t("dataset.mapping.manual" if manual else "dataset.mapping.auto", lang)
    return t("dataset.schema", lang, label=guess.describe(lang), template=template) + f" · _{how}_"


def mapping_updates(guess: D.SchemaGuess | None, lang: str) -> list:
    """One update per role dropdown: visible with the columns for the detected schema's roles."""
    if guess is None:
        return [gr.update(visible=False) for _ in ROLES]
    required, optional = D.SCHEMA_ROLES[guess.schema]
    out = []
    for role in ROLES:
        if role in required or role in optional:
            choices = ([] if role in required else [(t("dataset.none", lang), "")]) + [(c, c) for c in guess.columns]
            out.append(gr.update(visible=True, choices=choices, value=guess.column_map.get(role, "")))
        else:
            out.append(gr.update(visible=False, value=None))
    return out


# --------------------------------------------------------------------------- handlers

@dataclass
class DatasetView:
    """Everything the tab shows for one dataset state, as handler outputs."""

    dataset: dict
    info: str
    schema: str
    mapping: list
    table: Any
    page_label: str
    page: int
    row: int
    preview: str
    tokens: str
    hist: Any
    stats: str
    key: str = ""  # view_key() of what is shown

    def outputs(self) -> tuple:
        return (self.dataset, self.info, self.schema, *self.mapping, self.table, self.page_label, self.page,
                self.row, self.preview, self.tokens, self.hist, self.stats, self.key)


def _view(dataset: dict, config: dict | None, page: int, row: int, lang: str, upload_dir: Path) -> DatasetView:
    """Load the frame, detect the schema, and build every view; errors are shown where they belong."""
    dataset = {"source": dataset.get("source", ""), "hub_split": dataset.get("hub_split") or "train",
               "column_map": dict(dataset.get("column_map") or {})}
    key = view_key(dataset, config)
    source = dataset["source"]
    frame = load_frame(source, dataset["hub_split"])
    explicit = dataset["column_map"]
    guess = D.detect_schema(frame.columns, explicit)
    info = note_html(t("dataset.loaded", lang, n=len(frame), c=len(frame.columns), src=display_source(source, upload_dir)),
                     "ok")
    table, page_label, page = page_view(frame, page, lang)
    row = min(max(1, int(row or 1)), len(frame))
    try:
        cfg = effective_config(config, dataset)
    except StudioError as e:
        return DatasetView(dataset, info, "", mapping_updates(guess, lang), table, page_label, page, row,
                           error_html(e, lang), "", None, "", key)
    try:
        template = D.resolve_template(cfg.data.template, guess.schema)
    except StudioError as e:
        template = cfg.data.template
        schema = schema_markdown(guess, template, bool(explicit), lang)
        return DatasetView(dataset, info, schema, mapping_updates(guess, lang), table, page_label, page, row,
                           error_html(e, lang), "", None, "", key)
    schema = schema_markdown(guess, template, bool(explicit), lang)
    try:
        tok = get_tokenizer(cfg)
    except StudioError as e:
        msg = note_html(t("dataset.no_tokenizer", lang), "warn") + error_html(e, lang)
        return DatasetView(dataset, info, schema, mapping_updates(guess, lang), table, page_label, page, row, msg, "",
                           None, "", key)
    try:
        preview, tokens = row_preview(frame, row - 1, cfg.data, tok, lang)
    except StudioError as e:
        preview, tokens = error_html(e, lang), ""
    try:
        report = token_report(frame, cfg.data, tok, cfg.train.seed)
        hist, stats = histogram_figure(report.lengths, cfg.data.max_length, lang), stats_markdown(report, lang)
    except StudioError as e:
        hist, stats = None, error_message(e, lang)
    return DatasetView(dataset, info, schema, mapping_updates(guess, lang), table, page_label, page, row, preview,
                       tokens, hist, stats, key)


def _failed(dataset: dict, config: dict | None, e: BaseException, lang: str) -> tuple:
    """Outputs when the source itself cannot be loaded: the message, everything else emptied."""
    return DatasetView(dataset, error_html(e, lang), "", mapping_updates(None, lang), None, "", 0, 1, "", "", None,
                       "", view_key(dataset, config)).outputs()


def load_dataset(source_text: str, hub_split: str, config: dict, lang: str, upload_dir: Path) -> tuple:
    """Load what the user chose (sample / uploaded file name / Hub id) and show it; mapping starts automatic."""
    dataset = {"source": "", "hub_split": hub_split or "train", "column_map": {}}
    try:
        if not (source_text or "").strip():
            raise DataError(t("dataset.empty_source", lang), field="data.source")
        dataset["source"] = resolve_user_source(source_text, upload_dir)
        if _is_hub(dataset["source"]) and not hub_reachable():
            raise DataError(t("dataset.hub.offline", lang), field="data.source")
        return _view(dataset, config, 0, 1, lang, upload_dir).outputs()
    except Exception as e:  # noqa: BLE001 - the GUI edge: every failure becomes a message
        return _failed(dataset, config, e, lang)


def upload_dataset(file_path: str | None, hub_split: str, config: dict, lang: str, upload_dir: Path) -> tuple:
    """An uploaded file: copied into the upload folder, then loaded; returns the short name and the views."""
    if not file_path:
        return (gr.skip(), *[gr.skip()] * len(_output_names()))
    try:
        stored = store_upload(file_path, upload_dir)
    except Exception as e:  # noqa: BLE001
        return (gr.skip(), *_failed({"source": "", "hub_split": hub_split, "column_map": {}}, config, e, lang))
    return (stored.name, *load_dataset(stored.name, hub_split, config, lang, upload_dir))


def remap(dataset: dict, config: dict, row: int, lang: str, upload_dir: Path, *role_values: str) -> tuple:
    """The user changed a role's column: map the current schema's roles by hand and refresh."""
    try:
        frame = load_frame(dataset["source"], dataset.get("hub_split", "train"))
        schema = D.detect_schema(frame.columns, dataset.get("column_map") or {}).schema  # the roles now shown
        required, optional = D.SCHEMA_ROLES[schema]
        chosen = {r: v for r, v in zip(ROLES, role_values) if (r in required or r in optional) and v}
        auto = D.detect_schema(frame.columns, {}).column_map
        column_map = {} if chosen == auto else chosen
        return _view(dict(dataset, column_map=column_map), config, 0, row, lang, upload_dir).outputs()
    except Exception as e:  # noqa: BLE001
        return _failed(dataset, config, e, lang)


def change_page(dataset: dict, page: int, delta: int, lang: str) -> tuple:
    """Previous / next page of raw rows."""
    try:
        frame = load_frame(dataset["source"], dataset.get("hub_split", "train"))
        table, label, page = page_view(frame, int(page or 0) + delta, lang)
        return table, label, page
    except Exception as e:  # noqa: BLE001
        return gr.skip(), error_message(e, lang), page


def preview_row(dataset: dict, config: dict, row: int, lang: str) -> tuple[str, str]:
    """The exact training text of row ``row`` (1-based) and its token count."""
    try:
        frame = load_frame(dataset["source"], dataset.get("hub_split", "train"))
        cfg = effective_config(config, dataset)
        row = int(row or 1)
        return row_preview(frame, row - 1, cfg.data, get_tokenizer(cfg), lang)
    except Exception as e:  # noqa: BLE001
        return error_html(e, lang), ""


def select_row(dataset: dict, config: dict, page: int, lang: str, evt: gr.SelectData) -> tuple:
    """A click in the table previews that row."""
    row = int(page or 0) * PAGE_SIZE + int(evt.index[0]) + 1
    return (row, *preview_row(dataset, config, row, lang))


def view_key(dataset: dict | None, config: dict | None) -> str:
    """What the previews depend on: when it is unchanged, a config edit elsewhere needs no refresh."""
    cfg = config or {}
    dataset = {k: (dataset or {}).get(k) for k in ("source", "hub_split", "column_map")}
    data = {k: v for k, v in (cfg.get("data") or {}).items() if k not in ("source", "hub_split", "column_map")}
    model = cfg.get("model") or {}
    return json.dumps([dataset, data, model.get("name_or_path"), model.get("trust_remote_code"),
                       (cfg.get("train") or {}).get("seed")], sort_keys=True, default=str)


def refresh(dataset: dict, config: dict, page: int, row: int, last_key: str, lang: str, upload_dir: Path) -> tuple:
    """After a change of ``ctx.config`` or ``ctx.dataset`` made elsewhere (a form edit, a preset): rebuild
    the previews, only if something they depend on changed.

    It never writes ``ctx.dataset`` back (its first output is always a skip): an event that sets both
    config and dataset may run this with the old dataset, and writing it back would undo the new one.
    """
    key = view_key(dataset, config)
    if key == last_key or not (dataset or {}).get("source"):
        return (gr.skip(),) * len(_output_names())
    try:
        out = _view(dataset, config, page, row, lang, upload_dir).outputs()
    except Exception as e:  # noqa: BLE001
        out = _failed(dataset, config, e, lang)
    return (gr.skip(), *out[1:])


def _output_names() -> list[str]:
    return ["dataset", "info", "schema", *[f"map_{r}" for r in ROLES], "table", "page_label", "page", "row",
            "preview", "tokens", "hist", "stats", "last_key"]


# --------------------------------------------------------------------------- layout

@dataclass
class DatasetTab:
    sample: gr.Dropdown
    upload: gr.File
    source: gr.Textbox
    hub_split: gr.Textbox
    load: gr.Button
    info: gr.HTML
    schema: gr.Markdown
    mapping: dict[str, gr.Dropdown]
    table: gr.Dataframe
    prev: gr.Button
    next: gr.Button
    page_label: gr.Markdown
    page: gr.State
    row: gr.Number
    preview: gr.HTML
    tokens: gr.Markdown
    hist: gr.Plot
    stats: gr.Markdown
    last_key: gr.State


def build(ctx: AppContext) -> DatasetTab:
    lang, upload_dir = ctx.lang, ctx.upload_dir
    initial = (ctx.dataset.value or {}).get("source", "") if ctx.dataset is not None else ""
    hub_meta = C.field_spec("data", "hub_split").metadata

    gr.Markdown(t("dataset.intro", lang), elem_classes=["ls-intro"])
    with gr.Row(equal_height=True):
        sample = gr.Dropdown([(t(f"dataset.sample.{k}", lang), f"sample:{k}") for k in D.SAMPLES],
                             value=initial if initial.startswith("sample:") else None, label=t("dataset.sample", lang),
                             elem_id="ds-sample", scale=3)
        upload = gr.File(label=t("dataset.upload", lang), file_types=list(D.FILE_SUFFIXES), elem_id="ds-upload",
                         height=110, scale=3)
        with gr.Column(scale=3):
            source = gr.Textbox(label=t("dataset.source", lang), info=t("dataset.source.info", lang), elem_id="ds-source",
                                value=display_source(initial, upload_dir) if not initial.startswith("sample:") else "")
            with gr.Row():
                hub_split = gr.Textbox(label=hub_meta["label"][lang], value=C.DataConfig().hub_split, scale=2,
                                       elem_id="ds-hub-split")
                load = gr.Button(t("dataset.load", lang), variant="primary", scale=1, elem_id="ds-load")
    info = gr.HTML(elem_id="ds-info")
    schema = gr.Markdown(elem_id="ds-schema")
    with gr.Accordion(t("dataset.mapping", lang), open=True, elem_id="ds-mapping"):
        gr.Markdown(t("dataset.mapping.info", lang), elem_classes=["ls-help"])
        mapping = {}
        with gr.Row(elem_classes=["ls-mapping"]):
            for role in ROLES:
                mapping[role] = gr.Dropdown(label=t(f"dataset.role.{role}", lang) + f" ({role})", visible=False,
                                            elem_id=f"ds-map-{role}", min_width=180)
    gr.Markdown(f"### {t('dataset.rows', lang)}")
    table = gr.Dataframe(interactive=False, wrap=True, max_height=440, elem_id="ds-table")
    with gr.Row(equal_height=True):
        prev = gr.Button(t("dataset.prev", lang), size="sm", elem_id="ds-prev", scale=1)
        page_label = gr.Markdown(elem_id="ds-page", elem_classes=["ls-center"])
        next_ = gr.Button(t("dataset.next", lang), size="sm", elem_id="ds-next", scale=1)
    with gr.Row():
        with gr.Column(scale=1):
            gr.Markdown(f"### {t('dataset.preview', lang)}")
            row = gr.Number(value=1, precision=0, minimum=1, label=t("dataset.row", lang), info=t("dataset.row.info", lang),
                            elem_id="ds-row")
            tokens = gr.Markdown(elem_id="ds-tokens")
            preview = gr.HTML(elem_id="ds-preview")
        with gr.Column(scale=1):
            gr.Markdown(f"### {t('dataset.hist', lang)}")
            hist = gr.Plot(show_label=False, elem_id="ds-hist")
            stats = gr.Markdown(elem_id="ds-stats")
    page = gr.State(0)
    last_key = gr.State("")

    view_outputs = [ctx.dataset, info, schema, *mapping.values(), table, page_label, page, row, preview, tokens,
                    hist, stats, last_key]
    config = ctx.config

    # note: these closures' parameter names are what gradio_client shows for the API endpoints
    def _load(source, hub_split, config):
        return load_dataset(source, hub_split, config, lang, upload_dir)

    def _preview(dataset, config, row):
        return preview_row(dataset, config, row, lang)

    def _sample(value, split, cfg):
        return ("", *load_dataset(value, split, cfg, lang, upload_dir)) if value else (gr.skip(),) * (
            len(view_outputs) + 1)

    def _upload(f, split, cfg):
        out = upload_dataset(f, split, cfg, lang, upload_dir)
        return (out[0], None if f else gr.skip(), *out[1:])

    def _remap(ds, cfg, r, *roles):
        return remap(ds, cfg, r, lang, upload_dir, *roles)

    def _refresh(ds, cfg, p, r, key):
        out = refresh(ds, cfg, p, r, key, lang, upload_dir)
        if isinstance(out[-1], str) and ds and ds.get("source"):  # refreshed: a preset may have named the data
            src = ds["source"]
            return (*out, src if src.startswith("sample:") else None,
                    "" if src.startswith("sample:") else display_source(src, upload_dir))
        return (*out, gr.skip(), gr.skip())

    load.click(_load, [source, hub_split, config], view_outputs, api_name="load_dataset")
    source.submit(_load, [source, hub_split, config], view_outputs, api_name=False)
    sample.input(_sample, [sample, hub_split, config], [source, *view_outputs], api_name=False)
    upload.upload(_upload, [upload, hub_split, config], [source, sample, *view_outputs], api_name=False)
    for dd in mapping.values():
        dd.input(_remap, [ctx.dataset, config, row, *mapping.values()], view_outputs, api_name=False)
    prev.click(lambda ds, p: change_page(ds, p, -1, lang), [ctx.dataset, page], [table, page_label, page],
               api_name=False)
    next_.click(lambda ds, p: change_page(ds, p, +1, lang), [ctx.dataset, page], [table, page_label, page],
                api_name=False)
    row.submit(_preview, [ctx.dataset, config, row], [preview, tokens], api_name="preview_row")
    row.input(_preview, [ctx.dataset, config, row], [preview, tokens], api_name=False, trigger_mode="always_last")
    def _select(ds, cfg, p, evt: gr.SelectData):
        return select_row(ds, cfg, p, lang, evt)

    table.select(_select, [ctx.dataset, config, page], [row, preview, tokens], api_name=False)
    # one listener for both, so that the refreshes run in order and the last one sees the latest values
    gr.on([config.change, ctx.dataset.change], _refresh, [ctx.dataset, config, page, row, last_key],
          [*view_outputs, sample, source], api_name=False, trigger_mode="always_last")
    return DatasetTab(sample, upload, source, hub_split, load, info, schema, mapping, table, prev, next_, page_label,
                      page, row, preview, tokens, hist, stats, last_key)


def initial_load(tab: DatasetTab, ctx: AppContext):
    """Event args for gui.app's ``demo.load``: show the initial dataset on page open."""

    def _initial(ds, cfg):
        return refresh(ds, cfg, 0, 1, "", ctx.lang, ctx.upload_dir)

    outputs = [ctx.dataset, tab.info, tab.schema, *tab.mapping.values(), tab.table, tab.page_label, tab.page, tab.row,
               tab.preview, tab.tokens, tab.hist, tab.stats, tab.last_key]
    return _initial, [ctx.dataset, ctx.config], outputs
