"""A quiz from paragraphs: the pipeline that turns a teacher's text into questions worth keeping.

For each paragraph: sample a few candidates at once (one prompt, ``num_return_sequences``), read each (the
answer it planned, its MCQ), re-key it where the plan or the paragraph says the key is wrong, check its
structure and content, optionally have the base model read it as a second reader (:mod:`core.inference.verifier`:
does the paragraph support the key more than the other options?), and keep the best. A teacher may choose the
answer of a question; the answer-first task (``mcq_answer_first``) then writes the question for it. Every
question comes back with a status — ``ok``, or ``flagged`` with its reason codes — and the GUI and the CLI put
the codes into words.

It uses the models it is given (a :class:`~core.inference.modelset.ModelSet`); it loads none itself.
"""

from __future__ import annotations

import re
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from core import tasks
from core.config import DecodingConfig
from core.data import clean_text, encode_prompt, iter_jsonl
from core.inference.batch import run_prompt, run_template
from core.errors import DataError
from core.inference.generate import contiguous_head, generation_config, logits_processors, model_device
from core.inference.modelset import ADAPTER, BASE
from core.inference.verifier import CLEAR_MARGIN, OptionSupport, option_supports
from core.tasks.mcq_checks import MCQCheck, validate_mcq
from core.tasks.mcq_content import KEY_BETTER_MIN, KEY_MARGIN, ContentCheck, check_content
from core.tasks.mcq_format import (LETTERS, MCQ, MCQ_ANSWER_PREFIX, format_mcq, parse_mcq, shuffle_options,
                                   shuffled_order, split_answer_line)
from core.tasks.vi_text import content_syllables, fold, option_support, sentences, syllables

OK, FLAGGED = "ok", "flagged"
# reason codes of the pipeline itself (the structure and content checks have their own)
REKEYED = "rekeyed"  # the key was moved to the option the plan or the paragraph names (said, not a flag)
PLAN_NOT_KEPT = "plan_not_kept"  # the model named an answer, then wrote no option for it
READER_DISAGREES = "reader_disagrees"  # the base model, reading the paragraph, clearly prefers another option
PIPELINE_CODES = (REKEYED, PLAN_NOT_KEPT, READER_DISAGREES)
# How the candidates are drawn. Measured on the test split's paragraphs (docs/BENCHMARKS.md, the read evaluation):
# see the table there for what N and the temperature gave.
CANDIDATES = 4
TEMPERATURE = 0.7
TOP_P = 0.95
MAX_NEW_TOKENS = 160


@dataclass
class Candidate:
    """One sampled answer of the model, read and checked."""

    raw: str
    planned: str | None  # the answer the model (or the teacher) named before its question
    mcq: MCQ
    structure: MCQCheck
    content: ContentCheck
    rekeyed_from: str | None = None
    plan_kept: bool = True
    logprob: float = 0.0  # mean log-probability of its tokens
    focus: str | None = None  # the sentence it was asked to ask about (the focus task)
    key_probs: dict = field(default_factory=dict)  # the model's letter distribution where it wrote the key
    reader: OptionSupport | None = None  # the second reader's support of each option (None: not read)

    @property
    def key_confidence(self) -> float | None:
        """How sure the model was of this candidate's key (after any re-keying) against the other three letters."""
        return self.key_probs.get(self.mcq.answer) if self.key_probs and self.mcq.answer else None

    @property
    def text(self) -> str:
        """The MCQ in the canonical layout (after re-keying), or the raw text when it has no structure."""
        m = self.mcq
        if self.structure.valid:
            return format_mcq(m.question, [m.options[x] for x in LETTERS], m.answer)
        return split_answer_line(self.raw)[1].strip()

    @property
    def checks(self) -> tuple[str, ...]:
        """The codes of the structure and content checks, and of a plan not kept."""
        out = list(self.structure.reasons) + list(self.content.codes)
        if not self.plan_kept:
            out.append(PLAN_NOT_KEPT)
        return tuple(out)

    @property
    def reader_disagrees(self) -> bool:
        return self.reader_tier > 0

    @property
    def reasons(self) -> tuple[str, ...]:
        return self.checks + ((READER_DISAGREES,) if self.reader_disagrees else ())

    @property
    def reader_tier(self) -> int:
        """-1: the second reader clearly backs the key; 1: it clearly prefers another option; 0: unclear or unread."""
        if self.reader is None or not self.structure.valid:
            return 0
        margin = self.reader.margin(self.mcq.answer)
        return -1 if margin >= CLEAR_MARGIN else 1 if margin <= -CLEAR_MARGIN else 0

    def rank(self) -> tuple:
        """Better candidates sort first: valid structure, fewest check flags, the plan kept, the second reader's
        verdict on the key (backs it, unclear, prefers another), then the paragraph's word support and likelihood.

        The reader (when asked for) comes before word support; what it gave is measured in docs/BENCHMARKS.md
        (``python -m bench --only mcq-reader``, and the read evaluation's *pipeline + second reader*)."""
        key = self.mcq.answer
        support = focus_support(self.mcq, self.focus) if self.focus else self.content.support
        key_support = support.get(key, 0.0) if key else 0.0
        others = max((v for x, v in support.items() if x != key), default=0.0)
        return (not self.structure.valid, len(self.checks), not self.plan_kept, self.reader_tier,
                -(key_support - others), -self.logprob)


@dataclass
class QuizQuestion:
    """What a teacher gets for one question of a paragraph."""

    paragraph: str
    text: str
    status: str  # ok | flagged
    reasons: tuple[str, ...]
    answer: str | None = None  # the answer it was written for
    rekeyed_from: str | None = None
    structure_ok: bool = False
    content_ok: bool = False
    n_candidates: int = 0
    seconds: float = 0.0
    detail: dict = field(default_factory=dict)  # the content checks' numbers, for the words of a flag
    focus: str | None = None  # the sentence it was written on (the focus task)
    logprob: float = 0.0  # the mean log-probability of its tokens
    key_confidence: float | None = None  # the model's probability of its key against the other letters
    reader: dict | None = None  # the second reader's support of each option ({"A": nats, …}; None: not read)

    @property
    def mcq(self) -> MCQ:
        return parse_mcq(self.text)


def _matches(planned: str, option: str) -> float:
    """How well an option states the planned answer: 1 when equal (tones and case aside), else the share of the
    plan's syllables the option holds."""
    if fold(planned) == fold(option):
        return 1.0
    a, b = syllables(planned), set(syllables(option))
    return sum(1 for s in a if s in b) / len(a) if a else 0.0


# A sentence worth a question has this many content syllables (shorter ones are headings or linking scraps).
FOCUS_MIN_SYLLABLES = 6


def focus_sentences(paragraph: str, n: int, seed: int = 0) -> list[str]:
    """Up to ``n`` sentences of ``paragraph`` to write one question each on, in paragraph order; ``seed`` moves the
    window along (for "write another"). Short sentences are left out while there are enough long ones."""
    parts = sentences(paragraph) or [paragraph.strip()]
    long = [x for x in parts if len(content_syllables(syllables(x))) >= FOCUS_MIN_SYLLABLES]
    pool = long if len(long) >= min(n, len(parts)) else parts
    start = (seed * n) % len(pool)
    return [pool[(start + i) % len(pool)] for i in range(min(n, len(pool)))]


def focus_support(mcq: MCQ, focus: str) -> dict[str, float]:
    """How much each option is what the focus sentence says (the content checks' support, on that sentence)."""
    return {x: option_support(mcq.options.get(x) or "", focus, mcq.question) for x in LETTERS}


def read_candidate(raw: str, paragraph: str, *, planned: str | None = None, logprob: float = 0.0,
                   rekey: bool = True, focus: str | None = None, key_probs: dict | None = None,
                   key_first: bool = False) -> Candidate:
    """Parse one generation and check it; re-key it where the plan (or, without one, the paragraph) disagrees.

    Args:
        raw: the generated text (with the answer line of the answer-first task, when it wrote one).
        planned: the answer the teacher chose (it was written into the prompt); else the model's own line.
        rekey: move the key to the option that states the planned answer — or, without a plan, to the option the
            paragraph supports far better than the key (``key_unsupported``); a question written on a focus
            sentence is re-keyed to the option that sentence supports far better than the key.
        focus: the sentence the question was asked to be about (the focus task).
        key_first: the model wrote its answer as option A (the key-first task): the options move to letters of
            their own (:func:`~core.tasks.mcq_format.shuffle_options`) and ``key_probs`` go with them.
    """
    own, body = split_answer_line(raw)
    planned = planned or own
    mcq = parse_mcq(body)
    order = shuffled_order(mcq) if key_first else None
    if order is not None:
        mcq = shuffle_options(mcq)
        if key_probs:  # the letter distribution belongs to the options: it moves with them
            key_probs = {new: key_probs.get(old, 0.0) for new, old in zip(LETTERS, order)}
    structure = validate_mcq(mcq)
    rekeyed_from, plan_kept = None, True
    if structure.valid and planned:
        scores = {x: _matches(planned, mcq.options[x]) for x in LETTERS}
        best = max(scores, key=scores.get)
        plan_kept = scores[best] >= 0.6
        if rekey and plan_kept and best != mcq.answer:
            rekeyed_from = mcq.answer
            mcq = MCQ(mcq.question, dict(mcq.options), best, mcq.raw)
    content = check_content(mcq, paragraph)
    if rekey and structure.valid and not planned and "key_unsupported" in content.codes:
        better = next(f.options[1] for f in content.flags if f.code == "key_unsupported")
        rekeyed_from = mcq.answer
        mcq = MCQ(mcq.question, dict(mcq.options), better, mcq.raw)
        content = check_content(mcq, paragraph)
    if rekey and structure.valid and focus and not planned:
        support = focus_support(mcq, focus)
        best = max(support, key=support.get)
        if best != mcq.answer and support[best] >= KEY_BETTER_MIN and support[best] - support[mcq.answer] >= KEY_MARGIN:
            rekeyed_from = rekeyed_from or mcq.answer
            mcq = MCQ(mcq.question, dict(mcq.options), best, mcq.raw)
            content = check_content(mcq, paragraph)
    return Candidate(raw, planned, mcq, structure, content, rekeyed_from, plan_kept, logprob, focus,
                     dict(key_probs or {}))


def choose(candidates: list[Candidate], paragraph: str, started: float, answer: str | None = None) -> QuizQuestion:
    """The best candidate, as the teacher gets it."""
    best = min(candidates, key=Candidate.rank)
    reasons = best.reasons
    detail = {f.code: {"options": list(f.options), **f.detail} for f in best.content.flags}
    if best.reader_disagrees:
        detail[READER_DISAGREES] = {"options": [best.mcq.answer, best.reader.best],
                                    "margin": round(best.reader.margin(best.mcq.answer), 2)}
    return QuizQuestion(paragraph=paragraph, text=best.text, status=FLAGGED if reasons else OK, reasons=reasons,
                        answer=answer or best.planned, rekeyed_from=best.rekeyed_from,
                        structure_ok=best.structure.valid,
                        content_ok=best.content.passed and not best.reader_disagrees,
                        n_candidates=len(candidates), seconds=round(time.monotonic() - started, 2), detail=detail,
                        focus=best.focus, logprob=round(best.logprob, 4), key_confidence=best.key_confidence,
                        reader=dict(best.reader.scores) if best.reader is not None else None)


class Drawn(NamedTuple):
    """One generated answer: its text, the mean log-probability of its tokens, the model's distribution over
    the four key letters where it wrote the key (``{"A": p, …}``; empty when it wrote none), and its token ids."""

    text: str
    logprob: float
    key_probs: dict
    token_ids: tuple = ()


def _letter_ids(tokenizer) -> dict[str, list[int]]:
    """The single-token spellings of each key letter ("A", " A", …) in this tokenizer."""
    out: dict[str, list[int]] = {}
    for letter in LETTERS:
        ids = {tuple(tokenizer.encode(v, add_special_tokens=False)) for v in (letter, " " + letter)}
        out[letter] = sorted(i[0] for i in ids if len(i) == 1)
    return out


def key_probs(tokenizer, new_ids: list[int], step_scores) -> dict[str, float]:
    """The model's distribution over the four letters at the step where it wrote the key (after "Đáp án:").

    ``step_scores(i)`` gives the processed scores (a 1-D tensor over the vocabulary) of new token ``i``. The letters'
    probabilities are renormalised among themselves: how sure the model was of its key against the other three.
    """
    import torch

    letters = _letter_ids(tokenizer)
    ids_to_letter = {i: x for x, ids in letters.items() for i in ids}
    for i, t in enumerate(new_ids):
        if t in ids_to_letter and tokenizer.decode(new_ids[:i]).rstrip().endswith(MCQ_ANSWER_PREFIX):
            scores = step_scores(i).float()
            logits = torch.stack([torch.logsumexp(scores[ids], 0) if ids else torch.tensor(float("-inf"))
                                  for ids in letters.values()])
            probs = torch.softmax(logits, 0)
            return {x: round(float(p), 4) for x, p in zip(letters, probs)}
    return {}


def token_logprobs(scores, sequences):
    """The log-probability of each generated token under the scores it was drawn from (after the logits processors),
    shape (rows, steps): what ``compute_transition_scores(..., normalize_logits=True)`` gives, one step at a time.
    That one stacks every step's scores into one (rows, vocabulary, steps) tensor first, about 2 s of a 4-prompt
    batch with Gemma's 262k-token vocabulary."""
    import torch

    steps = len(scores)
    chosen = sequences[:, sequences.shape[1] - steps:]
    return torch.stack([torch.log_softmax(s.float(), dim=-1).gather(1, chosen[:, i:i + 1]).squeeze(1)
                        for i, s in enumerate(scores)], dim=1)


def _generate(model, x, mask, gc, procs, vocab: frozenset | None):
    """One generate() with its scores, over ``vocab`` when given (:mod:`core.inference.vocab`).

    Returns (sequences in the model's ids, each new token's log-probability (rows, steps), ``step_scores(i, row)``:
    the processed scores of new token ``i`` over the whole vocabulary).
    """
    import torch

    from core.inference import vocab as V

    narrow = V.for_prompts(vocab, x.tolist(), gc, model.get_output_embeddings().weight.shape[0]) \
        if vocab and V.narrowable(model) else None
    if narrow is not None:
        x, gc = narrow.narrow(x), V.narrow_config(gc, narrow)
    with (narrow.applied(model) if narrow is not None else nullcontext()), torch.no_grad():
        out = model.generate(input_ids=x, attention_mask=mask, generation_config=gc, logits_processor=procs)
        scores = token_logprobs(out.scores, out.sequences)
    if narrow is None:
        return out.sequences, scores, lambda i, row: out.scores[i][row]
    return narrow.widen(out.sequences), scores, lambda i, row: narrow.widen_scores(out.scores[i][row])


def sample(model, tokenizer, prompt: str, n: int, decoding: DecodingConfig,
           vocab: frozenset | None = None) -> list[Drawn]:
    """``n`` sampled answers to one prompt in one batch (no padding: the same prompt), with their mean log-prob.

    ``vocab``: generate over these tokens only (and the prompt's), :mod:`core.inference.vocab`."""
    import torch

    ids = encode_prompt(tokenizer, prompt)
    x = torch.tensor([ids], device=model_device(model))
    contiguous_head(model)
    gc = generation_config(decoding, model, tokenizer)
    gc.num_return_sequences = n
    gc.return_dict_in_generate, gc.output_scores = True, True
    torch.manual_seed(decoding.seed)
    sequences, scores, step_scores = _generate(model, x, torch.ones_like(x), gc,
                                               logits_processors(decoding, len(ids)), vocab)
    results = []
    pad = gc.pad_token_id
    for row, (seq, sc) in enumerate(zip(sequences, scores)):
        new = seq[len(ids):]
        keep = new != pad if pad is not None else torch.ones_like(new, dtype=torch.bool)
        kept_ids = new[keep].tolist()
        text = tokenizer.decode(kept_ids, skip_special_tokens=True)
        finite = sc[keep[: sc.shape[0]]] if sc.shape[0] == new.shape[0] else sc
        finite = finite[torch.isfinite(finite)]
        letters = key_probs(tokenizer, new.tolist(), lambda i, row=row: step_scores(i, row))
        results.append(Drawn(text, float(finite.mean()) if finite.numel() else 0.0, letters, tuple(kept_ids)))
    return results


def greedy_batch(model, tokenizer, prompts: list[str], decoding: DecodingConfig,
                 vocab: frozenset | None = None) -> list[Drawn]:
    """One greedy answer to each of several prompts in one left-padded batch, with their mean log-prob.

    The focus task's candidates differ only in the sentence their prompt names: one batch costs far less than
    one generate() per prompt on a CPU (the weights are read once per step for all of them). Left padding moves
    the numbers a little, so a candidate may differ in a late token from its one-by-one generation; the quiz
    compares no models, so that does not matter here (the Compare tab generates one prompt at a time).
    ``vocab``: generate over these tokens only (and the prompts'), :mod:`core.inference.vocab`.
    """
    import torch

    encoded = [encode_prompt(tokenizer, p) for p in prompts]
    gc = generation_config(decoding, model, tokenizer)
    gc.do_sample = False
    gc.return_dict_in_generate, gc.output_scores = True, True
    pad = gc.pad_token_id if gc.pad_token_id is not None else 0
    width = max(len(ids) for ids in encoded)
    device = model_device(model)
    x = torch.tensor([[pad] * (width - len(ids)) + ids for ids in encoded], device=device)
    mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded], device=device)
    contiguous_head(model)
    # the repetition penalty leaves out the whole padded prompt width: every row's new tokens start there
    sequences, scores, step_scores = _generate(model, x, mask, gc, logits_processors(decoding, width), vocab)
    eos = gc.eos_token_id if isinstance(gc.eos_token_id, (list, tuple)) else [gc.eos_token_id]
    results = []
    for row, (seq, sc) in enumerate(zip(sequences, scores)):
        new = seq[width:].tolist()
        n = next((i for i, t in enumerate(new) if t in eos or t == pad), len(new))  # the row's own end
        text = tokenizer.decode(new[:n], skip_special_tokens=True)
        kept = sc[:n]
        kept = kept[torch.isfinite(kept)]
        letters = key_probs(tokenizer, new[:n], lambda i, row=row: step_scores(i, row))
        results.append(Drawn(text, float(kept.mean()) if kept.numel() else 0.0, letters, tuple(new[:n])))
    return results


def question_template(run_dir: str | Path) -> str:
    """The template of a run that writes questions (cheap: reads run.json; call it before loading models).

    Raises:
        DataError: the run was trained on another task.
    """
    template = run_template(Path(run_dir))
    if tasks.family_of(template) != tasks.MCQ:
        raise DataError(f"{Path(run_dir).name} is not a question-writing run (its task is {template!r}; "
                        "train on multiple-choice questions)", field="run")
    return template


class QuizWriter:
    """Writes the questions of a quiz with one loaded run (its adapter active).

    Args:
        models: a ModelSet holding the run's adapter (``ModelSet.from_run``, or the GUI's cache).
        which: the model to use: "adapter" (the fine-tuned one), "merged", "base" (for a comparison), or the
            name the cache gave this run's adapter.
        run_dir: the run whose prompt format to use (default: the ModelSet's own run); its task must be of the
            MCQ family.
        candidates: answers sampled per question (1: one greedy answer, no sampling).
        decoding: the sampling settings (temperature, top-p, max new tokens, the repetition penalty).
        narrow: write with the run's vocabulary only (its training rows' tokens and the paragraph's,
            :mod:`core.inference.vocab`): the output layer's cost falls from most of a step to a few percent.
        reader: have the base model (every adapter disabled) score each candidate's options as its answer
            (:mod:`core.inference.verifier`): it ranks the candidates, and a key it clearly disputes is flagged.
            Off by default: on the demo run of 2026-12-07 it chose as many correct questions as the pipeline without
            it (15 of 23 each) and added about 2 s a question (p95 11.2 s against 8.8), over the Classroom's 10 s.
    """

    def __init__(self, models, *, which: str = ADAPTER, run_dir: str | Path | None = None,
                 candidates: int = CANDIDATES, decoding: DecodingConfig | None = None, rekey: bool = True,
                 narrow: bool = True, reader: bool = False):
        self.run_dir = Path(run_dir or models.run_dir)
        self.template = question_template(self.run_dir)
        self.models, self.which, self.candidates, self.rekey = models, which, max(1, int(candidates)), rekey
        self.narrow, self.reader = narrow, reader
        self.decoding = decoding or DecodingConfig(max_new_tokens=MAX_NEW_TOKENS, do_sample=candidates > 1,
                                                   temperature=TEMPERATURE, top_p=TOP_P,
                                                   repetition_penalty=tasks.get(self.template).repetition_penalty)

    @property
    def vocabulary(self) -> frozenset | None:
        """The tokens the run writes with (None: the whole vocabulary)."""
        from core.inference.vocab import run_vocabulary

        return run_vocabulary(self.run_dir) if self.narrow else None

    @property
    def takes_answer(self) -> bool:
        """Whether a teacher's answer can be given (a run trained to write the question for a given answer)."""
        return tasks.get(self.template).takes_answer

    def prompt(self, paragraph: str, answer: str | None = None) -> str:
        """The run's prompt for a paragraph (and the teacher's answer, written as the model's answer line)."""
        if answer and not self.takes_answer:
            raise DataError(f"choosing the answer needs a run trained with data.template=mcq_answer_first "
                            f"(this one: {self.template})", field="answer")
        return run_prompt(self.run_dir, {"context": paragraph, **({"answer_text": answer} if answer else {})})

    def write(self, paragraph: str, *, answer: str | None = None, k: int = 1, seed: int = 0) -> list[QuizQuestion]:
        """``k`` questions about ``paragraph`` (different answers when the model plans them), best first.

        Args:
            answer: the answer the teacher wants asked about (the answer-first task writes the question for it).
            seed: the sampling seed (another seed: other candidates, for "write another").
        """
        from dataclasses import replace

        started = time.monotonic()
        n = max(self.candidates, k)
        if tasks.get(self.template).takes_focus and not answer:
            # one greedy question per sentence: the sentences differ, so the candidates do without sampling
            focuses = focus_sentences(paragraph, n, seed)
            greedy = replace(self.decoding, seed=seed, do_sample=False)
            prompts = [run_prompt(self.run_dir, {"context": paragraph, "focus": f}) for f in focuses]
            with self.models.use(self.which) as model:
                drawn = list(zip(greedy_batch(model, self.models.tokenizer, prompts, greedy, self.vocabulary),
                                 focuses))
        else:
            decoding = replace(self.decoding, seed=seed, do_sample=n > 1 or self.decoding.do_sample)
            with self.models.use(self.which) as model:
                drawn = [(d, None) for d in
                         sample(model, self.models.tokenizer, self.prompt(paragraph, answer), n, decoding,
                                self.vocabulary)]
        key_first = tasks.get(self.template).key_first
        candidates = [read_candidate(d.text, paragraph, planned=answer, logprob=d.logprob, rekey=self.rekey, focus=f,
                                     key_probs=d.key_probs, key_first=key_first) for d, f in drawn]
        if self.reader:
            self.read(candidates, paragraph, k)
        out: list[QuizQuestion] = []
        used: set[str] = set()
        for cand in sorted(candidates, key=Candidate.rank):
            if len(out) == k:
                break
            key = fold(cand.planned or cand.focus or cand.mcq.question or cand.raw)
            if key in used and len(candidates) - len(used) > k - len(out):
                continue  # another question about another answer, while there are enough left
            used.add(key)
            out.append(choose([cand], paragraph, started, answer))
        for q in out:
            q.n_candidates = len(candidates)
        return out

    def read(self, candidates: list[Candidate], paragraph: str, k: int = 1) -> None:
        """The second reader: the base model scores the options of the structurally valid candidates that can be
        among the ``k`` chosen (in place): the reader ranks after the checks, so a candidate with more check flags
        than the ``k``-th best cannot move ahead of it, and is not read (about 0.4 s a candidate on 2 cores)."""
        valid = [c for c in candidates if c.structure.valid]
        if not valid:
            return
        levels = [(len(c.checks), not c.plan_kept) for c in valid]  # the rank's terms before the reader's
        bar = sorted(levels)[min(k, len(valid)) - 1]
        valid = [c for c, level in zip(valid, levels) if level <= bar]
        with self.models.use(BASE) as model:
            supports = option_supports(model, self.models.tokenizer, paragraph,
                                       [(c.mcq.question, c.mcq.options) for c in valid])
        for cand, support in zip(valid, supports):
            cand.reader = support


# --------------------------------------------------------------------------- what a teacher hands in

_BLANK_LINES = re.compile(r"\n\s*\n")


def paragraphs_of(text: str, *, min_words: int = 8) -> list[str]:
    """A pasted chapter → its paragraphs (split at blank lines; headings and scraps under ``min_words`` dropped)."""
    parts = [clean_text(p) for p in _BLANK_LINES.split(text or "")]
    return [p for p in parts if len(p.split()) >= min_words]


def read_quiz_input(path: str | Path) -> list[dict]:
    """The paragraphs a quiz is written from: a JSONL of ``{"context", "answer"?}`` or a plain text file.

    Raises:
        DataError: a missing or empty file, no paragraph in it, a JSONL row without a context.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"input file not found: {path}", field="input")
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise DataError(f"input file is empty: {path}", field="input")
    if path.suffix.lower() == ".jsonl":
        rows = []
        for n, obj in iter_jsonl(path, field="input"):
            context = str(obj.get("context") or "").strip()
            if not context:
                raise DataError(f"{path.name} line {n}: no `context` (the paragraph to ask about)", field="input")
            rows.append({"context": context, "answer": str(obj.get("answer") or "").strip() or None})
    else:
        rows = [{"context": p, "answer": None} for p in paragraphs_of(text)]
    if not rows:
        raise DataError(f"{path.name} has no paragraph of 8 words or more to write questions about", field="input")
    return rows


def to_items(questions: list[QuizQuestion]) -> list:
    """The questions as :class:`core.tasks.quiz_export.QuizItem` (the structurally valid ones: a file needs four
    options and a key)."""
    from core.tasks.quiz_export import QuizItem

    items = []
    for q in questions:
        if not q.structure_ok:
            continue
        m = q.mcq
        items.append(QuizItem(paragraph=q.paragraph, question=m.question, options=tuple(m.options[x] for x in LETTERS),
                              key=m.answer, status=q.status, reasons=tuple(q.reasons)))
    return items
