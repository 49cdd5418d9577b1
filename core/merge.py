"""Merge an adapter into its base, the right way for LoRA and QLoRA, and prove it with numbers.

The merge itself is peft's own: ``PeftModel.from_pretrained`` onto the base, then
``merge_and_unload(safe_merge=True)`` (which refuses NaN), always in float32, cast once to the
output dtype at the end, so that the only rounding is the final one.

What the adapter is merged onto (``onto``):
    original     the base's 16/32-bit weights. Exact for a LoRA run. For a QLoRA run this is what
                 other tools ship: the adapter learned to correct the *4-bit* weights, so on the
                 original ones it drifts by the quantization error.
    dequantized  (QLoRA runs) the base loaded in 4-bit with the run's BitsAndBytesConfig, each
                 Linear4bit dequantized to a float nn.Linear, then merged: the merged model is the
                 adapter as trained.
    4bit         merged into the 4-bit weights and re-quantized: lossy, only on request.
    auto         dequantized for a QLoRA run, original otherwise.

Every merge is verified against the adapter as trained (the base as trained — 4-bit for QLoRA —
with the adapter applied, not merged) on prompts from the run's own validation data, and the
numbers are written to ``merge_report.json`` and ``merge_report.md`` in the output folder. For a
QLoRA run the report shows both the dequantized and the original target; only the chosen one is
saved. The merged model is measured as saved, reloaded with stock ``AutoModelForCausalLM``.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import logging
import math
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from core.adapters import (RunInfo, adapter_files, adapter_sha256, apply_adapter, exact_4bit, load_adapter_tensors,
                           load_base, tokenizer_for)
from core.errors import AdapterError, ConfigError, DataError, JobError, StudioError
from core.generate import Decoding, first_divergence, generate, model_device

log = logging.getLogger(__name__)

TARGETS = ("original", "dequantized", "4bit")
ONTO = ("auto",) + TARGETS
DTYPES = ("float32", "bfloat16", "float16")
_MERGE_LOCK = threading.Lock()  # one merge at a time per process: each holds two to three models in memory
REPORT_JSON = "merge_report.json"
REPORT_MD = "merge_report.md"
GENERATE_TOKENS = 32  # greedy tokens per prompt for the first-divergence check
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "tokenizer.model", "spiece.model", "vocab.json", "merges.txt", "chat_template.jinja",
                   "chat_template.json")


# --------------------------------------------------------------------------- tolerances

@dataclass(frozen=True)
class Tolerance:
    """Pass/fail limits for one precision; None means the measure is reported, not judged."""

    atol: float | None = None  # max |Δlogit| ≤ atol + rtol · max|reference logit|
    rtol: float | None = None
    kl_mean: float | None = None  # mean KL(reference ‖ merged) of the next-token distributions, nats
    agreement: float | None = None  # teacher-forced greedy-token agreement, fraction of positions

    def max_abs(self, scale: float) -> float | None:
        return None if self.atol is None else self.atol + (self.rtol or 0.0) * scale


# Why these numbers (measured on CPU, torch 2.13, SmolLM2-135M with a r-16 all-linear adapter, 421 tokens):
#   float32: a correct merge only reorders float32 arithmetic, (W + sBA)x instead of Wx + sB(Ax). On a
#     micro model the logits are tiny and the difference stays far below 1e-4, the bound peft's own tests
#     use (atol=1e-4). On a real model it cannot: the unmerged float32 model is itself 2.6e-4 away from the
#     same model in float64 (max logit 41, 30 layers), and merged vs unmerged measured 3.3e-4 — the
#     rounding floor, not a merge error. Hence allclose-style: 1e-4 plus 2e-5 × the largest reference
#     logit (≈ 3× that floor, 1e-5 relative; ≈ 9e-4 for SmolLM2, still ≈ 1e-4 for a micro model).
#     A merge that drops or doubles the adapter moves logits by the adapter's own effect (0.1–1 and more),
#     orders of magnitude above this.
#   bfloat16 keeps 8 significant bits (unit roundoff 2^-9 ≈ 2e-3): rounding every weight once moved
#     single logits by up to 1.9 and the mean by 0.15, so single logits cannot be judged. The distribution
#     can: mean KL measured 7.7e-4 nats with 99.5% greedy agreement; limits 1e-2 nats and 95%.
#   float16 keeps 11 bits (2^-12 ≈ 2.4e-4): measured max 0.6, mean KL 2e-5, 100% agreement; limits
#     1e-3 nats and 99%.
TOLERANCES: dict[str, Tolerance] = {
    "float32": Tolerance(atol=1e-4, rtol=2e-5),
    "float16": Tolerance(kl_mean=1e-3, agreement=0.99),
    "bfloat16": Tolerance(kl_mean=1e-2, agreement=0.95),
}
_PRECISION_RANK = {"float32": 0, "float16": 1, "bfloat16": 2}  # coarser last


def tolerance_for(*dtypes: str) -> tuple[str, Tolerance]:
    """The tolerance of the coarsest precision involved (a bfloat16 reference cannot be matched to 1e-4)."""
    key = max((d for d in dtypes if d in _PRECISION_RANK), key=_PRECISION_RANK.__getitem__, default="float32")
    return key, TOLERANCES[key]


# --------------------------------------------------------------------------- the report

@dataclass
class TargetResult:
    """How close one merge target comes to the adapter as trained."""

    target: str
    dtype: str
    lossy: bool
    saved: bool
    measured_from: str  # "saved folder" (reloaded with stock transformers) | "memory"
    max_abs_dlogit: float
    mean_abs_dlogit: float
    kl_mean: float
    kl_max: float
    greedy_agreement: float
    first_divergence: list[int | None]
    identical_generations: int
    tolerance_dtype: str
    tolerance: dict
    passed: bool
    seconds: float = 0.0

    @property
    def n_prompts(self) -> int:
        return len(self.first_divergence)


@dataclass
class MergeReport:
    """What was merged onto what, and how close the merged model comes to base + adapter."""

    run_dir: str
    out_dir: str
    adapter_dir: str
    adapter_sha256: str
    base_model: str
    resolved_base_model: str
    quantized_run: bool
    trained_on: str
    requested_onto: str
    target: str
    dtype: str
    reference: str
    prompts: dict
    results: dict[str, TargetResult]
    notes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    precision: dict = field(default_factory=dict)  # how the base was held in training, for the readable text
    created: str = ""
    seconds: float = 0.0
    versions: dict = field(default_factory=dict)
    already_merged: bool = False

    @property
    def chosen(self) -> TargetResult:
        return self.results[self.target]

    @property
    def passed(self) -> bool:
        """The saved target is within its tolerance of the adapter as trained."""
        return self.chosen.passed

    @property
    def lossy(self) -> bool:
        """The saved target is, by choice, not the adapter as trained (4bit, or original after QLoRA)."""
        return self.chosen.lossy

    def to_dict(self) -> dict:
        d = asdict(self)
        d["passed"], d["lossy"] = self.passed, self.lossy
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "MergeReport":
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        tr_names = {f.name for f in fields(TargetResult)}
        kw["results"] = {k: TargetResult(**{a: b for a, b in v.items() if a in tr_names})
                         for k, v in d.get("results", {}).items()}
        return cls(**kw)

    def summary(self, lang: str = "en") -> str:
        """One line: the verdict and the chosen target's figures."""
        t, r = _TEXT[lang if lang in _TEXT else "en"], self.chosen
        verdict = t["lossy"] if self.lossy else (t["passed"] if self.passed else t["failed"])
        return (f"{verdict}: {t['target_' + self.target]}, {self.dtype}; max |Δlogit| {r.max_abs_dlogit:.2e}, "
                f"KL {r.kl_mean:.1e}, {t['agreement']} {r.greedy_agreement:.1%}, "
                f"{t['identical']} {r.identical_generations}/{r.n_prompts}")

    def to_markdown(self, lang: str = "en") -> str:
        """The readable report, in English (``en``) or Vietnamese (``vi``)."""
        t = _TEXT[lang if lang in _TEXT else "en"]
        r = self.chosen
        lines = [f"# {t['title']}: {Path(self.run_dir).name}", ""]
        if self.already_merged:
            lines += [f"_{t['already']}_", ""]
        if self.lossy:
            lines += [f"**{t['lossy']}** — {t['lossy_why_' + self.target]}", ""]
        elif self.passed:
            lines += [f"**{t['passed']}** — {t['passed_why']}", ""]
        else:
            lines += [f"**{t['failed']}** — {t['failed_why']}", ""]
        p = self.prompts
        lines += [
            f"| | |", "|---|---|",
            f"| {t['run']} | `{self.run_dir}` |",
            f"| {t['merged_folder']} | `{self.out_dir}` |",
            f"| {t['base']} | `{self.base_model}` (`{self.resolved_base_model}`) |",
            f"| {t['trained_on']} | {precision_text(self.precision, lang) if self.precision else self.trained_on} |",
            f"| {t['onto']} | {t['target_' + self.target]} ({t['requested']}: `{self.requested_onto}`) |",
            f"| {t['dtype']} | {self.dtype} |",
            f"| {t['reference']} | {t['reference_text']} |",
            f"| {t['prompts']} | {p.get('n', 0)} {t['from_' + p.get('source', 'builtin')]}, {p.get('n_tokens', 0)} "
            f"{t['tokens']}; {t['greedy']} {p.get('max_new_tokens', GENERATE_TOKENS)} {t['tokens']} |",
            f"| {t['sha']} | `{self.adapter_sha256[:16]}…` |",
            "",
            f"## {t['targets']}", "",
            f"| {t['target']} | {t['saved']} | max abs Δlogit | mean abs Δlogit | KL mean | KL max | "
            f"{t['agreement']} | {t['identical']} | {t['limit']} | {t['result']} |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name in sorted(self.results, key=lambda n: (n != self.target, TARGETS.index(n))):
            x = self.results[name]
            verdict = t["pass"] if x.passed else t["fail"]
            if x.lossy:
                verdict += f" ({t['lossy_short']})"
            lines.append(
                f"| {t['target_' + name]} | {t['yes'] if x.saved else t['no']} | {x.max_abs_dlogit:.3g} | "
                f"{x.mean_abs_dlogit:.3g} | {x.kl_mean:.3g} | {x.kl_max:.3g} | {x.greedy_agreement:.2%} | "
                f"{x.identical_generations}/{x.n_prompts} | {_limit_text(x, t)} | {verdict} |")
        if self.quantized_run and {"dequantized", "original"} <= set(self.results):
            d, o = self.results["dequantized"], self.results["original"]
            lines += ["", t["qlora_compare"].format(o_max=o.max_abs_dlogit, o_kl=o.kl_mean, o_agree=o.greedy_agreement,
                                                    d_max=d.max_abs_dlogit, d_kl=d.kl_mean)]
        lines += ["", f"## {t['per_prompt']}", "", t["per_prompt_help"], ""]
        order = sorted(self.results, key=lambda n: (n != self.target, TARGETS.index(n)))
        heads = " | ".join(t["target_short_" + n] for n in order)
        lines.append(f"| # | {t['tokens']} | {t['expected']} | {heads} |")
        lines.append("|---|---|---|" + "---|" * len(order))
        for i, case in enumerate(p.get("cases", [])):
            cells = []
            for n in order:
                fd = self.results[n].first_divergence[i] if i < len(self.results[n].first_divergence) else None
                cells.append("—" if fd is None else str(fd))
            preview = str(case.get("preview", "")).replace("|", "/").replace("\n", " ")
            lines.append(f"| {i + 1} | {case.get('n_tokens', '')} | {preview} | " + " | ".join(cells) + " |")
        lines += ["", f"## {t['meaning']}", ""] + [f"- {x}" for x in t["meaning_items"]]
        if self.notes:
            lines += ["", f"## {t['notes']}", ""] + [f"- {n}" for n in self.notes]
        lines += ["", f"## {t['load']}", "", "```python",
                  "from transformers import AutoModelForCausalLM, AutoTokenizer",
                  f'model = AutoModelForCausalLM.from_pretrained("{self.out_dir}")',
                  f'tokenizer = AutoTokenizer.from_pretrained("{self.out_dir}")', "```", ""]
        lines.append(f"_{t['made']} {self.created}, {self.seconds:.1f} s; "
                     + ", ".join(f"{k} {v}" for k, v in self.versions.items()) + "_")
        return "\n".join(lines) + "\n"

    def write(self, folder: Path) -> None:
        (folder / REPORT_JSON).write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
        (folder / REPORT_MD).write_text(self.to_markdown("en") + "\n---\n\n" + self.to_markdown("vi"),
                                        encoding="utf-8")


def _limit_text(x: TargetResult, t: dict) -> str:
    tol = x.tolerance
    parts = []
    if tol.get("max_abs_dlogit") is not None:
        parts.append(f"max ≤ {tol['max_abs_dlogit']:.2g}")
    if tol.get("kl_mean") is not None:
        parts.append(f"KL ≤ {tol['kl_mean']:g}")
    if tol.get("agreement") is not None:
        parts.append(f"{t['agreement']} ≥ {tol['agreement']:.0%}")
    return f"{x.tolerance_dtype}: " + ", ".join(parts)


_TEXT: dict[str, dict[str, Any]] = {
    "en": {
        "title": "Merge report", "already": "Already merged from this very adapter: nothing was rewritten.",
        "passed": "PASSED", "failed": "FAILED", "lossy": "LOSSY", "lossy_short": "lossy",
        "passed_why": "the merged model answers like base + adapter, within the rounding of its precision.",
        "failed_why": "the merged model does not answer like base + adapter; do not use it. The figures below say "
                      "by how much.",
        "lossy_why_4bit": "merged into 4-bit weights and re-quantized, as requested: the merged model is not the "
                          "adapter as trained. The figures below are the measured loss.",
        "lossy_why_original": "merged onto the original weights although the adapter was trained on a 4-bit base: "
                              "the merged model drifts by the quantization error. Merge with --onto dequantized "
                              "to keep exactly what was trained.",
        "lossy_why_dequantized": "", "run": "Run", "merged_folder": "Merged model", "base": "Base model",
        "trained_on": "Trained on", "onto": "Merged onto", "requested": "asked", "dtype": "Saved as",
        "reference": "Compared with", "prompts": "Prompts", "tokens": "tokens", "greedy": "greedy generation of",
        "from_validation": "rows of the run's validation set", "from_train": "rows of the training set (the run has "
        "no validation set)", "from_builtin": "built-in prompts (the run's data could not be read)",
        "sha": "Adapter sha256", "targets": "Targets",
        "reference_text": "the adapter as trained: the base as held in training + the adapter, not merged",
        "qlora_compare": "This adapter was trained on a 4-bit base. Merged onto the original weights (what other "
                         "tools ship) it would move the logits by up to {o_max:.3g} (mean KL {o_kl:.2g} nats, "
                         "greedy agreement {o_agree:.1%}); merged onto the dequantized 4-bit weights, by "
                         "{d_max:.3g} (mean KL {d_kl:.2g}).", "target": "Target", "saved": "Saved",
        "agreement": "greedy agreement", "identical": "identical generations", "limit": "tolerance",
        "result": "result", "pass": "pass", "fail": "fail", "yes": "yes", "no": "no (measured only)",
        "target_original": "original 16/32-bit weights", "target_dequantized": "dequantized 4-bit weights",
        "target_4bit": "4-bit weights (re-quantized)", "target_short_original": "original",
        "target_short_dequantized": "dequantized", "target_short_4bit": "4bit",
        "per_prompt": "Per prompt", "expected": "expected answer begins",
        "per_prompt_help": "First generated token at which the merged model's greedy output differs from base + "
                           "adapter (counting from 0); — means the two outputs are identical.",
        "meaning": "What the figures mean",
        "meaning_items": [
            "max / mean abs Δlogit: the largest and the average difference of the logits, over every position of "
            "prompt + expected answer and every vocabulary entry.",
            "KL: Kullback–Leibler divergence from the next-token distribution of base + adapter to the merged "
            "model's, in nats, averaged over positions (0 = identical distributions).",
            "greedy agreement: share of positions where both pick the same most likely next token.",
            "identical generations: prompts for which greedy generation gives exactly the same tokens.",
            "float32 tolerance: 1e-4 plus 2e-5 × the largest logit — the rounding floor of float32 arithmetic; "
            "16-bit precisions are judged on KL and agreement, since rounding the weights moves single logits.",
        ],
        "notes": "Notes", "load": "Load it with stock transformers", "made": "Made",
    },
    "vi": {
        "title": "Báo cáo gộp adapter", "already": "Đã gộp từ chính adapter này trước đó: không ghi lại gì.",
        "passed": "ĐẠT", "failed": "KHÔNG ĐẠT", "lossy": "CÓ MẤT MÁT", "lossy_short": "có mất mát",
        "passed_why": "mô hình đã gộp trả lời giống mô hình gốc + adapter, sai khác chỉ trong mức làm tròn của "
                      "độ chính xác đã chọn.",
        "failed_why": "mô hình đã gộp không trả lời giống mô hình gốc + adapter; đừng dùng nó. Các số liệu dưới "
                      "đây cho biết sai khác bao nhiêu.",
        "lossy_why_4bit": "đã gộp vào trọng số 4-bit rồi lượng tử hoá lại, theo yêu cầu: mô hình đã gộp không còn "
                          "đúng là adapter lúc huấn luyện. Các số liệu dưới đây là mức mất mát đo được.",
        "lossy_why_original": "đã gộp vào trọng số gốc dù adapter được huấn luyện trên mô hình 4-bit: mô hình đã "
                              "gộp lệch đi đúng bằng sai số lượng tử hoá. Hãy gộp với --onto dequantized để giữ "
                              "nguyên những gì đã huấn luyện.",
        "lossy_why_dequantized": "", "run": "Lần chạy", "merged_folder": "Mô hình đã gộp", "base": "Mô hình gốc",
        "trained_on": "Huấn luyện trên", "onto": "Gộp vào", "requested": "yêu cầu", "dtype": "Lưu ở dạng",
        "reference": "So sánh với", "prompts": "Câu lệnh thử", "tokens": "token", "greedy": "sinh tham lam",
        "from_validation": "dòng của tập kiểm định của lần chạy", "from_train": "dòng của tập huấn luyện (lần chạy "
        "không có tập kiểm định)", "from_builtin": "câu lệnh có sẵn (không đọc được dữ liệu của lần chạy)",
        "sha": "sha256 của adapter", "targets": "Các đích gộp",
        "reference_text": "adapter như lúc huấn luyện: mô hình gốc ở dạng đã dùng khi huấn luyện + adapter, chưa gộp",
        "qlora_compare": "Adapter này được huấn luyện trên mô hình gốc 4-bit. Nếu gộp vào trọng số gốc (cách các "
                         "công cụ khác vẫn làm), logit sẽ lệch tới {o_max:.3g} (KL trung bình {o_kl:.2g} nat, trùng "
                         "token tham lam {o_agree:.1%}); gộp vào trọng số 4-bit đã giải lượng tử thì chỉ lệch "
                         "{d_max:.3g} (KL trung bình {d_kl:.2g}).", "target": "Đích", "saved": "Đã lưu",
        "agreement": "trùng token tham lam", "identical": "sinh giống hệt", "limit": "ngưỡng cho phép",
        "result": "kết quả", "pass": "đạt", "fail": "không đạt", "yes": "có", "no": "không (chỉ đo)",
        "target_original": "trọng số gốc 16/32-bit", "target_dequantized": "trọng số 4-bit đã giải lượng tử",
        "target_4bit": "trọng số 4-bit (lượng tử hoá lại)", "target_short_original": "gốc",
        "target_short_dequantized": "giải lượng tử", "target_short_4bit": "4bit",
        "per_prompt": "Theo từng câu lệnh", "expected": "đầu câu trả lời mong đợi",
        "per_prompt_help": "Vị trí token sinh ra đầu tiên (đếm từ 0) mà đầu ra tham lam của mô hình đã gộp khác "
                           "mô hình gốc + adapter; — nghĩa là hai đầu ra giống hệt nhau.",
        "meaning": "Ý nghĩa các số liệu",
        "meaning_items": [
            "max / mean abs Δlogit: sai khác lớn nhất và trung bình của logit, trên mọi vị trí của câu lệnh + câu "
            "trả lời mong đợi và mọi mục của bộ từ vựng.",
            "KL: độ phân kỳ Kullback–Leibler từ phân phối token kế tiếp của mô hình gốc + adapter đến của mô hình "
            "đã gộp, tính bằng nat, trung bình theo vị trí (0 = hai phân phối như nhau).",
            "trùng token tham lam: tỉ lệ vị trí mà cả hai chọn cùng một token có xác suất cao nhất.",
            "sinh giống hệt: số câu lệnh mà việc sinh tham lam cho ra đúng cùng các token.",
            "ngưỡng float32: 1e-4 cộng 2e-5 × logit lớn nhất — mức làm tròn của phép tính float32; với độ chính "
            "xác 16 bit, việc làm tròn trọng số làm từng logit xê dịch nên chỉ xét KL và tỉ lệ trùng.",
        ],
        "notes": "Ghi chú", "load": "Nạp bằng transformers thông thường", "made": "Tạo lúc",
    },
}


def load_report(folder: str | Path) -> dict | None:
    """The merge report saved in a merged folder, or None when there is none (or it is unreadable)."""
    path = Path(folder) / REPORT_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


# --------------------------------------------------------------------------- the prompt set

@dataclass
class PromptCase:
    """One verification prompt: the generation prompt, and the tokens of prompt + expected answer."""

    prompt: str
    input_ids: list[int]
    preview: str


_BUILTIN = [  # used only when the run's data cannot be read any more (a moved file, an offline Hub dataset)
    ("Bộ xử lí trung tâm (CPU) là", " bộ phận thực hiện các lệnh của chương trình."),
    ("Bộ nhớ trong của máy tính gồm", " RAM và ROM."),
    ("The central processing unit of a computer", " executes the instructions of a program."),
    ("Hệ điều hành là phần mềm", " quản lí tài nguyên của máy tính."),
]


def prompt_set(run: RunInfo, tokenizer, n: int) -> tuple[list[PromptCase], str, list[str]]:
    """``n`` fixed prompts from the run's validation rows (else its training rows), through the run's template.

    Returns:
        (cases, source: validation | train | builtin, notes)
    """
    from core import data as D
    from core.templates import format_row, inference_prompt

    cfg = run.cfg
    try:
        prepared = D.prepare(cfg.data, tokenizer, seed=cfg.train.seed)
    except DataError as e:
        cases = []
        for prompt, answer in _BUILTIN[:n]:
            ids = D.encode_prompt(tokenizer, prompt + answer)
            cases.append(PromptCase(prompt, ids, answer.strip()))
        return cases, "builtin", [f"the run's data could not be prepared ({e}); built-in prompts were used"]
    source, examples = ("validation", prepared.validation) if prepared.validation else ("train", prepared.train)
    ctx = D.template_context(tokenizer, cfg.data)
    cases = []
    for ex in examples[:n]:
        row = D.map_row(prepared.frame.iloc[ex.index].to_dict(), prepared.guess, cfg.data.clean)
        formatted = format_row(row, prepared.template, ctx)
        prompt = inference_prompt(prepared.template, row, ctx)
        preview = " ".join((formatted.reference or formatted.text).split())[:60]
        cases.append(PromptCase(prompt, ex.input_ids[: cfg.data.max_length], preview))
    return cases, source, []


# --------------------------------------------------------------------------- measuring

def _logits(model, ids: list[int]):
    import torch

    with torch.no_grad():
        x = torch.tensor([ids], device=model_device(model))
        return model(input_ids=x).logits[0].float().cpu()


def _compare(ref, cand) -> dict:
    """Δlogit, KL(ref ‖ cand) and argmax agreement of two [positions, vocab] logit tensors."""
    import torch

    d = (ref - cand).abs()
    kl_parts = []
    for a in range(0, ref.shape[0], 128):  # float64 in chunks: a 262k vocabulary × 1k positions is 2 GiB
        lr = torch.log_softmax(ref[a:a + 128].double(), -1)
        lc = torch.log_softmax(cand[a:a + 128].double(), -1)
        kl_parts.append((lr.exp() * (lr - lc)).sum(-1).clamp_min(0.0))
    kl = torch.cat(kl_parts)
    return {"max": float(d.max()), "sum": float(d.double().sum()), "count": d.numel(), "kl_sum": float(kl.sum()),
            "kl_max": float(kl.max()), "positions": ref.shape[0], "scale": float(ref.abs().max()),
            "agree": int((ref.argmax(-1) == cand.argmax(-1)).sum()),
            "finite": bool(torch.isfinite(cand).all())}


class _Reference:
    """The adapter as trained: its logits and greedy generations, computed once and reused for every target."""

    def __init__(self, model, tokenizer, cases: list[PromptCase], decoding: Decoding):
        self.model, self.cases, self.decoding = model, cases, decoding
        self.generations = [g.token_ids for g in generate(model, tokenizer, [c.prompt for c in cases], decoding)]
        vocab = model.get_output_embeddings().weight.shape[0] if model.get_output_embeddings() is not None else 0
        # keep the reference logits when they fit in 1 GiB, else recompute them for each target
        self._cache = [] if sum(len(c.input_ids) for c in cases) * vocab * 4 <= (1 << 30) else None
        self.scale = 0.0

    def logits(self, i: int):
        if self._cache is not None and i < len(self._cache):
            return self._cache[i]
        out = _logits(self.model, self.cases[i].input_ids)
        if self._cache is not None:
            self._cache.append(out)
        return out


def measure(reference: _Reference, candidate, tokenizer, *, target: str, dtype: str, tolerance_dtypes: tuple,
            lossy: bool, saved: bool) -> TargetResult:
    """Compare one merged model with the adapter as trained on every prompt."""
    t0 = time.monotonic()
    agg = {"max": 0.0, "sum": 0.0, "count": 0, "kl_sum": 0.0, "kl_max": 0.0, "positions": 0, "agree": 0,
           "scale": 0.0, "finite": True}
    for i, case in enumerate(reference.cases):
        c = _compare(reference.logits(i), _logits(candidate, case.input_ids))
        for k in ("sum", "count", "kl_sum", "positions", "agree"):
            agg[k] += c[k]
        for k in ("max", "kl_max", "scale"):
            agg[k] = max(agg[k], c[k])
        agg["finite"] &= c["finite"]
    gens = generate(candidate, tokenizer, [c.prompt for c in reference.cases], reference.decoding)
    first = [first_divergence(a, g.token_ids) for a, g in zip(reference.generations, gens)]
    tol_key, tol = tolerance_for(*tolerance_dtypes)
    n = max(1, agg["positions"])
    r = TargetResult(
        target=target, dtype=dtype, lossy=lossy, saved=saved, measured_from="saved folder" if saved else "memory",
        max_abs_dlogit=agg["max"], mean_abs_dlogit=agg["sum"] / max(1, agg["count"]), kl_mean=agg["kl_sum"] / n,
        kl_max=agg["kl_max"], greedy_agreement=agg["agree"] / n, first_divergence=first,
        identical_generations=sum(f is None for f in first), tolerance_dtype=tol_key,
        tolerance={"max_abs_dlogit": tol.max_abs(agg["scale"]), "kl_mean": tol.kl_mean, "agreement": tol.agreement,
                   "atol": tol.atol, "rtol": tol.rtol, "logit_scale": agg["scale"]},
        passed=False)
    ok = agg["finite"] and all(math.isfinite(x) for x in (r.max_abs_dlogit, r.kl_mean))
    limit = tol.max_abs(agg["scale"])
    ok &= limit is None or r.max_abs_dlogit <= limit
    ok &= tol.kl_mean is None or r.kl_mean <= tol.kl_mean
    ok &= tol.agreement is None or r.greedy_agreement >= tol.agreement
    r.passed = bool(ok)
    r.seconds = round(time.monotonic() - t0, 2)
    return r


# --------------------------------------------------------------------------- merging

def _torch_dtype(name: str):
    import torch

    return getattr(torch, name)


def _nan_guard(model, where: str) -> None:
    """Refuse a merged model with a NaN/inf weight, naming the parameter."""
    import torch

    for name, p in model.named_parameters():
        if p.is_floating_point() and not torch.isfinite(p).all():
            raise AdapterError(f"merging produced NaN/inf in {name} ({where}); the adapter or the base is broken",
                               field=name)


def build_merged(run: RunInfo, target: str, dtype: str):
    """The base loaded for ``target``, the run's adapter applied with stock peft and merged.

    Float targets merge in float32 and are cast to ``dtype`` once at the end; the 4bit target keeps
    its non-quantized modules in ``dtype``.

    Returns:
        (merged transformers model in eval mode, notes)
    Raises:
        AdapterError: broken adapter, NaN after merging.
    """
    import torch

    if target == "original":
        base = load_base(run, load_in_4bit=False, load_in_8bit=False, dtype="float32")
    elif target == "dequantized":
        # the base exactly as training held it: loaded in the run's dtype, so the 4-bit codes and scales are
        # the very ones training used (quantizing the float32 weights instead flips codes and moves every
        # block's absmax: it is another 4-bit model)
        base = load_base(run)
        base = dequantize_as_computed(base)
    elif target == "4bit":
        base = load_base(run, load_in_4bit=True, load_in_8bit=False, dtype=dtype)
    else:
        raise ConfigError(f"unknown merge target {target!r} (one of {', '.join(TARGETS)})", field="onto")
    peft_model, notes = apply_adapter(base, run.adapter_dir, expected_bases=run.base_names)
    try:
        merged = peft_model.merge_and_unload(safe_merge=True)
    except ValueError as e:
        if "nan" in str(e).lower():
            raise AdapterError(f"merging the adapter {adapter_files(run.adapter_dir)[1]} produced NaN weights "
                               f"({target} target): {str(e).splitlines()[0][:200]}",
                               field=str(adapter_files(run.adapter_dir)[1])) from None
        raise
    if target != "4bit":
        merged = merged.to(_torch_dtype(dtype))
    _nan_guard(merged, f"{target} target, {dtype}")
    merged.eval()
    return merged, notes


def dequantize_as_computed(model):
    """Every 4/8-bit layer → a float32 ``nn.Linear`` holding the weights its forward pass multiplied by.

    transformers' ``dequantize`` is the stock conversion, but it dequantizes a 4-bit weight into the dtype the
    model was *loaded* in (``quant_state.dtype``), while the forward pass (``gemm_4bit``) dequantizes into the
    layer's *compute* dtype. For a run on bfloat16 weights with float32 compute (the CPU default) the stock
    result is every weight rounded to bfloat16 — measured on the demo preset with 4-bit: max |Δlogit| 6.25,
    KL 1.0e-2, greedy agreement 94%, a failed verification. Pointing each quant state at its layer's compute
    dtype first makes the conversion exact; the non-quantized modules (norms, embeddings) are then cast to
    float32, which is exact from any 16-bit dtype.

    Returns:
        The dequantized model (quantization config removed), in float32.
    """
    import torch

    for module in model.modules():
        weight = getattr(module, "weight", None)
        state = getattr(weight, "quant_state", None)
        compute = getattr(module, "compute_dtype", None)
        if state is not None and compute is not None and not getattr(state, "packing_format_for_cpu", False):
            state.dtype = compute
    return model.dequantize(dtype=torch.float32).to(torch.float32)


def upcast_unquantized(model):
    """Cast every parameter and buffer that is not 4/8-bit to float32, in place; the quantized weights stay.

    The reference of a float32 merge of a run held in 16 bits: the same quantized weights as training, the rest
    computed in float32, so that it and the dequantized merge differ only by the merge's own arithmetic.
    """
    import torch

    for module in model.modules():
        for name, p in list(module.named_parameters(recurse=False)):
            if p.is_floating_point() and p.dtype != torch.float32 and type(p).__name__ not in ("Params4bit",
                                                                                              "Int8Params"):
                p.data = p.data.to(torch.float32)
        recompute = False
        for name, b in list(module.named_buffers(recurse=False)):
            if b.is_floating_point() and b.dtype != torch.float32:
                setattr(module, name, b.to(torch.float32))
                recompute |= name in module._non_persistent_buffers_set
        if recompute:
            _recompute_buffers(model, module)
    return model


def _recompute_buffers(model, module) -> None:
    """Compute a module's non-persistent buffers again, now in float32, as a float32 load computes them.

    They are not saved with the model but made at load time in the model's dtype: Gemma's embedding scale √640
    is 25.25 in bfloat16 and 25.298 in float32, enough to move the logits by ~1. transformers makes them with
    the model's own ``_init_weights``; its parameters are kept out of reach meanwhile (that call would also
    re-initialise them).
    """
    import torch

    init = getattr(model, "_init_weights", None)
    if init is None:
        return
    params = dict(module.named_parameters(recurse=False))
    kept = {name: p.data for name, p in params.items()}
    try:
        for name, p in params.items():
            p.data = torch.empty_like(kept[name])
        init(module)
    finally:
        for name, p in params.items():
            p.data = kept[name]


def _save(merged, tokenizer, run: RunInfo, folder: Path) -> list[str]:
    """The merged model, its tokenizer (config, chat template, special tokens) and generation config."""
    merged.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    base = Path(run.base_path)
    if base.is_dir():  # what save_pretrained may not write back (a sentencepiece model, an older chat template)
        for name in TOKENIZER_FILES:
            if (base / name).is_file() and not (folder / name).exists():
                shutil.copy2(base / name, folder / name)
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def _reload(folder: Path, dtype: str, device):
    """The saved folder, loaded the way a user would: stock AutoModelForCausalLM."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": _torch_dtype(dtype)}
    if _is_quantized_folder(folder):
        kwargs["device_map"] = {"": str(device)}
    model = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
    if "device_map" not in kwargs:
        model.to(device)
    return exact_4bit(model.eval())


def _is_quantized_folder(folder: Path) -> bool:
    try:
        return "quantization_config" in json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False


def _precision(run: RunInfo) -> dict:
    """How the base was held in training: 4bit | 8bit | float, with the details the text needs."""
    m = run.cfg.model
    kind = "4bit" if m.load_in_4bit else "8bit" if m.load_in_8bit else "float"
    return {"kind": kind, "dtype": _dtype_name(m.dtype), "quant_type": m.bnb_4bit_quant_type,
            "double_quant": m.bnb_4bit_use_double_quant, "compute_dtype": _dtype_name(m.bnb_4bit_compute_dtype)}


def precision_text(p: dict, lang: str = "en") -> str:
    """``4-bit nf4, double quantization, compute float32 (QLoRA)`` in English or Vietnamese."""
    vi = lang == "vi"
    if p.get("kind") == "4bit":
        double = (", lượng tử hoá kép" if vi else ", double quantization") if p.get("double_quant") else ""
        compute = "tính ở" if vi else "compute"
        return f"4-bit {p.get('quant_type')}{double}, {compute} {p.get('compute_dtype')} (QLoRA)"
    if p.get("kind") == "8bit":
        return "8-bit (LLM.int8)"
    return str(p.get("dtype"))


def _trained_on(run: RunInfo) -> str:
    return precision_text(_precision(run))


def _dtype_name(name: str) -> str:
    from core.models import resolve_dtype

    return str(resolve_dtype(name)).removeprefix("torch.")


def resolve_onto(run: RunInfo, onto: str) -> str:
    """The merge target that ``onto`` means for this run (auto → dequantized after QLoRA, else original).

    Raises:
        ConfigError: an unknown value, or dequantized for a run trained in full precision.
    """
    if onto not in ONTO:
        raise ConfigError(f"--onto must be one of {', '.join(ONTO)}, got {onto!r}", field="onto")
    if onto == "auto":
        return "dequantized" if run.quantized else "original"
    if onto == "dequantized" and not run.quantized:
        raise ConfigError("--onto dequantized is for a run trained on a 4-bit base (QLoRA); this run was trained "
                          f"on {_trained_on(run)} weights, so use --onto original (or auto)", field="onto")
    return onto


def _check_out(out: Path) -> None:
    """Refuse to replace a folder that is not a merged model made here."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / REPORT_JSON).is_file())):
        raise StudioError(f"the output folder {out} exists and is not a merged model made by LoRA Studio "
                          "(no merge_report.json); choose another --out", field=str(out))


def merge_run(run_dir: str | Path, *, dtype: str = "float32", onto: str = "auto", out: str | Path | None = None,
              n_prompts: int = 8, max_new_tokens: int = GENERATE_TOKENS,
              progress: Callable[[str], None] | None = None) -> MergeReport:
    """Merge a run's adapter into its base, verify the result, and write it with its report.

    Args:
        run_dir: a finished run folder.
        dtype: float32 | bfloat16 | float16, the saved precision (the merge itself runs in float32).
        onto: auto | original | dequantized | 4bit (see the module docstring).
        out: the output folder (default ``RUN_DIR/merged``).
        n_prompts: verification prompts from the run's validation data.
        max_new_tokens: greedy tokens generated per prompt for the first-divergence check.
        progress: called with a short message at each stage (the GUI shows it).
    Returns:
        The MergeReport; ``already_merged`` is True when the folder already held this merge (nothing rewritten).
    Raises:
        AdapterError: missing files, NaN weights, an adapter made for another base.
        ConfigError: bad dtype / onto; StudioError: an output folder that is not ours.
    """
    with _MERGE_LOCK:
        return _merge_run(run_dir, dtype, onto, out, n_prompts, max_new_tokens, progress)


def _merge_run(run_dir, dtype, onto, out, n_prompts, max_new_tokens, progress) -> MergeReport:
    say = progress or (lambda msg: log.info(msg))
    if dtype not in DTYPES:
        raise ConfigError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}", field="dtype")
    if n_prompts < 1:
        raise ConfigError(f"n_prompts must be ≥ 1, got {n_prompts}", field="n_prompts")
    t_start = time.monotonic()
    run = RunInfo.load(run_dir)
    target = resolve_onto(run, onto)
    out = Path(out).expanduser().resolve() if out else run.run_dir / "merged"
    sha = adapter_sha256(run.adapter_dir)

    previous = load_report(out)
    if previous and previous.get("adapter_sha256") == sha and previous.get("dtype") == dtype \
            and previous.get("target") == target and (out / "config.json").is_file():
        report = MergeReport.from_dict(previous)
        report.already_merged = True
        say(f"already merged from this adapter (sha256 {sha[:12]}…): nothing rewritten")
        return report
    _check_out(out)
    load_adapter_tensors(run.adapter_dir)  # NaN / unreadable: fail before loading any model
    notes = []
    if previous:
        notes.append(f"replaced the previous merge in this folder (target {previous.get('target')}, dtype "
                     f"{previous.get('dtype')}, adapter sha256 {str(previous.get('adapter_sha256'))[:12]}…)")

    say("loading the adapter as trained (the reference)")
    tokenizer = tokenizer_for(run)
    cases, source, more = prompt_set(run, tokenizer, n_prompts)
    notes += more
    # the reference computes in the run's dtype (a 4-bit base: in its compute dtype) — except for a float run
    # trained on 16-bit weights and merged to float32: both sides then hold the base in float32, so that the
    # check compares like with like (16-bit arithmetic alone moves logits by more than any merge error)
    ref_dtype = _dtype_name(run.cfg.model.bnb_4bit_compute_dtype if run.quantized else run.cfg.model.dtype)
    reference_text = f"base as trained ({_trained_on(run)}) + adapter, not merged"
    if not run.quantized and ref_dtype != "float32" and dtype == "float32":
        ref_model = load_base(run, dtype="float32")
        notes.append(f"the run trained on {ref_dtype} weights; the reference (base + adapter) and the merge both "
                     "use the base in float32, so the check compares like with like. The adapter on the "
                     f"{ref_dtype} base computes the same function up to {ref_dtype} rounding.")
        reference_text = f"base in float32 (trained on {ref_dtype}) + adapter, not merged"
        ref_dtype = "float32"
    elif run.quantized and dtype == "float32" and _dtype_name(run.cfg.model.dtype) != "float32":
        # QLoRA on 16-bit weights: the 4-bit layers as trained (same codes, same compute dtype), the norms and
        # embeddings in float32 — the dequantized merge holds exactly these weights, also in float32
        ref_model = upcast_unquantized(load_base(run))
        notes.append(f"the run held its non-quantized modules in {_dtype_name(run.cfg.model.dtype)}; the reference "
                     "keeps the 4-bit weights exactly as trained and computes the rest in float32, like the merged "
                     "model")
        reference_text = (f"base as trained ({_trained_on(run)}), its non-quantized modules in float32, "
                          "+ adapter, not merged")
    else:
        ref_model = load_base(run)
    ref_model, more = apply_adapter(ref_model, run.adapter_dir, expected_bases=run.base_names)
    notes += more
    decoding = Decoding(max_new_tokens=max_new_tokens)
    say(f"generating with the reference on {len(cases)} prompts")
    reference = _Reference(ref_model, tokenizer, cases, decoding)
    device = model_device(ref_model)

    # the chosen target first (saved), then for a QLoRA run the other float target (measured only)
    order = [target] + [t for t in ("dequantized", "original") if run.quantized and t != target]
    results: dict[str, TargetResult] = {}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.merging-", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the merged folder is an ordinary model folder
    files: list[str] = []
    try:
        for name in order:
            lossy = name == "4bit" or (name == "original" and run.quantized)
            say(f"merging onto the {name} weights")
            merged, more = build_merged(run, name, dtype)
            notes += [n for n in more if n not in notes]
            saved = name == target
            if saved:
                say(f"saving the merged model ({dtype}) and reloading it with stock transformers")
                files = _save(merged, tokenizer, run, tmp)
                del merged
                gc.collect()
                merged = _reload(tmp, dtype, device)
            else:
                merged.to(device)
            say(f"verifying the {name} target")
            results[name] = measure(reference, merged, tokenizer, target=name, dtype=dtype,
                                    tolerance_dtypes=(dtype, ref_dtype), lossy=lossy, saved=saved)
            del merged
            gc.collect()
        from core.train import versions

        report = MergeReport(
            run_dir=str(run.run_dir), out_dir=str(out), adapter_dir=str(run.adapter_dir), adapter_sha256=sha,
            base_model=str(run.info.get("base_model") or run.cfg.model.name_or_path),
            resolved_base_model=run.base_path, quantized_run=run.quantized, trained_on=_trained_on(run),
            requested_onto=onto, target=target, dtype=dtype,
            reference=reference_text, precision=_precision(run),
            prompts={"source": source, "n": len(cases), "n_tokens": sum(len(c.input_ids) for c in cases),
                     "max_new_tokens": max_new_tokens,
                     "cases": [{"n_tokens": len(c.input_ids), "preview": c.preview} for c in cases]},
            results=results, notes=notes, files=files + [REPORT_JSON, REPORT_MD],
            created=dt.datetime.now().isoformat(timespec="seconds"),
            seconds=round(time.monotonic() - t_start, 2), versions=versions())
        report.write(tmp)
        _replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say(report.summary())
    return report


def _replace(tmp: Path, out: Path) -> None:
    """Put the complete new folder in place; the old one is removed only once the new one is there."""
    old = out.parent / f".{out.name}.old-{os.getpid()}-{threading.get_ident()}"
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- the Hub

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def push_to_hub(folder: str | Path, repo_id: str, token: str, private: bool = True) -> str:
    """Upload a merged model (or an adapter) folder to a Hugging Face Hub model repository.

    The token lives only in this call's memory: it is handed to ``HfApi`` and never written to a
    file, an environment variable or a log, and it is scrubbed from any error message.

    Args:
        folder: a merged folder (config.json) or an adapter folder (adapter_config.json).
        repo_id: ``owner/name``; created if missing.
        token: a Hugging Face token with write access.
        private: create the repository as private.
    Returns:
        The repository's URL.
    Raises:
        StudioError: bad folder or repo id, no token, the Hub unreachable (offline), or refused.
    """
    from core.models import hub_reachable

    folder = Path(folder)
    if not ((folder / "config.json").is_file() or (folder / "adapter_config.json").is_file()):
        raise StudioError(f"{folder} holds no model (no config.json or adapter_config.json)", field=str(folder))
    if not _REPO_ID.match(repo_id or ""):
        raise StudioError(f"the repository id must look like owner/name, got {repo_id!r}", field="repo_id")
    if not token or not token.strip():
        raise StudioError("a Hugging Face token with write access is needed to push", field="token")
    if not hub_reachable():
        raise StudioError("cannot push: the Hugging Face Hub is unreachable (offline?); the model stays in "
                          f"{folder}", field="hub")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token.strip())
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                          commit_message="Upload from LoRA Studio", ignore_patterns=[".*", "**/.*"])
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status in (401, 403):
            msg = "the Hub refused the token (it needs write access to this repository)"
        else:
            msg = f"the Hub answered HTTP {status}: {str(e).splitlines()[0][:200]}"
        raise StudioError(msg.replace(token.strip(), "***"), field="hub") from None
    except (OSError, ValueError) as e:  # connection dropped, bad arguments
        raise StudioError(f"push failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}".replace(token.strip(),
                                                                                                      "***"),
                          field="hub") from None
    return str(url) if url else f"https://huggingface.co/{repo_id}"


# --------------------------------------------------------------------------- chains of runs

@dataclass
class ChainStage:
    preset: str
    run_dir: Path
    merged: MergeReport | None = None


def run_chain(presets: list[str | Path], *, overrides: list[str] | None = None,
              stage_overrides: dict[int, list[str]] | None = None, runs_dir: str | Path | None = None,
              dtype: str = "float32", n_prompts: int = 8,
              on_stage: Callable[[ChainStage], None] | None = None) -> list[ChainStage]:
    """Train presets one after the other, each on the previous stage's merged model.

    Stage k (k ≥ 2) has ``model.name_or_path`` set to stage k-1's merged folder, whatever its preset
    or the overrides say. Every stage but the last is merged (and must pass its verification).

    Args:
        presets: preset files, in order.
        overrides: ``key=value`` applied to every stage.
        stage_overrides: ``{stage number (1-based): [key=value, …]}``.
        runs_dir: parent of the run folders.
        dtype: precision of the intermediate merged models.
        n_prompts: verification prompts of each merge.
        on_stage: called after each stage (trained, and merged when it is merged).
    Returns:
        The stages.
    Raises:
        JobError: a merge that fails its verification stops the chain.
    """
    from core import config as C
    from core.train import TrainingJob

    if len(presets) < 2:
        raise ConfigError("a chain needs at least two presets", field="presets")
    stages: list[ChainStage] = []
    previous: Path | None = None
    for k, preset in enumerate(presets, 1):
        cfg = C.load_yaml(preset, list(overrides or []) + list((stage_overrides or {}).get(k, [])))
        if previous is not None:
            cfg.model.name_or_path = str(previous)
        job = TrainingJob(cfg, runs_dir)
        stage = ChainStage(str(preset), job.run())
        if k < len(presets):
            report = merge_run(stage.run_dir, dtype=dtype, onto="auto", n_prompts=n_prompts)
            if not report.passed:
                raise JobError(f"stage {k} ({Path(preset).name}): the merged model failed its verification "
                               f"({report.summary()}); see {Path(report.out_dir) / REPORT_MD}", field=str(preset))
            stage.merged = report
            previous = Path(report.out_dir)
        stages.append(stage)
        if on_stage:
            on_stage(stage)
    return stages
