"""The task registry: every template name is spelled once, and each task's pieces fit together."""

from __future__ import annotations

import pytest

from core import config as C
from core import tasks
from core.errors import DataError
from core.templates import TemplateContext

ROWS = {  # one role-keyed row per task
    "mcq_generation": {"context": "RAM là bộ nhớ trong.", "question": "RAM là gì?", "answer_a": "Bộ nhớ trong",
                       "answer_b": "Bộ nhớ ngoài", "answer_c": "Thiết bị vào", "answer_d": "Thiết bị ra",
                       "correct_answer": "A"},
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
    schemas = [t.schema for t in tasks.TASKS.values()]
    assert len(set(schemas)) == len(schemas), "one task per schema, so that auto is unambiguous"
    for t in tasks.TASKS.values():
        assert tasks.resolve_template("auto", t.schema) == t.name == tasks.resolve_template(t.name, "anything")


@pytest.mark.parametrize("name", [n for n in ROWS if n != "chat"])  # chat needs a tokenizer's chat template
def test_each_task_trains_on_its_prompt_followed_by_the_answer(name):
    task = tasks.get(name)
    formatted = tasks.format_row(ROWS[name], name, PLAIN)
    prompt = tasks.inference_prompt(name, {r: ROWS[name][r] for r in task.prompt_roles if r in ROWS[name]}, PLAIN)
    assert formatted.text.startswith(prompt) and formatted.text.endswith("</s>")
    for start, end in formatted.loss_spans:  # the loss is on the answer, never on the prompt
        assert start >= len(prompt) and end <= len(formatted.text)


def test_only_the_mcq_task_groups_rows_by_paragraph_and_penalises_repeats():
    grouped = {n for n, t in tasks.TASKS.items() if t.group_role}
    assert grouped == {tasks.MCQ} and tasks.get(tasks.MCQ).single_input == "context"
    assert tasks.get(tasks.MCQ).repetition_penalty > 1.0
    assert all(t.repetition_penalty == 1.0 for n, t in tasks.TASKS.items() if n != tasks.MCQ)


def test_an_unknown_template_names_the_known_ones():
    with pytest.raises(DataError, match="unknown template 'quiz'.*mcq_generation"):
        tasks.get("quiz")
    with pytest.raises(DataError, match="no template fits"):
        tasks.resolve_template("auto", "nothing")


def test_chat_messages_that_are_not_role_content_objects_name_the_item():
    with pytest.raises(DataError, match="item 2 must be an object"):
        tasks.format_row({"messages": [{"role": "user", "content": "hi"}, "plain string"]}, "chat", PLAIN)
