"""MCQ generation: a paragraph in, one Vietnamese multiple-choice question out (the classroom task).

Owns the instruction, the training text (the canonical layout of ``mcq_format.format_mcq``), the prompt,
the decoding default and the metric. The format and its parser are ``mcq_format``'s, the structure checks
``mcq_checks``', the content checks ``mcq_content``'s; rendering a question is the GUI's.
"""

from __future__ import annotations

from core.tasks.mcq_checks import summarize
from core.tasks.mcq_format import format_mcq
from core.tasks.base import Task
from core.templates import Formatted, TemplateContext, generation_prompt, need, pair

# The Vietnamese instruction of the MCQ-generation task, as the users' notebooks phrase it.
MCQ_INSTRUCTION = (
    "Dựa vào đoạn văn sau, hãy viết một câu hỏi trắc nghiệm có bốn phương án A, B, C, D "
    "và cho biết đáp án đúng."
)

# How MCQs are generated for the evaluation and the Classroom tab, for the base and the fine-tuned model alike:
# greedy, with a mild penalty on tokens the answer has already used. A small model decoding greedily tends to
# write the same option twice; the penalty leaves the paragraph free to copy from (it does not count the prompt).
# Measured on the 23 test paragraphs: after the demo preset, greedy alone 11/23 valid (12 repeated an option
# word for word), 1.15 → 21/23. On an earlier, shorter run: greedy 5/23, 1.15 → 16/23, 1.3 → 12/23 (that strong a
# penalty hits the "A." … "Đáp án" scaffolding: 10 lost the key).
MCQ_REPETITION_PENALTY = 1.15


def mcq_prompt(context: str) -> str:
    """The plain instruction prompt of the MCQ-generation task for one paragraph."""
    return f"{MCQ_INSTRUCTION}\n\nĐoạn văn: {context.strip()}\n\n"


def format_mcq_row(row: dict, ctx: TemplateContext) -> Formatted:
    options = [need(row, f"answer_{x}") for x in "abcd"]
    completion = format_mcq(need(row, "question"), options, need(row, "correct_answer"))
    return pair(mcq_prompt(need(row, "context")), completion, ctx)


def prompt_mcq(row: dict, ctx: TemplateContext) -> str:
    return generation_prompt(mcq_prompt(need(row, "context")), ctx)


def judge(texts: list[str], rows: list[dict]) -> dict:
    """Structure of each generated question: validity rate, reason counts, key distribution."""
    return summarize(texts)


TASK = Task(name="mcq_generation", schema="mcq",
            needs=("question", "answer_a", "answer_b", "answer_c", "answer_d", "correct_answer", "context"),
            format=format_mcq_row, prompt=prompt_mcq, prompt_roles=("context",), group_role="context",
            repetition_penalty=MCQ_REPETITION_PENALTY, judge=judge)
