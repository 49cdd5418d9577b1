"""MCQ generation: a paragraph in, one Vietnamese multiple-choice question out (the classroom task).

Owns the instruction, the training text (the canonical layout of ``mcq_format.format_mcq``), the prompt,
the decoding default and the metric. The format and its parser are ``mcq_format``'s, the structure checks
``mcq_checks``', the content checks ``mcq_content``'s; rendering a question is the GUI's.
"""

from __future__ import annotations

from core.tasks.mcq_checks import summarize, validate_mcq
from core.tasks.mcq_format import ANSWER_LINE, format_mcq, split_answer_line
from core.tasks.mcq_reviews import read_figures
from core.tasks.vi_text import content_syllables, fold, sentences, syllables
from core.errors import DataError
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


# The answer-first variant (the answer line and its parser: ``mcq_format``): the model first names the answer it
# will ask about — copied from the paragraph, or given by the teacher — then writes the question for it. Why:
# sampling questions from the paragraph alone gave a usable question in about a quarter of the paragraphs
# (../shared/notes/mcq-sampling-2026-12-01.md); asking for a given answer keeps the question on what the paragraph
# says, and the key can be set from the plan.


def answer_text(row: dict) -> str:
    """The text of a row's correct option (the key is a letter A–D by now: core.data.map_row normalises it)."""
    key = need(row, "correct_answer").strip().strip(".").lower()
    if key not in ("a", "b", "c", "d"):
        raise DataError(f"answer key {row.get('correct_answer')!r} is not one of A, B, C, D", field="correct_answer")
    return need(row, f"answer_{key}").strip()


def format_answer_first(row: dict, ctx: TemplateContext) -> Formatted:
    options = [need(row, f"answer_{x}") for x in "abcd"]
    completion = f"{ANSWER_LINE} {answer_text(row)}\n" + format_mcq(need(row, "question"), options,
                                                                     need(row, "correct_answer"))
    return pair(mcq_prompt(need(row, "context")), completion, ctx)


def prompt_answer_first(row: dict, ctx: TemplateContext) -> str:
    """The prompt, and with ``row["answer_text"]`` (a teacher's choice) the answer line written for the model."""
    prompt = generation_prompt(mcq_prompt(need(row, "context")), ctx)
    chosen = str(row.get("answer_text") or "").strip()
    return prompt + (f"{ANSWER_LINE} {chosen}\n" if chosen else "")


# The focus variant: the prompt also names the one sentence of the paragraph to ask about, and the model writes
# the question on that sentence's fact. Why: the answer-first runs wrote a question that did not ask for the answer
# they were given (3/23 correct with the teacher's answer); 76% of the bundled questions take at least 60% of
# their words (question and key) from one sentence, so "this sentence → a question on it" is mostly a rewrite,
# which a small model does far better than choosing what to ask. The quiz pipeline writes one candidate per
# sentence and keeps the best; the key must be what that sentence says.
FOCUS_LINE = "Câu trọng tâm:"
MCQ_FOCUS_INSTRUCTION = (
    "Dựa vào đoạn văn sau, hãy viết một câu hỏi trắc nghiệm về ý của câu trọng tâm, có bốn phương án A, B, C, D "
    "và cho biết đáp án đúng."
)


def focus_prompt(context: str, focus: str) -> str:
    return f"{MCQ_FOCUS_INSTRUCTION}\n\nĐoạn văn: {context.strip()}\n\n{FOCUS_LINE} {focus.strip()}\n\n"


def focus_sentence(row: dict) -> str:
    """The sentence of the row's paragraph a question is about: the given ``focus``, else (a training row) the one
    holding most of the question's and the key's content syllables, else the paragraph's first sentence."""
    given = str(row.get("focus") or "").strip()
    if given:
        return given
    parts = sentences(need(row, "context")) or [need(row, "context")]
    if not str(row.get("question") or "").strip():
        return parts[0]

    def words(text: str) -> set[str]:
        return {fold(t) for t in content_syllables(syllables(text))}

    asked = words(f"{row['question']} {answer_text(row)}")
    return max(parts, key=lambda s: len(asked & words(s)) / max(1, len(asked)))


def format_focus(row: dict, ctx: TemplateContext) -> Formatted:
    options = [need(row, f"answer_{x}") for x in "abcd"]
    completion = format_mcq(need(row, "question"), options, need(row, "correct_answer"))
    return pair(focus_prompt(need(row, "context"), focus_sentence(row)), completion, ctx)


def prompt_focus(row: dict, ctx: TemplateContext) -> str:
    return generation_prompt(focus_prompt(need(row, "context"), focus_sentence(row)), ctx)


# The key-first focus variant: the same prompt, but the training answer lists the right option first, so that the
# model writes its answer before its distractors and the key is always A. Why: a demo run of mcq_focus spreads
# its probability over the four letters where it writes the key (about 0.25 each, measured on the test split's
# 123 candidates, correct or not): the bundled keys sit at random letters, so the letter tells nothing of what the
# model meant, and a question it wrote right can carry another key. With the answer first the model says which
# option it means, and the quiz pipeline moves the options to a letter of its own (mcq_format.shuffle_options).


def key_first_options(row: dict) -> list[str]:
    """A training row's options with its key first, the distractors after it in their own order."""
    key = need(row, "correct_answer").strip().strip(".").lower()
    if key not in ("a", "b", "c", "d"):
        raise DataError(f"answer key {row.get('correct_answer')!r} is not one of A, B, C, D", field="correct_answer")
    return [need(row, f"answer_{key}")] + [need(row, f"answer_{x}") for x in "abcd" if x != key]


def format_focus_first(row: dict, ctx: TemplateContext) -> Formatted:
    completion = format_mcq(need(row, "question"), key_first_options(row), "A")
    return pair(focus_prompt(need(row, "context"), focus_sentence(row)), completion, ctx)


def judge(texts: list[str], rows: list[dict]) -> dict:
    """Structure of each generated question (validity rate, reason counts, key distribution) and its content checks
    against its paragraph (signals, not the verdict: see core.tasks.mcq_content)."""
    from core.tasks.mcq_content import check_content, summarize_content

    bodies = [split_answer_line(t)[1] for t in texts]
    out = summarize(bodies)
    out["content"] = summarize_content(check_content(b, str(r.get("context") or "")) for b, r in zip(bodies, rows))
    out["read"] = read_figures(texts, [str(r.get("context") or "") for r in rows])  # what a person has read
    return out


def check(text: str, row: dict) -> dict:
    """One generated question: structure valid, and content checks passed (against the row's paragraph)."""
    from core.tasks.mcq_content import check_content

    body = split_answer_line(text)[1]
    return {"valid": validate_mcq(body).valid,
            "content_passed": check_content(body, str(row.get("context") or "")).passed}


MCQ_ROLES = ("question", "answer_a", "answer_b", "answer_c", "answer_d", "correct_answer", "context")
TASK = Task(name="mcq_generation", schema="mcq", needs=MCQ_ROLES, format=format_mcq_row, prompt=prompt_mcq,
            prompt_roles=("context",), group_role="context", repetition_penalty=MCQ_REPETITION_PENALTY, judge=judge,
            check=check, family="mcq")
ANSWER_FIRST = Task(name="mcq_answer_first", schema="mcq", needs=MCQ_ROLES, format=format_answer_first,
                    prompt=prompt_answer_first, prompt_roles=("context",), group_role="context",
                    repetition_penalty=MCQ_REPETITION_PENALTY, judge=judge, check=check,
                    family="mcq", takes_answer=True)
FOCUS = Task(name="mcq_focus", schema="mcq", needs=MCQ_ROLES, format=format_focus, prompt=prompt_focus,
             prompt_roles=("context",), group_role="context", repetition_penalty=MCQ_REPETITION_PENALTY, judge=judge,
             check=check, family="mcq", takes_focus=True)
FOCUS_FIRST = Task(name="mcq_focus_first", schema="mcq", needs=MCQ_ROLES, format=format_focus_first,
                   prompt=prompt_focus, prompt_roles=("context",), group_role="context",
                   repetition_penalty=MCQ_REPETITION_PENALTY, judge=judge, check=check, family="mcq", takes_focus=True,
                   key_first=True)
