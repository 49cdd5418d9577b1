"""The Compare tab's panes: base | adapter | merged, each with its badge ("reference", "identical", "differs from
token N"), the words that differ from the adapter's answer marked. Everything is HTML-escaped: model output."""

from __future__ import annotations

import difflib
import html
import re
from typing import Any

from core.inference.generate import first_divergence
from core.inference.modelset import ADAPTER, MERGED, WHICH
from core.locale import text as t
from gui.edge import note_html

_WORD = re.compile(r"(\s*)(\S+)")  # (leading whitespace, word): words are compared, layout is kept


def word_diff_html(text: str, reference: str) -> str:
    """``text`` with the words that differ from ``reference`` marked; everything HTML-escaped.

    Words only in ``text`` are in <mark>; words of ``reference`` missing here are shown struck through
    (<del>) where they would have been. Line breaks and spaces of ``text`` are kept.
    """
    esc = html.escape
    a, b = _WORD.findall(reference), _WORD.findall(text)
    out: list[str] = []
    matcher = difflib.SequenceMatcher(None, [w for _, w in a], [w for _, w in b], autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            out += [esc(ws + w) for ws, w in b[j1:j2]]
            continue
        inserted = b[j1:j2]
        if i2 > i1:
            # the removed words stand where the inserted ones start (or where they stood in the reference)
            lead = inserted[0][0] if inserted else (a[i1][0] if out else "")
            out.append(f'{esc(lead)}<del class="ls-del">{esc(" ".join(w for _, w in a[i1:i2]))}</del>')
            inserted = [(" ", w) if k == 0 else (ws, w) for k, (ws, w) in enumerate(inserted)]
        out += [f'{esc(ws)}<mark class="ls-ins">{esc(w)}</mark>' for ws, w in inserted]
    out.append(esc(text[len(text.rstrip()):]))
    return "".join(out)


def badge(text: str, kind: str) -> str:
    """A small rounded label; kind: ok | warn | info."""
    return f'<span class="ls-badge ls-badge-{kind}">{html.escape(text)}</span>'


def divergence_badge(ids: list[int], reference_ids: list[int], lang: str) -> str:
    n = first_divergence(reference_ids, ids)
    return badge(t("compare.identical", lang), "ok") if n is None else badge(t("compare.differs", lang, n=n + 1),
                                                                               "warn")


def pane_html(title: str, badge_html: str, body: str) -> str:
    return (f'<div class="ls-pane"><div class="ls-pane-head"><strong>{html.escape(title)}</strong>{badge_html}</div>'
            f'<div class="ls-pane-text">{body}</div></div>')


def text_html(text: str, lang: str) -> str:
    if not text.strip():  # blank lines only: say so rather than show an empty box
        return f'<em class="ls-pane-blank">{html.escape(t("compare.blank_output", lang))}</em>'
    return html.escape(text)


def render_panes(gens: dict[str, Any], lang: str) -> tuple[str, str, str]:
    """Three pane HTMLs from {"base"|"adapter"|"merged": Generation}."""
    ref = gens[ADAPTER]
    out = []
    for which in WHICH:
        title = t(f"compare.pane_{which}", lang)
        if which == ADAPTER:
            out.append(pane_html(title, badge(t("compare.reference_badge", lang), "info"), text_html(ref.text, lang)))
        elif which in gens:
            g = gens[which]
            body = word_diff_html(g.text, ref.text) if g.text.strip() else text_html(g.text, lang)
            if which == MERGED and g.dtype and ref.dtype and g.dtype != ref.dtype \
                    and first_divergence(ref.token_ids, g.token_ids) is not None:
                # not the merge's fault: the two compute in different precisions here (the merge check does not)
                body += note_html(t("compare.dtype_differs", lang, merged=g.dtype, adapter=ref.dtype))
            out.append(pane_html(title, divergence_badge(g.token_ids, ref.token_ids, lang), body))
        else:
            out.append(pane_html(title, "", note_html(t("compare.merge_first", lang), "warn")))
    return out[0], out[1], out[2]
