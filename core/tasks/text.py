"""Continued pre-training (``cpt``: title + paragraph) and plain ``text``: the loss on every token.

No metric here: what such a run learns is measured by the loss and perplexity in ``core.evaluate``.
"""

from __future__ import annotations

from core.tasks.base import Task
from core.templates import Formatted, TemplateContext, need


def format_cpt(row: dict, ctx: TemplateContext) -> Formatted:
    title = str(row.get("title") or "").strip()
    body = need(row, "context")
    text = (f"{title}\n{body}" if title else body) + ctx.eos_token
    return Formatted(text, [], prompt=f"{title}\n" if title else "", reference=body)


def prompt_cpt(row: dict, ctx: TemplateContext) -> str:
    return f"{str(row.get('title') or '').strip()}\n"


def format_text(row: dict, ctx: TemplateContext) -> Formatted:
    text = need(row, "text") + ctx.eos_token
    return Formatted(text, [], prompt="", reference=text)


def prompt_text(row: dict, ctx: TemplateContext) -> str:
    return str(row.get("text") or "")


CPT = Task(name="cpt", schema="cpt", needs=("context",), format=format_cpt, prompt=prompt_cpt,
           prompt_roles=("title",))
TEXT = Task(name="text", schema="text", needs=("text",), format=format_text, prompt=prompt_text,
            prompt_roles=("text",))
