"""Instruction following: Alpaca rows (instruction, input, output) and chat conversations (ShareGPT too)."""

from __future__ import annotations

from core.errors import DataError
from core.tasks.base import Task
from core.templates import Formatted, TemplateContext, conversation, generation_prompt, need, pair

ALPACA_HEADER = ("Below is an instruction that describes a task. Write a response that appropriately completes "
                 "the request.")


def _alpaca_prompt(row: dict, ctx: TemplateContext) -> str:
    instruction = need(row, "instruction")
    extra = str(row.get("input") or "").strip()
    if ctx.chat is not None:
        return instruction + (f"\n\n{extra}" if extra else "")
    prompt = f"{ALPACA_HEADER}\n\n### Instruction:\n{instruction}\n\n"
    if extra:
        prompt += f"### Input:\n{extra}\n\n"
    return prompt + "### Response:\n"


def format_alpaca(row: dict, ctx: TemplateContext) -> Formatted:
    return pair(_alpaca_prompt(row, ctx), need(row, "output"), ctx)


def prompt_alpaca(row: dict, ctx: TemplateContext) -> str:
    prompt = _alpaca_prompt(row, ctx)
    return generation_prompt(prompt, ctx) if ctx.chat is not None else prompt


def _messages(row: dict) -> list[dict]:
    """``messages`` as role/content dicts (ShareGPT's from/value mapped), or a DataError naming what is wrong."""
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise DataError(f"`messages` must be a non-empty list of {{role, content}}, got {messages!r:.80}",
                        field="messages")
    norm = []
    for k, m in enumerate(messages):
        if not isinstance(m, dict):
            raise DataError(f"`messages` item {k + 1} must be an object with role and content, got {m!r:.60}",
                            field="messages")
        role = m.get("role") or {"human": "user", "gpt": "assistant"}.get(m.get("from"), m.get("from"))
        norm.append({"role": role, "content": m.get("content", m.get("value", ""))})
    return norm


def format_chat(row: dict, ctx: TemplateContext) -> Formatted:
    norm = _messages(row)
    if ctx.system_prompt and norm[0]["role"] != "system":
        norm.insert(0, {"role": "system", "content": ctx.system_prompt})
    return conversation(norm, ctx)


def prompt_chat(row: dict, ctx: TemplateContext) -> str:
    messages = _messages(row)
    while messages and messages[-1]["role"] == "assistant":
        messages = messages[:-1]
    return format_chat({"messages": messages + [{"role": "assistant", "content": ""}]}, ctx).prompt


ALPACA = Task(name="alpaca", schema="alpaca", needs=("instruction", "output"), format=format_alpaca,
              prompt=prompt_alpaca, prompt_roles=("instruction", "input"))
CHAT = Task(name="chat", schema="chat", needs=("messages",), format=format_chat, prompt=prompt_chat,
            prompt_roles=("messages",))
