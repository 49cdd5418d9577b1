"""Generation over part of the vocabulary: the output layer computes only the tokens a run writes.

Why: a decode step of Gemma-3-270M on a CPU reads its 262k-token output layer (168M of its 270M parameters,
670 MB in float32) to pick one token. Profiled on 2 cores, the Classroom's 4-candidate batch spent 44% of its time
in that one product and another 13% in the steps that follow it over the whole vocabulary (log-softmax, copies of
the scores, the repetition penalty). A question a run writes is made of the tokens of its paragraph and of the
questions it was trained on: those are a few thousand.

How: inside ``generate()`` the ids are renumbered 0..K-1 (:class:`NarrowVocab`): the input embedding maps them
back to the model's own ids, the output layer holds only those K rows, and the sequences come back in the model's
ids. Greedy decoding gives the same tokens as over the whole vocabulary whenever each step's best token is in the
set; sampling and the log-probabilities are over the set, renormalised. Every single-character Latin or Vietnamese
token stays in the set, so any word can still be spelled. The narrow layer computes in float32 whatever the
model's dtype (a bfloat16 one rounds the logits coarsely enough to decide greedy tokens; see :func:`_narrow_head`),
so over the set a 16-bit model's greedy tokens are those of a float32 output layer, not of its own.

Owns the set of a run (:func:`run_vocabulary`) and the swap; the quiz decides when to use it. It must not change
the model outside its ``with`` block.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import torch

log = logging.getLogger(__name__)

# Single characters that keep every Latin or Vietnamese word spellable: ASCII, Latin-1 and Latin Extended-A/B,
# the combining marks, Latin Extended Additional (Vietnamese's precomposed vowels with tone marks), punctuation.
_SPELLING_RANGES = ((0x20, 0x24F), (0x300, 0x36F), (0x1E00, 0x1EFF), (0x2000, 0x206F))


def _spelling_char(text: str) -> bool:
    text = text.strip()
    return len(text) == 1 and any(lo <= ord(text) <= hi for lo, hi in _SPELLING_RANGES)


_BYTE_FALLBACK = re.compile(r"<0x[0-9A-Fa-f]{2}>")


@lru_cache(maxsize=4)
def spelling_tokens(tokenizer) -> frozenset[int]:
    """The tokenizer's special tokens, its single-character Latin/Vietnamese/punctuation tokens and its byte tokens
    (a byte-level BPE's 256, a SentencePiece model's byte fallback ``<0xNN>``)."""
    out = set(getattr(tokenizer, "all_special_ids", ()) or ())
    for token, i in tokenizer.get_vocab().items():
        text = tokenizer.convert_tokens_to_string([token])
        if (_spelling_char(unicodedata.normalize("NFC", text)) or _BYTE_FALLBACK.fullmatch(token)
                or (len(token) == 1 and text.strip() in ("", "\ufffd"))):
            out.add(i)
    return frozenset(out)


@lru_cache(maxsize=8)
def _run_vocabulary(run_dir: str, stamp: float) -> frozenset[int]:
    from core import data as D
    from core.inference.batch import run_tokenizer
    from core.run import RunFolder

    folder = RunFolder(Path(run_dir))
    cfg = folder.read_config()
    tok = run_tokenizer(run_dir)
    prepared = D.prepare(cfg.data, tok, seed=cfg.train.seed)  # the rows the run trained on, as it saw them
    ids = {t for e in (*prepared.train, *prepared.validation) for t in e.input_ids}
    return frozenset(ids) | spelling_tokens(tok)


def run_vocabulary(run_dir: str | Path) -> frozenset[int]:
    """The tokens of a run's training rows (paragraphs, questions, options), its tokenizer's special tokens and
    its single-character spelling tokens (cached per run).

    Raises:
        DataError: the run's data cannot be read any more.
    """
    from core.run import RunFolder

    folder = RunFolder(Path(run_dir))
    return _run_vocabulary(str(folder.path.resolve()), folder.config.stat().st_mtime)


class WideEmbedding(torch.nn.Module):
    """The input embedding seen from inside: narrow ids in, the model's own embedding of their wide ids out."""

    def __init__(self, inner, wide_of):
        super().__init__()
        self.inner = inner
        self.register_buffer("wide_of", wide_of, persistent=False)

    @property
    def weight(self):  # a model may read its embedding's weight (its dtype, its device)
        return self.inner.weight

    def forward(self, input_ids):
        return self.inner(self.wide_of[input_ids])


def _float32_input(module, args):
    return (args[0].float().contiguous(), *args[1:]) if args else None


def _narrow_head(head, ids):
    """The output layer's rows ``ids`` as a float32 Linear of their own (made on the meta device: no weights to
    initialise), its input made contiguous (as :func:`~core.inference.generate.contiguous_head` does for the whole
    one) and float32.

    Why float32 for a 16-bit model: bfloat16 keeps 8 bits of mantissa, so logits near 20 are rounded to steps of
    0.125 and the top tokens of a step often tie or swap; greedy decoding then follows the rounding. In float32
    the narrow layer costs K x hidden multiply-adds a token (2,865 x 640 for the demo), nothing beside the model.
    """
    weight = head.weight.detach().index_select(0, ids.to(head.weight.device)).float().contiguous()
    bias = getattr(head, "bias", None)
    out = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
    out.weight = torch.nn.Parameter(weight, requires_grad=False)
    if bias is not None:
        out.bias = torch.nn.Parameter(bias.detach().index_select(0, ids.to(bias.device)).float(), requires_grad=False)
    out.register_forward_pre_hook(_float32_input)
    return out


def _swap(root, old, new) -> list[tuple]:
    """Replace every reference to the module ``old`` under ``root`` by ``new``; what to put back."""
    found = [(parent, name) for parent in root.modules() for name, child in parent.named_children() if child is old]
    for parent, name in found:
        setattr(parent, name, new)
    return [(parent, name, old) for parent, name in found]


class NarrowVocab:
    """A set of token ids and the renumbering between the model's ids (wide) and 0..K-1 (narrow).

    Args:
        ids: the tokens generation may write and read (a prompt's own tokens must be among them).
        vocab_size: the model's vocabulary size (the output layer's rows).
    """

    def __init__(self, ids: Iterable[int], vocab_size: int):
        wide = sorted({int(i) for i in ids if 0 <= int(i) < vocab_size})
        self.wide_of = torch.tensor(wide, dtype=torch.long)
        self.narrow_of = torch.full((vocab_size,), -1, dtype=torch.long)
        self.narrow_of[self.wide_of] = torch.arange(len(wide))
        self.vocab_size = vocab_size

    def __len__(self) -> int:
        return len(self.wide_of)

    def narrow(self, ids):
        """Wide ids (a tensor) to narrow ones. Raises ValueError for an id outside the set."""
        out = self.narrow_of.to(ids.device)[ids]
        if bool((out < 0).any()):
            missing = sorted(set(ids[out < 0].tolist()))[:5]
            raise ValueError(f"token ids outside the vocabulary set: {missing}")
        return out

    def widen(self, ids):
        """Narrow ids (a tensor) back to the model's own."""
        return self.wide_of.to(ids.device)[ids]

    def widen_scores(self, scores):
        """One step's narrow scores (…, K) as wide ones (…, vocab_size), -inf outside the set."""
        out = torch.full((*scores.shape[:-1], self.vocab_size), float("-inf"), dtype=scores.dtype,
                         device=scores.device)
        out[..., self.wide_of.to(scores.device)] = scores
        return out

    def narrow_token(self, value):
        """A generation config's token field (an id, a list of ids or None) in narrow ids."""
        if value is None:
            return None
        if isinstance(value, (list, tuple)):
            return [int(self.narrow_of[int(v)]) for v in value]
        return int(self.narrow_of[int(value)])

    @contextmanager
    def applied(self, model):
        """The model, its input embedding and output layer swapped for this set's, until the block ends."""
        embedding, head = model.get_input_embeddings(), model.get_output_embeddings()
        device = head.weight.device
        put_back = _swap(model, embedding, WideEmbedding(embedding, self.wide_of.to(device)))
        put_back += _swap(model, head, _narrow_head(head, self.wide_of))
        try:
            yield model
        finally:
            for parent, name, module in reversed(put_back):
                setattr(parent, name, module)


def narrowable(model) -> bool:
    """Whether the swap applies: the output layer is a plain float Linear and there is an input embedding (a
    quantized or adapted output layer is left whole)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    embedding = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    return (type(head) is torch.nn.Linear and embedding is not None
            and head.weight.dtype in (torch.float32, torch.bfloat16, torch.float16))


def for_prompts(base: Iterable[int], prompts: Iterable[Iterable[int]], gc, vocab_size: int) -> NarrowVocab:
    """The set of one generate() call: ``base``, the prompts' tokens and the generation config's special tokens."""
    ids = set(base)
    for p in prompts:
        ids.update(int(t) for t in p)
    for name in ("eos_token_id", "pad_token_id", "bos_token_id"):
        v = getattr(gc, name, None)
        ids.update(int(t) for t in (v if isinstance(v, (list, tuple)) else [v]) if t is not None)
    return NarrowVocab(ids, vocab_size)


def narrow_config(gc, vocab: NarrowVocab):
    """A copy of a GenerationConfig whose token fields are narrow ids (the fields that name tokens by id and that
    the set cannot carry are cleared)."""
    import copy

    gc = copy.deepcopy(gc)
    for name in ("eos_token_id", "pad_token_id", "bos_token_id", "decoder_start_token_id"):
        setattr(gc, name, vocab.narrow_token(getattr(gc, name, None)))
    for name in ("suppress_tokens", "begin_suppress_tokens", "bad_words_ids", "forced_bos_token_id",
                 "forced_eos_token_id", "sequence_bias", "force_words_ids"):
        if getattr(gc, name, None) is not None:
            log.info("generation over a vocabulary set leaves out the model's %s", name)
            setattr(gc, name, None)
    return gc
