"""A second reader for a written question: the base model, adapter off, scores each option as the answer.

Why: the tuned model writes a question and keys the option it wrote for it, so its own likelihood cannot say that
the key is wrong or that another option is what the paragraph says. The base model did not write the question.
Asked "given this paragraph and this question, what is the answer?", it scores each option by how much the
paragraph raises it:

    support(option) = log P(option | paragraph, question) - log P(option | question)

(the pointwise mutual information of option and paragraph given the question, over the option's tokens). Without
the paragraph term, a short, common phrase would win whatever the paragraph says. Measured on the 272 gold
questions of the bundled sample's *train* split with Gemma-3-270M (the test split is the read evaluation's): the
highest-support option is the gold key for 76% of them (chance: 25%), and for 85% of those where it leads the
next option by 2 nats or more. Reading the whole MCQ and asking for the letter does no better than chance with
a model of this size (25%).

With each gold key moved to a distractor, it clearly disputes the moved key in 80% of the cases, and the true key
in 12% (its false flags). ``python -m bench --only mcq-reader`` measures all of this.

The quiz uses it, when asked (``core quiz --reader``), to rank its candidates and to flag a key it disputes
(:mod:`core.inference.quiz`). Re-ranked with it, the read evaluation's fully read candidate pools of the key-first
runs give 67 correct questions in 115 paragraphs instead of 57; a fresh demo run gave 15 of 23 with it and
without it, and it costs about 2 s a question on 2 cores: so it is not on by default. It owns the scores; it
loads no model.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.tasks.mcq_format import LETTERS

# The prompt the reader answers. Plain text: the base model need not follow a chat template to continue it.
QUESTION_PREFIX = "Câu hỏi: "
ANSWER_PREFIX = "Trả lời:"
# A margin (nats) under which the reader's preference says little (on the train split's gold questions: 76% right
# at any margin, 85% at 2 or more, 89% at 4 or more).
CLEAR_MARGIN = 2.0
# The output layer is applied in float32 over this many vocabulary rows at a time: a 16-bit layer rounds logits
# near 20 to steps of 0.125, coarse beside the differences scored here; a float32 copy of the whole layer would
# cost 670 MB with Gemma's 262k tokens.
_HEAD_CHUNK = 32768


@dataclass(frozen=True)
class OptionSupport:
    """How much the paragraph raises each option as the answer to the question (nats; higher: more supported)."""

    scores: dict[str, float]

    @property
    def best(self) -> str:
        return max(self.scores, key=self.scores.get)

    def margin(self, key: str | None) -> float:
        """``key``'s support minus the best other option's (negative: the reader prefers another option)."""
        if key not in self.scores:
            return float("-inf")
        return self.scores[key] - max(v for x, v in self.scores.items() if x != key)

    def disagrees(self, key: str | None) -> bool:
        """The reader clearly prefers another option to ``key`` (by :data:`CLEAR_MARGIN` or more)."""
        return key in self.scores and self.margin(key) <= -CLEAR_MARGIN


def _float_logprobs(hidden, weight, targets, softcap: float | None):
    """log P(target) at each position, the output layer applied in float32 a chunk of the vocabulary at a time.

    hidden: (positions, d); targets: (positions,) ids.
    """
    import torch

    h = hidden.float()
    parts, picked = [], torch.empty(h.shape[0], dtype=torch.float32, device=h.device)
    for start in range(0, weight.shape[0], _HEAD_CHUNK):
        logits = h @ weight[start:start + _HEAD_CHUNK].float().T
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        parts.append(torch.logsumexp(logits, dim=-1))
        inside = (targets >= start) & (targets < start + logits.shape[1])
        if inside.any():
            rows = inside.nonzero().squeeze(1)
            picked[rows] = logits[rows, targets[rows] - start]
    return picked - torch.logsumexp(torch.stack(parts, dim=-1), dim=-1)


# Prompts that share this many leading tokens (the paragraph) run them once.
_SHARE_MIN = 16


def _common_length(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _continuation_states(body, device, p_ids: list[int], conts: list[list[int]], pad: int, shared=None):
    """The hidden state before each continuation token after the prefix ``p_ids``, and that token: ``(states,
    targets, owner)``, one row per token, ``owner`` the continuation's index. The prefix runs once; its cache is
    repeated for the continuations, which are right-padded (a padded position is never read). ``shared``: the cache
    of the prefix's first tokens, already computed (it is copied, not changed)."""
    import copy

    import torch

    n, width = len(conts), max(len(c) for c in conts)
    x = torch.tensor([c + [pad] * (width - len(c)) for c in conts], device=device)
    mask = torch.tensor([[1] * len(p_ids) + [1] * len(c) + [0] * (width - len(c)) for c in conts], device=device)
    done = shared.get_seq_length() if shared is not None else 0
    pre = body(input_ids=torch.tensor([p_ids[done:]], device=device),
               past_key_values=copy.deepcopy(shared) if shared is not None else None, use_cache=True)
    cache = pre.past_key_values
    cache.batch_repeat_interleave(n)
    out = body(input_ids=x, attention_mask=mask, past_key_values=cache, use_cache=True)
    # the state before each continuation token: the prefix's last, then the continuation's own
    states = torch.cat([pre.last_hidden_state[:, -1:].expand(n, 1, -1), out.last_hidden_state[:, :-1]], dim=1)
    owner = torch.tensor([i for i, c in enumerate(conts) for _ in c], device=device)
    pos = torch.tensor([j for c in conts for j in range(len(c))], device=device)
    return states[owner, pos], x[owner, pos], owner


def continuation_logprobs(model, tokenizer, prompts: list[tuple[str, list[str]]]) -> list[list[float]]:
    """The summed log-probability of each continuation's tokens after its prefix: ``prompts`` is a list of
    ``(prefix, [continuation, …])``; the result has the same shape. Prefixes that begin alike (the same paragraph)
    run their common tokens once, and the output layer runs once for all of them."""
    import torch

    from core.inference.generate import model_device

    device = model_device(model)
    body = model.get_decoder()
    weight = model.get_output_embeddings().weight
    softcap = getattr(model.config, "final_logit_softcapping", None)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    prefixes = [tokenizer(prefix, add_special_tokens=True)["input_ids"] for prefix, _ in prompts]
    conts = [[tokenizer(c, add_special_tokens=False)["input_ids"] or [tokenizer.eos_token_id] for c in cs]
             for _, cs in prompts]
    # each prefix's share with the first prefix of its kind: the common tokens, less one (a prefix's own last token
    # must run to give the state its continuations start from)
    groups: list[tuple[list[int], list[int]]] = []  # (anchor ids, member indices)
    for i, ids in enumerate(prefixes):
        home = next((g for g in groups if _common_length(g[0], ids) >= _SHARE_MIN), None)
        if home is None:
            groups.append((ids, [i]))
        else:
            home[1].append(i)
    shared_of: dict[int, object] = {}
    with torch.no_grad():
        for anchor, members in groups:
            if len(members) < 2:
                continue
            n = min(min(_common_length(anchor, prefixes[i]), len(prefixes[i]) - 1) for i in members)
            cache = body(input_ids=torch.tensor([anchor[:n]], device=device), use_cache=True).past_key_values
            shared_of.update({i: cache for i in members})
        parts = [_continuation_states(body, device, prefixes[i], conts[i], pad, shared_of.get(i))
                 for i in range(len(prompts))]
        lp = _float_logprobs(torch.cat([p[0] for p in parts]), weight, torch.cat([p[1] for p in parts]), softcap)
    out, at = [], 0
    for cs, (_, targets, owner) in zip(conts, parts):
        sums = torch.zeros(len(cs), dtype=torch.float32).index_add_(0, owner.cpu(), lp[at:at + len(targets)].cpu())
        out.append(sums.tolist())
        at += len(targets)
    return out


def option_supports(model, tokenizer, paragraph: str, questions: list[tuple[str, dict[str, str]]]) -> list[OptionSupport]:
    """Score each option of each question (``(question, {"A": text, …})``) as its answer by how much ``paragraph``
    raises it; one batch of the output layer for them all.

    ``model`` is the reader: the base model with every adapter disabled (``ModelSet.use("base")``).
    """
    prompts, letters = [], []
    for question, options in questions:
        keys = [x for x in LETTERS if options.get(x)]
        texts = [" " + options[x].strip() for x in keys]
        question = question.strip()
        prompts += [(f"{paragraph.strip()}\n\n{QUESTION_PREFIX}{question}\n{ANSWER_PREFIX}", texts),
                    (f"{QUESTION_PREFIX}{question}\n{ANSWER_PREFIX}", texts)]
        letters.append(keys)
    sums = continuation_logprobs(model, tokenizer, prompts)
    return [OptionSupport({x: round(a - b, 4) for x, a, b in zip(keys, sums[2 * i], sums[2 * i + 1])})
            for i, keys in enumerate(letters)]
