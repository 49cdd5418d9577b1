"""Compare: the same prompt through the base, base + adapter and the merged model, side by side.

Also home of the one model cache the result tabs share (compare, classroom): one base in memory; a
second run on the same base adds its adapter to the loaded set instead of loading the base again.
"""

from __future__ import annotations

import csv
import difflib
import html
import logging
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from core.errors import DataError, StudioError
from gui.common import AppContext, error_html, note_html
from gui.i18n import register, t
from gui.tab_merge import (default_run, link_run_picker, no_runs_info, num, read_run_info,
                           refresh_runs, resolve_run, run_choices)

log = logging.getLogger("lora_studio.gui.compare")

TAB_TITLE = {"en": "Compare", "vi": "So sánh"}

TEXT = register(__name__, {
    "cmp_intro": {
        "en": "One prompt, three models: the original base, base + your adapter, and the merged model. Words that "
              "differ from the adapter's answer are highlighted.",
        "vi": "Một câu lệnh, ba mô hình: mô hình gốc, mô hình gốc + adapter của bạn, và mô hình đã gộp. Những từ "
              "khác với câu trả lời của adapter được tô màu."},
    "prompt": {"en": "Prompt (exactly what the model receives)", "vi": "Câu lệnh (đúng nguyên văn mô hình nhận được)"},
    "context": {"en": "Paragraph to write a question about", "vi": "Đoạn văn để ra câu hỏi"},
    "context_info": {"en": "Prefilled with a paragraph of the test split, which the model never saw in training.",
                     "vi": "Điền sẵn một đoạn văn của tập kiểm tra, mô hình chưa từng thấy khi huấn luyện."},
    "other_row": {"en": "Another test example", "vi": "Ví dụ kiểm tra khác"},
    "decoding": {"en": "Decoding", "vi": "Cách sinh văn bản"},
    "greedy": {"en": "Greedy (deterministic, best to compare)", "vi": "Tham lam (cố định, tốt nhất để so sánh)"},
    "sampling": {"en": "Sampling (varied)", "vi": "Lấy mẫu (đa dạng)"},
    "temperature": {"en": "Temperature", "vi": "Nhiệt độ"},
    "top_p": {"en": "Top-p", "vi": "Top-p"},
    "seed": {"en": "Seed", "vi": "Hạt giống ngẫu nhiên"},
    "max_new_tokens": {"en": "Max new tokens", "vi": "Số token mới tối đa"},
    "generate": {"en": "Generate", "vi": "Sinh câu trả lời"},
    "pane_base": {"en": "Base model", "vi": "Mô hình gốc"},
    "pane_adapter": {"en": "Base + adapter (fine-tuned)", "vi": "Mô hình gốc + adapter (đã tinh chỉnh)"},
    "pane_merged": {"en": "Merged model", "vi": "Mô hình đã gộp"},
    "reference_badge": {"en": "reference", "vi": "mốc so sánh"},
    "blank_output": {"en": "(only spaces or blank lines)", "vi": "(chỉ có khoảng trắng hoặc dòng trống)"},
    "identical": {"en": "identical", "vi": "giống hệt"},
    "differs": {"en": "differs from token {n}", "vi": "khác từ token thứ {n}"},
    "merge_first": {"en": "This run is not merged yet: merge it in the “Merge & export” tab to compare the merged model.",
                    "vi": "Lần huấn luyện này chưa được gộp: hãy gộp ở thẻ “Gộp & xuất” để so sánh mô hình đã gộp."},
    "empty_prompt": {"en": "Write a prompt first.", "vi": "Hãy nhập câu lệnh trước."},
    "no_heldout": {"en": "This run's data has no {split} rows.", "vi": "Dữ liệu của lần huấn luyện này không có dòng {split} nào."},
    "timing": {"en": "{n} model(s) in {s} s", "vi": "{n} mô hình trong {s} giây"},
    "loading_models": {"en": "Loading the models…", "vi": "Đang nạp mô hình…"},
    "generating": {"en": "Generating: {which}", "vi": "Đang sinh câu trả lời: {which}"},
    "batch_title": {"en": "Batch: many rows to a CSV file", "vi": "Hàng loạt: nhiều dòng ra tệp CSV"},
    "split": {"en": "Rows from", "vi": "Lấy dòng từ"},
    "split_test": {"en": "test split", "vi": "tập kiểm tra"},
    "split_validation": {"en": "validation split", "vi": "tập kiểm định"},
    "n_rows": {"en": "Number of rows", "vi": "Số dòng"},
    "batch_button": {"en": "Generate the CSV", "vi": "Tạo tệp CSV"},
    "batch_file": {"en": "Download", "vi": "Tải về"},
    "batch_done": {"en": "{n} rows written; merged vs adapter identical in {same} of them.",
                   "vi": "Đã ghi {n} dòng; mô hình đã gộp giống hệt adapter ở {same} dòng."},
    "batch_done_nomerge": {"en": "{n} rows written (no merged model yet).", "vi": "Đã ghi {n} dòng (chưa có mô hình đã gộp)."},
})

WHICH = ("base", "adapter", "merged")


# ----------------------------------------------------------------------------- the shared model cache

class ModelCache:
    """Holds one ModelSet (one base in memory) and switches between runs that share it.

    A run on the cached base gets its adapter added under its own name; a run on another base, the
    merged model of a run other than the set's own, or an adapter rewritten since it was loaded (a
    resumed run) replaces the set. The lock serialises loading and generation, so two clicks never
    race on the same weights.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._set: Any = None
        self._own: tuple | None = None  # (run_dir, adapter stamp, merged stamp) of the set's own run
        self._base: str | None = None
        self._extra: dict[str, tuple[str, float]] = {}  # run_dir -> (adapter name in the set, adapter stamp)

    @staticmethod
    def merged_marker(run_dir: Path) -> float | None:
        """Modification time of RUN/merged/config.json (None when not merged), so that a fresh merge is seen."""
        cfg = run_dir / "merged" / "config.json"
        return cfg.stat().st_mtime if cfg.exists() else None

    @staticmethod
    def _adapter_stamp(run_dir: Path) -> float:
        return max(p.stat().st_mtime for p in (run_dir / "adapter").iterdir() if p.is_file())

    def get(self, run_dir: Path, *, need_merged: bool) -> tuple[Any, dict[str, str]]:
        """The ModelSet for ``run_dir`` and the names its models have in it.

        Call with ``self.lock`` held. Returns (model set, {"base": …, "adapter": …, ["merged": …]}).
        """
        from core.adapters import ModelSet

        run_dir = run_dir.resolve()
        key = str(run_dir)
        stamp = self._adapter_stamp(run_dir)
        merged = self.merged_marker(run_dir) if need_merged else None
        base = str(read_run_info(run_dir).get("resolved_base_model") or "")
        if self._set is not None:
            own_dir, own_stamp, own_merged = self._own
            if own_dir == key and own_stamp == stamp and (not need_merged or own_merged == merged):
                return self._set, self._names(key)
            fresh_extra = key in self._extra and self._extra[key][1] == stamp
            if own_dir != key and not need_merged and base and base == self._base and \
                    (fresh_extra or key not in self._extra):
                if not fresh_extra:
                    name = f"run{len(self._extra) + 1}"
                    self._set.add_adapter(run_dir / "adapter", name)
                    self._extra[key] = (name, stamp)
                return self._set, self._names(key)
        self.clear()
        self._set = ModelSet.from_run(run_dir, merged=merged is not None)
        self._own, self._base, self._extra = (key, stamp, merged), base, {}
        return self._set, self._names(key)

    def _names(self, key: str) -> dict[str, str]:
        if self._own and self._own[0] == key:
            names = {"base": "base", "adapter": "adapter"}
            if "merged" in self._set.names():
                names["merged"] = "merged"
            return names
        return {"base": "base", "adapter": self._extra[key][0]}

    def clear(self) -> None:
        import gc

        self._set, self._own, self._base, self._extra = None, None, None, {}
        gc.collect()


MODELS = ModelCache()


# ----------------------------------------------------------------------------- prompts and rows of a run

@lru_cache(maxsize=8)
def _run_tokenizer(run_dir: str):
    from core.models import load_tokenizer

    return load_tokenizer(str(Path(run_dir) / "adapter"))


def run_template(run_dir: Path) -> str:
    return str(read_run_info(run_dir).get("template") or "")


def build_prompt(run_dir: Path, row: dict) -> str:
    """The run's own inference prompt for a role-keyed row (for MCQ generation only ``context`` is needed)."""
    from core import config as C
    from core.data import clean_text, template_context
    from core.templates import inference_prompt

    cfg = C.load_yaml(run_dir / "config.yaml")
    if cfg.data.clean:  # as in training: NFC, collapsed spaces (a pasted paragraph often has odd ones)
        row = {k: clean_text(v) if isinstance(v, str) else v for k, v in row.items()}
    return inference_prompt(run_template(run_dir), row, template_context(_run_tokenizer(str(run_dir)), cfg.data))


@lru_cache(maxsize=8)
def _heldout_rows(run_dir: str, split: str, stamp: float) -> tuple[dict, ...]:
    from core import config as C
    from core.data import map_row, prepare, template_context
    from core.templates import format_row

    cfg = C.load_yaml(Path(run_dir) / "config.yaml")
    tok = _run_tokenizer(run_dir)
    prepared = prepare(cfg.data, tok, seed=cfg.train.seed)  # the same split the run was trained with
    indices = prepared.test_index if split == "test" else [e.index for e in prepared.validation]
    records = prepared.frame.to_dict(orient="records")
    ctx = template_context(tok, cfg.data)
    rows = []
    for i in indices:
        try:
            row = map_row(records[i], prepared.guess, cfg.data.clean)
        except DataError as e:  # held-out rows are not checked by prepare(): skip a broken one
            log.info("skipping held-out row %d of %s: %s", i, run_dir, e)
            continue
        try:
            reference = format_row(row, prepared.template, ctx).reference
        except DataError:
            reference = ""
        rows.append({"index": i, "row": row, "reference": reference})
    return tuple(rows)


def heldout_rows(run_dir: Path, split: str = "test") -> list[dict]:
    """Rows of the run's held-out ``split`` ("test" or "validation"): {index, row (role-keyed), reference}.

    Raises:
        DataError: the run's data cannot be read any more.
    """
    stamp = (run_dir / "config.yaml").stat().st_mtime
    return list(_heldout_rows(str(run_dir.resolve()), split, stamp))


def example_input(run: str | None, index: int, runs_dir: str) -> tuple[str, str]:
    """The (prompt, context) to prefill for the ``index``-th held-out row of the run (test, else validation)."""
    if not run:
        return "", ""
    try:
        run_dir = resolve_run(runs_dir, run)
        rows = heldout_rows(run_dir, "test") or heldout_rows(run_dir, "validation")
    except (StudioError, OSError) as e:
        log.info("no example for %s: %s", run, e)
        return "", ""
    if not rows:
        return "", ""
    row = rows[index % len(rows)]["row"]
    if run_template(run_dir) == "mcq_generation":
        return "", str(row.get("context") or "")
    try:
        return build_prompt(run_dir, row), ""
    except StudioError:
        return "", ""


# ----------------------------------------------------------------------------- rendering

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


def _badge(text: str, kind: str) -> str:
    colours = {"ok": ("#166534", "#dcfce7"), "warn": ("#92400e", "#fef3c7"), "info": ("#1e3a8a", "#dbeafe")}
    fg, bg = colours[kind]
    return (f'<span class="ls-badge ls-badge-{kind}" style="display:inline-block;padding:0.1rem 0.6rem;'
            f'border-radius:999px;font-size:0.85rem;font-weight:600;white-space:nowrap;color:{fg};background:{bg}">'
            f'{html.escape(text)}</span>')


def divergence_badge(ids: list[int], reference_ids: list[int], lang: str) -> str:
    from core.generate import first_divergence

    n = first_divergence(reference_ids, ids)
    return _badge(t("identical", lang), "ok") if n is None else _badge(t("differs", lang, n=n + 1), "warn")


def pane_html(title: str, badge: str, body: str) -> str:
    # max-height: a model that rambles (or writes hundreds of blank lines) must not stretch the page
    return (f'<div class="ls-pane" style="border:1px solid #d1d5db;border-radius:10px;padding:0.75rem;'
            f'background:#fff;color:#111827;min-height:8rem">'
            f'<div style="display:flex;justify-content:space-between;gap:0.5rem;align-items:center;'
            f'margin-bottom:0.5rem"><strong>{html.escape(title)}</strong>{badge}</div>'
            f'<div class="ls-pane-text" style="white-space:pre-wrap;overflow-wrap:anywhere;'
            f'font-size:1rem;line-height:1.45;max-height:32rem;overflow-y:auto">{body}</div></div>')


def decoding_from(mode: str, temperature: float, top_p: float, seed: float, max_new_tokens: float):
    from core.generate import Decoding

    return Decoding(max_new_tokens=int(max_new_tokens), do_sample=mode == "sampling", temperature=float(temperature),
                    top_p=float(top_p), seed=int(seed))


def _text_html(text: str, lang: str) -> str:
    if not text.strip():  # blank lines only: say so rather than show an empty box
        return f'<em style="color:#6b7280">{html.escape(t("blank_output", lang))}</em>'
    return html.escape(text)


def render_panes(gens: dict[str, Any], lang: str) -> tuple[str, str, str]:
    """Three pane HTMLs from {"base"|"adapter"|"merged": Generation}."""
    ref = gens["adapter"]
    out = []
    for which in WHICH:
        title = t(f"pane_{which}", lang)
        if which == "adapter":
            out.append(pane_html(title, _badge(t("reference_badge", lang), "info"), _text_html(ref.text, lang)))
        elif which in gens:
            g = gens[which]
            body = word_diff_html(g.text, ref.text) if g.text.strip() else _text_html(g.text, lang)
            out.append(pane_html(title, divergence_badge(g.token_ids, ref.token_ids, lang), body))
        else:
            out.append(pane_html(title, "", note_html(t("merge_first", lang), "warn")))
    return out[0], out[1], out[2]


# ----------------------------------------------------------------------------- handlers

def compare(run: str | None, prompt: str, context: str, mode: str, temperature: float, top_p: float, seed: float,
            max_new_tokens: float, lang: str, runs_dir: str, progress: gr.Progress = gr.Progress()
            ) -> tuple[str, str, str, str]:
    """Generate with base, adapter and (if the run is merged) the merged model.

    Returns:
        (base pane HTML, adapter pane HTML, merged pane HTML, status HTML)
    """
    blank = ("", "", "")
    if not run:
        return (*blank, note_html(t("pick_run", lang), "warn"))
    try:
        run_dir = resolve_run(runs_dir, run)
        if run_template(run_dir) == "mcq_generation":
            if not (context or "").strip():
                return (*blank, note_html(t("empty_prompt", lang), "warn"))
            text = build_prompt(run_dir, {"context": context.strip()})
        else:
            if not (prompt or "").strip():
                return (*blank, note_html(t("empty_prompt", lang), "warn"))
            text = prompt
        decoding = decoding_from(mode, temperature, top_p, seed, max_new_tokens)
        t0 = time.monotonic()
        gens = {which: out[0] for which, out in generate_all(run_dir, [text], decoding, lang, progress).items()}
    except Exception as e:  # noqa: BLE001 - the GUI edge: every failure becomes a message (traceback logged)
        return (*blank, error_html(e, lang))
    status = note_html(t("timing", lang, n=len(gens), s=num(time.monotonic() - t0, lang)))
    return (*render_panes(gens, lang), status)


def generate_all(run_dir, prompts: list[str], decoding, lang: str, progress) -> dict[str, list]:
    """Every model of the run (base, adapter, merged when present) on the same prompts, one at a time."""
    has_merged = ModelCache.merged_marker(run_dir) is not None
    outputs: dict[str, list] = {}
    with MODELS.lock:
        progress(0.0, desc=t("loading_models", lang))
        models, names = MODELS.get(run_dir, need_merged=has_merged)
        todo = [w for w in WHICH if w in names]
        for i, which in enumerate(todo):
            progress((i + 1) / (len(todo) + 1), desc=t("generating", lang, which=t(f"pane_{which}", lang)))
            outputs[which] = models.generate(prompts, names[which], decoding)
    return outputs


def batch(run: str | None, split: str, n_rows: float, mode: str, temperature: float, top_p: float, seed: float,
          max_new_tokens: float, lang: str, runs_dir: str, progress: gr.Progress = gr.Progress()
          ) -> tuple[str | None, Any, str]:
    """Generate for the first ``n_rows`` rows of a held-out split with every model; write a CSV.

    Returns:
        (CSV path or None, preview DataFrame, status HTML)
    """
    if not run:
        return None, None, note_html(t("pick_run", lang), "warn")
    try:
        run_dir = resolve_run(runs_dir, run)
        rows = heldout_rows(run_dir, split)[: max(1, int(n_rows))]
        if not rows:
            return None, None, note_html(t("no_heldout", lang, split=t(f"split_{split}", lang)), "warn")
        prompts = [build_prompt(run_dir, r["row"]) for r in rows]
        decoding = decoding_from(mode, temperature, top_p, seed, max_new_tokens)
        outputs = generate_all(run_dir, prompts, decoding, lang, progress)
    except Exception as e:  # noqa: BLE001 - the GUI edge: every failure becomes a message (traceback logged)
        return None, None, error_html(e, lang)
    from core.generate import first_divergence

    records = []
    for k, (r, p) in enumerate(zip(rows, prompts)):
        rec = {"row": r["index"], "prompt": p, "reference": r["reference"]}
        for which, gens in outputs.items():
            rec[which] = gens[k].text
        if "merged" in outputs:
            rec["merged_identical"] = first_divergence(outputs["adapter"][k].token_ids,
                                                       outputs["merged"][k].token_ids) is None
        records.append(rec)
    frame = pd.DataFrame(records)
    out = Path(tempfile.mkdtemp(prefix="lora-studio-compare-")) / f"{run_dir.name}-{split}.csv"
    frame.to_csv(out, index=False, quoting=csv.QUOTE_NONNUMERIC, encoding="utf-8-sig")  # BOM: Excel reads UTF-8
    if "merged" in outputs:
        msg = t("batch_done", lang, n=len(records), same=int(frame["merged_identical"].sum()))
    else:
        msg = t("batch_done_nomerge", lang, n=len(records))
    preview = frame.drop(columns=["prompt"]).head(20)
    return str(out), preview, note_html(msg, "ok")


def on_run_change(run: str | None, lang: str, runs_dir: str) -> tuple[dict, dict, int, str, str, str]:
    """Show the prompt box, or the context box for an MCQ run, prefilled from the test split; clear the panes.

    Returns:
        (prompt update, context update, example index, base pane, adapter pane, merged pane)
    """
    template, merged = "", ""
    if run:
        try:
            run_dir = resolve_run(runs_dir, run)
            template = run_template(run_dir)
            if ModelCache.merged_marker(run_dir) is None:
                merged = note_html(t("merge_first", lang), "warn")
        except StudioError as e:
            merged = error_html(e, lang)
    prompt, context = example_input(run, 0, runs_dir)
    mcq = template == "mcq_generation"
    return gr.update(value=prompt, visible=not mcq), gr.update(value=context, visible=mcq), 0, "", "", merged


def next_example(run: str | None, index: int, runs_dir: str) -> tuple[str, str, int]:
    index = int(index or 0) + 1
    prompt, context = example_input(run, index, runs_dir)
    return prompt, context, index


@dataclass
class CompareTab:
    run: gr.Dropdown
    refresh: gr.Button
    prompt: gr.Textbox
    context: gr.Textbox
    other: gr.Button
    mode: gr.Radio
    temperature: gr.Slider
    top_p: gr.Slider
    seed: gr.Number
    max_new_tokens: gr.Slider
    generate: gr.Button
    status: gr.HTML
    base: gr.HTML
    adapter: gr.HTML
    merged: gr.HTML
    split: gr.Radio
    n_rows: gr.Number
    batch: gr.Button
    batch_file: gr.File
    batch_preview: gr.Dataframe
    batch_status: gr.HTML


def build(ctx: AppContext) -> CompareTab:
    lang = ctx.lang
    lang_state = gr.State(lang)
    runs_state = gr.State(str(ctx.runs_dir))
    example_index = gr.State(0)
    choices = run_choices(ctx.runs_dir, lang)
    first = default_run(ctx.runs_dir)
    prompt0, context0 = example_input(first, 0, str(ctx.runs_dir))
    mcq0 = bool(first) and run_template(resolve_run(ctx.runs_dir, first)) == "mcq_generation"
    gr.Markdown(t("cmp_intro", lang))
    with gr.Row():
        run = gr.Dropdown(choices=choices, value=first, label=t("run", lang),
                          info=no_runs_info(choices, lang), scale=4)
        refresh = gr.Button(t("refresh_runs", lang), scale=1, size="sm")
    prompt = gr.Textbox(value=prompt0, label=t("prompt", lang), lines=6, visible=not mcq0)
    context = gr.Textbox(value=context0, label=t("context", lang), info=t("context_info", lang), lines=6,
                         visible=mcq0)
    with gr.Row():
        other = gr.Button(t("other_row", lang), size="sm", scale=0, min_width=240)
    with gr.Accordion(t("decoding", lang), open=False):
        with gr.Row():
            mode = gr.Radio(choices=[(t("greedy", lang), "greedy"), (t("sampling", lang), "sampling")],
                            value="greedy", label=t("decoding", lang))
            max_new_tokens = gr.Slider(16, 512, value=160, step=16, label=t("max_new_tokens", lang))
        with gr.Row():
            temperature = gr.Slider(0.05, 2.0, value=0.7, step=0.05, label=t("temperature", lang))
            top_p = gr.Slider(0.05, 1.0, value=0.9, step=0.05, label=t("top_p", lang))
            seed = gr.Number(value=0, precision=0, label=t("seed", lang))
    generate = gr.Button(t("generate", lang), variant="primary")
    status = gr.HTML()
    with gr.Row(equal_height=True):
        base = gr.HTML()
        adapter = gr.HTML()
        merged = gr.HTML()
    with gr.Accordion(t("batch_title", lang), open=False):
        with gr.Row():
            split = gr.Radio(choices=[(t("split_test", lang), "test"), (t("split_validation", lang), "validation")],
                             value="test", label=t("split", lang))
            n_rows = gr.Number(value=8, minimum=1, maximum=500, precision=0, label=t("n_rows", lang))
        batch_btn = gr.Button(t("batch_button", lang))
        batch_status = gr.HTML()
        batch_file = gr.File(label=t("batch_file", lang), interactive=False)
        batch_preview = gr.Dataframe(interactive=False, wrap=True)

    decoding_inputs = [mode, temperature, top_p, seed, max_new_tokens]
    refresh.click(refresh_runs, [run, lang_state, runs_state], run, api_visibility="private")
    link_run_picker(ctx, run)
    # on page load and when the run changes
    gr.on(None, on_run_change, [run, lang_state, runs_state], [prompt, context, example_index, base, adapter, merged],
          api_visibility="private", show_progress="hidden")
    other.click(next_example, [run, example_index, runs_state], [prompt, context, example_index],
                api_visibility="private")
    generate.click(compare, [run, prompt, context, *decoding_inputs, lang_state, runs_state],
                   [base, adapter, merged, status], api_name="compare", concurrency_limit=1, concurrency_id="models")
    batch_btn.click(batch, [run, split, n_rows, *decoding_inputs, lang_state, runs_state],
                    [batch_file, batch_preview, batch_status], api_name="compare_batch", concurrency_limit=1,
                    concurrency_id="models")
    return CompareTab(run, refresh, prompt, context, other, mode, temperature, top_p, seed, max_new_tokens, generate,
                      status, base, adapter, merged, split, n_rows, batch_btn, batch_file, batch_preview, batch_status)
