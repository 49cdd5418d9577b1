"""The quiz's second reader: the base model's log-probabilities of each option, and how the quiz uses them."""

from __future__ import annotations

import pytest
from conftest import micro_overrides

from core import config as C
from core.inference.quiz import READER_DISAGREES, Candidate, choose, read_candidate
from core.inference.verifier import CLEAR_MARGIN, OptionSupport, continuation_logprobs, option_supports
from core.tasks.mcq_format import format_mcq

PARAGRAPH = ("Bộ xử lí trung tâm (CPU) gồm khối điều khiển (CU) điều phối hoạt động của các thiết bị và khối số "
             "học và logic (ALU) thực hiện các phép tính số học và logic.")
QUESTION = "Bộ phận nào của CPU thực hiện các phép tính số học và logic?"
OPTIONS = ["Khối điều khiển (CU)", "Khối số học và logic (ALU)", "Bộ nhớ RAM", "Ổ cứng"]


def _reference(model, tok, prefix: str, cont: str) -> float:
    """log P(cont | prefix) from one plain forward of the whole text: what the reader's cached batch must give."""
    import torch

    p = tok(prefix)["input_ids"]
    c = tok(cont, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        lp = torch.log_softmax(model(torch.tensor([p + c])).logits[0].float(), -1)
    return sum(float(lp[len(p) - 1 + j, t]) for j, t in enumerate(c))


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_each_continuation_gets_the_log_prob_one_plain_forward_gives(arch, micro_model_factory):
    """Several prefixes, continuations of different lengths (right-padded in one batch), the prefix's cache
    repeated for them, two prefixes sharing their paragraph (run once); with Gemma-3 the prefix is longer than its
    sliding window (64 tokens in the micro model)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = micro_model_factory(arch)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype="float32").eval()
    long_prefix = f"{PARAGRAPH} {PARAGRAPH}\n\nCâu hỏi: {QUESTION}\nTrả lời:"
    assert len(tok(long_prefix)["input_ids"]) > 64
    same_paragraph = f"{PARAGRAPH} {PARAGRAPH}\n\nCâu hỏi: RAM là gì?\nTrả lời:"  # its first 60-odd tokens: shared
    prompts = [(long_prefix, [" " + o for o in OPTIONS]), ("Câu hỏi: RAM là gì?\nTrả lời:", [" Bộ nhớ", " Ổ cứng gắn ngoài"]),
               (same_paragraph, [" Bộ nhớ", " CPU"])]
    got = continuation_logprobs(model, tok, prompts)
    want = [[_reference(model, tok, p, c) for c in conts] for p, conts in prompts]
    assert [len(g) for g in got] == [4, 2, 2]
    assert got == [pytest.approx(w, abs=2e-4) for w in want]
    assert all(v < 0 for g in got for v in g)


def test_a_16_bit_model_is_scored_with_a_float32_output_layer(micro_model_factory):
    """A bfloat16 output layer rounds logits to 8 bits of mantissa; the reader computes the layer in float32, so its
    numbers stay within the body's own bfloat16 error of the float32 model's, closer than the bf16 logits get."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = micro_model_factory("gemma3")
    tok = AutoTokenizer.from_pretrained(path)
    m32 = AutoModelForCausalLM.from_pretrained(path, dtype="float32").eval()
    m16 = AutoModelForCausalLM.from_pretrained(path, dtype="bfloat16").eval()
    prefix = f"{PARAGRAPH}\n\nCâu hỏi: {QUESTION}\nTrả lời:"
    conts = [" " + o for o in OPTIONS]
    exact = continuation_logprobs(m32, tok, [(prefix, conts)])[0]
    ours = continuation_logprobs(m16, tok, [(prefix, conts)])[0]
    plain = [_reference(m16, tok, prefix, c) for c in conts]  # the bf16 model's own bf16 logits
    assert torch.tensor(ours).dtype == torch.float32
    assert sum(abs(a - b) for a, b in zip(ours, exact)) < sum(abs(a - b) for a, b in zip(plain, exact))


def test_support_is_how_much_the_paragraph_raises_each_option(micro_model_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = micro_model_factory("llama")
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype="float32").eval()
    options = dict(zip("ABCD", OPTIONS))
    [s, again] = option_supports(model, tok, PARAGRAPH, [(QUESTION, options), (QUESTION, options)])
    conts = [" " + o for o in OPTIONS]
    read, prior = continuation_logprobs(model, tok, [(f"{PARAGRAPH}\n\nCâu hỏi: {QUESTION}\nTrả lời:", conts),
                                                     (f"Câu hỏi: {QUESTION}\nTrả lời:", conts)])
    assert s.scores == pytest.approx({x: a - b for x, a, b in zip("ABCD", read, prior)}, abs=1e-3)
    assert again.scores == s.scores


def test_margin_best_and_a_clear_dispute():
    s = OptionSupport({"A": 1.0, "B": 5.0, "C": 4.0, "D": -2.0})
    assert s.best == "B" and s.margin("B") == 1.0 and s.margin("A") == -4.0
    assert s.disagrees("A") and not s.disagrees("B") and not s.disagrees("C")  # C is 1 nat behind: unclear
    assert s.margin(None) == float("-inf") and not s.disagrees(None)


def _candidate(key: str, scores: dict | None) -> Candidate:
    cand = read_candidate(format_mcq(QUESTION, OPTIONS, key), PARAGRAPH, rekey=False)
    cand.reader = OptionSupport(scores) if scores is not None else None
    return cand


def test_the_reader_ranks_clean_candidates_and_flags_a_key_it_disputes():
    backed = _candidate("B", {"A": 0.0, "B": 6.0, "C": -1.0, "D": -1.0})
    unclear = _candidate("B", {"A": 5.0, "B": 6.0, "C": -1.0, "D": -1.0})
    disputed = _candidate("A", {"A": 0.0, "B": 6.0, "C": -1.0, "D": -1.0})
    unread = _candidate("B", None)
    assert [c.reader_tier for c in (backed, unclear, disputed, unread)] == [-1, 0, 1, 0]
    assert sorted([disputed, unclear, backed], key=Candidate.rank) == [backed, unclear, disputed]
    assert READER_DISAGREES in disputed.reasons and READER_DISAGREES not in disputed.checks
    assert READER_DISAGREES not in backed.reasons + unclear.reasons + unread.reasons
    q = choose([disputed], PARAGRAPH, started=0.0)
    assert q.status == "flagged" and not q.content_ok and q.structure_ok
    assert q.detail[READER_DISAGREES] == {"options": ["A", "B"], "margin": -6.0} and q.reader["B"] == 6.0
    from gui.render.mcq_cards import describe_flags

    assert describe_flags(q, "en") == [("Reading the paragraph, the base model (not fine-tuned) picks option B, not "
                                        "the key A: check the key.")]
    assert "chọn phương án B chứ không phải đáp án A" in describe_flags(q, "vi")[0]
    ok = choose([backed], PARAGRAPH, started=0.0)
    assert ok.status == "ok" and ok.content_ok and ok.reader == {"A": 0.0, "B": 6.0, "C": -1.0, "D": -1.0}
    assert CLEAR_MARGIN == 2.0


def test_the_checks_come_before_the_reader():
    """A candidate the checks flag stays behind a clean one, whatever the reader says of either."""
    flagged = read_candidate(format_mcq(QUESTION, ["1", "2", "3", "4"], "A"), PARAGRAPH, rekey=False)
    flagged.reader = OptionSupport({"A": 9.0, "B": 0.0, "C": 0.0, "D": 0.0})
    assert flagged.checks
    disputed = _candidate("A", {"A": 0.0, "B": 6.0, "C": -1.0, "D": -1.0})
    assert min([flagged, disputed], key=Candidate.rank) is disputed


@pytest.fixture(scope="module")
def mcq_run(micro_model, tmp_path_factory):
    """A few steps of the demo preset on the micro model, at a learning rate that moves its adapter visibly."""
    from core.train.job import TrainingJob

    cfg = C.load_yaml("presets/demo.yaml", micro_overrides(micro_model, run_name="reader", **{
        "train.max_steps": 4, "train.learning_rate": 0.01}))
    return TrainingJob(cfg, tmp_path_factory.mktemp("reader-runs")).run()


def test_the_quiz_reads_with_the_adapter_off(mcq_run):
    """QuizWriter.read scores the structurally valid candidates with the base model (every adapter disabled): the
    same numbers as the run's base loaded alone; a candidate without structure is not read."""
    from transformers import AutoModelForCausalLM

    from core.inference.modelset import ModelSet
    from core.inference.quiz import QuizWriter
    from core.run import RunInfo

    models = ModelSet.from_run(mcq_run)
    writer = QuizWriter(models, candidates=2)
    good = read_candidate(format_mcq(QUESTION, OPTIONS, "B"), PARAGRAPH, rekey=False)
    broken = read_candidate("Câu hỏi: ?\nA. 1\nĐáp án: A.", PARAGRAPH, rekey=False)
    writer.read([good, broken], PARAGRAPH)
    assert broken.reader is None and good.reader is not None
    base = AutoModelForCausalLM.from_pretrained(RunInfo.load(mcq_run).base_path,
                                                dtype=models.model.dtype).eval()
    alone = option_supports(base, models.tokenizer, PARAGRAPH, [(QUESTION, good.mcq.options)])[0]
    assert good.reader.scores == pytest.approx(alone.scores, abs=1e-3)
    with models.use("adapter") as tuned:
        with_adapter = option_supports(tuned, models.tokenizer, PARAGRAPH, [(QUESTION, good.mcq.options)])[0]
    assert with_adapter.scores != pytest.approx(alone.scores, abs=1e-3)  # the adapter does change them


def test_the_quiz_command_takes_the_second_reader(mcq_run, tmp_path, run_cli):
    """``core quiz --reader``: the reader is opt-in (about 2 s a question on 2 cores); a question it read carries its
    scores, one without structure none."""
    from core.inference.modelset import ModelSet
    from core.inference.quiz import QuizWriter

    assert QuizWriter(ModelSet.from_run(mcq_run)).reader is False
    questions = QuizWriter(ModelSet.from_run(mcq_run), candidates=2, reader=True).write(PARAGRAPH, k=2)
    assert questions and all((q.reader is not None) == q.structure_ok for q in questions)
    chapter = tmp_path / "chapter.txt"
    chapter.write_text(PARAGRAPH + "\n", encoding="utf-8")
    out = tmp_path / "quiz.csv"
    res = run_cli("quiz", str(mcq_run), "--input", str(chapter), "--out", str(out), "--candidates", "2", "--reader")
    assert res.returncode == 0, res.stderr[-2000:]
    assert out.is_file() and "paragraph 1/1" in res.stderr
