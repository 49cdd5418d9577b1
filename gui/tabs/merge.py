"""Merge & export: fold a run's adapter into its base, check it answers like base + adapter, export it to GGUF
for Ollama / LM Studio / llama.cpp (checked against the merged model), push it.

The merge is :func:`core.merge.run.merge_run`, as on the command line; this tab shows its stages (codes, in
the page's language), its badge and its report.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from core.config import MergeConfig, field_type_of, literal_choices
from core.errors import StudioError
from core.export.gguf import QUANTS
from core.locale import text as t
from core.merge.markdown import to_markdown
from core.merge.report import MergeReport, load_report
from core.run import RunFolder
from gui.edge import error_html, error_message, note_html, shows_errors
from gui.render.merge_report import badge_html
from gui.state import AppContext
from gui.widgets.run_picker import resolve_run, run_picker

TARGETS = literal_choices(field_type_of(MergeConfig, "onto"))  # auto, original, dequantized, 4bit
DTYPES = literal_choices(field_type_of(MergeConfig, "dtype"))


@dataclass
class MergeTab:
    run: gr.Dropdown
    refresh: gr.Button
    dtype: gr.Dropdown
    target: gr.Radio
    merge: gr.Button
    badge: gr.HTML
    report: gr.Markdown
    out_dir: gr.Textbox
    repo_id: gr.Textbox
    token: gr.Textbox
    private: gr.Checkbox
    push: gr.Button
    push_result: gr.HTML
    quant: gr.Radio
    export: gr.Button
    export_result: gr.HTML
    export_files: gr.Markdown


EXPORT_KIND = {"passed": "ok", "lossy": "warn", "unverified": "warn", "failed": "error"}


@shows_errors(lambda err: (err, ""))
def export(run: str | None, quant: str, lang: str, runs_dir: str,
           progress: gr.Progress = gr.Progress()) -> tuple[str, str]:
    """Export the picked run to GGUF (merging it first when needed), verified against the merged model.

    Returns:
        (verdict HTML, what was written and how to use it, Markdown)
    """
    if not run:
        return note_html(t("runs.pick_run", lang), "warn"), ""
    from pathlib import Path

    from core.export.run import export_run

    report = export_run(resolve_run(runs_dir, run), quant=quant,
                        progress=lambda code, **args: progress(None, desc=t(code, lang, **args)))
    figures = (report.verification or {}).get("summary") or ""
    verdict = note_html(t(f"export.verdict_{report.verdict}", lang, quant=quant, figures=figures),
                        EXPORT_KIND[report.verdict])
    folder = Path(report.gguf).parent
    files = "\n".join(f"- `{folder / name}`" for name in report.files)
    howto = t("export.howto", lang, folder=folder, name=Path(report.gguf).stem.rsplit("-", 1)[0],
              gguf=Path(report.gguf).name)
    return verdict, f"{files}\n\n{howto}"


@shows_errors(lambda err: (err, "", ""))
def merge(run: str | None, dtype: str, target: str, lang: str, runs_dir: str,
          progress: gr.Progress = gr.Progress()) -> tuple[str, str, str]:
    """Merge the picked run, verify it, and show the report.

    Returns:
        (badge HTML, report Markdown, output folder)
    """
    if not run:
        return note_html(t("runs.pick_run", lang), "warn"), "", ""
    from core.merge.run import merge_run

    def stage(code: str, **args) -> None:
        progress(None, desc=t(f"merge.stage.{code}", lang, **args))

    report = merge_run(resolve_run(runs_dir, run), dtype=dtype, onto=target, progress=stage)
    return badge_html(report.to_dict(), lang), to_markdown(report, lang), str(report.out_dir)


def show_existing(run: str | None, lang: str, runs_dir: str) -> tuple[str, str, str]:
    """What the tab shows when a run is picked: its saved merge report, if it was merged."""
    if not run:
        return "", "", ""
    try:
        out = RunFolder(resolve_run(runs_dir, run)).merged
        saved = load_report(out)
        if not saved:
            return note_html(t("merge.not_merged", lang)), "", ""
        markdown = to_markdown(MergeReport.from_dict(saved), lang)
    except (StudioError, TypeError, KeyError) as e:  # TypeError/KeyError: a report of an older format
        return error_html(e, lang), "", ""
    return badge_html(saved, lang), f"_{t('merge.existing', lang)}_\n\n{markdown}", str(out)


def push(run: str | None, repo_id: str, token: str, private: bool, lang: str, runs_dir: str) -> tuple[str, str]:
    """Push RUN/merged to the Hub. The token lives only in this call.

    Returns:
        (result HTML, the token box's new value: always empty)
    """
    try:
        if not run:
            return note_html(t("runs.pick_run", lang), "warn"), ""
        folder = RunFolder(resolve_run(runs_dir, run))
        if not folder.has_merged():
            return note_html(t("merge.push_need_merge", lang), "warn"), ""
        if not repo_id or "/" not in repo_id.strip():
            return note_html(t("merge.push_need_repo", lang), "warn"), ""
        if not token or not token.strip():
            return note_html(t("merge.push_need_token", lang), "warn"), ""
        from core.merge.hub import push_to_hub

        url = push_to_hub(folder.merged, repo_id.strip(), token.strip(), private=bool(private))
        return note_html(t("merge.pushed", lang, url=url), "ok"), ""
    except Exception as e:  # noqa: BLE001 - the edge, by hand: the token must be scrubbed from the message
        message = error_message(e, lang)
        if token and token.strip():  # belt and braces: core never puts the token in a message
            message = message.replace(token.strip(), "***")
        return note_html(message, "error"), ""


def build(ctx: AppContext) -> MergeTab:
    lang = ctx.lang
    lang_state = gr.State(lang)
    runs_state = gr.State(str(ctx.runs_dir))
    defaults = MergeConfig()
    gr.Markdown(t("merge.merge_intro", lang))
    with gr.Row():
        run, refresh = run_picker(ctx)
    with gr.Row():
        dtype = gr.Dropdown(choices=list(DTYPES), value=defaults.dtype, label=t("merge.dtype", lang),
                            info=t("merge.dtype_info", lang))
        target = gr.Radio(choices=[(t(f"merge.target_{x}", lang), x) for x in TARGETS], value=defaults.onto,
                          label=t("merge.target", lang))
    merge_btn = gr.Button(t("merge.merge_button", lang), variant="primary")
    badge = gr.HTML()
    out_dir = gr.Textbox(label=t("merge.out_dir", lang), interactive=False, buttons=["copy"])
    report = gr.Markdown()
    with gr.Accordion(t("merge.push_title", lang), open=False):
        gr.Markdown(t("merge.push_intro", lang))
        with gr.Row():
            repo_id = gr.Textbox(label=t("merge.repo_id", lang), placeholder="teacher/smollm2-mcq-vi")
            token = gr.Textbox(label=t("merge.token", lang), type="password", placeholder="hf_…")
            private = gr.Checkbox(value=True, label=t("merge.private", lang))
        push_btn = gr.Button(t("merge.push_button", lang))
        push_result = gr.HTML()
    with gr.Accordion(t("export.title", lang), open=False, elem_id="mg-export"):
        gr.Markdown(t("export.intro", lang))
        quant = gr.Radio(choices=[(t(f"export.quant_{q}", lang), q) for q in QUANTS], value="f16",
                         label=t("export.quant", lang))
        export_btn = gr.Button(t("export.button", lang), elem_id="mg-export-button")
        export_result = gr.HTML(elem_id="mg-export-result")
        export_files = gr.Markdown(elem_id="mg-export-files")

    # on page load and whenever the run changes: its saved report, if it was merged
    gr.on(None, show_existing, [run, lang_state, runs_state], [badge, report, out_dir], api_visibility="private",
          show_progress="hidden")
    merge_btn.click(merge, [run, dtype, target, lang_state, runs_state], [badge, report, out_dir], api_name="merge",
                    concurrency_limit=1, concurrency_id="models")
    # the token is an input of this one event only; the handler returns "" so the box is cleared, and a private
    # event is neither in the API page nor in gradio's run history (which saves public calls' inputs in the browser)
    push_btn.click(push, [run, repo_id, token, private, lang_state, runs_state], [push_result, token],
                   api_visibility="private", concurrency_limit=1)
    export_btn.click(export, [run, quant, lang_state, runs_state], [export_result, export_files], api_name="export",
                     concurrency_limit=1, concurrency_id="models")
    return MergeTab(run, refresh, dtype, target, merge_btn, badge, report, out_dir, repo_id, token, private,
                    push_btn, push_result, quant, export_btn, export_result, export_files)
