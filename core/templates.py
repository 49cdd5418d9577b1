"""Prompt templates: how one mapped row becomes the exact text a model is trained on.

Every template returns a :class:`Formatted`: the full text plus the character spans on which
the loss is computed. One mechanism serves all of them — a plain prompt/completion pair, a
chat template with several assistant turns, or continued pre-training (loss everywhere) — and
the GUI highlights exactly the spans that the labels use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from core.errors import DataError
from core.mcq import format_mcq

# The Vietnamese instruction of the MCQ-generation task, as the users' notebooks phrase it.
MCQ_INSTRUCTION = (
    "Dựa vào đoạn văn sau, hãy viết một câu hỏi trắc nghiệm có bốn phương án A, B, C, D "
    "và cho biết đáp án đúng."
)
PRICE_QUESTION = "How much does this cost to the nearest dollar?"
PRICE_PREFIX = "Price is $"
ALPACA_HEADER = "Below is an instruction that describes a task. Write a response that appropriately completes the request."


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


def _need(row: dict, role: str) -> str:
    value = row.get(role)
    if value is None or (isinstance(value, float) and value != value):  # NaN from pandas
        raise DataError(f"row has no value for the mapped column `{role}`", field=role)
    return str(value)


def _pair(prompt: str, completion: str, ctx: TemplateContext) -> Formatted:
    """A prompt/completion pair, plain or through the chat template; loss on the completion."""
    if ctx.chat is None:
        text = prompt + completion + ctx.eos_token
        return Formatted(text, [(len(prompt), len(text))], prompt=prompt, reference=completion)
    messages = ([{"role": "system", "content": ctx.system_prompt}] if ctx.system_prompt else [])
    messages.append({"role": "user", "content": prompt.rstrip()})
    return _chat(messages + [{"role": "assistant", "content": completion}], ctx)


def _chat(messages: list[dict], ctx: TemplateContext) -> Formatted:
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


def mcq_prompt(context: str) -> str:
    """The plain instruction prompt of the MCQ-generation task for one paragraph."""
    return f"{MCQ_INSTRUCTION}\n\nĐoạn văn: {context.strip()}\n\n"


def fmt_mcq_generation(row: dict, ctx: TemplateContext) -> Formatted:
    options = [_need(row, f"answer_{x}") for x in "abcd"]
    completion = format_mcq(_need(row, "question"), options, _need(row, "correct_answer"))
    return _pair(mcq_prompt(_need(row, "context")), completion, ctx)


def fmt_cpt(row: dict, ctx: TemplateContext) -> Formatted:
    title = str(row.get("title") or "").strip()
    body = _need(row, "context")
    text = (f"{title}\n{body}" if title else body) + ctx.eos_token
    return Formatted(text, [], prompt=f"{title}\n" if title else "", reference=body)


def fmt_text(row: dict, ctx: TemplateContext) -> Formatted:
    text = _need(row, "text") + ctx.eos_token
    return Formatted(text, [], prompt="", reference=text)


def fmt_alpaca(row: dict, ctx: TemplateContext) -> Formatted:
    instruction = _need(row, "instruction")
    extra = str(row.get("input") or "").strip()
    if ctx.chat is not None:
        return _pair(instruction + (f"\n\n{extra}" if extra else ""), _need(row, "output"), ctx)
    prompt = f"{ALPACA_HEADER}\n\n### Instruction:\n{instruction}\n\n"
    if extra:
        prompt += f"### Input:\n{extra}\n\n"
    prompt += "### Response:\n"
    return _pair(prompt, _need(row, "output"), ctx)


def fmt_chat(row: dict, ctx: TemplateContext) -> Formatted:
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise DataError(f"`messages` must be a non-empty list of {{role, content}}, got {messages!r:.80}",
                        field="messages")
    norm = []
    for m in messages:  # ShareGPT {from, value} → {role, content}
        role = m.get("role") or {"human": "user", "gpt": "assistant"}.get(m.get("from"), m.get("from"))
        norm.append({"role": role, "content": m.get("content", m.get("value", ""))})
    if ctx.system_prompt and norm[0]["role"] != "system":
        norm.insert(0, {"role": "system", "content": ctx.system_prompt})
    return _chat(norm, ctx)


def price_prompt(row: dict) -> str:
    parts = [str(row.get(k) or "").strip() for k in ("title", "description")]
    body = "\n".join(p for p in parts if p)
    return f"{PRICE_QUESTION}\n\n{body}\n\n{PRICE_PREFIX}"


def fmt_price_qa(row: dict, ctx: TemplateContext) -> Formatted:
    try:
        price = float(_need(row, "price"))
    except ValueError:
        raise DataError(f"`price` must be a number, got {row.get('price')!r}", field="price") from None
    completion = f"{round(price)}.00"
    if ctx.chat is not None:
        return _pair(price_prompt(row), completion, ctx)
    prompt = price_prompt(row)
    text = prompt + completion + ctx.eos_token
    return Formatted(text, [(len(prompt), len(text))], prompt=prompt, reference=completion)


TEMPLATES: dict[str, Callable[[dict, TemplateContext], Formatted]] = {
    "mcq_generation": fmt_mcq_generation,
    "cpt": fmt_cpt,
    "alpaca": fmt_alpaca,
    "chat": fmt_chat,
    "price_qa": fmt_price_qa,
    "text": fmt_text,
}

# The template that fits each detected schema when data.template is "auto".
TEMPLATE_FOR_SCHEMA = {"mcq": "mcq_generation", "cpt": "cpt", "alpaca": "alpaca", "chat": "chat",
                       "price": "price_qa", "text": "text"}


def resolve_template(template: str, schema: str) -> str:
    if template != "auto":
        return template
    try:
        return TEMPLATE_FOR_SCHEMA[schema]
    except KeyError:
        raise DataError(f"no template fits the detected schema {schema!r}; choose data.template",
                        field="data.template") from None


def format_row(row: dict[str, Any], template: str, ctx: TemplateContext) -> Formatted:
    """Apply a named template to a row whose keys are roles (question, context, …)."""
    try:
        fn = TEMPLATES[template]
    except KeyError:
        raise DataError(f"unknown template {template!r}", field="data.template") from None
    return fn(row, ctx)


def inference_prompt(template: str, row: dict[str, Any], ctx: TemplateContext) -> str:
    """The text a model is given at generation time for a role-keyed row: the training prompt
    without its answer. Only the roles the prompt needs must be present (a context for MCQ
    generation; title and description for a price)."""
    if template == "mcq_generation":
        prompt = mcq_prompt(_need(row, "context"))
        return _generation_prompt(prompt, ctx)
    if template == "price_qa":
        return _generation_prompt(price_prompt(row), ctx)
    if template == "alpaca":
        instruction = _need(row, "instruction")
        extra = str(row.get("input") or "").strip()
        if ctx.chat is not None:
            return _generation_prompt(instruction + (f"\n\n{extra}" if extra else ""), ctx)
        prompt = f"{ALPACA_HEADER}\n\n### Instruction:\n{instruction}\n\n"
        return prompt + (f"### Input:\n{extra}\n\n" if extra else "") + "### Response:\n"
    if template == "chat":
        messages = [m for m in (row.get("messages") or [])]
        while messages and (messages[-1].get("role") or messages[-1].get("from")) in ("assistant", "gpt"):
            messages = messages[:-1]
        return fmt_chat({"messages": messages + [{"role": "assistant", "content": ""}]}, ctx).prompt
    if template == "cpt":
        return f"{str(row.get('title') or '').strip()}\n"
    return str(row.get("text") or "")


def _generation_prompt(prompt: str, ctx: TemplateContext) -> str:
    if ctx.chat is None:
        return prompt
    messages = ([{"role": "system", "content": ctx.system_prompt}] if ctx.system_prompt else [])
    messages.append({"role": "user", "content": prompt.rstrip()})
    return ctx.chat(messages, tokenize=False, add_generation_prompt=True)
