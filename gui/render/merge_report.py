"""A merge report on the page: the PASS / LOSSY / FAIL badge with its key numbers (the full report is
:func:`core.merge.markdown.to_markdown`, in the page's language)."""

from __future__ import annotations

import html
from typing import Any

from core.analysis.explain import num
from core.locale import text as t
from core.merge.report import ONTO

VERDICT_MARK = {"passed": "✓", "lossy": "≈", "failed": "✗"}  # not colour alone (accessibility)
VERDICT_WORDS = {"passed": "merge.passed", "lossy": "merge.lossy", "failed": "merge.failed"}


def _fmt(x: Any) -> str:
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def key_numbers(report: dict, lang: str) -> list[tuple[str, str]]:
    """(label, value) of the figures under the badge, from a merge report's dict (to_dict or merge_report.json)."""
    chosen = (report.get("results") or {}).get(report.get("target"), {})
    if not chosen:
        return []
    divergences = [(i, d) for i, d in enumerate(chosen.get("first_divergence") or []) if d is not None]
    if divergences:
        i, d = min(divergences, key=lambda x: x[1])
        first = t("merge.k_div_at", lang, n=d, prompt=i + 1)
    else:
        first = t("merge.k_none", lang)
    n = len(chosen.get("first_divergence") or [])
    rows = [("merge.k_max", _fmt(chosen.get("max_abs_dlogit"))), ("merge.k_mean", _fmt(chosen.get("mean_abs_dlogit"))),
            ("merge.k_kl", _fmt(chosen.get("kl_mean"))),
            ("merge.k_agree", f"{num(100 * float(chosen.get('greedy_agreement') or 0), lang, 1)}%"),
            ("merge.k_identical", f"{chosen.get('identical_generations', 0)}/{n}"), ("merge.k_div", first)]
    return [(t(label, lang), value) for label, value in rows]


def verdict(report: dict) -> str:
    """passed | lossy | failed (a lossy target chosen on purpose is not a failure)."""
    return "passed" if report.get("passed") else ("lossy" if report.get("lossy") else "failed")


def badge_html(report: dict, lang: str) -> str:
    """A big PASS / FAIL (or LOSSY, for a lossy target chosen on purpose) badge with the key numbers."""
    v = verdict(report)
    cells = "".join(f'<div><div class="ls-merge-label">{html.escape(label)}</div>'
                    f'<div class="ls-merge-value">{html.escape(value)}</div></div>'
                    for label, value in key_numbers(report, lang))
    already = (f'<div class="ls-merge-already">{html.escape(t("merge.already", lang))}</div>'
               if report.get("already_merged") else "")
    where = (f'<div class="ls-merge-where">{html.escape(t("merge.onto_dtype", lang))}: '
             f'{html.escape(t("merge.target_" + report["target"], lang))}, {html.escape(str(report.get("dtype", "")))}'
             f'</div>' if report.get("target") in ONTO else "")
    return (f'<div class="ls-merge-badge ls-{v}" role="status">'
            f'<div class="ls-merge-verdict">{VERDICT_MARK[v]} {html.escape(t(VERDICT_WORDS[v], lang))}</div>'
            f'{where}<div class="ls-merge-numbers">{cells}</div>{already}</div>')
