"""The task registry: every template name is spelled once, and each task's pieces fit together."""

from __future__ import annotations

import pytest

from core import config as C
from core import tasks
from core.errors import DataError
from core.templates import TemplateContext

MCQ_ROW = {"context": "RAM là bộ nhớ trong.", "question": "RAM là gì?", "answer_a": "Bộ nhớ trong",
           "answer_b": "Bộ nhớ ngoài", "answer_c": "Thiết bị vào", "answer_d": "Thiết bị ra", "correct_answer": "A"}
ROWS = {  # one role-keyed row per task
    "mcq_generation": MCQ_ROW, "mcq_answer_first": MCQ_ROW, "mcq_focus": MCQ_ROW, "mcq_focus_first": MCQ_ROW,
    "cpt": {"title": "Bộ nhớ", "context": "RAM là bộ nhớ trong."},
    "alpaca": {"instruction": "Dịch sang tiếng Anh", "input": "bộ nhớ", "output": "memory"},
    "chat": {"messages": [{"role": "user", "content": "Xin chào"}, {"role": "assistant", "content": "Chào bạn"}]},
    "price_qa": {"title": "Tin học 10", "description": "Sách giáo khoa", "price": 25},
    "text": {"text": "Máy tính xử lí thông tin."},
}
PLAIN = TemplateContext(eos_token="</s>")


def test_the_registry_is_the_one_list_of_task_names_and_the_config_takes_it_from_there():
    assert set(tasks.TASK_NAMES) == set(ROWS)
    assert C.literal_choices(C.field_type("data", "template")) == ("auto", *tasks.TASK_NAMES)
    for t in tasks.TASKS.values():
        assert tasks.resolve_template(t.name, "anything") == t.name
        # auto picks the first task registered for the schema: for MCQ data the plain MCQ task
        assert tasks.resolve_template("auto", t.schema) == next(u.name for u in tasks.TASKS.values()
                                                                 if u.schema == t.schema)
    assert tasks.resolve_template("auto", "mcq") == "mcq_generation"


@pytest.mark.parametrize("name", [n for n in ROWS if n != "chat"])  # chat needs a tokenizer's chat template
def test_each_task_trains_on_its_prompt_followed_by_the_answer(name):
    task = tasks.get(name)
    formatted = tasks.format_row(ROWS[name], name, PLAIN)
    prompt = tasks.inference_prompt(name, {r: ROWS[name][r] for r in task.prompt_roles if r in ROWS[name]}, PLAIN)
    assert formatted.text.startswith(prompt) and formatted.text.endswith("</s>")
    for start, end in formatted.loss_spans:  # the loss is on the answer, never on the prompt
        assert start >= len(prompt) and end <= len(formatted.text)


def test_only_the_mcq_tasks_group_rows_by_paragraph_and_penalise_repeats():
    mcq = {n for n, t in tasks.TASKS.items() if t.family == tasks.MCQ}
    assert mcq == {"mcq_generation", "mcq_answer_first", "mcq_focus", "mcq_focus_first"}
    assert {n for n, t in tasks.TASKS.items() if t.group_role} == mcq
    assert all(tasks.get(n).single_input == "context" and tasks.get(n).repetition_penalty > 1.0 for n in mcq)
    assert all(t.repetition_penalty == 1.0 for n, t in tasks.TASKS.items() if n not in mcq)


def test_the_answer_first_task_names_the_answer_and_a_teacher_can_choose_it():
    from core.tasks.mcq import ANSWER_LINE, split_answer_line

    formatted = tasks.format_row(MCQ_ROW, "mcq_answer_first", PLAIN)
    completion = formatted.text[formatted.loss_spans[0][0]:]
    assert completion.startswith(f"{ANSWER_LINE} Bộ nhớ trong\nCâu hỏi: RAM là gì?\nA. Bộ nhớ trong")
    answer, body = split_answer_line(completion)
    assert answer == "Bộ nhớ trong" and body.startswith("Câu hỏi:")
    assert split_answer_line("Câu hỏi: x") == (None, "Câu hỏi: x")
    chosen = tasks.inference_prompt("mcq_answer_first", {"context": "RAM là bộ nhớ trong.", "answer_text": "RAM"},
                                    PLAIN)
    assert chosen.endswith(f"{ANSWER_LINE} RAM\n")
    assert tasks.inference_prompt("mcq_answer_first", {"context": "x"}, PLAIN) == \
        tasks.inference_prompt("mcq_generation", {"context": "x"}, PLAIN)


FOCUS_ROW = dict(MCQ_ROW, context="Bộ nhớ trong gồm RAM và ROM. ROM chứa chương trình khởi động do nhà sản xuất "
                 "ghi sẵn. RAM mất dữ liệu khi tắt máy.", question="Bộ nhớ nào chứa chương trình khởi động?",
                 answer_a="RAM", answer_b="ROM", correct_answer="B")


def test_the_focus_task_trains_on_the_sentence_that_holds_the_question_and_its_key():
    from core.tasks.mcq import FOCUS_LINE

    formatted = tasks.format_row(FOCUS_ROW, "mcq_focus", PLAIN)
    prompt = formatted.text[:formatted.loss_spans[0][0]]
    assert f"{FOCUS_LINE} ROM chứa chương trình khởi động do nhà sản xuất ghi sẵn." in prompt
    assert formatted.text[formatted.loss_spans[0][0]:].startswith("Câu hỏi: Bộ nhớ nào chứa chương trình khởi động?")
    given = tasks.inference_prompt("mcq_focus", {"context": FOCUS_ROW["context"], "focus": "RAM mất dữ liệu khi tắt máy."},
                                   PLAIN)
    assert given.endswith(f"{FOCUS_LINE} RAM mất dữ liệu khi tắt máy.\n\n")
    # without a question or a focus (a pasted paragraph): the first sentence
    assert tasks.inference_prompt("mcq_focus", {"context": FOCUS_ROW["context"]}, PLAIN).endswith(
        f"{FOCUS_LINE} Bộ nhớ trong gồm RAM và ROM.\n\n")


def test_the_key_first_task_writes_the_right_option_first_and_the_quiz_moves_it():
    """mcq_focus_first trains on the focus prompt with the key's option as A (the distractors after it, in their own
    order); a question it writes goes out with its options at letters drawn from its text, the key following its
    option, each letter about a quarter of the keys over the bundled questions."""
    import collections
    import json

    from core.paths import REPO_ROOT
    from core.tasks.mcq import key_first_options
    from core.tasks.mcq_format import LETTERS, format_mcq, parse_mcq, shuffle_options

    formatted = tasks.format_row(FOCUS_ROW, "mcq_focus_first", PLAIN)
    assert formatted.text[:formatted.loss_spans[0][0]] == tasks.format_row(FOCUS_ROW, "mcq_focus", PLAIN).text[
        :formatted.loss_spans[0][0]]  # the same prompt as mcq_focus
    assert formatted.text[formatted.loss_spans[0][0]:].startswith(
        "Câu hỏi: Bộ nhớ nào chứa chương trình khởi động?\nA. ROM\nB. RAM\nC. Thiết bị vào\nD. Thiết bị ra\nĐáp án: A.")
    assert tasks.get("mcq_focus_first").key_first and not tasks.get("mcq_focus").key_first

    keys = collections.Counter()
    for line in (REPO_ROOT / "assets" / "samples" / "vi_informatics_mcq.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        written = parse_mcq(format_mcq(row["question"], key_first_options(row), "A"))
        moved = shuffle_options(written)
        assert moved == shuffle_options(parse_mcq(written.raw))  # the same question, the same letters
        assert moved.options[moved.answer] == written.options["A"]
        assert sorted(moved.options.values()) == sorted(written.options.values())
        keys[moved.answer] += 1
    assert set(keys) == set(LETTERS) and all(0.15 < n / sum(keys.values()) < 0.35 for n in keys.values()), keys
    broken = parse_mcq("Câu hỏi: x?\nA. a\nB. b\nĐáp án: A.")
    assert shuffle_options(broken) is broken


def test_an_unknown_template_names_the_known_ones():
    with pytest.raises(DataError, match="unknown template 'quiz'.*mcq_generation"):
        tasks.get("quiz")
    with pytest.raises(DataError, match="no template fits"):
        tasks.resolve_template("auto", "nothing")


def test_chat_messages_that_are_not_role_content_objects_name_the_item():
    with pytest.raises(DataError, match="item 2 must be an object"):
        tasks.format_row({"messages": [{"role": "user", "content": "hi"}, "plain string"]}, "chat", PLAIN)
