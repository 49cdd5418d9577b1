"""MCQ cards in the page's language: the quiz card of one question (answer revealed on click, reasons when it is
not valid) and the printable page of a whole quiz with its answer key.

All text is escaped: it is model output.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

from core import locale
from core.tasks.mcq_checks import validate_mcq
from core.tasks.mcq_format import MCQ

def _lang(lang: str) -> str:
    """Return a supported UI language, defaulting to Vietnamese."""
    return lang if lang in locale.LANGS else "vi"


class _Words:
    """``ui["key"]`` → the words of ``mcq.card.key`` in one language."""

    def __init__(self, lang: str):
        self.lang = lang

    def __getitem__(self, key: str) -> str:
        return locale.text(f"mcq.card.{key}", self.lang)


def describe_reasons(reasons: Iterable[str], lang: str = "vi") -> list[str]:
    """Reason codes (structure ``mcq.reason.*``) as sentences in ``lang``; unknown codes are returned unchanged."""
    lang = _lang(lang)
    return [locale.text(f"mcq.reason.{c}", lang) if locale.has(f"mcq.reason.{c}") else str(c) for c in reasons]


def _esc(text: str) -> str:
    """HTML-escape untrusted text (model output), quotes included."""
    return html.escape(text, quote=True)


def _esc_multiline(text: str) -> str:
    """Escape and keep line breaks (code snippets in question stems)."""
    return "<br>".join(_esc(line) for line in text.split("\n"))


# Inline styles: gr.HTML and other hosts may not load a stylesheet, so the card
# must look right on its own.  Class names are kept so a host can restyle it.
# Explicit text and background colours keep it readable in dark themes.
_CARD_STYLE = (
    "font-family:system-ui,'Segoe UI',Roboto,Arial,sans-serif;font-size:1.2rem;"
    "line-height:1.5;color:#1f2937;background:#ffffff;border:1px solid #d1d5db;"
    "border-radius:12px;padding:1rem 1.25rem;margin:0.5rem 0;max-width:48rem;"
)
_QUESTION_STYLE = "font-weight:600;font-size:1.3rem;margin-bottom:0.75rem;"
_OPTION_STYLE = (
    "list-style:none;margin:0.35rem 0;padding:0.45rem 0.75rem;"
    "border:1px solid #e5e7eb;border-radius:8px;"
)
_CORRECT_STYLE = "background:#dcfce7;border-color:#16a34a;font-weight:600;"
_INVALID_STYLE = (
    "background:#fef3c7;color:#78350f;border:1px solid #f59e0b;border-radius:8px;"
    "padding:0.5rem 0.75rem;margin-top:0.75rem;font-size:1rem;"
)


def render_mcq_html(
    mcq_or_text: MCQ | str, *, reveal: bool = False, lang: str = "vi"
) -> str:
    """Render one MCQ as a self-contained HTML quiz card.

    All text is escaped with :func:`html.escape`, since it is model output.
    The answer sits in a ``<details>`` element ("Xem đáp án" / "Show answer")
    so a teacher can reveal it with a click and no JavaScript.  The correct
    option gets the ``mcq-correct`` class, a highlight and a check mark only
    when ``reveal`` is true (then the ``<details>`` is also open).

    Args:
        mcq_or_text: An :class:`MCQ` or raw text to parse.
        reveal: Highlight the correct option and open the answer.
        lang: ``"vi"`` (default) or ``"en"`` for the interface strings and
            the reasons of an invalid MCQ.

    Returns:
        An HTML fragment (a ``<div class="mcq-card">``).
    """
    lang = _lang(lang)
    ui = _Words(lang)
    check = validate_mcq(mcq_or_text)
    mcq = check.mcq
    key = mcq.answer

    parts = [f'<div class="mcq-card" lang="{lang}" style="{_CARD_STYLE}">']
    question = mcq.question
    if question:
        parts.append(
            f'<div class="mcq-question" style="{_QUESTION_STYLE}">'
            f"{_esc_multiline(question)}</div>"
        )
    else:
        parts.append(
            f'<div class="mcq-question" style="{_QUESTION_STYLE}color:#6b7280;'
            f'font-style:italic;">{_esc(ui["no_question"])}</div>'
        )

    if mcq.options:
        parts.append('<ul class="mcq-options" style="padding:0;margin:0;">')
        for letter, text in mcq.options.items():
            correct = reveal and letter == key
            cls = "mcq-option mcq-correct" if correct else "mcq-option"
            style = _OPTION_STYLE + (_CORRECT_STYLE if correct else "")
            mark = " ✓" if correct else ""  # not colour alone (accessibility)
            parts.append(
                f'<li class="{cls}" style="{style}"><strong>{_esc(letter)}.</strong> '
                f"{_esc(text)}{mark}</li>"
            )
        parts.append("</ul>")

    if key is not None:
        shown = key + "."
        if key in mcq.options and mcq.options[key]:
            shown += " " + mcq.options[key]
    else:
        shown = ui["no_answer"]
    open_attr = " open" if reveal else ""
    parts.append(
        f'<details class="mcq-answer"{open_attr} style="margin-top:0.75rem;">'
        f'<summary style="cursor:pointer;font-size:1rem;">{_esc(ui["show_answer"])}'
        f"</summary><div style=\"margin-top:0.4rem;\">{_esc(ui['answer'])}: "
        f"<strong>{_esc(shown)}</strong></div></details>"
    )

    if not check.valid:
        items = "".join(f"<li>{_esc(d)}</li>" for d in describe_reasons(check.reasons, lang))
        parts.append(
            f'<div class="mcq-invalid" style="{_INVALID_STYLE}">'
            f"<strong>{_esc(ui['invalid'])}</strong>"
            f'<ul class="mcq-reasons" style="margin:0.25rem 0 0 1.25rem;">{items}</ul>'
        )
        if not mcq.question and not mcq.options and mcq.raw.strip():
            # Nothing recognisable: show what the model wrote so the teacher
            # can see why.
            parts.append(
                f"<div>{_esc(ui['raw'])}</div>"
                '<pre class="mcq-raw" style="white-space:pre-wrap;margin:0.25rem 0 0;">'
                f"{_esc(mcq.raw)}</pre>"
            )
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)


_PRINT_CSS = """
body { font-family: "Times New Roman", "Noto Serif", serif; font-size: 13pt;
       line-height: 1.45; color: #000; background: #fff; margin: 2cm auto;
       max-width: 18cm; }
h1 { text-align: center; font-size: 18pt; margin-bottom: 1.2em; }
h2 { font-size: 15pt; }
ol.mcq-list { padding-left: 0; list-style: none; }
li.mcq-item { margin-bottom: 1em; break-inside: avoid; page-break-inside: avoid; }
.mcq-question { font-weight: bold; }
.mcq-question .mcq-number { margin-right: 0.3em; }
.mcq-options { list-style: none; padding-left: 1.5em; margin: 0.3em 0 0; }
.mcq-option { margin: 0.15em 0; }
.mcq-warning { font-style: italic; font-size: 11pt; color: #555; }
.answer-key { break-before: page; page-break-before: always; }
.answer-key table { border-collapse: collapse; }
.answer-key td, .answer-key th { border: 1px solid #000; padding: 0.2em 0.8em;
       text-align: center; }
@media print {
  body { margin: 0; max-width: none; }
  @page { size: A4; margin: 2cm; }
}
"""


def render_printable_html(
    items: Sequence[MCQ | str], title: str, lang: str = "vi"
) -> str:
    """Render a complete, printable HTML page of numbered MCQs with a key.

    Questions come first (no answers shown), then the answer key on a new
    printed page.  Invalid items are still printed, with a short note, so that
    the numbering matches what the teacher saw in the app.

    Args:
        items: MCQs or raw texts.
        title: Page and heading title (escaped).
        lang: ``"vi"`` (default) or ``"en"`` for the interface strings.

    Returns:
        A full HTML document as a string.
    """
    lang = _lang(lang)
    ui = _Words(lang)
    body: list[str] = []
    key_rows: list[str] = []
    for number, item in enumerate(items, start=1):
        check = validate_mcq(item)
        mcq = check.mcq
        stem = _esc_multiline(mcq.question) if mcq.question else _esc(ui["no_question"])
        body.append(
            f'<li class="mcq-item"><div class="mcq-question">'
            f'<span class="mcq-number">{_esc(ui["question"])} {number}.</span> {stem}</div>'
        )
        if mcq.options:
            body.append('<ul class="mcq-options">')
            for letter, text in mcq.options.items():
                body.append(
                    f'<li class="mcq-option"><strong>{_esc(letter)}.</strong> {_esc(text)}</li>'
                )
            body.append("</ul>")
        if not check.valid:
            reasons = " ".join(describe_reasons(check.reasons, lang))
            body.append(f'<div class="mcq-warning">{_esc(ui["invalid"])} {_esc(reasons)}</div>')
        body.append("</li>")
        answer = mcq.answer if mcq.answer is not None else "—"
        key_rows.append(f"<tr><td>{number}</td><td>{_esc(answer)}</td></tr>")

    t = _esc(title)
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{t}</title>\n<style>{_PRINT_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{t}</h1>\n"
        f'<ol class="mcq-list">\n{"".join(body)}\n</ol>\n'
        f'<section class="answer-key">\n<h2>{_esc(ui["answer_key"])}</h2>\n'
        f'<table><thead><tr><th>{_esc(ui["question"])}</th><th>{_esc(ui["answer"])}</th>'
        f'</tr></thead>\n<tbody>{"".join(key_rows)}</tbody></table>\n</section>\n'
        f"</body>\n</html>\n"
    )


# ----------------------------------------------------------------------------- a question of the quiz pipeline

def _letters(options) -> str:
    return ", ".join(str(x) for x in options)


def describe_flags(question, lang: str = "vi", *, structure: bool = True) -> list[str]:
    """Why a question of :class:`core.inference.quiz.QuizQuestion` was flagged (or re-keyed), in words.

    Structure reasons come first (unless ``structure`` is False: the card lists them), then each content code with
    the options it names, then what the pipeline did.
    """
    from core.inference.quiz import PLAN_NOT_KEPT, READER_DISAGREES, REKEYED

    lang = _lang(lang)
    out: list[str] = []
    for code in question.reasons:
        if locale.has(f"mcq.reason.{code}"):
            out += describe_reasons([code], lang) if structure else []
            continue
        if code == PLAN_NOT_KEPT:
            out.append(locale.text("mcq.content.plan_not_kept", lang, answer=question.answer or ""))
            continue
        options = list((question.detail.get(code) or {}).get("options") or [])
        args = {"options": _letters(options)}
        if code in ("key_unsupported", READER_DISAGREES) and len(options) == 2:
            args.update(key=options[0], better=options[1])
        if code == "near_duplicate_options" and len(options) >= 2:
            args.update(a=options[0], b=options[1])
        key = f"mcq.content.{code}"
        out.append(locale.text(key, lang, **args) if locale.has(key) else str(code))
    if question.rekeyed_from and question.structure_ok:
        out.append(locale.text(f"mcq.content.{REKEYED}", lang, old=question.rekeyed_from, new=question.mcq.answer))
    return out


def _badge(ok: bool, good: str, bad: str, lang: str, kind_bad: str = "ls-invalid", hint: str = "") -> str:
    cls = "ls-valid" if ok else kind_bad
    title = f' title="{_esc(hint)}"' if hint else ""
    return (f'<span class="ls-badge-pill {cls}" role="status"{title}>'
            f'{_esc(locale.text(good if ok else bad, lang))}</span>')


def quiz_badges_html(question, lang: str = "vi") -> str:
    """The two badges of a question — structure, content checks — distinct, each in words and a mark."""
    lang = _lang(lang)
    parts = [_badge(question.structure_ok, "mcq.badge.structure_ok", "mcq.badge.structure_bad", lang)]
    if question.structure_ok:
        parts.append(_badge(question.content_ok, "mcq.badge.content_ok", "mcq.badge.content_flagged", lang,
                            kind_bad="ls-flagged", hint=locale.text("mcq.badge.note", lang)))
    return f'<div class="ls-badges">{" ".join(parts)}</div>'


def quiz_card_html(question, lang: str = "vi", *, number: int | None = None) -> str:
    """One question of the pipeline: badges, the card (answer behind a click), why it is flagged."""
    lang = _lang(lang)
    head = (f'<div class="ls-cls-head">{_esc(locale.text("classroom.question_n", lang, n=number))}</div>'
            if number is not None else "")
    why = describe_flags(question, lang, structure=False)  # render_mcq_html lists the structure reasons
    flags = ""
    if why:
        items = "".join(f"<li>{_esc(w)}</li>" for w in why)
        flags = (f'<div class="mcq-flags" style="{_INVALID_STYLE}"><ul class="mcq-reasons" '
                 f'style="margin:0.25rem 0 0 1.25rem;">{items}</ul></div>')
    return (f'<div class="ls-cls-card" data-status="{_esc(question.status)}">{head}{quiz_badges_html(question, lang)}'
            f'{render_mcq_html(question.text, reveal=False, lang=lang)}{flags}</div>')
