"""A plain-language reading of an analysis for non-programmers, in Vietnamese or English.

The sentences are built from the numbers of an :class:`AnalysisResult` and the words of ``core.locale``
(keys ``analysis.read.*``); the CLI prints them and the Analysis tab shows them.
"""

from __future__ import annotations

import math

from core import locale
from core.analysis.result import AnalysisResult, aggregates
from core.analysis.spectra import DEFAULT_TOP_K


def _t(key: str, lang: str, **fmt) -> str:
    return locale.text(f"analysis.read.{key}", lang, **fmt)


def num(x: float, lang: str, nd: int = 1) -> str:
    """A number with the decimal separator of the language (Vietnamese writes 6,8)."""
    s = f"{x:.{nd}f}"
    return s.replace(".", ",") if lang != "en" else s


def pct(x: float, lang: str) -> str:
    p = 100.0 * x
    nd = 0 if p >= 10 else (1 if p >= 1 else 2)
    return num(p, lang, nd) + "%"


def _join(items: list[str], lang: str) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + _t("and", lang) + items[-1]


def suggest_rank(erank: float, r: int) -> int | None:
    """A smaller rank worth trying: twice the effective rank rounded up to a power of two (head-room for the weaker
    directions the entropy measure discounts); None when that is not below r."""
    target = max(2, math.ceil(2 * erank))
    s = 1 << (target - 1).bit_length()
    return s if s < r else None


def explain(result: AnalysisResult, lang: str = "vi") -> str:
    """3–6 sentences: where the change sits (attention vs MLP, which blocks), how many intruder dimensions appeared
    and where, what the effective rank says about the chosen r, and a caution linking intruders to forgetting."""
    mods = result.modules
    if not mods:
        return _t("no_lora", lang)
    tot = result.totals or aggregates(mods)[3]
    if not tot.get("delta_norm"):
        return _t("untrained", lang)
    sentences = [_where(result, tot, lang), _intruders(result, tot, lang), _rank(result, tot, lang)]
    sentences.append(_t("caution" if int(tot.get("intruders", 0)) > 0 else "good_sign", lang))
    if any(m.dora for m in mods):
        sentences.append(_t("dora", lang))
    return " ".join(sentences)


def _where(result: AnalysisResult, tot: dict, lang: str) -> str:
    """1) Size and location of the change."""
    groups = {g["group"]: g for g in result.by_group}
    att, mlp = groups.get("attention"), groups.get("mlp")

    def gname(group: str) -> str:
        return locale.text(f"analysis.group.{group if group in ('attention', 'mlp') else 'other'}", lang)

    if att and mlp and att.get("rel_change") is not None and mlp.get("rel_change") is not None:
        hi, lo = (att, mlp) if att["rel_change"] >= mlp["rel_change"] else (mlp, att)
        where = _t("where_two", lang, hi=gname(hi["group"]), hi_pct=pct(hi["rel_change"], lang),
                   lo=gname(lo["group"]), lo_pct=pct(lo["rel_change"], lang))
        sep = " "  # no comma right after a closing dash
    else:
        only = (att or mlp or next(iter(groups.values())))["group"]
        where = _t("where_one", lang, group=gname(only))
        sep = _t("subject_again", lang)  # single-group sentence: name the subject again
    rows = [row for row in result.by_layer if row["layer"] is not None and row.get("rel_change") is not None]
    top = sorted(rows, key=lambda row: -row["rel_change"])[: min(3, max(1, len(rows) // 3))]
    s = _t("overall", lang, pct=pct(tot.get("rel_change") or 0.0, lang)) + where
    if top:
        blocks = _join([str(row["layer"]) for row in sorted(top, key=lambda row: row["layer"])], lang)
        s += sep + _t("strongest_many" if len(top) > 1 else "strongest_one", lang, blocks=blocks)
    else:
        s += "."
    return s.replace(" —.", ".")


def _intruders(result: AnalysisResult, tot: dict, lang: str) -> str:
    """2) Intruder dimensions."""
    k = result.config.get("top_k", DEFAULT_TOP_K)
    n = int(tot.get("intruders", 0))
    if n <= 0:
        return _t("no_intruders", lang, k=k)
    with_layer = [row for row in result.by_layer if row["intruders"] > 0]
    worst = max(with_layer, key=lambda row: row["intruders"])
    wname = _t("block", lang, layer=worst["layer"]) if worst["layer"] is not None else _t("outside", lang)
    if len(with_layer) == 1:
        where = _t("all_in", lang, where=wname)
    else:
        where = _t("spread", lang, n=len(with_layer), where=wname, count=worst["intruders"])
    return _t("intruders_one" if n == 1 else "intruders_many", lang, n=n, k=k, where=where)


def _rank(result: AnalysisResult, tot: dict, lang: str) -> str:
    """3) Effective rank against r."""
    mods = result.modules
    changed = [m for m in mods if m.delta_norm > 0]
    er = sum(m.effective_rank for m in changed) / len(changed) if changed else 0.0
    r = int(result.config.get("r") or tot.get("median_r") or max(m.r for m in mods))
    suggestion = suggest_rank(er, r)
    if er <= r / 4 and suggestion is not None:
        return _t("rank_small", lang, er=num(er, lang), r=r, suggestion=suggestion)
    if er >= 0.75 * r:
        return _t("rank_full", lang, er=num(er, lang), r=r)
    return _t("rank_ok", lang, er=num(er, lang), r=r)
