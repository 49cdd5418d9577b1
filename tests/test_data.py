"""The data pipeline: loading, schema detection, cleaning, templates, labels, filtering, splitting."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from core import data as D
from core import tasks
from core.config import DataConfig
from core.errors import DataError
from core.tasks.mcq_checks import validate_mcq
from core.tasks.mcq import MCQ_INSTRUCTION


def mcq_frame(n_contexts: int = 6, per_context: int = 2, **renames) -> pd.DataFrame:
    rows = []
    for c in range(n_contexts):
        for q in range(per_context):
            rows.append({"question": f"Câu hỏi số {c}-{q} về bộ nhớ?", "answer_a": f"RAM {c}{q}",
                         "answer_b": f"ROM {c}{q}", "answer_c": f"CPU {c}{q}", "answer_d": f"SSD {c}{q}",
                         "correct_answer": "ABCD"[(c + q) % 4],
                         "context": f"Đoạn văn {c}: bộ nhớ trong của máy tính gồm RAM và ROM."})
    return pd.DataFrame(rows).rename(columns=renames)


# --------------------------------------------------------------------------- schemas

@pytest.mark.parametrize("source,schema", [
    ("sample:vi_informatics_mcq", "mcq"), ("sample:informatics_book", "cpt"), ("sample:books_price", "price"),
])
def test_bundled_samples_are_recognised_without_help(source, schema):
    frame = D.load_frame(DataConfig(source=source))
    guess = D.detect_schema(frame.columns)
    assert guess.schema == schema
    assert D.resolve_template("auto", schema) == tasks.for_schema(schema).name


@pytest.mark.parametrize("columns,schema,mapping", [
    (["question", "answer_a", "answer_b", "answer_c", "answer_d", "answer_key", "para"], "mcq",
     {"correct_answer": "answer_key", "context": "para"}),
    (["question", "answer_a", "answer_b", "answer_c", "answer_d", "correct_answer", "new_contexts"], "mcq",
     {"context": "new_contexts"}),
    (["title", "context"], "cpt", {"title": "title", "context": "context"}),
    (["instruction", "input", "output"], "alpaca", {"instruction": "instruction", "input": "input"}),
    (["messages"], "chat", {"messages": "messages"}),
    (["conversations", "id"], "chat", {"messages": "conversations"}),
    (["title", "description", "price"], "price", {"price": "price", "description": "description"}),
    (["Text"], "text", {"text": "Text"}),
])
def test_detect_schema(columns, schema, mapping):
    guess = D.detect_schema(columns)
    assert guess.schema == schema
    assert mapping.items() <= guess.column_map.items()


def test_explicit_mapping_wins_and_bad_mapping_names_the_column():
    guess = D.detect_schema(["q", "a1", "a2", "a3", "a4", "k", "ctx"],
                            {"question": "q", "answer_a": "a1", "answer_b": "a2", "answer_c": "a3",
                             "answer_d": "a4", "correct_answer": "k", "context": "ctx"})
    assert guess.schema == "mcq"
    with pytest.raises(DataError) as e:
        D.detect_schema(["question"], {"question": "câu"})
    assert "'câu'" in str(e.value) and e.value.field == "data.column_map.question"


def test_columns_that_fit_nothing():
    with pytest.raises(DataError, match="no known schema fits the columns foo, bar"):
        D.detect_schema(["foo", "bar"])


# --------------------------------------------------------------------------- errors naming the file

def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="data file not found: .*nope.jsonl"):
        D.load_frame(DataConfig(source=str(tmp_path / "nope.jsonl")))


@pytest.mark.parametrize("name,content,needle", [
    ("empty.jsonl", b"", "data file is empty"),
    ("bad.jsonl", b'{"question": "x"}\n{not json\n', "bad.jsonl line 2: invalid JSON"),
    ("bin.csv", bytes(range(256)) * 4, "cannot read"),
    ("list.json", b'"just a string"', "expected a list of records"),
    ("bad.parquet", b"PAR1 not really parquet", "cannot read"),
    ("rows.txt", b"hello", "unsupported file type .txt"),
])
def test_unreadable_files_name_the_file(tmp_path, name, content, needle):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(DataError) as e:
        D.read_table(p)
    assert needle in str(e.value)


def test_file_without_mapped_columns(tmp_path, tokenizer):
    p = tmp_path / "cpt.jsonl"
    p.write_text(json.dumps({"title": "T", "context": "Nội dung"}) + "\n")
    with pytest.raises(DataError, match="mcq_generation template needs column"):
        D.prepare(DataConfig(source=str(p), template="mcq_generation"), tokenizer)


def test_bad_answer_key_names_row(tokenizer):
    frame = mcq_frame()
    frame.loc[3, "correct_answer"] = "E"
    with pytest.raises(DataError, match="row 4: answer key 'E' is not one of A, B, C, D"):
        D.prepare(DataConfig(), tokenizer, frame=frame)


# --------------------------------------------------------------------------- cleaning and keys

def test_clean_text_normalises_vietnamese_and_blank_lines():
    decomposed = "Tin ho\u0323c"  # NFD: "học" written with a combining dot below
    assert D.clean_text(f"  {decomposed}  \r\n\n\n\nlớp   10 ") == "Tin học\n\nlớp 10"


@pytest.mark.parametrize("value,letter", [("b", "B"), ("C.", "C"), ("Đáp án: D", "D"), ("(a)", "A"), (2, "B"),
                                          ("4", "D"), ("ROM", "B")])
def test_normalise_key(value, letter):
    assert D.normalise_key(value, ["RAM", "ROM", "CPU", "SSD"]) == letter


# --------------------------------------------------------------------------- templates and labels

def test_mcq_template_text_is_the_canonical_mcq(tokenizer):
    cfg = DataConfig()
    formatted, segments = D.format_preview(mcq_frame(), 1, cfg, tokenizer)
    assert formatted.text.startswith(MCQ_INSTRUCTION)
    learned = "".join(t for t, on in segments if on)
    assert learned.startswith("Câu hỏi: Câu hỏi số 0-1 về bộ nhớ?\nA. RAM 01\nB. ROM 01")
    assert learned.endswith("Đáp án: B." + tokenizer.eos_token)
    assert validate_mcq(learned).valid
    assert "".join(t for t, _ in segments) == formatted.text


def test_prompt_tokens_carry_label_minus_100(tokenizer):
    prepared = D.prepare(DataConfig(validation_fraction=0.0), tokenizer, frame=mcq_frame())
    ex = prepared.train[0]
    n_prompt = next(i for i, lab in enumerate(ex.labels) if lab != -100)
    assert n_prompt > 20  # the instruction and the paragraph
    assert all(lab == -100 for lab in ex.labels[:n_prompt])
    assert ex.labels[n_prompt:] == ex.input_ids[n_prompt:]
    learned = tokenizer.decode([t for t in ex.labels if t != -100])
    assert learned.startswith("Câu hỏi:") and learned.rstrip().endswith(tokenizer.eos_token)
    prompt = tokenizer.decode(ex.input_ids[:n_prompt])
    assert "Đoạn văn" in prompt and "Câu hỏi:" not in prompt


def test_loss_on_everything_when_completion_only_is_off(tokenizer):
    prepared = D.prepare(DataConfig(validation_fraction=0.0, completion_only_loss=False), tokenizer,
                         frame=mcq_frame())
    assert all(ex.labels == ex.input_ids for ex in prepared.train)


def test_chat_template_masks_all_but_assistant_turns(tokenizer):
    frame = pd.DataFrame({"messages": [[
        {"role": "user", "content": "Xin chào"}, {"role": "assistant", "content": "Chào bạn!"},
        {"role": "user", "content": "RAM là gì?"}, {"role": "assistant", "content": "Bộ nhớ truy cập ngẫu nhiên."},
    ]]})
    prepared = D.prepare(DataConfig(use_chat_template=True, validation_fraction=0.0), tokenizer, frame=frame)
    ex = prepared.train[0]
    learned = tokenizer.decode([t for t in ex.labels if t != -100])
    assert "Chào bạn!" in learned and "Bộ nhớ truy cập ngẫu nhiên." in learned
    assert "Xin chào" not in learned and "RAM là gì?" not in learned


def test_sharegpt_conversations_are_converted(tokenizer):
    frame = pd.DataFrame({"conversations": [[{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]]})
    prepared = D.prepare(DataConfig(use_chat_template=True, validation_fraction=0.0), tokenizer, frame=frame)
    assert tokenizer.decode([t for t in prepared.train[0].labels if t != -100]).startswith("Hello")


def test_cpt_template_is_title_newline_context_eos(tokenizer):
    frame = pd.DataFrame({"title": ["Bộ nhớ"], "context": ["RAM là bộ nhớ tạm thời."]})
    formatted, segments = D.format_preview(frame, 0, DataConfig(), tokenizer)
    assert formatted.text == f"Bộ nhớ\nRAM là bộ nhớ tạm thời.{tokenizer.eos_token}"
    assert segments == [(formatted.text, True)]


def test_price_template(tokenizer):
    frame = pd.DataFrame({"title": ["Book"], "description": ["A novel."], "price": [12.6]})
    formatted, _ = D.format_preview(frame, 0, DataConfig(), tokenizer)
    assert formatted.text.startswith("How much does this cost to the nearest dollar?\n\nBook\nA novel.")
    assert formatted.text.endswith("Price is $13.00" + tokenizer.eos_token)


def test_alpaca_template(tokenizer):
    frame = pd.DataFrame({"instruction": ["Dịch"], "input": ["cat"], "output": ["con mèo"]})
    formatted, segments = D.format_preview(frame, 0, DataConfig(), tokenizer)
    assert "### Instruction:\nDịch" in formatted.text and "### Input:\ncat" in formatted.text
    assert [t for t, on in segments if on] == ["con mèo" + tokenizer.eos_token]


# --------------------------------------------------------------------------- stats, filters, splits

def test_token_filter_and_stats(tokenizer):
    frame = pd.DataFrame({"title": ["a", "b", "c"], "context": ["ngắn", "dài " * 200, "vừa " * 40]})
    prepared = D.prepare(DataConfig(min_tokens=10, max_tokens=300, max_length=64, validation_fraction=0.0),
                         tokenizer, frame=frame)
    assert len(prepared.train) == 1 and prepared.stats.n_filtered == 2
    assert prepared.stats.n == 3 and prepared.stats.n_truncated == 2
    assert prepared.stats.min < 10 < prepared.stats.max


def test_max_length_shorter_than_every_prompt_is_a_clear_error(tokenizer):
    with pytest.raises(DataError, match="data.max_length=8 is too short"):
        D.prepare(DataConfig(max_length=8), tokenizer, frame=mcq_frame())


def test_answers_cut_by_max_length_are_counted_and_warned(tokenizer):
    from core import config as C

    frame = mcq_frame()
    full = D.prepare(DataConfig(max_length=1024, validation_fraction=0.0), tokenizer, frame=frame)
    assert full.stats.n_answer_cut == 0 and not [i for i in C.validate(C.RunConfig(), stats=full.stats)
                                                  if i.code == "answer_cut"]
    # a max_length inside every answer: each row keeps its prompt and part of its answer
    starts = [next(i for i, x in enumerate(e.labels) if x != -100) for e in full.train]
    cut_at = max(starts) + 3
    assert cut_at < min(len(e.input_ids) for e in full.train)
    cut = D.prepare(DataConfig(max_length=cut_at, validation_fraction=0.0), tokenizer, frame=frame)
    assert cut.stats.n_answer_cut == len(cut.train) == len(full.train) and cut.stats.n_no_loss == 0

    cfg = C.RunConfig()
    cfg.data.max_length = cut_at
    [issue] = [i for i in C.validate(cfg, stats=cut.stats) if i.code == "answer_cut"]
    longest = max(len(e.input_ids) for e in full.train)
    assert issue.field == "data.max_length" and issue.level == "warning"
    assert f"{len(cut.train)} of {cut.stats.n} rows are longer than {cut_at} tokens" in issue.message
    assert f"raise data.max_length to {-(-longest // 64) * 64}" in issue.message


def test_validation_split_is_seeded_and_by_context(tokenizer):
    frame = mcq_frame(n_contexts=20, per_context=3)
    a = D.prepare(DataConfig(validation_fraction=0.2), tokenizer, frame=frame, seed=1)
    b = D.prepare(DataConfig(validation_fraction=0.2), tokenizer, frame=frame, seed=1)
    assert [e.index for e in a.validation] == [e.index for e in b.validation]
    ctx = lambda exs: {frame.loc[e.index, "context"] for e in exs}  # noqa: E731
    assert ctx(a.train).isdisjoint(ctx(a.validation))
    assert len(ctx(a.validation)) == 4


def test_test_split_in_the_data_is_never_trained_on(tokenizer):
    frame = D.load_frame(DataConfig(source="sample:vi_informatics_mcq"))
    prepared = D.prepare(DataConfig(source="sample:vi_informatics_mcq"), tokenizer, frame=frame)
    test_rows = set(prepared.test_index)
    assert test_rows and test_rows == set(frame.index[frame["split"] == "test"])
    used = {e.index for e in prepared.train + prepared.validation}
    assert used.isdisjoint(test_rows)
