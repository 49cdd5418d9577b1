"""The merge report in words: ``merge_report.md`` (English, then Vietnamese), the one-line summary, the
precision a run trained at. All words come from ``core.locale`` (keys ``merge.*``)."""

from __future__ import annotations

from pathlib import Path

from core import locale
from core.config import MergeConfig
from core.merge.report import REPORT_MD, TARGETS, MergeReport, TargetResult
from core.run import write_text_atomic

GENERATE_TOKENS = MergeConfig().max_new_tokens  # what older reports that do not record it used


def _t(key: str, lang: str, **fmt) -> str:
    return locale.text(f"merge.report.{key}", lang, **fmt)


def precision_text(p: dict, lang: str = "en") -> str:
    """``4-bit nf4, double quantization, compute float32 (QLoRA)`` in English or Vietnamese."""
    if p.get("kind") == "4bit":
        double = locale.text("merge.precision.double", lang) if p.get("double_quant") else ""
        return locale.text("merge.precision.4bit", lang, quant_type=p.get("quant_type"), double=double,
                           compute_dtype=p.get("compute_dtype"))
    if p.get("kind") == "8bit":
        return locale.text("merge.precision.8bit", lang)
    return str(p.get("dtype"))


def note_text(note, lang: str) -> str:
    """A note of the report in words (a note of an older report is an English sentence: shown as it is)."""
    if isinstance(note, dict) and locale.has(f"merge.report.note.{note.get('code')}"):
        return _t(f"note.{note['code']}", lang, **(note.get("args") or {}))
    return str(note.get("code") if isinstance(note, dict) else note)


def reference_text(report: MergeReport, lang: str) -> str:
    code = report.reference if locale.has(f"merge.report.reference.{report.reference}") else "as_trained"
    return _t(f"reference.{code}", lang, **report.reference_args)


def summary(report: MergeReport, lang: str = "en") -> str:
    """One line: the verdict and the chosen target's figures."""
    r = report.chosen
    return (f"{_t(report.verdict, lang)}: {_t('target_' + report.target, lang)}, {report.dtype}; "
            f"max |Δlogit| {r.max_abs_dlogit:.2e}, KL {r.kl_mean:.1e}, {_t('agreement', lang)} "
            f"{r.greedy_agreement:.1%}, {_t('identical', lang)} {r.identical_generations}/{r.n_prompts}")


def _limit_text(x: TargetResult, lang: str) -> str:
    tol = x.tolerance
    parts = []
    if tol.get("max_abs_dlogit") is not None:
        parts.append(f"max ≤ {tol['max_abs_dlogit']:.2g}")
    if tol.get("kl_mean") is not None:
        parts.append(f"KL ≤ {tol['kl_mean']:g}")
    if tol.get("agreement") is not None:
        parts.append(f"{_t('agreement', lang)} ≥ {tol['agreement']:.0%}")
    return f"{x.tolerance_dtype}: " + ", ".join(parts)


def to_markdown(report: MergeReport, lang: str = "en") -> str:
    """The readable report, in English (``en``) or Vietnamese (``vi``)."""
    def t(key: str, **fmt) -> str:
        return _t(key, lang, **fmt)

    lines = [f"# {t('title')}: {Path(report.run_dir).name}", ""]
    if report.already_merged:
        lines += [f"_{t('already')}_", ""]
    why = {"lossy": "lossy_why_" + report.target, "passed": "passed_why", "failed": "failed_why"}[report.verdict]
    lines += [f"**{t(report.verdict)}** — {t(why)}", ""]
    p = report.prompts
    trained = precision_text(report.precision, lang) if report.precision else report.trained_on
    lines += [
        "| | |", "|---|---|",
        f"| {t('run')} | `{report.run_dir}` |",
        f"| {t('merged_folder')} | `{report.out_dir}` |",
        f"| {t('base')} | `{report.base_model}` (`{report.resolved_base_model}`) |",
        f"| {t('trained_on')} | {trained} |",
        f"| {t('onto')} | {t('target_' + report.target)} ({t('requested')}: `{report.requested_onto}`) |",
        f"| {t('dtype')} | {report.dtype} |",
        f"| {t('reference')} | {reference_text(report, lang)} |",
        f"| {t('prompts')} | {p.get('n', 0)} {t('from_' + p.get('source', 'builtin'))}, {p.get('n_tokens', 0)} "
        f"{t('tokens')}; {t('greedy')} {p.get('max_new_tokens', GENERATE_TOKENS)} {t('tokens')} |",
        f"| {t('sha')} | `{report.adapter_sha256[:16]}…` |",
        "",
        f"## {t('targets')}", "",
        f"| {t('target')} | {t('saved')} | max abs Δlogit | mean abs Δlogit | KL mean | KL max | "
        f"{t('agreement')} | {t('identical')} | {t('limit')} | {t('result')} |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = sorted(report.results, key=lambda n: (n != report.target, TARGETS.index(n)))
    for name in order:
        x = report.results[name]
        verdict = t("pass") if x.passed else t("fail")
        if x.lossy:
            verdict += f" ({t('lossy_short')})"
        lines.append(
            f"| {t('target_' + name)} | {t('yes') if x.saved else t('no')} | {x.max_abs_dlogit:.3g} | "
            f"{x.mean_abs_dlogit:.3g} | {x.kl_mean:.3g} | {x.kl_max:.3g} | {x.greedy_agreement:.2%} | "
            f"{x.identical_generations}/{x.n_prompts} | {_limit_text(x, lang)} | {verdict} |")
    if report.quantized_run and {"dequantized", "original"} <= set(report.results):
        d, o = report.results["dequantized"], report.results["original"]
        lines += ["", t("qlora_compare", o_max=o.max_abs_dlogit, o_kl=o.kl_mean, o_agree=o.greedy_agreement,
                        d_max=d.max_abs_dlogit, d_kl=d.kl_mean)]
    lines += ["", f"## {t('per_prompt')}", "", t("per_prompt_help"), ""]
    heads = " | ".join(t("target_short_" + n) for n in order)
    lines.append(f"| # | {t('tokens')} | {t('expected')} | {heads} |")
    lines.append("|---|---|---|" + "---|" * len(order))
    for i, case in enumerate(p.get("cases", [])):
        cells = []
        for n in order:
            fd = report.results[n].first_divergence[i] if i < len(report.results[n].first_divergence) else None
            cells.append("—" if fd is None else str(fd))
        preview = str(case.get("preview", "")).replace("|", "/").replace("\n", " ")
        lines.append(f"| {i + 1} | {case.get('n_tokens', '')} | {preview} | " + " | ".join(cells) + " |")
    lines += ["", f"## {t('meaning')}", ""] + [f"- {t(f'meaning_items_{k}')}" for k in range(1, 6)]
    if report.notes:
        lines += ["", f"## {t('notes')}", ""] + [f"- {note_text(n, lang)}" for n in report.notes]
    lines += ["", f"## {t('load')}", "", "```python",
              "from transformers import AutoModelForCausalLM, AutoTokenizer",
              f'model = AutoModelForCausalLM.from_pretrained("{report.out_dir}")',
              f'tokenizer = AutoTokenizer.from_pretrained("{report.out_dir}")', "```", ""]
    lines.append(f"_{t('made')} {report.created}, {report.seconds:.1f} s; "
                 + ", ".join(f"{k} {v}" for k, v in report.versions.items()) + "_")
    return "\n".join(lines) + "\n"


def write_markdown(report: MergeReport, folder: Path) -> None:
    """``merge_report.md``: the English report, then the Vietnamese one."""
    write_text_atomic(Path(folder) / REPORT_MD, to_markdown(report, "en") + "\n---\n\n" + to_markdown(report, "vi"))
