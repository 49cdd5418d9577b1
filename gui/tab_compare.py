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
from gui.common import AppContext, error_html
from gui.i18n import register, t
from gui.tab_merge import read_run_info, refresh_runs, resolve_run, run_choices

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
    "decoding": {"en": "Decoding", "vi": "Cách sinh chữ"},
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
    "identical": {"en": "identical", "vi": "giống hệt"},
    "differs": {"en": "differs from token {n}", "vi": "khác từ token thứ {n}"},
    "merge_first": {"en": "This run is not merged yet: merge it in the “Merge & export” tab to compare the merged model.",
                    "vi": "Lần huấn luyện này chưa được gộp: hãy gộp ở thẻ “Gộp & xuất” để so sánh mô hình đã gộp."},
    "empty_prompt": {"en": "Write a prompt first.", "vi": "Hãy nhập câu lệnh trước."},
    "no_heldout": {"en": "This run's data has no {split} rows.", "vi": "Dữ liệu của lần huấn luyện này không có dòng {split} nào."},
    "timing": {"en": "{n} model(s) in {s} s", "vi": "{n} mô hình trong {s} giây"},
    "loading_models": {"en": "Loading the models…", "vi": "Đang nạp mô hình…"},
    "generating": {"en": "Generating with: {which}", "vi": "Đang sinh với: {which}"},
    "batch_title": {"en": "Batch: many rows to a CSV file", "vi": "Hàng loạt: nhiều dòng ra tệp CSV"},
    "split": {"en": "Rows from", "vi": "Lấy dòng từ"},
    "split_test": {"en": "test split", "vi": "tập kiểm tra"},
    "split_validation": {"en": "validation split", "vi": "tập thẩm định"},
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

    A run on the cached base gets its adapter added under its own name; a run on another base, or the
    merged model of a run other than the set's own, replaces the set. The lock serialises loading and
    generation, so two clicks never race on the same weights.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._set: Any = None
        self._key: tuple | None = None  # (run_dir, merged marker) of the set's own run
        self._base: str | None = None
        self._extra: dict[str, str] = {}  # run_dir -> adapter name inside the set

    @staticmethod
    def merged_marker(run_dir: Path) -> float | None:
        """Modification time of RUN/merged/config.json, so that a fresh merge is picked up."""
        cfg = run_dir / "merged" / "config.json"
        return cfg.stat().st_mtime if cfg.exists() else None

    def get(self, run_dir: Path, *, need_merged: bool) -> tuple[Any, dict[str, str]]:
        """The ModelSet for ``run_dir`` and the names its models have in it.

        Call with ``self.lock`` held. Returns (model set, {"base": …, "adapter": …, ["merged": …]}).
        """
        from core.adapters import ModelSet

        run_dir = run_dir.resolve()
        marker = self.merged_marker(run_dir) if need_merged else None
        base = str(read_run_info(run_dir).get("resolved_base_model") or "")
        own = self._set is not None and self._key is not None and self._key[0] == str(run_dir)
        if own and (not need_merged or self._key[1] == marker):
            return self._set, self._names(run_dir)
        if self._set is not None and not own and not need_merged and base and base == self._base:
            if str(run_dir) not in self._extra:
                name = f"run{len(self._extra) + 1}"
                self._set.add_adapter(run_dir / "adapter", name)
                self._extra[str(run_dir)] = name
            return self._set, self._names(run_dir)
        self.clear()
        self._set = ModelSet.from_run(run_dir, merged=marker is not None)
        self._key, self._base, self._extra = (str(run_dir), marker), base, {}
        return self._set, self._names(run_dir)

    def _names(self, run_dir: Path) -> dict[str, str]:
        if self._key and self._key[0] == str(run_dir):
            names = {"base": "base", "adapter": "adapter"}
            if "merged" in self._set.names():
                names["merged"] = "merged"
            return names
        return {"base": "base", "adapter": self._extra[str(run_dir)]}

    def clear(self) -> None:
        import gc

        self._set, self._key, self._base, self._extra = None, None, None, {}
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
        row = map_row(records[i], prepared.guess, cfg.data.clean)
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

_TOKEN = re.compile(r"\S+|\s+")


def word_diff_html(text: str, reference: str) -> str:
    """``text`` with the words that differ from ``reference`` marked; everything HTML-escaped.

    Words only in ``text`` are in <mark>, words of ``reference`` missing here are struck through.
    """
    a, b = _TOKEN.findall(reference), _TOKEN.findall(text)
    out: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(html.escape("".join(b[j1:j2])))
            continue
        removed = "".join(a[i1:i2])
        if removed.strip():
            out.append(f'<del class="ls-del">{html.escape(removed)}</del>')
        added = "".join(b[j1:j2])
        if added:
            out.append(f'<mark class="ls-ins">{html.escape(added)}</mark>' if added.strip() else html.escape(added))
    return "".join(out)


def _badge(text: str, kind: str) -> str:
    colours = {"ok": ("#166534", "#dcfce7"), "warn": ("#92400e", "#fef3c7"), "info": ("#1e3a8a", "#dbeafe")}
    fg, bg = colours[kind]
    return (f'<span class="ls-badge ls-badge-{kind}" style="display:inline-block;padding:0.1rem 0.6rem;'
            f'border-radius:999px;font-size:0.85rem;font-weight:600;color:{fg};background:{bg}">'
            f'{html.escape(text)}</span>')


def divergence_badge(ids: list[int], reference_ids: list[int], lang: str) -> str:
    from core.generate import first_divergence

    n = first_divergence(reference_ids, ids)
    return _badge(t("identical", lang), "ok") if n is None else _badge(t("differs", lang, n=n + 1), "warn")


def pane_html(title: str, badge: str, body: str) -> str:
    return (f'<div class="ls-pane" style="border:1px solid #d1d5db;border-radius:10px;padding:0.75rem;'
            f'background:#fff;color:#111827;min-height:8rem">'
            f'<div style="display:flex;justify-content:space-between;gap:0.5rem;align-items:center;'
            f'margin-bottom:0.5rem"><strong>{html.escape(title)}</strong>{badge}</div>'
            f'<div class="ls-pane-text" style="white-space:pre-wrap;font-family:ui-monospace,Consolas,monospace;'
            f'font-size:0.95rem;line-height:1.45">{body}</div></div>')


def note_html(text: str) -> str:
    return f'<div class="ls-note" style="color:#374151;padding:0.5rem 0">{html.escape(text)}</div>'


def decoding_from(mode: str, temperature: float, top_p: float, seed: float, max_new_tokens: float):
    from core.generate import Decoding

    return Decoding(max_new_tokens=int(max_new_tokens), do_sample=mode == "sampling", temperature=float(temperature),
                    top_p=float(top_p), seed=int(seed))


def render_panes(gens: dict[str, Any], lang: str, has_merged: bool) -> tuple[str, str, str]:
    """Three pane HTMLs from {"base"|"adapter"|"merged": Generation}."""
    ref = gens["adapter"]
    out = []
    for which in WHICH:
        title = t(f"pane_{which}", lang)
        if which == "adapter":
            out.append(pane_html(title, _badge(t("reference_badge", lang), "info"), html.escape(ref.text)))
        elif which in gens:
            g = gens[which]
            out.append(pane_html(title, divergence_badge(g.token_ids, ref.token_ids, lang), word_diff_html(g.text, ref.text)))
        else:
            out.append(pane_html(title, "", note_html(t("merge_first", lang))))
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
        return (*blank, note_html(t("pick_run", lang)))
    try:
        run_dir = resolve_run(runs_dir, run)
        if run_template(run_dir) == "mcq_generation":
            if not (context or "").strip():
                return (*blank, note_html(t("empty_prompt", lang)))
            text = build_prompt(run_dir, {"context": context.strip()})
        else:
            if not (prompt or "").strip():
                return (*blank, note_html(t("empty_prompt", lang)))
            text = prompt
        decoding = decoding_from(mode, temperature, top_p, seed, max_new_tokens)
        has_merged = ModelCache.merged_marker(run_dir) is not None
        t0 = time.monotonic()
        gens: dict[str, Any] = {}
        with MODELS.lock:
            progress(0.0, desc=t("loading_models", lang))
            models, names = MODELS.get(run_dir, need_merged=has_merged)
            todo = [w for w in WHICH if w in names]
            for i, which in enumerate(todo):
                progress((i + 1) / (len(todo) + 1), desc=t("generating", lang, which=t(f"pane_{which}", lang)))
                gens[which] = models.generate([text], names[which], decoding)[0]
    except (StudioError, OSError) as e:
        return (*blank, error_html(e, lang))
    from gui.tab_merge import num

    status = note_html(t("timing", lang, n=len(gens), s=num(time.monotonic() - t0, lang)))
    return (*render_panes(gens, lang, has_merged), status)


def batch(run: str | None, split: str, n_rows: float, mode: str, temperature: float, top_p: float, seed: float,
          max_new_tokens: float, lang: str, runs_dir: str, progress: gr.Progress = gr.Progress()
          ) -> tuple[str | None, Any, str]:
    """Generate for the first ``n_rows`` rows of a held-out split with every model; write a CSV.

    Returns:
        (CSV path or None, preview DataFrame, status HTML)
    """
    if not run:
        return None, None, note_html(t("pick_run", lang))
    try:
        run_dir = resolve_run(runs_dir, run)
        rows = heldout_rows(run_dir, split)[: max(1, int(n_rows))]
        if not rows:
            return None, None, note_html(t("no_heldout", lang, split=t(f"split_{split}", lang)))
        prompts = [build_prompt(run_dir, r["row"]) for r in rows]
        decoding = decoding_from(mode, temperature, top_p, seed, max_new_tokens)
        has_merged = ModelCache.merged_marker(run_dir) is not None
        outputs: dict[str, list] = {}
        with MODELS.lock:
            progress(0.0, desc=t("loading_models", lang))
            models, names = MODELS.get(run_dir, need_merged=has_merged)
            todo = [w for w in WHICH if w in names]
            for i, which in enumerate(todo):
                progress((i + 1) / (len(todo) + 1), desc=t("generating", lang, which=t(f"pane_{which}", lang)))
                outputs[which] = models.generate(prompts, names[which], decoding)
    except (StudioError, OSError) as e:
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
    return str(out), preview, note_html(msg)


def on_run_change(run: str | None, lang: str, runs_dir: str) -> tuple[dict, dict, int, str]:
    """Show the prompt box or the context box (MCQ runs) and prefill it from the test split."""
    template = ""
    if run:
        try:
            template = run_template(resolve_run(runs_dir, run))
        except StudioError:
            template = ""
    prompt, context = example_input(run, 0, runs_dir)
    mcq = template == "mcq_generation"
    merged = ""
    try:
        if run and ModelCache.merged_marker(resolve_run(runs_dir, run)) is None:
            merged = note_html(t("merge_first", lang))
    except StudioError:
        pass
    return (gr.update(value=prompt, visible=not mcq), gr.update(value=context, visible=mcq), 0, merged)


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
    first = choices[0][1] if choices else None
    prompt0, context0 = example_input(first, 0, str(ctx.runs_dir))
    mcq0 = bool(first) and run_template(resolve_run(ctx.runs_dir, first)) == "mcq_generation"
    gr.Markdown(t("cmp_intro", lang))
    with gr.Row():
        run = gr.Dropdown(choices=choices, value=first, label=t("run", lang),
                          info=None if choices else t("no_runs", lang), scale=4)
        refresh = gr.Button(t("refresh_runs", lang), scale=1, size="sm")
    prompt = gr.Textbox(value=prompt0, label=t("prompt", lang), lines=6, visible=not mcq0)
    context = gr.Textbox(value=context0, label=t("context", lang), info=t("context_info", lang), lines=6,
                         visible=mcq0)
    other = gr.Button(t("other_row", lang), size="sm")
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
    run.change(on_run_change, [run, lang_state, runs_state], [prompt, context, example_index, merged],
               api_visibility="private")
    other.click(next_example, [run, example_index, runs_state], [prompt, context, example_index],
                api_visibility="private")
    generate.click(compare, [run, prompt, context, *decoding_inputs, lang_state, runs_state],
                   [base, adapter, merged, status], api_name="compare", concurrency_limit=1, concurrency_id="models")
    batch_btn.click(batch, [run, split, n_rows, *decoding_inputs, lang_state, runs_state],
                    [batch_file, batch_preview, batch_status], api_name="compare_batch", concurrency_limit=1,
                    concurrency_id="models")
    return CompareTab(run, refresh, prompt, context, other, mode, temperature, top_p, seed, max_new_tokens, generate,
                      status, base, adapter, merged, split, n_rows, batch_btn, batch_file, batch_preview, batch_status)
