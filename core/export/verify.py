"""Verification of an exported GGUF against the merged model it came from: figures per check, and which ran.

Owns: the export's limits per quantization (:data:`TOLERANCES`, each with the measurement that set it), the
default prompts, and the checks — ``logits`` (the GGUF reloaded with stock transformers, compared with the
merged model by the merge's own :func:`core.merge.verify.measure`), ``tokenizer`` (the tokenizer reloaded from
the GGUF gives the same ids), ``special_tokens`` (EOS, stop ids and the chat template in the GGUF's metadata),
and, where llama.cpp's binaries are built here, ``llama_tokenize`` and ``llama_generation`` (llama.cpp itself
tokenizes and generates greedily). Must not: convert or write files, or hold words for the GUI (notes are codes).
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.config import DecodingConfig
from core.data import encode_prompt
from core.export import modelfile as MF
from core.export import toolchain
from core.merge.verify import PromptCase, Reference, Tolerance, measure  # the one place the merge's comparison

# Why these numbers (CPU, torch 2.13, the GGUF reloaded by transformers 5.23 in float32 against the merged folder
# in float32; the 4 default prompts, 317 positions for SmolLM2-135M-Instruct, 91 for Gemma-3-270M; "+δ" is the
# model with a random rank-16 delta of 5% of each linear weight's norm, as a merge adds, so that its weights leave
# the 4-bit grid the embedded models were dequantized from):
#   f16 rounds each weight once (2^-11 relative): max |Δlogit| 0.064 / 0.097 (+δ) / 0.049 (Gemma) at logit scales
#     40-58, mean KL 4.7e-6 / 6.3e-6 / 2.1e-6 nats, agreement 99.7% / 100% / 98.9% (one near-tie flipped in 91).
#     Limits ≈ 3-6× and ≥ 16× those: 0.02 + 0.005 × the largest reference logit, 1e-4 nats, 97%. A broken
#     conversion (a transposed or unpermuted q/k, a missing norm offset) moves logits by whole units.
#   q8_0 (lossy): mean KL 3.7e-3 / 4.8e-3 (+δ) / 8.0e-4 (Gemma) / 1.6e-3 (Gemma +δ), agreement 94.0% / 98.1% /
#     100% / 93.4%: limits 2e-2 nats, 85%.
#   q4_k_m (lossy): mean KL 0.136 / 0.145 (+δ) / 0.069 (Gemma +δ), agreement 81.1% / 80.8% / 86.8% (a model this
#     small loses most: SmolLM2 has 30 layers of width 576). The Gemma base itself re-quantizes to KL 2.5e-6, its
#     weights being Q4_K_M already. Limits 0.5 nats, 70%: they catch a broken file, not the format's own loss.
TOLERANCES: dict[str, Tolerance] = {
    "f16": Tolerance(atol=0.02, rtol=5e-3, kl_mean=1e-4, agreement=0.97),
    "q8_0": Tolerance(kl_mean=2e-2, agreement=0.85),
    "q4_k_m": Tolerance(kl_mean=0.5, agreement=0.70),
}

# Vietnamese first: its diacritics (precomposed vs combining, ư/ơ/đ) are where broken tokenizer exports show.
SENTENCES = [
    ("Bộ xử lí trung tâm (CPU) là", " bộ phận thực hiện các lệnh của chương trình."),
    ("Hà Nội là thủ đô của", " nước Cộng hoà xã hội chủ nghĩa Việt Nam, bên bờ sông Hồng."),
    ("Câu hỏi: Thủ đô của Việt Nam là gì?\nA. Hà Nội\nB. Huế\nC. Đà Nẵng\nĐáp án:", " A"),
    ("The central processing unit of a computer", " executes the instructions of a program."),
]


@dataclass
class Check:
    """One check: whether it ran, its verdict (None: reported, not judged) and its figures."""

    name: str
    ran: bool
    passed: bool | None = None
    figures: dict = field(default_factory=dict)
    note: dict | None = None  # {"code", "args"}: why it did not run, or what failed


@dataclass
class Verification:
    gguf: str
    quant: str
    lossy: bool
    tolerance: dict
    checks: list[Check]
    seconds: float = 0.0

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    @property
    def passed(self) -> bool:
        """The logits check ran and no check that ran failed."""
        logits = self.check("logits")
        return bool(logits and logits.ran and logits.passed) and all(c.passed is not False for c in self.checks)

    @property
    def verdict(self) -> str:
        return "failed" if not self.passed else ("lossy" if self.lossy else "passed")

    def summary(self) -> str:
        """The key figures on one line (the Modelfile header, the README)."""
        f = (self.check("logits") or Check("logits", False)).figures
        if not f:
            return "logits not compared"
        return (f"mean KL {f['kl_mean']:.2g} nats, greedy agreement {f['greedy_agreement']:.1%}, max |Δlogit| "
                f"{f['max_abs_dlogit']:.3g}, {f['identical_generations']}/{f['n_prompts']} identical generations")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["passed"], d["verdict"], d["summary"] = self.passed, self.verdict, self.summary()
        return d


def default_cases(tokenizer, fmt: MF.PromptFormat) -> list[PromptCase]:
    """:data:`SENTENCES` through the run's prompt format (chat template + system prompt, or plain)."""
    cases = []
    for prompt, answer in SENTENCES:
        if fmt.chat:
            messages = [{"role": "system", "content": fmt.system_prompt}] if fmt.system_prompt else []
            messages.append({"role": "user", "content": prompt.rstrip()})
            prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            answer = answer.lstrip()
        cases.append(PromptCase(prompt, encode_prompt(tokenizer, prompt + answer), (prompt + answer)[-60:]))
    return cases


def _judge(r, tol: Tolerance) -> bool:
    ok = all(math.isfinite(x) for x in (r.max_abs_dlogit, r.kl_mean))
    limit = tol.max_abs(r.tolerance["logit_scale"])
    ok &= limit is None or r.max_abs_dlogit <= limit
    ok &= tol.kl_mean is None or r.kl_mean <= tol.kl_mean
    return bool(ok and (tol.agreement is None or r.greedy_agreement >= tol.agreement))


def _ids_check(name: str, texts: list[str], want, got) -> Check:
    """Compare two tokenizations text by text; the figures name the first text that differs."""
    equal, first = 0, None
    for text in texts:
        a, b = want(text), got(text)
        equal += a == b
        if a != b and first is None:
            first = {"text": text[:80], "reference": a[:24], "gguf": b[:24]}
    return Check(name, True, equal == len(texts), {"texts": len(texts), "equal": equal, "first_mismatch": first})


def _metadata_check(gguf: Path, tokenizer, fmt: MF.PromptFormat, stops: list[tuple[int, str]]) -> Check:
    from gguf import GGUFReader

    fields = GGUFReader(gguf).fields

    def value(key):
        f = fields.get(key)
        return f.contents() if f is not None else None

    tokens = fields["tokenizer.ggml.tokens"]
    token_at = {i: tokens.contents(i) for i, _ in stops if i < len(tokens.data)}
    want_template = tokenizer.chat_template if fmt.chat else MF.PLAIN_CHAT_TEMPLATE
    keys = ("eos_token_id", "eot_token_id", "bos_token_id", "add_bos_token")
    figures = {k: value(f"tokenizer.ggml.{k}") for k in keys}
    figures |= {"tokenizer_model": value("tokenizer.ggml.model"), "pre": value("tokenizer.ggml.pre"),
               "stops": [[i, t, token_at.get(i)] for i, t in stops],
               "chat_template_equal": value("tokenizer.chat_template") == want_template}
    ok = figures["eos_token_id"] == tokenizer.eos_token_id and all(t == token_at.get(i) for i, t in stops)
    ok &= figures["chat_template_equal"]
    bos_ok = figures["add_bos_token"] is None or bool(figures["add_bos_token"]) == MF.adds_bos(tokenizer)
    return Check("special_tokens", True, bool(ok and bos_ok), figures,
                 None if ok and bos_ok else {"code": "gguf_special_tokens_differ", "args": {}})


class ToolFailed(RuntimeError):
    """A llama.cpp binary exited with an error on the GGUF (recorded as a failed check)."""


def _llama_tokenize(tools: toolchain.LlamaTools, gguf: Path, text: str) -> list[int]:
    r = subprocess.run([str(tools.tokenize), "-m", str(gguf), "-p", text, "--ids", "--log-disable"],
                       capture_output=True, encoding="utf-8", errors="replace", env=toolchain.tool_env(),
                       timeout=300, check=False)
    m = re.search(r"\[([\d,\s]*)\]\s*$", r.stdout)
    if r.returncode != 0 or not m:
        raise ToolFailed(toolchain.last_line(r.stderr or r.stdout))
    return [int(x) for x in m.group(1).replace(",", " ").split()]


def _llama_generate(tools: toolchain.LlamaTools, gguf: Path, prompt: str, n: int) -> str:
    """Greedy text from llama.cpp itself (the prompt's special tokens parsed, BOS as the GGUF says)."""
    # one thread: on 2 shared cores, -t 2 measured 26 s for 24 tokens of SmolLM2 (OpenMP workers spin while the
    # other core is busy), -t 1 0.4 s. Not --log-disable: in this release it silences the generated text too.
    r = subprocess.run([str(tools.completion), "-m", str(gguf), "-p", prompt, "-n", str(n), "--temp", "0",
                        "--repeat-penalty", "1", "-no-cnv", "--no-display-prompt", "--simple-io", "-s", "0",
                        "-c", "2048", "-t", "1", "--no-warmup"],
                       capture_output=True, encoding="utf-8", errors="replace",  # it prints a token's bytes as
                       env=toolchain.tool_env(), timeout=600, check=False)  # they come, a character may be cut
    if r.returncode != 0:
        raise ToolFailed(toolchain.last_line(r.stderr or r.stdout))
    return r.stdout.rstrip().removesuffix("[end of text]")  # llama.cpp marks where an EOG token stopped it


def verify_gguf(model_dir: str | Path, gguf: str | Path, quant: str, *, fmt: MF.PromptFormat,
                cases: list[PromptCase] | None = None, stops: list[tuple[int, str]] | None = None,
                max_new_tokens: int = 32, tools: toolchain.LlamaTools | None = None) -> Verification:
    """Compare a GGUF file with the merged model folder it was converted from.

    Args:
        model_dir: the merged model (the reference, in float32).
        gguf: the GGUF file.
        quant: f16 | q8_0 | q4_k_m (chooses the limits; q8_0 and q4_k_m are marked lossy).
        fmt: the run's prompt format (the default prompts, the chat template expected in the GGUF).
        cases: verification prompts; default :func:`default_cases`.
        stops: (id, text) stop tokens (default: from the tokenizer and generation_config.json).
        max_new_tokens: greedy tokens per prompt for the generation checks.
        tools: llama.cpp's binaries (default: those built here, if any; none are built by this call).
    Returns:
        A Verification: one Check per check, ``ran`` False with a note for those that could not run.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    t0 = time.monotonic()
    model_dir, gguf = Path(model_dir), Path(gguf)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if stops is None:
        gen = GenerationConfig.from_pretrained(model_dir) if (model_dir / "generation_config.json").is_file() else None
        stops = MF.stop_tokens(tokenizer, gen.to_dict() if gen else None)
    cases = cases or default_cases(tokenizer, fmt)
    texts = [p + a for p, a in SENTENCES] + [c.prompt for c in cases]
    tol = TOLERANCES[quant]
    checks = [_metadata_check(gguf, tokenizer, fmt, stops)]

    try:  # the tokenizer as transformers reads it from the GGUF (LM Studio and Ollama read it with llama.cpp)
        gguf_tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except Exception as e:  # noqa: BLE001 - the tokenizers backend raises plain Exception; recorded, not hidden
        checks.append(Check("tokenizer", False, None, {}, {"code": "gguf_tokenizer_unreadable_by_transformers",
                                                           "args": {"error": " ".join(str(e).split())[:200]}}))
    else:
        c = _ids_check("tokenizer", texts, lambda t: encode_prompt(tokenizer, t), lambda t: encode_prompt(gguf_tok, t))
        c.figures["eos_token_id"] = [tokenizer.eos_token_id, gguf_tok.eos_token_id]
        c.passed = bool(c.passed and tokenizer.eos_token_id == gguf_tok.eos_token_id)
        checks.append(c)

    decoding = DecodingConfig(max_new_tokens=max_new_tokens)
    reference = Reference(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval(), tokenizer,
                          cases, decoding)
    candidate = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    r = measure(reference, candidate, tokenizer, target="gguf", dtype=quant, tolerance_dtypes=("float32",),
                lossy=quant != "f16", saved=True)
    figures = {k: getattr(r, k) for k in ("max_abs_dlogit", "mean_abs_dlogit", "kl_mean", "kl_max", "greedy_agreement",
                                          "identical_generations", "first_divergence", "n_prompts")}
    figures["logit_scale"] = r.tolerance["logit_scale"]
    figures["positions"] = sum(len(c.input_ids) for c in cases)
    checks.append(Check("logits", True, _judge(r, tol), figures))
    ref_texts = [tokenizer.decode(g, skip_special_tokens=True) for g in reference.generations]
    del candidate, reference

    tools = tools or toolchain.find_llama_tools()
    if tools is None:
        skipped = {"code": "llama_cpp_not_built", "args": {"command": "python -m core.export.toolchain --build"}}
        checks += [Check(name, False, None, {}, skipped) for name in ("llama_tokenize", "llama_generation")]
    else:
        # llama.cpp adds BOS itself when the GGUF says so, as encode_prompt does for a text without one; a text
        # that starts with it (a chat template's {{ bos_token }}) loses it first, as the Modelfile's TEMPLATE does
        bos = tokenizer.bos_token if MF.adds_bos(tokenizer) else None

        def plain(text: str) -> str:
            return text.removeprefix(bos) if bos else text

        try:
            checks.append(_ids_check("llama_tokenize", texts, lambda t: encode_prompt(tokenizer, t),
                                     lambda t: _llama_tokenize(tools, gguf, plain(t))))
        except ToolFailed as e:  # llama.cpp cannot read the file: what Ollama and LM Studio would meet
            checks.append(Check("llama_tokenize", True, False, {}, {"code": "llama_cpp_failed",
                                                                    "args": {"error": str(e)}}))
        try:
            got = [_llama_generate(tools, gguf, plain(c.prompt), max_new_tokens) for c in cases]
        except ToolFailed as e:
            checks.append(Check("llama_generation", True, False, {}, {"code": "llama_cpp_failed",
                                                                      "args": {"error": str(e)}}))
        else:
            pairs = [(a.strip(), b.strip()) for a, b in zip(ref_texts, got)]
            same = [a == b for a, b in pairs]
            first = next(((i, a[:120], b[:120]) for i, ((a, b), s) in enumerate(zip(pairs, same)) if not s), None)
            shared = [len(os.path.commonprefix([a, b])) / max(1, len(a)) for a, b in pairs]
            # f16 is judged: identical texts for at least half the prompts. Measured 4/4 on the micro Llama, SmolLM2,
            # SmolLM2 +δ and Gemma-3; 0/4 on a micro Gemma-3 whose layer pattern and attention scale (head_dim 16,
            # query_pre_attn_scalar 256) llama.cpp does not read, which the transformers reload cannot see.
            # q8_0 / q4_k_m are reported only: llama.cpp multiplies their blocks with 8-bit activations, so the
            # texts part early (measured 1/4 and 0/4 identical) without the file being wrong.
            judged = None if quant != "f16" else 2 * sum(same) >= len(same)
            checks.append(Check("llama_generation", True, judged,
                                {"identical": sum(same), "n": len(same), "shared_prefix": sum(shared) / len(shared),
                                 "first_difference": first},
                                None if judged is not False else {"code": "llama_cpp_generates_otherwise", "args": {}}))
    return Verification(str(gguf), quant, quant != "f16", asdict(tol) | {"logit_scale": figures["logit_scale"]},
                        checks, round(time.monotonic() - t0, 1))
