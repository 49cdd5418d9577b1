"""Classroom MCQ demo: a paragraph in, a quiz card out — the original model next to the fine-tuned one.

Large type for a projector, no training controls. The paragraphs come from the TEST split of the
bundled sample, so the class sees the model work on text it never trained on.
"""

from __future__ import annotations

import html
import logging
import random
import tempfile
import time
from dataclasses import asdict, dataclass, fields, replace
from functools import partial
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from core import locale, tasks
from core.analysis.explain import num
from core.config import DecodingConfig
from core.inference import quiz as Q
from core.inference.modelset import ADAPTER, BASE, MODELS
from core.locale import text as t
from core.run import slug
from core.tasks.mcq_sample import sample_paragraphs
from core.tasks.mcq_checks import REASON_CODES, validate_mcq
from core.tasks.quiz_export import WRITERS
from core.tasks.mcq_format import LETTERS
from gui.edge import note_html, shows_errors
from gui.render.mcq_cards import describe_reasons, quiz_card_html, render_mcq_html, render_printable_html
from gui.state import AppContext
from gui.widgets.run_picker import resolve_run, run_picker

log = logging.getLogger("lora_studio.gui.classroom")

# Large type for a projector, injected by build() inside the tab.
CSS = """
.ls-classroom textarea { font-size: 1.3rem !important; line-height: 1.55 !important; }
.ls-classroom input { font-size: 1.1rem !important; }
.ls-classroom button.lg { font-size: 1.3rem !important; }
.ls-classroom .ls-cls-head { font-size: 1.35rem; font-weight: 700; margin: 0.25rem 0; }
"""


# ----------------------------------------------------------------------------- sample paragraphs

def sample_contexts() -> tuple[dict, ...]:
    """The sample's test paragraphs (never trained on): {context_id, topic, context, answer}."""
    return sample_paragraphs("test")


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
        out.append((f"{topic_name(c['topic'], lang)} — {words}…", c["context_id"]))
    return out


def context_text(context_id: str | None) -> str:
    for c in sample_contexts():
        if c["context_id"] == context_id:
            return c["context"]
    return ""


# ----------------------------------------------------------------------------- the quiz

MAX_PARAGRAPHS = 40  # a chapter longer than this is cut (about 5 minutes of writing on 2 cores)
BASE_DECODING = DecodingConfig(max_new_tokens=Q.MAX_NEW_TOKENS)  # the tuned side's token budget: no longer wait
FORMATS = ("gift", "moodle", "kahoot", "quizizz", "csv", "print")
_FORMAT_OPTIONS = {"gift": ("title", "category"), "moodle": ("category",), "kahoot": ("title",)}
_QUESTION_FIELDS = {f.name for f in fields(Q.QuizQuestion)}


def _item(q: Q.QuizQuestion, seed: int) -> dict:
    """A question as the page keeps it (gr.State): its fields, the seed it was written with."""
    return {**asdict(q), "seed": seed}


def _question(item: dict) -> Q.QuizQuestion:
    return Q.QuizQuestion(**{k: v for k, v in item.items() if k in _QUESTION_FIELDS})


def base_card_html(text: str, lang: str) -> str:
    """The original model's answer for one paragraph, with its structure badge (for the comparison)."""
    ok = validate_mcq(text).valid
    badge = t("mcq.badge.structure_ok" if ok else "mcq.badge.structure_bad", lang)
    return (f'<div class="ls-cls-card"><div class="ls-cls-head">{html.escape(t("classroom.base", lang))}</div>'
            f'<div class="ls-badges"><span class="ls-badge-pill {"ls-valid" if ok else "ls-invalid"}" '
            f'role="status">{html.escape(badge)}</span></div>'
            f'<div class="ls-cls-body">{render_mcq_html(text, reveal=False, lang=lang)}</div></div>')


def _writer(run_dir: Path) -> tuple[Q.QuizWriter, Any, dict]:
    """The run's quiz writer on the models in memory (call with MODELS.lock held; loads only on a new run)."""
    models, names = MODELS.get(run_dir, need_merged=False)
    return Q.QuizWriter(models, which=names[ADAPTER], run_dir=run_dir), models, names


def _kept_default(items: list[dict]) -> list[bool]:
    """A question is kept unless a check flagged it; the teacher changes that with its checkbox."""
    return [it["status"] == Q.OK and it["structure_ok"] for it in items]


@shows_errors(lambda err: ("", err, gr.skip(), gr.skip()))
def write_quiz(run: str | None, text: str, answer: str, compare: bool, creative: bool, lang: str, runs_dir: str,
               progress: gr.Progress = gr.Progress()) -> tuple[str, str, list[dict], list[bool]]:
    """The fine-tuned model writes a question per paragraph of ``text`` (one paragraph, or a pasted chapter).

    With one paragraph and ``compare``, the original model answers too, with the same token budget, greedily.

    Returns:
        (the original model's card HTML or "", status HTML, the questions, which are kept)
    """
    if not run:
        return "", note_html(t("runs.no_mcq_runs", lang), "warn"), gr.skip(), gr.skip()
    text = (text or "").strip()
    if not text:
        return "", note_html(t("classroom.empty", lang), "warn"), gr.skip(), gr.skip()
    paragraphs = Q.paragraphs_of(text) or [" ".join(text.split())]  # one short paragraph is still a paragraph
    notes = []
    if len(paragraphs) > MAX_PARAGRAPHS:
        notes.append(t("classroom.cut", lang, n=len(paragraphs), max=MAX_PARAGRAPHS))
        paragraphs = paragraphs[:MAX_PARAGRAPHS]
    answer = (answer or "").strip() or None
    run_dir = resolve_run(runs_dir, run)
    seed = random.SystemRandom().randrange(2**31) if creative else 0
    t0 = time.monotonic()
    items: list[dict] = []
    base = ""
    with MODELS.lock:
        progress(0.02, desc=t("classroom.loading", lang))
        writer, models, names = _writer(run_dir)
        if answer and not writer.takes_answer:
            notes.append(t("classroom.answer_not_used", lang))
            answer = None
        if answer and len(paragraphs) > 1:
            notes.append(t("classroom.answer_one_paragraph", lang))
            answer = None
        for n, paragraph in enumerate(paragraphs):
            progress((n + 0.1) / len(paragraphs), desc=t("classroom.writing", lang, n=n + 1, total=len(paragraphs)))
            items.append(_item(writer.write(paragraph, answer=answer, seed=seed + n)[0], seed + n))
        if compare and len(paragraphs) == 1:
            progress(0.9, desc=t("classroom.working_base", lang))
            decoding = replace(BASE_DECODING, repetition_penalty=writer.decoding.repetition_penalty)
            base = base_card_html(models.generate([writer.prompt(paragraphs[0])], names[BASE], decoding)[0].text, lang)
    seconds = time.monotonic() - t0
    ok = sum(it["status"] == Q.OK for it in items)
    status = note_html(" ".join([t("classroom.written", lang, n=len(items), ok=ok, s=num(seconds, lang))] + notes),
                       "warn" if notes else "info")
    return base, status, items, _kept_default(items)


@shows_errors(lambda err: (gr.skip(), gr.skip(), err))
def write_another(index: int, run: str | None, items: list[dict] | None, kept: list[bool] | None, lang: str,
                  runs_dir: str) -> tuple[list[dict], list[bool], str]:
    """Replace question ``index`` by another one about the same paragraph (other samples: the next seed)."""
    items, kept = list(items or []), list(kept or [])
    if not run or not 0 <= index < len(items):
        return gr.skip(), gr.skip(), note_html(t("classroom.nothing", lang), "warn")
    old = items[index]
    seed = int(old.get("seed", 0)) + 1000
    with MODELS.lock:
        writer, _, _ = _writer(resolve_run(runs_dir, run))
        answer = old.get("answer") if writer.takes_answer and old.get("answer") else None
        q = writer.write(old["paragraph"], answer=answer, seed=seed)[0]
    items[index] = _item(q, seed)
    kept[index] = _kept_default([items[index]])[0]
    return items, kept, note_html(t("classroom.rewritten", lang, n=index + 1, s=num(q.seconds, lang)))


def set_kept(index: int, value: bool, kept: list[bool] | None) -> list[bool]:
    kept = list(kept or [])
    if 0 <= index < len(kept):
        kept[index] = bool(value)
    return kept


def export_note(items: list[dict] | None, kept: list[bool] | None, lang: str) -> str:
    n_kept = sum(1 for it, k in zip(items or [], kept or []) if k and it["structure_ok"])
    return t("classroom.export_intro", lang, n=n_kept, total=len(items or []))


def _out_dir() -> Path:
    # gradio serves files from the system temp folder; the run folder may be outside its allowed paths
    return Path(tempfile.mkdtemp(prefix="lora-studio-quiz-"))


@shows_errors(lambda err: (None, err))
def export_quiz(items: list[dict] | None, kept: list[bool] | None, fmt: str, title: str, lang: str
                ) -> tuple[str | None, str]:
    """The questions the teacher kept, in a format a platform imports (or the printable page).

    Returns:
        (file path or None, status HTML)
    """
    chosen = [_question(it) for it, k in zip(items or [], kept or []) if k and it["structure_ok"]]
    if not chosen:
        return None, note_html(t("classroom.nothing", lang), "warn")
    title = (title or "").strip() or t("classroom.title_default", lang)
    stem = slug(title) or "quiz"
    if fmt == "print":
        path = _out_dir() / f"{stem}.html"
        path.write_text(render_printable_html([q.text for q in chosen], title, lang), encoding="utf-8")
        return str(path), note_html(t("classroom.saved", lang, n=len(chosen)), "ok")
    writer, suffix = WRITERS[fmt]
    path = _out_dir() / f"{stem}{suffix}"
    options = {name: title for name in _FORMAT_OPTIONS.get(fmt, ())}
    warnings = writer(Q.to_items(chosen), path, **options)
    message = t("classroom.saved", lang, n=len(chosen))
    if warnings:
        message += " " + t("classroom.too_long", lang, n=len(warnings), numbers=", ".join(
            str(w.number) for w in warnings[:8]))
    return str(path), note_html(message, "warn" if warnings else "ok")


def evaluation_frame(result: dict, lang: str) -> pd.DataFrame:
    """evaluate_run's result as a table: one row per measure, one column per model."""
    models = result.get("models", {})
    cols = {BASE: t("classroom.base", lang), ADAPTER: t("classroom.tuned", lang)}
    which = [w for w in (BASE, ADAPTER) if w in models] + [w for w in models if w not in (BASE, ADAPTER)]
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

    def content(m: dict) -> str | None:
        c = m.get("content")
        if not c or not c.get("n"):
            return None
        return f"{c['n_passed']}/{c['n']} · {num(100 * c['pass_rate'], lang, 0)}%"

    def read(m: dict) -> str | None:
        r = m.get("read")
        if not r or not r.get("n"):
            return None
        if not r["n_read"]:
            return t("classroom.not_read", lang)
        return t("classroom.read_figure", lang, correct=r["correct"], read=r["n_read"], n=r["n"])

    add(t("classroom.validity", lang), validity)
    if any(models[w].get("content") for w in which):
        add(t("classroom.content_passed", lang), content)
    if any(models[w].get("read") for w in which):
        add(t("classroom.reader_correct", lang), read)
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
    answer: gr.Textbox
    compare: gr.Checkbox
    creative: gr.Checkbox
    generate: gr.Button
    status: gr.HTML
    base: gr.HTML
    quiz: gr.State
    kept: gr.State
    export_note: gr.Markdown
    title: gr.Textbox
    format: gr.Dropdown
    export: gr.Button
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
            run, refresh = run_picker(ctx, family=tasks.MCQ, label="classroom.model")
        with gr.Row():
            sample = gr.Dropdown(choices=samples, value=first_sample, label=t("classroom.sample", lang), scale=4)
            random_btn = gr.Button(t("classroom.random", lang), scale=1, size="md")
        context = gr.Textbox(value=context_text(first_sample), label=t("classroom.context", lang),
                             info=t("classroom.context_info", lang), lines=6, max_lines=20)
        answer = gr.Textbox(label=t("classroom.answer_label", lang), info=t("classroom.answer_info", lang),
                            placeholder=t("classroom.answer_placeholder", lang))
        with gr.Row():
            generate_btn = gr.Button(t("classroom.generate", lang), variant="primary", size="lg", scale=3)
            compare = gr.Checkbox(value=True, label=t("classroom.compare", lang), scale=2)
            creative = gr.Checkbox(value=False, label=t("classroom.creative", lang), scale=2)
        status = gr.HTML(elem_id="cls-status")
        base = gr.HTML(elem_id="cls-base")
        quiz = gr.State([])
        kept = gr.State([])

        @gr.render(inputs=[quiz, kept, lang_state], triggers=[quiz.change])
        def cards(items: list[dict], keep: list[bool], lang: str) -> None:
            for i, item in enumerate(items or []):
                with gr.Group(elem_classes=["ls-quiz-item"]):
                    gr.HTML(quiz_card_html(_question(item), lang, number=i + 1 if len(items) > 1 else None),
                            key=f"quiz-card-{i}")
                    with gr.Row():
                        box = gr.Checkbox(value=bool(keep[i]) if i < len(keep) else False,
                                          label=t("classroom.keep", lang), interactive=item["structure_ok"],
                                          key=f"quiz-keep-{i}", scale=2)
                        again = gr.Button(t("classroom.another", lang), size="sm", key=f"quiz-another-{i}", scale=1)
                box.input(partial(set_kept, i), [box, kept], kept, api_visibility="private")
                again.click(partial(write_another, i), [run, quiz, kept, lang_state, runs_state],
                            [quiz, kept, status], api_visibility="private", concurrency_limit=1,
                            concurrency_id="models")

        with gr.Accordion(t("classroom.export", lang), open=True):
            export_note_md = gr.Markdown(export_note([], [], lang))
            with gr.Row():
                title = gr.Textbox(value=t("classroom.title_default", lang), label=t("classroom.title", lang), scale=3)
                fmt = gr.Dropdown(choices=[(t(f"classroom.format.{f}", lang), f) for f in FORMATS], value="gift",
                                  label=t("classroom.format", lang), scale=2)
            export_btn = gr.Button(t("classroom.export_button", lang), elem_id="cls-export")
            export_status = gr.HTML(elem_id="cls-export-status")
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
    generate_btn.click(write_quiz, [run, context, answer, compare, creative, lang_state, runs_state],
                       [base, status, quiz, kept], api_name="classroom_generate",
                       concurrency_limit=1, concurrency_id="models")
    gr.on([quiz.change, kept.change], export_note, [quiz, kept, lang_state], export_note_md,
          api_visibility="private", show_progress="hidden")
    export_btn.click(export_quiz, [quiz, kept, fmt, title, lang_state], [files, export_status],
                     api_visibility="private")
    evaluate_btn.click(evaluate, [run, eval_limit, lang_state, runs_state], [eval_table, eval_status],
                       api_name="classroom_evaluate", concurrency_limit=1, concurrency_id="models")
    return ClassroomTab(run, refresh, sample, random_btn, context, answer, compare, creative, generate_btn, status,
                        base, quiz, kept, export_note_md, title, fmt, export_btn, files, export_status,
                        evaluate_btn, eval_limit, eval_table, eval_status)
