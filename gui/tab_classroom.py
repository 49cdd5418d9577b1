"""Classroom MCQ demo: a paragraph in, a quiz card out — the original model next to the fine-tuned one.

Large type for a projector, no training controls. The paragraphs come from the TEST split of the
bundled sample, so the class sees the model work on text it never trained on.
"""

from __future__ import annotations

import csv
import html
import importlib.util
import logging
import random
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from core.mcq import LETTERS, REASON_CODES, REASONS, mcqs_to_rows, render_mcq_html, \
    render_printable_html, validate_mcq
from gui.common import AppContext, error_html, note_html
from gui.i18n import register, t
from gui.tab_compare import MODELS, build_prompt
from gui.tab_merge import default_run, link_run_picker, no_runs_info, num, refresh_runs, resolve_run, run_choices

log = logging.getLogger("lora_studio.gui.classroom")

TAB_TITLE = {"en": "Classroom", "vi": "Lớp học"}
MCQ_TEMPLATE = "mcq_generation"
SAMPLE = "sample:vi_informatics_mcq"

TEXT = register(__name__, {
    "cls_intro": {
        "en": "Pick a paragraph (or paste your own) and let both models write a multiple-choice question about it. "
              "The paragraphs come from the test part of the sample, which the model never saw while learning.",
        "vi": "Chọn một đoạn văn (hoặc dán đoạn văn của bạn) và để hai mô hình cùng ra một câu hỏi trắc nghiệm về "
              "nó. Các đoạn văn lấy từ phần kiểm tra của dữ liệu mẫu, mô hình chưa từng thấy khi học."},
    "cls_model": {"en": "Fine-tuned model", "vi": "Mô hình đã tinh chỉnh"},
    "cls_sample": {"en": "Sample paragraph", "vi": "Đoạn văn mẫu"},
    "cls_random": {"en": "Random paragraph", "vi": "Đoạn văn ngẫu nhiên"},
    "cls_context": {"en": "Paragraph", "vi": "Đoạn văn"},
    "cls_creative": {"en": "Different question each time (random sampling)",
                     "vi": "Mỗi lần một câu hỏi khác (lấy mẫu ngẫu nhiên)"},
    "cls_generate": {"en": "Write a question", "vi": "Ra câu hỏi"},
    "cls_base": {"en": "Original model", "vi": "Mô hình gốc"},
    "cls_tuned": {"en": "Fine-tuned model", "vi": "Mô hình đã tinh chỉnh"},
    "cls_valid": {"en": "✓ Valid question", "vi": "✓ Câu hỏi hợp lệ"},
    "cls_invalid": {"en": "✗ Not a valid question", "vi": "✗ Câu hỏi chưa hợp lệ"},
    "cls_empty": {"en": "Write or pick a paragraph first.", "vi": "Hãy nhập hoặc chọn một đoạn văn trước."},
    "cls_time": {"en": "Written in {s} s.", "vi": "Viết xong trong {s} giây."},
    "cls_working": {"en": "The models are writing…", "vi": "Các mô hình đang viết…"},
    "cls_export": {"en": "Save the questions", "vi": "Lưu các câu hỏi"},
    "cls_export_intro": {"en": "Every question written in this session ({n} so far).",
                         "vi": "Tất cả câu hỏi đã ra trong phiên này (hiện có {n} câu)."},
    "cls_title": {"en": "Title of the printable page", "vi": "Tiêu đề trang in"},
    "cls_title_default": {"en": "Informatics quiz", "vi": "Bài kiểm tra Tin học"},
    "cls_only_tuned": {"en": "Only the fine-tuned model's questions", "vi": "Chỉ lấy câu hỏi của mô hình đã tinh chỉnh"},
    "cls_only_valid": {"en": "Only valid questions", "vi": "Chỉ lấy câu hỏi hợp lệ"},
    "cls_csv": {"en": "Export to CSV (Excel)", "vi": "Xuất ra CSV (Excel)"},
    "cls_print": {"en": "Printable page", "vi": "Trang để in"},
    "cls_files": {"en": "Files", "vi": "Tệp"},
    "cls_nothing": {"en": "No questions to save yet.", "vi": "Chưa có câu hỏi nào để lưu."},
    "cls_saved": {"en": "{n} question(s) saved.", "vi": "Đã lưu {n} câu hỏi."},
    "cls_eval": {"en": "Evaluate on the test paragraphs", "vi": "Đánh giá trên các đoạn văn kiểm tra"},
    "cls_eval_intro": {
        "en": "Both models write a question for each test paragraph; the table counts how many are valid and why "
              "the others are not. Takes a while on a CPU.",
        "vi": "Hai mô hình cùng ra câu hỏi cho từng đoạn văn kiểm tra; bảng đếm số câu hợp lệ và lý do các câu còn "
              "lại chưa hợp lệ. Trên CPU sẽ mất một lúc."},
    "cls_eval_n": {"en": "Number of paragraphs", "vi": "Số đoạn văn"},
    "cls_eval_button": {"en": "Evaluate", "vi": "Đánh giá"},
    "cls_eval_done": {"en": "Done in {s} s.", "vi": "Xong trong {s} giây."},
    "cls_eval_working": {"en": "evaluating…", "vi": "đang đánh giá…"},
    "cls_measure": {"en": "Measure", "vi": "Chỉ số"},
    "cls_validity": {"en": "Valid questions", "vi": "Tỉ lệ câu hợp lệ"},
    "cls_perplexity": {"en": "Perplexity on the test answers (lower is better)",
                       "vi": "Độ hỗn loạn (perplexity) trên đáp án kiểm tra (càng thấp càng tốt)"},
    "cls_general_perplexity": {"en": "Perplexity on general text (rising = forgetting)",
                               "vi": "Độ hỗn loạn (perplexity) trên văn bản chung (tăng lên = đang quên)"},
    "cls_reason": {"en": "Problem: {reason}", "vi": "Lỗi: {reason}"},
    "cls_answer": {"en": "Answer key {letter}", "vi": "Đáp án {letter}"},
    "cls_answer_other": {"en": "Other answer key", "vi": "Đáp án khác"},
    "topic:hardware": {"en": "Hardware", "vi": "Phần cứng"},
    "topic:software": {"en": "Software", "vi": "Phần mềm"},
    "topic:operating systems": {"en": "Operating systems", "vi": "Hệ điều hành"},
    "topic:data representation": {"en": "Data representation", "vi": "Biểu diễn dữ liệu"},
    "topic:networks and the Internet": {"en": "Networks and the Internet", "vi": "Mạng máy tính và Internet"},
    "topic:algorithms and programming": {"en": "Algorithms and programming", "vi": "Thuật toán và lập trình"},
    "topic:databases": {"en": "Databases", "vi": "Cơ sở dữ liệu"},
    "topic:information safety and ethics": {"en": "Information safety and ethics",
                                            "vi": "An toàn thông tin và đạo đức"},
    "topic:office applications": {"en": "Office applications", "vi": "Ứng dụng văn phòng"},
    "topic:digital citizenship": {"en": "Digital citizenship", "vi": "Công dân số"},
})

# Large type for a projector, injected by build() inside the tab.
CSS = """
.ls-classroom textarea { font-size: 1.3rem !important; line-height: 1.55 !important; }
.ls-classroom input { font-size: 1.1rem !important; }
.ls-classroom button.lg { font-size: 1.3rem !important; }
.ls-classroom .ls-cls-head { font-size: 1.35rem; font-weight: 700; margin: 0.25rem 0; }
"""

MAX_NEW_TOKENS = 256
HAS_EVALUATE = importlib.util.find_spec("core.evaluate") is not None


# ----------------------------------------------------------------------------- sample paragraphs

@lru_cache(maxsize=1)
def sample_contexts() -> tuple[dict, ...]:
    """One entry per distinct paragraph of the sample's test split: {id, topic, context}."""
    from core.data import read_table, resolve_source

    frame = read_table(resolve_source(SAMPLE))
    frame = frame[frame["split"].astype(str).str.lower() == "test"]
    seen: set[str] = set()
    out = []
    for row in frame.to_dict(orient="records"):
        key = str(row.get("context_id") or row["context"])
        if key in seen:
            continue
        seen.add(key)
        out.append({"id": key, "topic": str(row.get("topic") or ""), "context": str(row["context"]).strip()})
    return tuple(out)


def topic_name(topic: str, lang: str) -> str:
    try:
        return t(f"topic:{topic}", lang)
    except KeyError:
        return topic


def context_choices(lang: str, per_topic: int = 1) -> list[tuple[str, str]]:
    """A few sample paragraphs for the dropdown: ``per_topic`` per topic, labelled by topic and first words."""
    counts: dict[str, int] = {}
    out = []
    for c in sample_contexts():
        if counts.get(c["topic"], 0) >= per_topic:
            continue
        counts[c["topic"]] = counts.get(c["topic"], 0) + 1
        words = " ".join(c["context"].split()[:7])
        out.append((f"{topic_name(c['topic'], lang)} — {words}…", c["id"]))
    return out


def context_text(context_id: str | None) -> str:
    for c in sample_contexts():
        if c["id"] == context_id:
            return c["context"]
    return ""


# ----------------------------------------------------------------------------- rendering

def validity_badge(text: str, lang: str) -> str:
    """A ✓/✗ badge for generated MCQ text; the card under it lists the reasons (core.mcq.REASONS, UI language)."""
    check = validate_mcq(text)
    ok = check.valid
    fg, bg = ("#166534", "#dcfce7") if ok else ("#991b1b", "#fee2e2")
    label = t("cls_valid" if ok else "cls_invalid", lang)
    return (f'<div class="{"ls-valid" if ok else "ls-invalid"}" role="status" style="display:inline-block;'
            f'padding:0.3rem 0.9rem;border-radius:999px;background:{bg};color:{fg};font-weight:700;'
            f'font-size:1.1rem">{html.escape(label)}</div>')


def card_html(title: str, text: str, lang: str) -> str:
    """Heading, validity badge and quiz card (answer behind a click) of one model's output."""
    # overflow-wrap: a small model sometimes writes one endless "1.1.1.1…" token that would leave the card;
    # max-height: a rambling base model must not push the fine-tuned model's card off the projector
    return (f'<div class="ls-cls-card" style="overflow-wrap:anywhere"><div class="ls-cls-head" '
            f'style="font-size:1.35rem;font-weight:700;margin:0.25rem 0 0.4rem">{html.escape(title)}</div>'
            f'{validity_badge(text, lang)}<div style="max-height:42rem;overflow-y:auto">'
            f'{render_mcq_html(text, reveal=False, lang=lang)}</div></div>')


# ----------------------------------------------------------------------------- handlers

def generate(run: str | None, context: str, creative: bool, lang: str, runs_dir: str,
             history: list[dict] | None = None, progress: gr.Progress = gr.Progress()
             ) -> tuple[str, str, str, list[dict], str]:
    """Both models write an MCQ about ``context``.

    Returns:
        (original model's card HTML, fine-tuned model's card HTML, status HTML, updated history,
         export note)
    """
    from core.generate import MCQ_REPETITION_PENALTY, Decoding

    history = list(history or [])
    if not run:
        return "", "", note_html(t("no_mcq_runs", lang), "warn"), history, _export_note(history, lang)
    if not (context or "").strip():
        return "", "", note_html(t("cls_empty", lang), "warn"), history, _export_note(history, lang)
    seed = random.SystemRandom().randrange(2**31) if creative else 0
    decoding = Decoding(max_new_tokens=MAX_NEW_TOKENS, do_sample=bool(creative), temperature=0.7, top_p=0.9, seed=seed,
                        repetition_penalty=MCQ_REPETITION_PENALTY)  # as the evaluation measures it
    try:
        run_dir = resolve_run(runs_dir, run)
        prompt = build_prompt(run_dir, {"context": context.strip()})
        t0 = time.monotonic()
        with MODELS.lock:
            progress(0.1, desc=t("cls_working", lang))
            models, names = MODELS.get(run_dir, need_merged=False)
            base = models.generate([prompt], names["base"], decoding)[0].text
            progress(0.55, desc=t("cls_working", lang))
            tuned = models.generate([prompt], names["adapter"], decoding)[0].text
    except Exception as e:  # noqa: BLE001 - the GUI edge: every failure becomes a message (traceback logged)
        return "", "", error_html(e, lang), history, _export_note(history, lang)
    for model, text in (("base", base), ("fine-tuned", tuned)):
        history.append({"model": model, "run": run, "context": context.strip(), "text": text})
    status = note_html(t("cls_time", lang, s=num(time.monotonic() - t0, lang)))
    return (card_html(t("cls_base", lang), base, lang), card_html(t("cls_tuned", lang), tuned, lang), status, history,
            _export_note(history, lang))


def _export_note(history: list[dict] | None, lang: str) -> str:
    return t("cls_export_intro", lang, n=len(history or []))


def _selected(history: list[dict] | None, only_tuned: bool, only_valid: bool) -> list[dict]:
    items = [h for h in history or [] if not only_tuned or h["model"] == "fine-tuned"]
    return [h for h in items if not only_valid or validate_mcq(h["text"]).valid]


def _out_dir() -> Path:
    # gradio serves files from the system temp folder; the run folder may be outside its allowed paths
    return Path(tempfile.mkdtemp(prefix="lora-studio-classroom-"))


def export_csv(history: list[dict] | None, only_tuned: bool, only_valid: bool, lang: str) -> tuple[str | None, str]:
    """The session's questions as a CSV (question, A–D, answer, valid, reasons, model, context).

    Returns:
        (file path or None, status HTML)
    """
    items = _selected(history, only_tuned, only_valid)
    if not items:
        return None, note_html(t("cls_nothing", lang))
    rows = mcqs_to_rows([h["text"] for h in items])
    for row, h in zip(rows, items):
        row.update(model=h["model"], run=h["run"], context=h["context"])
    path = _out_dir() / "mcq_questions.csv"
    pd.DataFrame(rows).to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC, encoding="utf-8-sig")  # Excel: BOM
    return str(path), note_html(t("cls_saved", lang, n=len(rows)), "ok")


def export_printable(history: list[dict] | None, only_tuned: bool, only_valid: bool, title: str, lang: str
                     ) -> tuple[str | None, str]:
    """The session's questions as a printable HTML page (questions, then the answer key on a new page)."""
    items = _selected(history, only_tuned, only_valid)
    if not items:
        return None, note_html(t("cls_nothing", lang))
    title = (title or "").strip() or t("cls_title_default", lang)
    page = render_printable_html([h["text"] for h in items], title, lang)
    path = _out_dir() / "mcq_questions.html"
    path.write_text(page, encoding="utf-8")
    return str(path), note_html(t("cls_saved", lang, n=len(items)), "ok")


def evaluation_frame(result: dict, lang: str) -> pd.DataFrame:
    """evaluate_run's result as a table: one row per measure, one column per model."""
    models = result.get("models", {})
    cols = {"base": t("cls_base", lang), "adapter": t("cls_tuned", lang)}
    which = [w for w in ("base", "adapter") if w in models] + [w for w in models if w not in ("base", "adapter")]
    rows: list[dict[str, Any]] = []

    def add(label: str, get) -> None:
        row: dict[str, Any] = {t("cls_measure", lang): label}
        for w in which:
            value = get(models[w])
            row[cols.get(w, w)] = "" if value is None else value
        rows.append(row)

    def validity(m: dict) -> str | None:
        rate = m.get("validity_rate")
        if rate is None:
            return None
        counts = f"{m['n_valid']}/{m['n']} · " if "n_valid" in m and "n" in m else ""
        return f"{counts}{num(100 * rate, lang, 0)}%"

    def number(key: str):
        return lambda m: None if m.get(key) is None else num(m[key], lang, 2)

    add(t("cls_validity", lang), validity)
    for key, label in (("perplexity", "cls_perplexity"), ("general_perplexity", "cls_general_perplexity")):
        if any(models[w].get(key) is not None for w in which):
            add(t(label, lang), number(key))
    for code in REASON_CODES:
        if any(models[w].get("reason_counts", {}).get(code) for w in which):
            add(t("cls_reason", lang, reason=REASONS[code][lang]),
                lambda m, c=code: m.get("reason_counts", {}).get(c, 0))
    for letter in (*LETTERS, "other"):
        label = t("cls_answer", lang, letter=letter) if letter != "other" else t("cls_answer_other", lang)
        if letter != "other" or any(models[w].get("answer_distribution", {}).get("other") for w in which):
            add(label, lambda m, k=letter: m.get("answer_distribution", {}).get(k, 0))
    return pd.DataFrame(rows)


def evaluate(run: str | None, limit: float, lang: str, runs_dir: str, progress: gr.Progress = gr.Progress()
             ) -> tuple[Any, str]:
    """Run core.evaluate.evaluate_run on the test split for base and adapter.

    Returns:
        (table or None, status HTML)
    """
    if not run:
        return None, note_html(t("no_mcq_runs", lang), "warn")
    try:
        from core.evaluate import evaluate_run

        run_dir = resolve_run(runs_dir, run)
        t0 = time.monotonic()
        with MODELS.lock:  # evaluation loads its own models: do not generate meanwhile
            result = evaluate_run(run_dir, split="test", which=("base", "adapter"), limit=max(1, int(limit)),
                                  progress=lambda msg: progress(None, desc=_eval_stage(msg, lang)))
    except Exception as e:  # noqa: BLE001 - the GUI edge: every failure becomes a message (traceback logged)
        return None, error_html(e, lang)
    return evaluation_frame(result, lang), note_html(t("cls_eval_done", lang, s=num(time.monotonic() - t0, lang)))


def _eval_stage(message: str, lang: str) -> str:
    """core.evaluate reports its stages in English ("base: generating 5 answers"); name the model in the UI language."""
    name, _, rest = message.partition(":")
    if name in ("base", "adapter") and rest:
        return f"{t('cls_base' if name == 'base' else 'cls_tuned', lang)} — {t('cls_eval_working', lang)}"
    return t("cls_eval_working", lang)


def pick_sample(context_id: str | None) -> Any:
    """The paragraph of a picked sample; no change when the pick was cleared (by the random button)."""
    return context_text(context_id) if context_id else gr.update()


def pick_random(current_text: str) -> tuple[Any, str]:
    """A random test paragraph other than the one shown: (clear the sample dropdown, text)."""
    texts = [c["context"] for c in sample_contexts()]
    options = [x for x in texts if x != (current_text or "").strip()] or texts
    return gr.update(value=None), random.SystemRandom().choice(options)


def refresh_mcq_runs(current: str | None, lang: str, runs_dir: str) -> dict:
    return refresh_runs(current, lang, runs_dir, MCQ_TEMPLATE)


@dataclass
class ClassroomTab:
    run: gr.Dropdown
    refresh: gr.Button
    sample: gr.Dropdown
    random: gr.Button
    context: gr.Textbox
    creative: gr.Checkbox
    generate: gr.Button
    status: gr.HTML
    base: gr.HTML
    tuned: gr.HTML
    history: gr.State
    export_note: gr.Markdown
    title: gr.Textbox
    only_tuned: gr.Checkbox
    only_valid: gr.Checkbox
    csv: gr.Button
    printable: gr.Button
    files: gr.File
    export_status: gr.HTML
    evaluate: gr.Button
    eval_limit: gr.Number
    eval_table: gr.Dataframe
    eval_status: gr.HTML


def build(ctx: AppContext) -> ClassroomTab:
    lang = ctx.lang
    lang_state = gr.State(lang)
    runs_state = gr.State(str(ctx.runs_dir))
    runs = run_choices(ctx.runs_dir, lang, MCQ_TEMPLATE)
    samples = context_choices(lang)
    first_sample = samples[0][1] if samples else None
    with gr.Column(elem_classes=["ls-classroom"]):
        gr.Markdown(t("cls_intro", lang))
        with gr.Row():
            run = gr.Dropdown(choices=runs, value=default_run(ctx.runs_dir, MCQ_TEMPLATE), label=t("cls_model", lang),
                              info=no_runs_info(runs, lang, MCQ_TEMPLATE), scale=4)
            refresh = gr.Button(t("refresh_runs", lang), scale=1, size="sm")
        with gr.Row():
            sample = gr.Dropdown(choices=samples, value=first_sample, label=t("cls_sample", lang), scale=4)
            random_btn = gr.Button(t("cls_random", lang), scale=1, size="md")
        context = gr.Textbox(value=context_text(first_sample), label=t("cls_context", lang), lines=6, max_lines=14)
        with gr.Row():
            generate_btn = gr.Button(t("cls_generate", lang), variant="primary", size="lg", scale=3)
            creative = gr.Checkbox(value=False, label=t("cls_creative", lang), scale=2)
        status = gr.HTML()
        with gr.Row(equal_height=False):
            base = gr.HTML()
            tuned = gr.HTML()
        history = gr.State([])
        with gr.Accordion(t("cls_export", lang), open=False):
            export_note = gr.Markdown(_export_note([], lang))
            with gr.Row():
                title = gr.Textbox(value=t("cls_title_default", lang), label=t("cls_title", lang), scale=3)
                only_tuned = gr.Checkbox(value=True, label=t("cls_only_tuned", lang), scale=2)
                only_valid = gr.Checkbox(value=False, label=t("cls_only_valid", lang), scale=2)
            with gr.Row():
                csv_btn = gr.Button(t("cls_csv", lang))
                print_btn = gr.Button(t("cls_print", lang))
            export_status = gr.HTML()
            files = gr.File(label=t("cls_files", lang), interactive=False)
        with gr.Accordion(t("cls_eval", lang), open=False, visible=HAS_EVALUATE):
            gr.Markdown(t("cls_eval_intro", lang))
            with gr.Row():
                eval_limit = gr.Number(value=10, minimum=1, maximum=500, precision=0, label=t("cls_eval_n", lang))
                evaluate_btn = gr.Button(t("cls_eval_button", lang), visible=HAS_EVALUATE)
            eval_status = gr.HTML()
            eval_table = gr.Dataframe(interactive=False, wrap=True)
        # the tab brings its own large type (scoped to .ls-classroom): a projector needs it, the other tabs do not
        gr.HTML(f"<style>{CSS}</style>", padding=False, container=False, elem_classes=["ls-style"])

    refresh.click(refresh_mcq_runs, [run, lang_state, runs_state], run, api_visibility="private")
    link_run_picker(ctx, run, MCQ_TEMPLATE)
    sample.change(pick_sample, sample, context, api_visibility="private")
    random_btn.click(pick_random, context, [sample, context], api_visibility="private")
    generate_btn.click(generate, [run, context, creative, lang_state, runs_state, history],
                       [base, tuned, status, history, export_note], api_name="classroom_generate",
                       concurrency_limit=1, concurrency_id="models")
    csv_btn.click(export_csv, [history, only_tuned, only_valid, lang_state], [files, export_status],
                  api_visibility="private")
    print_btn.click(export_printable, [history, only_tuned, only_valid, title, lang_state], [files, export_status],
                    api_visibility="private")
    if HAS_EVALUATE:
        evaluate_btn.click(evaluate, [run, eval_limit, lang_state, runs_state], [eval_table, eval_status],
                           api_name="classroom_evaluate", concurrency_limit=1, concurrency_id="models")
    return ClassroomTab(run, refresh, sample, random_btn, context, creative, generate_btn, status, base, tuned, history,
                        export_note, title, only_tuned, only_valid, csv_btn, print_btn, files, export_status,
                        evaluate_btn, eval_limit, eval_table, eval_status)
