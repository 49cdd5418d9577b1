"""The quiz pipeline: reading a candidate, re-keying it, keeping the best; a chapter in, a quiz file out."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import micro_overrides

from core import config as C
from core.errors import DataError
from core.inference.quiz import (FLAGGED, OK, PLAN_NOT_KEPT, Candidate, choose, paragraphs_of, read_candidate,
                                 read_quiz_input)
from core.tasks.mcq import ANSWER_LINE
from core.tasks.mcq_format import format_mcq

PARAGRAPH = ("Bộ xử lí trung tâm (CPU) gồm khối điều khiển (CU) điều phối hoạt động của các thiết bị và khối số "
             "học và logic (ALU) thực hiện các phép tính số học và logic.")
OPTIONS = ["Khối điều khiển (CU)", "Khối số học và logic (ALU)", "Bộ nhớ RAM", "Ổ cứng"]
QUESTION = "Bộ phận nào của CPU thực hiện các phép tính số học và logic?"


def test_a_planned_answer_sets_the_key_when_the_model_keyed_another_option():
    raw = f"{ANSWER_LINE} Khối số học và logic (ALU)\n" + format_mcq(QUESTION, OPTIONS, "A")
    cand = read_candidate(raw, PARAGRAPH)
    assert cand.planned == "Khối số học và logic (ALU)" and cand.rekeyed_from == "A" and cand.mcq.answer == "B"
    assert cand.text.endswith("Đáp án: B.") and ANSWER_LINE not in cand.text
    kept = read_candidate(raw, PARAGRAPH, rekey=False)
    assert kept.mcq.answer == "A" and kept.rekeyed_from is None


def test_a_plan_the_options_do_not_state_is_flagged():
    raw = f"{ANSWER_LINE} Thanh ghi\n" + format_mcq(QUESTION, OPTIONS, "B")
    cand = read_candidate(raw, PARAGRAPH)
    assert not cand.plan_kept and PLAN_NOT_KEPT in cand.reasons and cand.mcq.answer == "B"


def test_without_a_plan_the_paragraph_rekeys_a_key_it_does_not_support():
    cand = read_candidate(format_mcq(QUESTION, OPTIONS, "C"), PARAGRAPH)  # "Bộ nhớ RAM" is not in the paragraph
    assert cand.rekeyed_from == "C" and cand.mcq.answer == "B" and cand.content.passed


def test_the_best_candidate_wins_and_says_why_when_it_is_not_clean():
    good = read_candidate(format_mcq(QUESTION, OPTIONS, "B"), PARAGRAPH, rekey=False)
    broken = read_candidate("Câu hỏi: ?\nA. 1\nB. 1\nĐáp án: A.", PARAGRAPH)
    q = choose([broken, good], PARAGRAPH, started=0.0)
    assert q.status == OK and q.reasons == () and q.structure_ok and q.content_ok and q.mcq.answer == "B"
    only_bad = choose([broken], PARAGRAPH, started=0.0)
    assert only_bad.status == FLAGGED and "missing_options" in only_bad.reasons
    assert sorted([good, broken], key=Candidate.rank)[0] is good


def test_a_chapter_splits_into_paragraphs_and_drops_headings():
    chapter = f"Bài 1. Máy tính\n\n{PARAGRAPH}\n\n   \n\nHệ điều hành quản lí tài nguyên của máy tính và cung cấp giao diện."
    assert paragraphs_of(chapter) == [PARAGRAPH, "Hệ điều hành quản lí tài nguyên của máy tính và cung cấp giao diện."]


def test_quiz_input_files_and_their_one_line_errors(tmp_path):
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text(json.dumps({"context": PARAGRAPH, "answer": "ALU"}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert read_quiz_input(jsonl) == [{"context": PARAGRAPH, "answer": "ALU"}]
    text = tmp_path / "chapter.txt"
    text.write_text(f"Tiêu đề\n\n{PARAGRAPH}\n", encoding="utf-8")
    assert read_quiz_input(text) == [{"context": PARAGRAPH, "answer": None}]
    for content, message in (("", "is empty"), ("Chỉ\n\nvài từ", "no paragraph"),
                             ('{"answer": "x"}\n', "line 1: no `context`")):
        bad = tmp_path / ("bad.jsonl" if content.startswith("{") else "bad.txt")
        bad.write_text(content, encoding="utf-8")
        with pytest.raises(DataError, match=message):
            read_quiz_input(bad)
    with pytest.raises(DataError, match="not found"):
        read_quiz_input(tmp_path / "missing.txt")


def test_focus_sentences_skip_scraps_and_move_along_for_another_question():
    from core.inference.quiz import focus_sentences

    text = ("Tin học. Bộ nhớ trong gồm RAM và ROM của máy tính cá nhân. ROM chứa chương trình khởi động do nhà "
            "sản xuất ghi sẵn. RAM mất toàn bộ dữ liệu khi tắt máy hoặc mất điện.")
    first = focus_sentences(text, 2)
    assert first == ["Bộ nhớ trong gồm RAM và ROM của máy tính cá nhân.",
                     "ROM chứa chương trình khởi động do nhà sản xuất ghi sẵn."]
    assert focus_sentences(text, 2, seed=1)[0] == "RAM mất toàn bộ dữ liệu khi tắt máy hoặc mất điện."
    assert focus_sentences("Một câu ngắn", 4) == ["Một câu ngắn"]


def test_a_focus_question_is_rekeyed_to_what_its_sentence_says():
    from core.inference.quiz import read_candidate

    paragraph = ("Bộ nhớ trong gồm RAM và ROM. ROM chứa chương trình khởi động do nhà sản xuất ghi sẵn. "
                 "RAM mất dữ liệu khi tắt máy.")
    raw = ("Câu hỏi: Bộ nhớ nào chứa chương trình khởi động do nhà sản xuất ghi sẵn?\nA. RAM\nB. ROM\n"
           "C. Ổ cứng\nD. Thẻ nhớ\nĐáp án: A.")
    cand = read_candidate(raw, paragraph, focus="ROM chứa chương trình khởi động do nhà sản xuất ghi sẵn.")
    assert cand.mcq.answer == "B" and cand.rekeyed_from == "A"
    kept = read_candidate(raw.replace("Đáp án: A.", "Đáp án: B."), paragraph,
                          focus="ROM chứa chương trình khởi động do nhà sản xuất ghi sẵn.")
    assert kept.mcq.answer == "B" and kept.rekeyed_from is None


@pytest.fixture(scope="module")
def answer_first_run(micro_model, tmp_path_factory) -> Path:
    from core.train.job import TrainingJob

    cfg = C.load_yaml("presets/demo.yaml", micro_overrides(micro_model, run_name="af", **{
        "data.template": "mcq_answer_first", "train.max_steps": 2}))
    return TrainingJob(cfg, tmp_path_factory.mktemp("quiz-runs")).run()


def test_the_quiz_command_writes_a_checked_quiz(answer_first_run, tmp_path, run_cli):
    chapter = tmp_path / "chapter.txt"
    chapter.write_text(f"{PARAGRAPH}\n\nHệ điều hành quản lí tài nguyên của máy tính và cung cấp giao diện.\n",
                       encoding="utf-8")
    out = tmp_path / "quiz.csv"
    res = run_cli("quiz", str(answer_first_run), "--input", str(chapter), "--out", str(out), "--candidates", "2")
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1] == str(out) and "paragraph 2/2" in res.stderr
    rows = list(csv.reader(out.read_text(encoding="utf-8-sig").splitlines()))
    assert rows[0] == ["paragraph", "question", "A", "B", "C", "D", "key", "status", "reasons"]
    assert all(r[7] in ("ok", "flagged") for r in rows[1:])  # a random micro model writes what it writes


@pytest.mark.parametrize("case,message", [
    ("missing", "input file not found"), ("empty", "is empty"), ("not-a-run", "is not a run folder"),
    ("not-mcq", "is not a question-writing run"),
])
def test_the_quiz_command_refuses_bad_input_in_one_line(case, message, answer_first_run, tmp_path, run_cli):
    chapter = tmp_path / "chapter.txt"
    chapter.write_text("" if case == "empty" else PARAGRAPH, encoding="utf-8")
    run = answer_first_run
    if case == "not-a-run":
        run = tmp_path
    elif case == "not-mcq":
        import shutil

        run = tmp_path / "other"
        shutil.copytree(answer_first_run, run, ignore=shutil.ignore_patterns(".lock"))
        info = json.loads((run / "run.json").read_text())
        (run / "run.json").write_text(json.dumps(dict(info, template="cpt")))
    res = run_cli("quiz", str(run), "--input", str(tmp_path / "nope.txt" if case == "missing" else chapter),
                  "--out", str(tmp_path / "q.csv"))
    assert res.returncode == 2, res.stderr
    assert message in res.stderr.strip().splitlines()[-1] and not (tmp_path / "q.csv").exists()


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_the_focus_candidates_of_one_batch_are_the_one_by_one_greedy_answers(arch, micro_model_factory):
    """The focus task writes its candidates in one left-padded batch: in float32 each is what generate() writes for
    its prompt alone (same tokens, same mean log-prob), with prompts of different lengths."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.config import DecodingConfig
    from core.inference.generate import generate
    from core.inference.quiz import greedy_batch

    path = micro_model_factory(arch)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype="float32").eval()
    prompts = ["Câu hỏi về RAM", "Bộ nhớ ROM chứa chương trình khởi động do nhà sản xuất ghi sẵn, và",
               "CPU là bộ xử lý trung tâm của máy tính"]
    decoding = DecodingConfig(max_new_tokens=12, repetition_penalty=1.15)
    batched = greedy_batch(model, tok, prompts, decoding)
    alone = generate(model, tok, prompts, decoding)
    assert [d.text for d in batched] == [g.text for g in alone]
    assert all(d.logprob < 0 for d in batched)


def test_the_mean_log_prob_of_a_candidate_is_what_transformers_computes(micro_model_factory):
    """token_logprobs gives each generated token's log-probability as compute_transition_scores does (normalised
    over the vocabulary, after the repetition penalty), without stacking every step's scores into one tensor."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.config import DecodingConfig
    from core.inference.generate import generation_config, logits_processors
    from core.inference.quiz import token_logprobs

    path = micro_model_factory("llama")
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype="float32").eval()
    decoding = DecodingConfig(max_new_tokens=10, do_sample=True, temperature=0.8, top_p=0.9, repetition_penalty=1.15)
    gc = generation_config(decoding, model, tok)
    gc.num_return_sequences, gc.return_dict_in_generate, gc.output_scores = 3, True, True
    x = torch.tensor([tok("Bộ nhớ RAM là")["input_ids"]])
    torch.manual_seed(0)
    with torch.no_grad():
        out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), generation_config=gc,
                             logits_processor=logits_processors(decoding, x.shape[1]))
    ours = token_logprobs(out.scores, out.sequences)
    theirs = model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
    assert ours.shape == theirs.shape == (3, len(out.scores))
    finite = torch.isfinite(theirs)
    assert torch.equal(finite, torch.isfinite(ours)) and finite.any()
    assert torch.allclose(ours[finite], theirs[finite], atol=1e-5)


def test_the_output_layer_gets_a_contiguous_input_and_the_same_numbers(micro_model_factory):
    """generate() gives the output layer the prompt's last position, a strided slice, which a CPU's bfloat16 matmul
    handles by copying the weight once per row (seconds with Gemma's vocabulary): contiguous_head gives it a
    contiguous copy instead, once per model, with bitwise the same logits."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.config import DecodingConfig
    from core.inference.generate import contiguous_head
    from core.inference.quiz import greedy_batch

    path = micro_model_factory("gemma3")
    tok = AutoTokenizer.from_pretrained(path)

    def contiguity(model, hook: bool) -> list[bool]:
        seen: list[bool] = []
        model.get_output_embeddings().register_forward_hook(lambda m, args, out: seen.append(args[0].is_contiguous()))
        x = tok(["Câu hỏi về RAM và ROM", "CPU"], return_tensors="pt", padding=True)
        if hook:
            contiguous_head(model)
        with torch.no_grad():
            model.generate(**x, max_new_tokens=3, do_sample=False)
        return seen

    tok.padding_side = "left"
    plain = AutoModelForCausalLM.from_pretrained(path, dtype="bfloat16").eval()
    assert not all(contiguity(plain, hook=False))  # the prefill's slice: what the hook is for
    hooked = AutoModelForCausalLM.from_pretrained(path, dtype="bfloat16").eval()
    assert all(contiguity(hooked, hook=True))
    contiguous_head(hooked)  # once per model
    assert len(hooked.get_output_embeddings()._forward_pre_hooks) == 1
    h = torch.randn(2, 7, hooked.config.hidden_size, dtype=torch.bfloat16)
    fresh = AutoModelForCausalLM.from_pretrained(path, dtype="bfloat16").eval()
    with torch.no_grad():
        assert torch.equal(fresh.get_output_embeddings()(h[:, -1:, :]), hooked.get_output_embeddings()(h[:, -1:, :]))
        assert greedy_batch(hooked, tok, ["RAM"], DecodingConfig(max_new_tokens=4))[0].text == \
            greedy_batch(fresh, tok, ["RAM"], DecodingConfig(max_new_tokens=4))[0].text


def test_the_key_letter_distribution_is_read_where_the_model_wrote_its_key(tokenizer):
    """key_probs takes the scores of the step that wrote the letter after "Đáp án:" (not an option's letter),
    renormalised over the four letters; a text without a key gives none, and re-keying moves the confidence to
    the new key's letter."""
    import torch

    from core.inference.quiz import _letter_ids, key_probs

    text = format_mcq("Thiết bị nào là thiết bị vào?", ["Bàn phím", "Màn hình", "Máy in", "Loa"], "B")
    ids = tokenizer.encode(text, add_special_tokens=False)
    letters = _letter_ids(tokenizer)
    assert all(letters[x] for x in "ABCD")
    preferred = {"A": 1.0, "B": 3.0, "C": 0.0, "D": -1.0}
    seen = []

    def scores(i):
        seen.append(i)
        s = torch.full((len(tokenizer),), -5.0)
        for x, v in preferred.items():
            s[letters[x]] = v  # every spelling of the letter the same: the letter's mass is their log-sum-exp
        return s

    probs = key_probs(tokenizer, ids, scores)
    weight = {x: len(letters[x]) * torch.tensor(v).exp().item() for x, v in preferred.items()}
    total = sum(weight.values())
    assert probs == pytest.approx({x: w / total for x, w in weight.items()}, abs=1e-4)
    assert len(seen) == 1 and tokenizer.decode(ids[:seen[0]]).rstrip().endswith("Đáp án:")
    assert key_probs(tokenizer, tokenizer.encode("Câu hỏi: A hay B?", add_special_tokens=False), scores) == {}

    para = "Bàn phím là thiết bị vào. Màn hình là thiết bị ra."
    cand = read_candidate(text, para, key_probs=probs, rekey=False)
    assert cand.key_confidence == probs["B"]
    assert read_candidate(text.replace("Đáp án: B", "Đáp án: A"), para, key_probs=probs,
                          rekey=False).key_confidence == probs["A"]


def test_a_key_first_candidate_goes_out_at_its_own_letter_with_its_letter_distribution():
    """The key-first task's A is the model's answer: read_candidate moves the options (the key follows its option)
    before checking, and the model's letter distribution moves with them."""
    from core.tasks.mcq_format import LETTERS, parse_mcq, shuffled_order

    para = "Bàn phím là thiết bị vào. Màn hình là thiết bị ra."
    text = format_mcq("Thiết bị nào là thiết bị vào?", ["Bàn phím", "Màn hình", "Máy in", "Loa"], "A")
    probs = {"A": 0.7, "B": 0.1, "C": 0.1, "D": 0.1}
    cand = read_candidate(text, para, key_first=True, key_probs=probs, rekey=False)
    order = shuffled_order(parse_mcq(text))
    assert cand.mcq.options[cand.mcq.answer] == "Bàn phím" and cand.mcq.answer == LETTERS[order.index("A")]
    assert cand.key_confidence == 0.7 and cand.text.endswith(f"Đáp án: {cand.mcq.answer}.")
    assert read_candidate(text, para, rekey=False).mcq.answer == "A"  # not key-first: as written


def test_a_runs_vocabulary_holds_its_training_rows_tokens_and_little_else(answer_first_run):
    """The set the quiz writes with: every token of the rows the run trained on, the tokenizer's special and
    spelling tokens, and a small part of the whole vocabulary."""
    from core import data as D
    from core.inference.batch import run_tokenizer
    from core.inference.vocab import run_vocabulary, spelling_tokens
    from core.run import RunFolder

    vocab = run_vocabulary(answer_first_run)
    tok = run_tokenizer(str(answer_first_run))
    cfg = RunFolder(answer_first_run).read_config()
    rows = D.prepare(cfg.data, tok, seed=cfg.train.seed).train
    assert {t for e in rows for t in e.input_ids} <= vocab and spelling_tokens(tok) <= vocab
    assert len(vocab) < len(tok) // 4
    assert not set(tok.encode("Kubernetes orchestrates containerised microservices", add_special_tokens=False)) <= vocab
