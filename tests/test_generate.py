"""Generation: first divergence, the run's own prompt per row, and the generate CLI writing base/adapter/merged."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import SHORT_MCQ, read_jsonl
from test_merge import fp32_merged, fp32_run  # noqa: F401 - shared session fixtures (trained once)

from core.errors import DataError, StudioError
from core.config import DecodingConfig
from core.inference.generate import first_divergence, logits_processors
from core.inference.modelset import parse_which


@pytest.mark.parametrize("a,b,expected", [
    ([1, 2, 3], [1, 2, 3], None), ([1, 2, 3], [1, 5, 3], 1), ([7], [8], 0), ([1, 2], [1, 2, 3], 2), ([], [], None),
])
def test_first_divergence(a, b, expected):
    assert first_divergence(a, b) == expected


def test_parse_which():
    assert parse_which("base, merged,base") == ("base", "merged")
    with pytest.raises(StudioError, match="base, adapter, merged"):
        parse_which("base,lora")


def test_generate_cli_writes_base_adapter_merged_columns(fp32_merged, fp32_run, tmp_path, capsys):
    from core.__main__ import main

    rows = read_jsonl(SHORT_MCQ)[:2]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out" / "gen.csv"
    assert main(["generate", str(fp32_run), "--input", str(src), "--out", str(out),
                 "--which", "base,adapter,merged", "--max-new-tokens", "6"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    frame = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(frame.columns) == list(rows[0]) + ["base", "adapter", "merged"]
    assert len(frame) == 2 and frame["context"].tolist() == [r["context"] for r in rows]
    # greedy, and the merged model is the adapter: the same text
    assert frame["adapter"].tolist() == frame["merged"].tolist()
    assert out.read_bytes().startswith(b"\xef\xbb\xbf"), "UTF-8 with BOM, for Excel"


def test_generate_file_names_the_row_that_lacks_a_context(fp32_run, tmp_path):
    from core.inference.batch import generate_file

    src = tmp_path / "bad.csv"
    src.write_text("question\nRAM là gì?\n", encoding="utf-8")
    with pytest.raises(DataError, match="bad.csv row 1"):
        generate_file(fp32_run, src, tmp_path / "o.csv", which=("adapter",), decoding=DecodingConfig(max_new_tokens=2))


def test_repetition_penalty_counts_the_answer_only():
    import torch

    procs = logits_processors(DecodingConfig(repetition_penalty=2.0), prompt_length=3)
    ids = torch.tensor([[5, 6, 7, 8, 9]])  # prompt 5 6 7, then the answer so far: 8 9
    scores = procs(ids, torch.full((1, 12), 4.0))[0]
    assert scores[[8, 9]].tolist() == [2.0, 2.0]  # the answer's own tokens: 4 / 2
    assert scores[[5, 6, 7, 0, 11]].tolist() == [4.0] * 5  # the prompt's are free to copy
    assert len(logits_processors(DecodingConfig(), 3)) == 0  # 1.0: nothing added


def test_repetition_penalty_changes_what_a_looping_model_writes(micro_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.inference.generate import generate

    tok = AutoTokenizer.from_pretrained(micro_model)
    model = AutoModelForCausalLM.from_pretrained(micro_model).eval()
    prompt = "Câu hỏi: Bộ nhớ RAM là gì?"
    greedy = generate(model, tok, [prompt], DecodingConfig(max_new_tokens=24))[0].token_ids
    assert len(set(greedy)) < len(greedy), "a random micro model loops under greedy decoding"
    strict = generate(model, tok, [prompt], DecodingConfig(max_new_tokens=24, repetition_penalty=1e6))[0].token_ids
    assert strict[0] == greedy[0]  # nothing to penalise yet
    assert len(set(strict)) == len(strict), strict  # no token of the answer twice
    # each answer says the precision it was computed in (the Compare tab explains a merged model in another)
    assert generate(model, tok, [prompt], DecodingConfig(max_new_tokens=2))[0].dtype == "float32"
    assert generate(model.to(torch.bfloat16), tok, [prompt], DecodingConfig(max_new_tokens=2))[0].dtype == "bfloat16"
