"""The task registry: each template's name is spelled here, once, and everything that differs per task is its
:class:`~core.tasks.base.Task` (roles, training text, prompt, grouping, decoding default, metric).

One module per task: ``mcq`` (MCQ generation), ``text`` (continued pre-training, plain text), ``chat``
(Alpaca, conversations), ``price`` (price prediction). Callers ask the registry — ``get(name)``,
``resolve_template(template, schema)``, ``format_row``, ``inference_prompt`` — and never test a name.
"""

from __future__ import annotations

from typing import Any

from core.errors import DataError
from core.tasks import chat, mcq, price, text
from core.tasks.base import Task
from core.templates import Formatted, TemplateContext

# the order is the form's; for_schema picks the first task of a schema (mcq: the plain MCQ task)
TASKS: dict[str, Task] = {t.name: t for t in (mcq.TASK, mcq.ANSWER_FIRST, mcq.FOCUS, mcq.FOCUS_FIRST, text.CPT,
                                              chat.ALPACA, chat.CHAT, price.TASK, text.TEXT)}
TASK_NAMES: tuple[str, ...] = tuple(TASKS)
MCQ = mcq.TASK.family  # the classroom's family of tasks: the Classroom tab lists only their runs


def family_of(template: str) -> str:
    """The family of a template name ("" for a name the registry does not know: an older or foreign run)."""
    task = TASKS.get(template)
    return task.family if task else ""


def get(name: str) -> Task:
    """The task of a template name.

    Raises:
        DataError: an unknown name, naming the known ones.
    """
    try:
        return TASKS[name]
    except KeyError:
        raise DataError(f"unknown template {name!r} (one of {', '.join(TASK_NAMES)})", field="data.template") from None


def for_schema(schema: str) -> Task | None:
    """The task that fits a detected schema (the first registered for it), or None."""
    return next((t for t in TASKS.values() if t.schema == schema), None)


def resolve_template(template: str, schema: str) -> str:
    """``data.template`` with ``auto`` replaced by the task that fits the detected schema."""
    if template != "auto":
        return get(template).name
    task = for_schema(schema)
    if task is None:
        raise DataError(f"no template fits the detected schema {schema!r}; choose data.template",
                        field="data.template")
    return task.name


def format_row(row: dict[str, Any], template: str, ctx: TemplateContext) -> Formatted:
    """Apply a named template to a row whose keys are roles (question, context, …)."""
    return get(template).format(row, ctx)


def inference_prompt(template: str, row: dict[str, Any], ctx: TemplateContext) -> str:
    """The text a model is given at generation time for a role-keyed row: the training prompt without its
    answer. Only the roles the prompt needs must be present (a context for MCQ generation)."""
    return get(template).prompt(row, ctx)
