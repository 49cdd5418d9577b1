"""Merge & export: fold a run's adapter into its base, check it answers like base + adapter, push it.

Also home of the run helpers the other result tabs share (which runs have an adapter, their labels,
resolving a picked run inside the runs folder).
"""

from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import gradio as gr

from core.errors import AdapterError, StudioError
from core.merge import DTYPES, ONTO
from core.paths import safe_join
from core.train import list_runs
from gui.common import AppContext, error_html, error_message, note_html
from gui.i18n import register, t

log = logging.getLogger("lora_studio.gui.merge")

TAB_TITLE = {"en": "Merge & export", "vi": "Gộp & xuất"}

TEXT = register(__name__, {
    # shared run picker
    "run": {"en": "Run", "vi": "Lần huấn luyện"},
    "refresh_runs": {"en": "↻ Refresh list", "vi": "↻ Làm mới danh sách"},
    "no_runs": {"en": "No finished run with an adapter yet: train one in the Training tab first.",
                "vi": "Chưa có lần huấn luyện nào có adapter: hãy huấn luyện ở thẻ Huấn luyện trước."},
    "no_mcq_runs": {"en": "No question-writing model yet: train one on the multiple-choice sample first.",
                    "vi": "Chưa có mô hình ra câu hỏi: hãy huấn luyện trên dữ liệu trắc nghiệm mẫu trước."},
    "pick_run": {"en": "Choose a run first.", "vi": "Hãy chọn một lần huấn luyện trước."},
    "status_finished": {"en": "finished", "vi": "hoàn tất"},
    "status_stopped": {"en": "stopped early", "vi": "dừng sớm"},
    "status_failed": {"en": "failed", "vi": "lỗi"},
    "status_other": {"en": "in progress", "vi": "đang chạy"},
    # merge
    "merge_intro": {
        "en": "Merging writes a standalone model (base + adapter in one) that needs neither PEFT nor the "
              "adapter. It is then checked: on a few prompts the merged model must give the same logits and "
              "the same greedy answers as base + adapter.",
        "vi": "Gộp sẽ tạo một mô hình độc lập (mô hình gốc và adapter hợp làm một), không cần PEFT hay adapter "
              "nữa. Sau đó mô hình được kiểm tra: trên vài câu lệnh mẫu, mô hình đã gộp phải cho logit và câu "
              "trả lời (giải mã tham lam) giống hệt mô hình gốc + adapter."},
    "dtype": {"en": "Saved precision", "vi": "Độ chính xác khi lưu"},
    "dtype_info": {"en": "float32 is exact; bfloat16/float16 halve the size and change the logits slightly.",
                   "vi": "float32 chính xác tuyệt đối; bfloat16/float16 giảm một nửa dung lượng và làm logit "
                         "thay đổi chút ít."},
    "target": {"en": "Merge onto", "vi": "Gộp vào"},
    "target_auto": {"en": "Automatic (recommended)", "vi": "Tự động (khuyên dùng)"},
    "target_original": {"en": "Original full-precision base", "vi": "Mô hình gốc đầy đủ độ chính xác"},
    "target_dequantized": {"en": "Dequantized 4-bit base (what a QLoRA run trained on)",
                           "vi": "Mô hình gốc 4-bit đã giải lượng tử (chính là bản QLoRA đã dùng khi học)"},
    "target_4bit": {"en": "4-bit model ⚠ lossy: answers may differ", "vi": "Mô hình 4-bit ⚠ có mất mát: câu trả lời có thể khác"},
    "merge_button": {"en": "Merge and verify", "vi": "Gộp và kiểm tra"},
    "out_dir": {"en": "Merged model folder", "vi": "Thư mục mô hình đã gộp"},
    "passed": {"en": "PASS — the merged model answers like base + adapter",
               "vi": "ĐẠT — mô hình đã gộp trả lời giống mô hình gốc + adapter"},
    "failed": {"en": "FAIL — the merged model differs from base + adapter",
               "vi": "KHÔNG ĐẠT — mô hình đã gộp khác với mô hình gốc + adapter"},
    "already": {"en": "Already merged with these settings: nothing was redone; this is the saved report.",
                "vi": "Đã gộp với đúng thiết lập này rồi: không làm lại, đây là báo cáo đã lưu."},
    "existing": {"en": "This run was merged before; its report:", "vi": "Lần huấn luyện này đã được gộp trước đó; báo cáo:"},
    "not_merged": {"en": "Not merged yet.", "vi": "Chưa gộp."},
    "lossy": {"en": "LOSSY — a lossy target, chosen on purpose: answers may differ",
              "vi": "CÓ MẤT MÁT — đích gộp có mất mát do bạn chọn: câu trả lời có thể khác"},
    "onto_dtype": {"en": "Merged onto", "vi": "Đã gộp vào"},
    "k_max": {"en": "max |Δlogit|", "vi": "|Δlogit| lớn nhất"},
    "k_mean": {"en": "mean |Δlogit|", "vi": "|Δlogit| trung bình"},
    "k_kl": {"en": "KL divergence (mean)", "vi": "Độ lệch KL (trung bình)"},
    "k_agree": {"en": "greedy token agreement", "vi": "Tỉ lệ trùng token (tham lam)"},
    "k_identical": {"en": "identical generations", "vi": "Số câu sinh giống hệt"},
    "k_div": {"en": "first divergence", "vi": "Chỗ lệch đầu tiên"},
    "k_none": {"en": "none", "vi": "không có"},
    "k_div_at": {"en": "token {n} (prompt {prompt})", "vi": "token {n} (câu lệnh {prompt})"},
    "stage_load": {"en": "Loading base + adapter (the reference)…", "vi": "Đang nạp mô hình gốc + adapter (mốc tham chiếu)…"},
    "stage_reference": {"en": "Generating with the reference…", "vi": "Đang sinh câu trả lời bằng mốc tham chiếu…"},
    "stage_merge": {"en": "Merging…", "vi": "Đang gộp…"},
    "stage_save": {"en": "Saving and reloading the merged model…", "vi": "Đang lưu và nạp lại mô hình đã gộp…"},
    "stage_verify": {"en": "Verifying…", "vi": "Đang kiểm tra…"},
    # push
    "push_title": {"en": "Publish to the Hugging Face Hub (optional)", "vi": "Đăng lên Hugging Face Hub (tuỳ chọn)"},
    "push_intro": {
        "en": "Needs an internet connection and a write token. The token is used once and never saved.",
        "vi": "Cần kết nối Internet và một token có quyền ghi. Token chỉ dùng một lần và không bao giờ được lưu."},
    "repo_id": {"en": "Repository (user/name)", "vi": "Kho lưu trữ (tài-khoản/tên)"},
    "token": {"en": "Access token (hf_…)", "vi": "Token truy cập (hf_…)"},
    "private": {"en": "Private repository", "vi": "Kho riêng tư"},
    "push_button": {"en": "Push the merged model", "vi": "Đăng mô hình đã gộp"},
    "push_need_merge": {"en": "Merge this run first: there is no merged model to push.",
                        "vi": "Hãy gộp lần huấn luyện này trước: chưa có mô hình đã gộp để đăng."},
    "push_need_repo": {"en": "Enter the repository as user/name.", "vi": "Hãy nhập kho lưu trữ dạng tài-khoản/tên."},
    "push_need_token": {"en": "Enter an access token.", "vi": "Hãy nhập token truy cập."},
    "pushed": {"en": "Published: {url}", "vi": "Đã đăng: {url}"},
})

TARGETS = ONTO  # auto, original, dequantized, 4bit


# ----------------------------------------------------------------------------- shared run helpers

def adapter_runs(runs_dir: str | Path, template: str | None = None) -> list[dict]:
    """Runs (newest first) that have a saved adapter; ``template`` keeps only runs of that template."""
    out = []
    for info in list_runs(Path(runs_dir)):
        if not (Path(info["run_dir"]) / "adapter" / "adapter_config.json").exists():
            continue
        if template is not None and info.get("template") != template:
            continue
        out.append(info)
    return out


def run_label(info: dict, lang: str) -> str:
    status = info.get("status", "")
    key = f"status_{status}" if status in ("finished", "stopped", "failed") else "status_other"
    template = info.get("template") or "?"
    return f"{info['name']} · {template} · {t(key, lang)}"


def run_choices(runs_dir: str | Path, lang: str, template: str | None = None) -> list[tuple[str, str]]:
    """(label, run name) pairs for a run dropdown."""
    return [(run_label(info, lang), info["name"]) for info in adapter_runs(runs_dir, template)]


def no_runs_info(choices: list, lang: str, template: str | None = None) -> str:
    """The hint under an empty run dropdown ("" once there is a run)."""
    if choices:
        return ""
    return t("no_mcq_runs" if template == "mcq_generation" else "no_runs", lang)


def _runs_update(choices: list[tuple[str, str]], value: str | None, lang: str, template: str | None) -> dict:
    return gr.update(choices=choices, value=value, info=no_runs_info(choices, lang, template))


def default_run(runs_dir: str | Path, template: str | None = None) -> str | None:
    """The run a tab opens on: the newest finished run with an adapter, else the newest with one."""
    runs = adapter_runs(runs_dir, template)
    finished = [r for r in runs if r.get("status") == "finished"]
    return (finished or runs or [{"name": None}])[0]["name"]


def initial_runs(lang: str, runs_dir: str, template: str | None = None) -> dict:
    """On page load: the runs on disk now (the page may have been built before they finished)."""
    return _runs_update(run_choices(runs_dir, lang, template), default_run(runs_dir, template), lang, template)


def refresh_runs(current: str | None, lang: str, runs_dir: str, template: str | None = None) -> dict:
    """A dropdown update with the runs now on disk, keeping the current pick when it still exists."""
    choices = run_choices(runs_dir, lang, template)
    names = [value for _, value in choices]
    value = current if current in names else (names[0] if names else None)
    return _runs_update(choices, value, lang, template)


def follow_selected(folder: str | None, current: str | None, lang: str, runs_dir: str, template: str | None = None
                    ) -> dict:
    """Point a run dropdown at the run chosen elsewhere (``ctx.selected_run``) when it has an adapter here."""
    choices = run_choices(runs_dir, lang, template)
    names = [value for _, value in choices]
    if folder and Path(folder).parent.resolve() == Path(runs_dir).resolve() and Path(folder).name in names:
        return _runs_update(choices, Path(folder).name, lang, template)
    return _runs_update(choices, current if current in names else (names[0] if names else None), lang, template)


def selected_folder(run: str | None, runs_dir: str) -> Any:
    """The folder to share as ``ctx.selected_run`` when the user picks a run here (no change if it is not valid)."""
    if not run:
        return gr.skip()
    try:
        return str(resolve_run(runs_dir, run))
    except StudioError:
        return gr.skip()


def link_run_picker(ctx: AppContext, run: gr.Dropdown, template: str | None = None) -> None:
    """Keep a tab's run dropdown fresh (re-listed when opened) and in step with ``ctx.selected_run``.

    Only the user's own pick (``.input``) is shared back, so tabs following each other never loop.
    """
    lang_state, runs_state, template_state = gr.State(ctx.lang), gr.State(str(ctx.runs_dir)), gr.State(template)
    # triggers=None with no inputs: runs once, when the page loads
    gr.on(None, partial(initial_runs, ctx.lang, str(ctx.runs_dir), template), None, run, api_visibility="private",
          show_progress="hidden")
    run.focus(refresh_runs, [run, lang_state, runs_state, template_state], run, api_visibility="private",
              show_progress="hidden")
    if ctx.selected_run is not None:
        ctx.selected_run.change(follow_selected, [ctx.selected_run, run, lang_state, runs_state, template_state], run,
                                api_visibility="private", show_progress="hidden")
        run.input(selected_folder, [run, runs_state], ctx.selected_run, api_visibility="private",
                  show_progress="hidden")


def resolve_run(runs_dir: str | Path, name: str) -> Path:
    """The folder of a picked run, refusing anything outside the runs folder or without an adapter.

    Raises:
        DataError: the name escapes the runs folder.
        AdapterError: the run has no adapter.
    """
    run_dir = safe_join(runs_dir, name)
    if not (run_dir / "adapter" / "adapter_config.json").is_file():
        raise AdapterError(f"{run_dir.name} has no adapter/ folder (the run did not finish saving)", field="run")
    return run_dir


def num(x: float, lang: str, nd: int = 1) -> str:
    """A number with the decimal separator of the UI language (Vietnamese writes 6,8)."""
    s = f"{x:.{nd}f}"
    return s.replace(".", ",") if lang == "vi" else s


def read_run_info(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


# ----------------------------------------------------------------------------- the tab

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


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.3g}"
    return html.escape(str(x))


def key_numbers(report: dict, lang: str) -> list[tuple[str, str]]:
    """(label, value) of the figures under the badge, from a merge report's dict (to_dict or merge_report.json)."""
    chosen = (report.get("results") or {}).get(report.get("target"), {})
    if not chosen:
        return []
    divergences = [(i, d) for i, d in enumerate(chosen.get("first_divergence") or []) if d is not None]
    if divergences:
        i, d = min(divergences, key=lambda x: x[1])
        first = t("k_div_at", lang, n=d, prompt=i + 1)
    else:
        first = t("k_none", lang)
    n = len(chosen.get("first_divergence") or [])
    rows = [("k_max", _fmt(chosen.get("max_abs_dlogit"))), ("k_mean", _fmt(chosen.get("mean_abs_dlogit"))),
            ("k_kl", _fmt(chosen.get("kl_mean"))),
            ("k_agree", f"{num(100 * float(chosen.get('greedy_agreement') or 0), lang, 1)}%"),
            ("k_identical", f"{chosen.get('identical_generations', 0)}/{n}"), ("k_div", first)]
    return [(t(label, lang), value) for label, value in rows]


def badge_html(report: dict, lang: str) -> str:
    """A big PASS / FAIL (or LOSSY, for a lossy target chosen on purpose) badge with the key numbers."""
    if report.get("passed"):
        colour, bg, mark, verdict = "#166534", "#dcfce7", "✓", t("passed", lang)
    elif report.get("lossy"):
        colour, bg, mark, verdict = "#92400e", "#fef3c7", "≈", t("lossy", lang)
    else:
        colour, bg, mark, verdict = "#991b1b", "#fee2e2", "✗", t("failed", lang)
    cells = "".join(
        f'<div style="min-width:9rem"><div style="font-size:0.85rem;color:#374151">{html.escape(label)}</div>'
        f'<div style="font-size:1.2rem;font-weight:600;color:#111827">{html.escape(value)}</div></div>'
        for label, value in key_numbers(report, lang))
    numbers = f'<div style="display:flex;gap:1.5rem;flex-wrap:wrap;margin-top:0.6rem">{cells}</div>'
    already = (f'<div style="margin-top:0.5rem;font-size:0.95rem;color:#374151">{html.escape(t("already", lang))}</div>'
               if report.get("already_merged") else "")
    where = (f'<div style="margin-top:0.4rem;font-size:0.9rem;color:#374151">{html.escape(t("onto_dtype", lang))}: '
             f'{html.escape(t("target_" + report["target"], lang))}, {html.escape(str(report.get("dtype", "")))}</div>'
             if report.get("target") in TARGETS else "")
    return (f'<div class="ls-merge-badge" role="status" style="border:2px solid {colour};background:{bg};'
            f'border-radius:12px;padding:0.9rem 1.1rem;color:#111827">'
            f'<div style="font-size:1.6rem;font-weight:700;color:{colour}">{mark} {html.escape(verdict)}</div>'
            f'{where}{numbers}{already}</div>')


_STAGES = (("loading the adapter", "stage_load"), ("generating with the reference", "stage_reference"),
           ("merging onto", "stage_merge"), ("saving the merged model", "stage_save"), ("verifying", "stage_verify"))


def _stage_text(message: str, lang: str) -> str:
    """core.merge reports its stages in English; the progress bar speaks the UI language."""
    for prefix, key in _STAGES:
        if message.startswith(prefix):
            return t(key, lang)
    return message


def merge(run: str | None, dtype: str, target: str, lang: str, runs_dir: str,
          progress: gr.Progress = gr.Progress()) -> tuple[str, str, str]:
    """Merge the picked run, verify it, and show the report.

    Returns:
        (badge HTML, report Markdown, output folder)
    """
    if not run:
        return note_html(t("pick_run", lang), "warn"), "", ""
    from core.merge import merge_run

    try:
        report = merge_run(resolve_run(runs_dir, run), dtype=dtype, onto=target,
                           progress=lambda msg: progress(None, desc=_stage_text(msg, lang)))
    except Exception as e:  # noqa: BLE001 - the GUI edge: every failure becomes a message (traceback logged)
        return error_html(e, lang), "", ""
    return badge_html(report.to_dict(), lang), report.to_markdown(lang), str(report.out_dir)


def show_existing(run: str | None, lang: str, runs_dir: str) -> tuple[str, str, str]:
    """What the tab shows when a run is picked: its saved merge report, if it was merged."""
    if not run:
        return "", "", ""
    from core.merge import MergeReport, load_report

    try:
        out = resolve_run(runs_dir, run) / "merged"
        saved = load_report(out)
        if not saved:
            return note_html(t("not_merged", lang)), "", ""
        markdown = MergeReport.from_dict(saved).to_markdown(lang)
    except (StudioError, TypeError, KeyError) as e:  # TypeError/KeyError: a report of an older format
        return error_html(e, lang), "", ""
    return badge_html(saved, lang), f"_{t('existing', lang)}_\n\n{markdown}", str(out)


def push(run: str | None, repo_id: str, token: str, private: bool, lang: str, runs_dir: str) -> tuple[str, str]:
    """Push RUN/merged to the Hub. The token lives only in this call.

    Returns:
        (result HTML, the token box's new value: always empty)
    """
    try:
        if not run:
            return note_html(t("pick_run", lang), "warn"), ""
        folder = resolve_run(runs_dir, run) / "merged"
        if not (folder / "config.json").exists():
            return note_html(t("push_need_merge", lang), "warn"), ""
        if not repo_id or "/" not in repo_id.strip():
            return note_html(t("push_need_repo", lang), "warn"), ""
        if not token or not token.strip():
            return note_html(t("push_need_token", lang), "warn"), ""
        from core.merge import push_to_hub

        url = push_to_hub(folder, repo_id.strip(), token.strip(), private=bool(private))
        return note_html(t("pushed", lang, url=url), "ok"), ""
    except Exception as e:  # noqa: BLE001 - the GUI edge: every failure becomes a message (traceback logged)
        message = error_message(e, lang)
        if token and token.strip():  # belt and braces: core never puts the token in a message
            message = message.replace(token.strip(), "***")
        return note_html(message, "error"), ""


def build(ctx: AppContext) -> MergeTab:
    lang = ctx.lang
    lang_state = gr.State(lang)
    runs_state = gr.State(str(ctx.runs_dir))
    choices = run_choices(ctx.runs_dir, lang)
    gr.Markdown(t("merge_intro", lang))
    with gr.Row():
        run = gr.Dropdown(choices=choices, value=default_run(ctx.runs_dir), label=t("run", lang),
                          info=no_runs_info(choices, lang), scale=4)
        refresh = gr.Button(t("refresh_runs", lang), scale=1, size="sm")
    with gr.Row():
        dtype = gr.Dropdown(choices=list(DTYPES), value="float32", label=t("dtype", lang), info=t("dtype_info", lang))
        target = gr.Radio(choices=[(t(f"target_{x}", lang), x) for x in TARGETS], value="auto", label=t("target", lang))
    merge_btn = gr.Button(t("merge_button", lang), variant="primary")
    badge = gr.HTML()
    out_dir = gr.Textbox(label=t("out_dir", lang), interactive=False, buttons=["copy"])
    report = gr.Markdown()
    with gr.Accordion(t("push_title", lang), open=False):
        gr.Markdown(t("push_intro", lang))
        with gr.Row():
            repo_id = gr.Textbox(label=t("repo_id", lang), placeholder="teacher/smollm2-mcq-vi")
            token = gr.Textbox(label=t("token", lang), type="password", placeholder="hf_…")
            private = gr.Checkbox(value=True, label=t("private", lang))
        push_btn = gr.Button(t("push_button", lang))
        push_result = gr.HTML()

    refresh.click(refresh_runs, [run, lang_state, runs_state], run, api_visibility="private")
    link_run_picker(ctx, run)
    # on page load and whenever the run changes: its saved report, if it was merged
    gr.on(None, show_existing, [run, lang_state, runs_state], [badge, report, out_dir], api_visibility="private",
          show_progress="hidden")
    merge_btn.click(merge, [run, dtype, target, lang_state, runs_state], [badge, report, out_dir], api_name="merge",
                    concurrency_limit=1, concurrency_id="models")
    # the token is an input of this one event only; the handler returns "" so the box is cleared, and a private
    # event is neither in the API page nor in gradio's run history (which saves public calls' inputs in the browser)
    push_btn.click(push, [run, repo_id, token, private, lang_state, runs_state], [push_result, token],
                   api_visibility="private", concurrency_limit=1)
    return MergeTab(run, refresh, dtype, target, merge_btn, badge, report, out_dir, repo_id, token, private,
                    push_btn, push_result)
