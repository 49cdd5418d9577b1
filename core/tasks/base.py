"""What a task is: the fields the registry (``core.tasks``) holds for each template.

A task owns everything that differs between templates — the roles it needs, its training text, its
generation prompt, how rows are grouped into prompts, its decoding defaults and its metric — so
that no other module tests a template's name. It must not import the registry (``core.tasks``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from core.templates import Formatted, TemplateContext


@dataclass(frozen=True)
class Task:
    """One template and what goes with it.

    Attributes:
        name: the template name (``data.template``, run.json's ``template``).
        schema: the detected data schema (``core.data.detect_schema``) it fits when ``data.template`` is auto.
        needs: roles every training row must map.
        format: role-keyed row → the exact training text and its loss spans.
        prompt: role-keyed row → the text a model is given at generation time (the prompt without its answer).
        prompt_roles: the roles ``prompt`` needs; a single one ("context") is what a user types in the Compare
            and Classroom tabs instead of a whole prompt.
        group_role: rows that share this role's value make one generation prompt in an evaluation (several
            questions on one paragraph: greedy decoding would write the same answer for each).
        repetition_penalty: the decoding default on the answer's own tokens for evaluation and the GUI.
        judge: generated texts (and their role-keyed rows) → the task's metric, a JSON-safe dict; None: no metric.
        check: one generated text (and its row) → its own verdicts, e.g. ``{"valid": True}``, shown per sample.
        baselines: (train rows, eval rows) → the metric of non-model baselines (price: mean, linear regression).
        takes_answer: the prompt can carry the answer to ask for (the answer-first MCQ task: a teacher's answer).
        takes_focus: the prompt names one sentence of the paragraph to ask about (``row["focus"]``); the quiz
            pipeline then writes one candidate per sentence instead of sampling one prompt.
        key_first: the model writes the right option first (A) and the distractors after it; whoever shows the
            question moves the options to a position of its own (``core.tasks.mcq_format.shuffle_options``).
        family: tasks that write the same kind of answer (both MCQ templates: "mcq"); the Classroom lists the
            runs of the MCQ family. Defaults to the name.
    """

    name: str
    schema: str
    needs: tuple[str, ...]
    format: Callable[[dict, TemplateContext], Formatted]
    prompt: Callable[[dict, TemplateContext], str]
    prompt_roles: tuple[str, ...] = ()
    group_role: str | None = None
    repetition_penalty: float = 1.0
    judge: Callable[[list[str], list[dict]], dict[str, Any]] | None = None
    check: Callable[[str, dict], dict[str, Any]] | None = None
    baselines: Callable[[list[dict], list[dict]], dict[str, float]] | None = None
    family: str = ""
    takes_answer: bool = False
    takes_focus: bool = False
    key_first: bool = False

    def __post_init__(self) -> None:
        if not self.family:
            object.__setattr__(self, "family", self.name)

    @property
    def single_input(self) -> str | None:
        """The one role a person types to prompt this task (MCQ: the paragraph), or None for a whole prompt."""
        return self.prompt_roles[0] if len(self.prompt_roles) == 1 else None
