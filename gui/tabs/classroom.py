"""Classroom MCQ demo: a paragraph in, a quiz card out — the original model next to the fine-tuned one.

Large type for a projector, no training controls. The paragraphs come from the TEST split of the
bundled sample, so the class sees the model work on text it never trained on.
"""

from __future__ import annotations

import csv
import html
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

from core import locale, tasks
from core.analysis.explain import num
from core.config import DecodingConfig
from core.inference.batch import run_prompt
from core.inference.modelset import ADAPTER, BASE, MODELS
from core.locale import text as t
from core.tasks.mcq_checks import REASON_CODES, mcqs_to_rows, validate_mcq
from core.tasks.mcq_format import LETTERS
from gui.edge import note_html, shows_errors
from gui.render.mcq_cards import describe_reasons, render_mcq_html, render_printable_html
from gui.state import AppContext
from gui.widgets.run_picker import resolve_run, run_picker

log = logging.getLogger("lora_studio.gui.classroom")

SAMPLE = "sample:vi_informatics_mcq"


# Large type for a projector, injected by build() inside the tab.
CSS = """
.ls-classroom textarea { font-size: 1.3rem !important; line-height: 1.55 !important; }
.ls-classroom input { font-size: 1.1rem !important; }
.ls-classroom button.lg { font-size: 1.3rem !important; }
.ls-classroom .ls-cls-head { font-size: 1.35rem; font-weight: 700; margin: 0.25rem 0; }
"""

MAX_NEW_TOKENS = 256


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
    key = f"classroom.topic.{topic}"
    return t(key, lang) if locale.has(key) else topic


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
    """A ✓/✗ badge for generated MCQ text; the card under it lists the reasons in the page's language."""
    check = validate_mcq(text)
    ok = check.valid
    label = t("classroom.valid" if ok else "classroom.invalid", lang)
    return f'<div class="{"ls-valid" if ok else "ls-invalid"}" role="status">{html.escape(label)}</div>'


def card_html(title: str, text: str, lang: str) -> str:
    """Heading, validity badge and quiz card (answer behind a click) of one model's output."""
    # overflow-wrap: a small model sometimes writes one endless "1.1.1.1…" token that would leave the card;
    # max-height: a rambling base model must not push the fine-tuned model's card off the projector
    return (f'<div class="ls-cls-card"><div class="ls-cls-head">{html.escape(title)}</div>'
            f'{validity_badge(text, lang)}<div class="ls-cls-body">{render_mcq_html(text, reveal=False, lang=lang)}'
            f'</div></div>')


# ----------------------------------------------------------------------------- handlers

@shows_errors(lambda err: ("", "", err, gr.skip(), gr.skip()))
def generate(run: str | None, context: str, creative: bool, lang: str, runs_dir: str,
             history: list[dict] | None = None, progress: gr.Progress = gr.Progress()
             ) -> tuple[str, str, str, list[dict], str]:
    """Both models write an MCQ about ``context``.

    Returns:
        (original model's card HTML, fine-tuned model's card HTML, status HTML, updated history,
         export note)
    """
    history = list(history or [])
    if not run:
        return "", "", note_html(t("runs.no_mcq_runs", lang), "warn"), history, _export_note(history, lang)
    if not (context or "").strip():
        return "", "", note_html(t("classroom.empty", lang), "warn"), history, _export_note(history, lang)
    seed = random.SystemRandom().randrange(2**31) if creative else 0
    decoding = DecodingConfig(max_new_tokens=MAX_NEW_TOKENS, do_sample=bool(creative), temperature=0.7, top_p=0.9,
                              seed=seed, repetition_penalty=tasks.get(tasks.MCQ).repetition_penalty)  # as evaluated
    run_dir = resolve_run(runs_dir, run)
    prompt = run_prompt(run_dir, {"context": context.strip()})
    t0 = time.monotonic()
    with MODELS.lock:
        progress(0.1, desc=t("classroom.working", lang))
        models, names = MODELS.get(run_dir, need_merged=False)
        base = models.generate([prompt], names[BASE], decoding)[0].text
        progress(0.55, desc=t("classroom.working", lang))
        tuned = models.generate([prompt], names[ADAPTER], decoding)[0].text
    for model, text in (("base", base), ("fine-tuned", tuned)):
        history.append({"model": model, "run": run, "context": context.strip(), "text": text})
    status = note_html(t("classroom.time", lang, s=num(time.monotonic() - t0, lang)))
    return (card_html(t("classroom.base", lang), base, lang), card_html(t("classroom.tuned", lang), tuned, lang), status, history,
            _export_note(history, lang))


def _export_note(history: list[dict] | None, lang: str) -> str:
    return t("classroom.export_intro", lang, n=len(history or []))


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
        return None, note_html(t("classroom.nothing", lang))
    rows = mcqs_to_rows([h["text"] for h in items])
    for row, h in zip(rows, items):
        row.update(model=h["model"], run=h["run"], context=h["context"])
    path = _out_dir() / "mcq_questions.csv"
    pd.DataFrame(rows).to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC, encoding="utf-8-sig")  # Excel: BOM
    return str(path), note_html(t("classroom.saved", lang, n=len(rows)), "ok")


def export_printable(history: list[dict] | None, only_tuned: bool, only_valid: bool, title: str, lang: str
                     ) -> tuple[str | None, str]:
    """The session's questions as a printable HTML page (questions, then the answer key on a new page)."""
    items = _selected(history, only_tuned, only_valid)
    if not items:
        return None, note_html(t("classroom.nothing", lang))
    title = (title or "").strip() or t("classroom.title_default", lang)
    page = render_printable_html([h["text"] for h in items], title, lang)
    path = _out_dir() / "mcq_questions.html"
    path.write_text(page, encoding="utf-8")
    return str(path), note_html(t("classroom.saved", lang, n=len(items)), "ok")


def evaluation_frame(result: dict, lang: str) -> pd.DataFrame:
    """evaluate_run's result as a table: one row per measure, one column per model."""
    models = result.get("models", {})
    cols = {"base": t("classroom.base", lang), "adapter": t("classroom.tuned", lang)}
    which = [w for w in ("base", "adapter") if w in models] + [w for w in models if w not in ("base", "adapter")]
    rows: list[dict[str, Any]] = []

    def add(label: str, get) -> None:
        row: dict[str, Any] = {t("classroom.measure", lang): label}
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

    add(t("classroom.validity", lang), validity)
    for key, label in (("perplexity", "classroom.perplexity"), ("general_perplexity", "classroom.general_perplexity")):
        if any(models[w].get(key) is not None for w in which):
            add(t(label, lang), number(key))
    for code in REASON_CODES:
        if any(models[w].get("reason_counts", {}).get(code) for w in which):
            add(t("classroom.reason", lang, reason=describe_reasons([code], lang)[0]),
                lambda m, c=code: m.get("reason_counts", {}).get(c, 0))
    for letter in (*LETTERS, "other"):
        label = t("classroom.answer", lang, letter=letter) if letter != "other" else t("classroom.answer_other", lang)
        if letter != "other" or any(models[w].get("answer_distribution", {}).get("other") for w in which):
            add(label, lambda m, k=letter: m.get("answer_distribution", {}).get(k, 0))
    return pd.DataFrame(rows)


@shows_errors(lambda err: (None, err))
def evaluate(run: str | None, limit: float, lang: str, runs_dir: str, progress: gr.Progress = gr.Progress()
             ) -> tuple[Any, str]:
    """Run core.evaluate.evaluate_run on the test split for base and adapter.

    Returns:
        (table or None, status HTML)
    """
    if not run:
        return None, note_html(t("runs.no_mcq_runs", lang), "warn")
    from core.evaluate import evaluate_run

    def stage(code: str, **args) -> None:
        which = args.get("model")
        name = t("classroom.base" if which == BASE else "classroom.tuned", lang) if which else ""
        progress(None, desc=f"{name} — {t('classroom.eval_working', lang)}" if name else t("classroom.eval_working",
                                                                                           lang))

    run_dir = resolve_run(runs_dir, run)
    t0 = time.monotonic()
    with MODELS.lock:  # evaluation loads its own models: do not generate meanwhile
        result = evaluate_run(run_dir, split="test", which=(BASE, ADAPTER), limit=max(1, int(limit)), progress=stage)
    return evaluation_frame(result, lang), note_html(t("classroom.eval_done", lang, s=num(time.monotonic() - t0, lang)))


def pick_sample(context_id: str | None) -> Any:
    """The paragraph of a picked sample; no change when the pick was cleared (by the random button)."""
    return context_text(context_id) if context_id else gr.update()


def pick_random(current_text: str) -> tuple[Any, str]:
    """A random test paragraph other than the one shown: (clear the sample dropdown, text)."""
    texts = [c["context"] for c in sample_contexts()]
    options = [x for x in texts if x != (current_text or "").strip()] or texts
    return gr.update(value=None), random.SystemRandom().choice(options)


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
    samples = context_choices(lang)
    first_sample = samples[0][1] if samples else None
    with gr.Column(elem_classes=["ls-classroom"]):
        gr.Markdown(t("classroom.intro", lang))
        with gr.Row():
            run, refresh = run_picker(ctx, template=tasks.MCQ, label="classroom.model")
        with gr.Row():
            sample = gr.Dropdown(choices=samples, value=first_sample, label=t("classroom.sample", lang), scale=4)
            random_btn = gr.Button(t("classroom.random", lang), scale=1, size="md")
        context = gr.Textbox(value=context_text(first_sample), label=t("classroom.context", lang), lines=6, max_lines=14)
        with gr.Row():
            generate_btn = gr.Button(t("classroom.generate", lang), variant="primary", size="lg", scale=3)
            creative = gr.Checkbox(value=False, label=t("classroom.creative", lang), scale=2)
        status = gr.HTML()
        with gr.Row(equal_height=False):
            base = gr.HTML()
            tuned = gr.HTML()
        history = gr.State([])
        with gr.Accordion(t("classroom.export", lang), open=False):
            export_note = gr.Markdown(_export_note([], lang))
            with gr.Row():
                title = gr.Textbox(value=t("classroom.title_default", lang), label=t("classroom.title", lang), scale=3)
                only_tuned = gr.Checkbox(value=True, label=t("classroom.only_tuned", lang), scale=2)
                only_valid = gr.Checkbox(value=False, label=t("classroom.only_valid", lang), scale=2)
            with gr.Row():
                csv_btn = gr.Button(t("classroom.csv", lang))
                print_btn = gr.Button(t("classroom.print", lang))
            export_status = gr.HTML()
            files = gr.File(label=t("classroom.files", lang), interactive=False)
        with gr.Accordion(t("classroom.eval", lang), open=False):
            gr.Markdown(t("classroom.eval_intro", lang))
            with gr.Row():
                eval_limit = gr.Number(value=10, minimum=1, maximum=500, precision=0, label=t("classroom.eval_n", lang))
                evaluate_btn = gr.Button(t("classroom.eval_button", lang))
            eval_status = gr.HTML()
            eval_table = gr.Dataframe(interactive=False, wrap=True)
        # the tab brings its own large type (scoped to .ls-classroom): a projector needs it, the other tabs do not
        gr.HTML(f"<style>{CSS}</style>", padding=False, container=False, elem_classes=["ls-style"])

    sample.change(pick_sample, sample, context, api_visibility="private")
    random_btn.click(pick_random, context, [sample, context], api_visibility="private")
    generate_btn.click(generate, [run, context, creative, lang_state, runs_state, history],
                       [base, tuned, status, history, export_note], api_name="classroom_generate",
                       concurrency_limit=1, concurrency_id="models")
    csv_btn.click(export_csv, [history, only_tuned, only_valid, lang_state], [files, export_status],
                  api_visibility="private")
    print_btn.click(export_printable, [history, only_tuned, only_valid, title, lang_state], [files, export_status],
                    api_visibility="private")
    evaluate_btn.click(evaluate, [run, eval_limit, lang_state, runs_state], [eval_table, eval_status],
                       api_name="classroom_evaluate", concurrency_limit=1, concurrency_id="models")
    return ClassroomTab(run, refresh, sample, random_btn, context, creative, generate_btn, status, base, tuned, history,
                        export_note, title, only_tuned, only_valid, csv_btn, print_btn, files, export_status,
                        evaluate_btn, eval_limit, eval_table, eval_status)
