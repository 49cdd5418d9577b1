"""The one mechanism by which a row becomes training text: the text plus the spans its loss is computed on.

Every task (``core.tasks``) builds its :class:`Formatted` with these helpers — a plain prompt/completion
pair, a chat template with several assistant turns, or continued pre-training (loss everywhere) — and
the GUI highlights exactly the spans that the labels use. This module knows no task by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from core.errors import DataError


@dataclass
class Formatted:
    """The training text of one row and where its loss is computed.

    ``loss_spans`` are ``[start, end)`` character offsets into ``text``; empty means the whole
    text (continued pre-training). ``prompt`` is what a model is given at generation time.
    """

    text: str
    loss_spans: list[tuple[int, int]] = field(default_factory=list)
    prompt: str = ""
    reference: str = ""


@dataclass(frozen=True)
class TemplateContext:
    """What a template needs besides the row: the tokenizer's special tokens and chat options."""

    eos_token: str
    bos_token: str | None = None
    chat: Callable[..., str] | None = None  # tokenizer.apply_chat_template, when use_chat_template
    system_prompt: str = ""


def need(row: dict, role: str) -> str:
    """The value of a role in a role-keyed row, as text; a missing value names the role."""
    value = row.get(role)
    if value is None or (isinstance(value, float) and value != value):  # NaN from pandas
        raise DataError(f"row has no value for the mapped column `{role}`", field=role)
    return str(value)


def pair(prompt: str, completion: str, ctx: TemplateContext) -> Formatted:
    """A prompt/completion pair, plain or through the chat template; loss on the completion."""
    if ctx.chat is None:
        text = prompt + completion + ctx.eos_token
        return Formatted(text, [(len(prompt), len(text))], prompt=prompt, reference=completion)
    messages = ([{"role": "system", "content": ctx.system_prompt}] if ctx.system_prompt else [])
    messages.append({"role": "user", "content": prompt.rstrip()})
    return conversation(messages + [{"role": "assistant", "content": completion}], ctx)


def conversation(messages: list[dict], ctx: TemplateContext) -> Formatted:
    """Render a conversation with the chat template; loss on every assistant turn.

    Each assistant span is found by rendering the conversation up to the turn (with the
    generation prompt) and up to its end: the difference is what the model must produce.
    """
    if ctx.chat is None:
        raise DataError("conversations need a chat template: turn on data.use_chat_template "
                        "or use a model that has one", field="data.use_chat_template")
    text = ctx.chat(messages, tokenize=False)
    spans = []
    for i, msg in enumerate(messages):
        if msg.get("role") != "assistant":
            continue
        before = ctx.chat(messages[:i], tokenize=False, add_generation_prompt=True)
        through = ctx.chat(messages[: i + 1], tokenize=False)
        if text.startswith(through) and through.startswith(before):
            spans.append((len(before), len(through)))
    last_assistant = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
    prompt = ctx.chat(messages[:last_assistant], tokenize=False, add_generation_prompt=True) if last_assistant else text
    reference = messages[last_assistant]["content"] if last_assistant is not None else ""
    return Formatted(text, spans, prompt=prompt, reference=reference)


def generation_prompt(prompt: str, ctx: TemplateContext) -> str:
    """A plain prompt as the model is given it at generation time: as is, or as a user turn of the chat template."""
    if ctx.chat is None:
        return prompt
    messages = ([{"role": "system", "content": ctx.system_prompt}] if ctx.system_prompt else [])
    messages.append({"role": "user", "content": prompt.rstrip()})
    return ctx.chat(messages, tokenize=False, add_generation_prompt=True)
