"""Handler tests of the app frame and the Dataset, Hyperparameters and Training tabs, without a browser.

Handlers are plain functions; they are called here as the GUI calls them, on real data, the real
SmolLM2 tokenizer and (for the Training tab) one short micro-model run.
"""

from __future__ import annotations

import html
import json
import re
import shlex
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, SHORT_MCQ, micro_overrides

from core import config as C
from core.errors import ConfigError, DataError
from core.locale import text as t
from gui import forms
from gui.render import figures
from gui.state import effective_config
from gui.tabs import dataset as tab_dataset
from gui.tabs import params as tab_params
from gui.tabs import training as tab_training

OPTIONAL_TABS = ("tab_merge", "tab_compare", "tab_classroom", "tab_analysis")


# ----------------------------------------------------------------------------- the form

def _other_value(spec: forms.WidgetSpec, current):
    """A valid value different from ``current`` for a field, from its declared type and bounds."""
    if spec.kind == "bool":
        return not current
    if spec.kind == "choice":
        return next(c for c in spec.choices if c != current)
    if spec.kind == "model":
        return "/some/local/model-folder"
    if spec.kind == "modules":
        return ["q_proj", "v_proj"]
    if spec.kind == "int":
        return int(spec.maximum) if current != spec.maximum else int(spec.minimum)
    if spec.kind == "float":
        return (spec.minimum + spec.maximum) / 2 if current != (spec.minimum + spec.maximum) / 2 else spec.minimum
    if spec.kind == "list":
        item = forms.C.field_type(*spec.key.split("."))
        return [0, 2] if "int" in str(item) else ["lm_head", "embed_tokens"]
    return "some text, with a comma"


@pytest.mark.parametrize("key", forms.form_keys())
def test_form_round_trip_of_every_field(key):
    cfg = C.RunConfig()
    spec = forms.widget_spec(key, "en")
    section, name = key.split(".")
    value = _other_value(spec, getattr(getattr(cfg, section), name))
    C.set_value(cfg, key, value)
    back, errors = forms.read_form(forms.form_keys(), forms.form_values(cfg))
    assert errors == []
    assert C.to_dict(back) == C.to_dict(cfg)


def test_form_shows_every_config_field_but_the_dataset_choice():
    every = {f"{s}.{f.name}" for s in C.SECTIONS for f in C.section_fields(s)}
    assert set(forms.form_keys()) == every - set(forms.DATASET_KEYS)


def test_all_linear_and_lists_read_back():
    keys = ["lora.target_modules", "lora.layers_to_transform", "lora.modules_to_save"]
    cfg, errors = forms.read_form(keys, [["q_proj", "all-linear"], "0, 3", ""])
    assert errors == [] and cfg.lora.target_modules == "all-linear"
    assert cfg.lora.layers_to_transform == [0, 3] and cfg.lora.modules_to_save == []


def test_form_errors_are_collected_with_their_field():
    keys = ["lora.r", "lora.layers_to_transform", "train.learning_rate", "lora.lora_alpha"]
    cfg, errors = forms.read_form(keys, [None, "one, two", "fast", 64])
    assert [e.field for e in errors] == ["lora.r", "lora.layers_to_transform", "train.learning_rate"]
    assert all(isinstance(e, ConfigError) for e in errors)
    assert cfg.lora.lora_alpha == 64 and cfg.lora.r == C.LoraSection().r  # a bad field keeps its value


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_labels_and_help_come_from_the_config_metadata(lang):
    import gradio as gr

    with gr.Blocks():
        form = forms.build_form(lang, C.RunConfig())
    for key, comp in zip(form.keys, form.components):
        meta = C.field_spec(*key.split(".")).metadata
        assert comp.label == meta["label"][lang], key
        assert comp.info == meta["help"][lang], key
        assert comp.elem_id == forms.elem_id(key)
    r = form.component("lora.r")
    assert (r.minimum, r.maximum) == (1, 1024)  # bounds from the metadata too
    assert isinstance(form.component("lora.lora_dropout"), gr.Slider)
    assert isinstance(form.component("model.load_in_4bit"), gr.Checkbox)
    assert isinstance(form.component("train.optim"), gr.Dropdown)


# ----------------------------------------------------------------------------- validation, presets, CLI

def test_validation_lists_errors_and_warnings_with_field_names():
    cfg = C.RunConfig()
    cfg.model.name_or_path = ""
    cfg.lora.lora_alpha = 1000  # alpha/r far outside 1–4: a warning
    out = tab_params.check_config(C.to_dict(cfg), None, "vi")
    assert "1 lỗi" in out and "1 cảnh báo" in out
    assert "<code>model.name_or_path</code>" in out and "Mô hình gốc" in out
    assert "<code>lora.lora_alpha</code>" in out
    ok = tab_params.check_config(C.to_dict(C.load_yaml(REPO / "presets" / "demo.yaml")), None, "en")
    assert "valid" in ok and "warning" not in ok


def test_memory_panel_warns_when_max_length_cuts_the_answers(micro_model):
    """The estimate reads the data's lengths: SmolLM2's tokenizer makes the bundled MCQs ~650 tokens long."""
    cfg = C.load_yaml(REPO / "presets" / "demo.yaml")
    cfg.model.name_or_path = str(micro_model)
    from core import data as D
    from core.models.load import load_tokenizer
    longest = D.prepare(cfg.data, load_tokenizer(str(micro_model))).stats.max
    assert longest > 512
    out = tab_params.estimate(C.to_dict(cfg), None, "vi")
    assert "dài hơn độ dài tối đa (512 token)" in out and f"tăng data.max_length lên {-(-longest // 64) * 64}" in out
    cfg.data.max_length = 1024
    assert "bị cụt" not in tab_params.estimate(C.to_dict(cfg), None, "vi")


def test_validate_config_handler_shows_form_errors_and_a_reproducing_cli(tmp_path):
    cfg = C.load_yaml(REPO / "presets" / "demo.yaml")
    cfg.lora.r = 8
    cfg.lora.target_modules = ["q_proj", "v_proj"]
    dataset = {"source": "sample:informatics_book", "hub_split": "train", "column_map": {}}
    errs = json.dumps([["lora.r", "`lora.r` must be an integer, got 'x'"]])
    shown, cli = tab_params.validate_config(C.to_dict(cfg), dataset, str(REPO / "presets" / "demo.yaml"), errs, "en")
    assert "lora.r" in shown and "must be an integer" in shown
    assert cli.startswith("python -m core train presets/demo.yaml")
    args = shlex.split(cli.replace("\\\n", " "))
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    assert sorted(s.split("=")[0] for s in sets) == ["data.source", "lora.r", "lora.target_modules"]
    again = C.load_yaml(REPO / "presets" / "demo.yaml", sets)
    assert C.to_dict(again) == C.to_dict(effective_config(C.to_dict(cfg), dataset))


def test_saving_a_preset_cannot_escape_its_folder(tmp_path):
    runs = tmp_path / "runs"
    cfg = C.RunConfig()
    cfg.lora.r = 8
    for name in ("../../x", "/etc/passwd", "..\\..\\evil", "nice name.yaml"):
        path = tab_params.save_preset(name, C.to_dict(cfg), None, runs)
        assert path.parent == (runs / tab_params.USER_PRESETS).resolve(), name
        assert C.load_yaml(path).lora.r == 8
    assert not (tmp_path / "x.yaml").exists() and not list(tmp_path.glob("*.yaml"))
    saved = (runs / tab_params.USER_PRESETS / "nice-name.yaml").read_text()
    assert saved.strip() == "lora:\n  r: 8"  # only the deltas
    with pytest.raises(ConfigError):
        tab_params.save_preset("   ", C.to_dict(cfg), None, runs)
    labels = [label for label, _ in tab_params.preset_choices(runs, "en")]
    assert "demo" in labels and "nice-name (mine)" in labels


def test_applying_a_preset_fills_every_field_and_names_its_dataset():
    path = str(REPO / "presets" / "informatics_cpt.yaml")
    out = tab_params.apply_preset(path, {"source": "x"}, "en")
    n = len(forms.form_keys())
    values, config, dataset = out[:n], out[n], out[n + 1]
    assert dict(zip(forms.form_keys(), values))["lora.modules_to_save"] == "lm_head, embed_tokens"
    assert config["train"]["lr_scheduler_type"] == "cosine"
    assert dataset == {"source": "sample:informatics_book", "hub_split": "train", "column_map": {}}


def test_imported_preset_is_checked_and_copied_under_a_clean_name(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lora:\n  rank: 8\n")
    with pytest.raises(ConfigError):
        tab_params.import_preset_file(str(bad), tmp_path / "runs")
    good = tmp_path / "My Preset!.yaml"
    good.write_text("lora:\n  r: 4\n")
    copied = tab_params.import_preset_file(str(good), tmp_path / "runs")
    assert copied.name == "my-preset.yaml" and copied.parent == (tmp_path / "runs" / "presets").resolve()


def test_memory_estimate_html_has_verdict_breakdown_and_translated_advice(micro_model):
    cfg = C.RunConfig()
    cfg.model.name_or_path = str(micro_model)
    out = tab_params.estimate(C.to_dict(cfg), None, "vi")
    assert 'id="hp-verdict"' in out and "Tham số được huấn luyện" in out and "Tổng" in out
    assert 'id="hp-basis"' in out and "phân vị 95" in out  # the bundled sample is local: its own lengths count
    assert re.search(r'id="hp-padding">Token đệm: \d+% .* sẽ còn \d+%', out), out
    # the precision auto picks on this machine, and why, in words
    from core.models.load import training_precision

    why = training_precision(cfg.model, "auto").why
    assert f'data-why="{why}"' in out and t(f"params.precision.why.{why}", "vi") in html.unescape(out)
    pinned = tab_params.estimate(C.to_dict(C.RunConfig(model=C.ModelConfig(name_or_path=str(micro_model)),
                                                       train=C.TrainSection(precision="fp32"))), None, "en")
    assert 'data-why="chosen"' in pinned and "Precision: fp32 compute, float32 frozen weights. As set" in pinned
    cfg.train.train_sampling_strategy = "group_by_length"
    on = tab_params.estimate(C.to_dict(cfg), None, "en")
    assert re.search(r'id="hp-padding">Padding: \d+% .* batched together \(\d+% at random\)', on), on
    from core.models.memory import estimate_memory
    est = estimate_memory(cfg)
    est.advice = ["lower_rank", "load_in_4bit"]
    html_ = tab_params.memory_html(est, "vi")
    assert "giảm hạng r" in html_ and "4-bit" in html_
    missing = tab_params.estimate(C.to_dict(C.RunConfig(model=C.ModelConfig(name_or_path="/no/such/model"))), None,
                                  "en")
    assert "ls-error" in missing and "config.json" in missing


# ----------------------------------------------------------------------------- dataset

def test_upload_name_is_sanitized_and_stays_in_the_upload_folder(tmp_path):
    assert tab_dataset.sanitize_filename("../../etc/pass wd;rm -rf ~.JSONL") == "pass wd_rm -rf.jsonl"
    assert tab_dataset.sanitize_filename("..") == "data"
    src = tmp_path / "we$ird name.jsonl"
    src.write_text(SHORT_MCQ.read_text(encoding="utf-8"), encoding="utf-8")
    uploads = tmp_path / "uploads"
    stored = tab_dataset.store_upload(src, uploads)
    assert stored.parent == uploads.resolve() and stored.name == "we_ird name.jsonl"
    exe = tmp_path / "x.exe"
    exe.write_text("MZ")
    with pytest.raises(DataError):
        tab_dataset.store_upload(exe, uploads)
    for typed in ("../x.jsonl", "/etc/passwd", "../../outside.csv"):
        with pytest.raises(DataError):
            tab_dataset.resolve_user_source(typed, uploads)
    assert tab_dataset.resolve_user_source(stored.name, uploads) == str(stored)
    assert tab_dataset.resolve_user_source("owner/dataset", uploads) == "owner/dataset"
    assert tab_dataset.resolve_user_source("sample:books_price", uploads) == "sample:books_price"


def test_preview_row_escapes_and_highlights_the_learned_part(tokenizer):
    rows = [{"context": "Đoạn <b>văn</b> & <script>alert(1)</script>", "question": "Câu <i>hỏi</i>?",
             "answer_a": "<A>", "answer_b": "B", "answer_c": "C", "answer_d": "D", "correct_answer": "A"}]
    frame = pd.DataFrame(rows)
    html_, count = tab_dataset.row_preview(frame, 0, C.DataConfig(), tokenizer, "en")
    assert "<script>" not in html_ and "&lt;script&gt;" in html_ and "<b>" not in html_
    learned = re.findall(r'<mark class="ls-learned">(.*?)</mark>', html_, flags=re.S)
    prompt = re.findall(r'<span class="ls-prompt">(.*?)</span>', html_, flags=re.S)
    body = [m for m in learned if "hỏi" in m]
    assert body and "Câu &lt;i&gt;hỏi&lt;/i&gt;?" in body[0] and "&lt;A&gt;" in body[0]
    assert any("Đoạn &lt;b&gt;văn&lt;/b&gt; &amp;" in p for p in prompt)
    n, k = map(int, re.findall(r"\*\*(\d+)\*\*", count))
    assert 0 < k < n
    cpt, _ = tab_dataset.row_preview(frame, 0, C.DataConfig(completion_only_loss=False), tokenizer, "en")
    assert "ls-prompt\">" not in cpt.split("</div>", 1)[1]  # loss everywhere: nothing greyed


def test_histogram_counts_truncated_filtered_and_dropped(tokenizer):
    frame = pd.read_json(SHORT_MCQ, lines=True)
    cfg = C.DataConfig(source=str(SHORT_MCQ), max_length=300, min_tokens=250)
    report = tab_dataset.token_report(frame, cfg, tokenizer)
    lengths = report.lengths
    train_rows = int((frame["split"] == "train").sum())
    assert len(lengths) == train_rows and report.n_test == len(frame) - train_rows
    assert report.stats.n_truncated == sum(1 for x in lengths if x > 300) > 0
    assert report.stats.n_filtered == sum(1 for x in lengths if x < 250) > 0
    fig = tab_dataset.histogram_figure(lengths, 300, "vi")
    assert list(fig.data[0].x) == lengths
    assert any(s.x0 == 300 == s.x1 for s in fig.layout.shapes)  # the vertical line at data.max_length
    md = tab_dataset.stats_markdown(report, "en")
    assert f"Cut at max length (300): **{report.stats.n_truncated}**" in md
    assert f"filtered by length: **{report.stats.n_filtered}**" in md


def test_load_dataset_views_mapping_and_pages(tmp_path, micro_model):
    config = C.to_dict(C.RunConfig(model=C.ModelConfig(name_or_path=str(micro_model))))
    out = tab_dataset.load_dataset("sample:vi_informatics_mcq", "train", config, "vi", tmp_path)
    names = tab_dataset._output_names()
    view = dict(zip(names, out))
    assert view["dataset"] == {"source": "sample:vi_informatics_mcq", "hub_split": "train", "column_map": {}}
    assert view["last_key"] == tab_dataset.view_key(view["dataset"], config)
    assert "341 dòng" in view["info"] and "mcq_generation" in view["schema"]
    assert len(view["table"]) == tab_dataset.PAGE_SIZE and list(view["table"]["#"])[:2] == [1, 2]
    assert view["map_question"]["visible"] and view["map_question"]["value"] == "question"
    assert not view["map_price"]["visible"]
    assert "ls-learned" in view["preview"] and view["hist"] is not None
    table, label, page = tab_dataset.change_page(view["dataset"], 34, +1, "en")
    assert page == 34 and len(table) == 1 and "Page 35 of 35" in label  # clamped at the last page
    # a hand-made mapping: swap two options; the schema text says so
    roles = [view[f"map_{r}"]["value"] for r in tab_dataset.ROLES]
    i, j = tab_dataset.ROLES.index("answer_a"), tab_dataset.ROLES.index("answer_b")
    roles[i], roles[j] = roles[j], roles[i]
    remapped = dict(zip(names, tab_dataset.remap(view["dataset"], config, 1, "vi", tmp_path, *roles)))
    assert remapped["dataset"]["column_map"]["answer_a"] == "answer_b"
    assert "thủ công" in remapped["schema"]


def test_load_dataset_errors_are_messages(tmp_path):
    out = dict(zip(tab_dataset._output_names(), tab_dataset.load_dataset("../secret.csv", "train", {}, "en", tmp_path)))
    assert "ls-error" in out["info"] and "escapes" in out["info"]
    out = dict(zip(tab_dataset._output_names(), tab_dataset.load_dataset("", "train", {}, "vi", tmp_path)))
    assert "Hãy gõ" in out["info"]


def test_refresh_skips_when_nothing_the_preview_uses_changed(tmp_path, micro_model):
    config = C.to_dict(C.RunConfig(model=C.ModelConfig(name_or_path=str(micro_model))))
    dataset = {"source": "sample:books_price", "hub_split": "train", "column_map": {}}
    key = tab_dataset.view_key(dataset, config)
    config2 = json.loads(json.dumps(config))
    config2["lora"]["r"] = 4  # not used by the previews
    assert tab_dataset.view_key(dataset, config2) == key
    skipped = tab_dataset.refresh(dataset, config2, 0, 1, key, "en", tmp_path)
    assert all(isinstance(x, type(skipped[0])) for x in skipped) and not isinstance(skipped[0], tuple)
    config2["data"]["max_length"] = 64
    fresh = dict(zip(tab_dataset._output_names(), tab_dataset.refresh(dataset, config2, 0, 1, key, "en", tmp_path)))
    assert fresh["last_key"] == tab_dataset.view_key(dataset, config2) != key and "price" in fresh["schema"]
    # it never writes the dataset choice back: an event that set both may have given it a stale one
    assert isinstance(fresh["dataset"], type(skipped[0]))


# ----------------------------------------------------------------------------- training

def test_status_is_fast_and_json_safe_without_any_run(tmp_path):
    t0 = time.perf_counter()
    status = tab_training.training_status(tmp_path)
    assert time.perf_counter() - t0 < 0.5
    assert json.loads(json.dumps(status))["status"] in ("idle", "finished", "stopped", "failed")


def test_progress_html_and_curves():
    status = {"status": "training", "step": 5, "max_steps": 20, "epoch": 0.5, "elapsed": 65, "eta": 195,
              "tokens_per_s": 1234.5, "loss": 2.5, "run_dir": "/tmp/<run>", "warnings": ["<w>"]}
    out = tab_training.progress_html(status, "vi")
    assert "bước 5 / 20" in out and "25%" in out and "01:05" in out and "03:15" in out
    assert "&lt;run&gt;" in out and "&lt;w&gt;" in out and 'data-step="5"' in out
    records = [{"step": i, "loss": 3.0 - 0.1 * i, "learning_rate": 1e-4, "grad_norm": 1.0} for i in range(1, 6)]
    records.append({"step": 5, "eval_loss": 2.6})
    fig = figures.curves_figure(records, "en")
    names = [tr.name for tr in fig.data]
    assert names[:3] == ["loss (raw)", "loss (smoothed)", "eval loss"] and len(fig.data[0].x) == 5
    assert figures.ema([1.0, 0.0], 0.5) == [1.0, 0.5]


def test_start_status_refusal_and_stop_on_a_micro_run(micro_model, tmp_path):
    cfg = C.load_yaml(REPO / "presets" / "demo.yaml", micro_overrides(micro_model, **{"train.max_steps": 200}))
    config = C.to_dict(cfg)
    dataset = {"source": cfg.data.source, "hub_split": "train", "column_map": {}}
    msg = tab_training.start_training(config, dataset, "gui test", "en", tmp_path)
    assert msg == "", msg  # no news is good news: the progress panel takes over
    try:
        again = tab_training.start_training(config, dataset, "second", "vi", tmp_path)
        assert "ls-error" in again and "already running" in again  # the JobError, as a message
        worst, deadline = 0.0, time.time() + 120
        while time.time() < deadline:
            t0 = time.perf_counter()
            status = tab_training.training_status(tmp_path)
            worst = max(worst, time.perf_counter() - t0)
            json.dumps(status)
            if status["status"] == "training" and status["step"] >= 2:
                break
            time.sleep(0.2)
        assert status["status"] == "training" and status["live"], status
        assert worst < 0.25, worst
        progress, plot, log, key, selected, seen, _ = tab_training.poll("", None, "en", tmp_path)
        assert selected == status["run_dir"] and seen == selected and 'data-status="training"' in progress
        assert len(plot.data[0].x) >= 1 and "run folder" in log
        assert tab_training.poll(key, seen, "en", tmp_path)[4] is not selected  # the selected run is set once
    finally:
        stopped = tab_training.stop_training("en")
        job = tab_training.current_job()
        assert job is not None and job.wait(120)
    assert "Stopping" in stopped and job.state == "stopped"
    assert (Path(job.run_dir) / "adapter" / "adapter_config.json").exists()
    assert Path(job.run_dir).name == "gui-test"
    assert "No training is running" in tab_training.stop_training("en")
    choices = tab_training.run_choices(tmp_path)
    assert choices and choices[0][1] == str(job.run_dir)
    overlay = figures.runs_overlay_figure([c[1] for c in choices], "en")
    assert overlay.data and overlay.data[0].name == "gui-test"


def test_continue_trains_the_selected_finished_run_more_and_refuses_what_is_not_a_run(micro_model, tmp_path):
    from core.train.job import TrainingJob

    cfg = C.load_yaml(REPO / "presets" / "demo.yaml", micro_overrides(micro_model, **{"train.max_steps": 2,
                                                                                      "train.save_steps": 1}))
    run = TrainingJob(cfg, tmp_path).run()
    assert "Choose a run" in tab_training.continue_training(None, 2, "extend", "en", tmp_path)
    refused = tab_training.continue_training(str(tmp_path / "nope"), 2, "extend", "en", tmp_path)
    assert "ls-error" in refused and "not a run folder" in refused
    assert tab_training.continue_training(str(run), 2, "restart", "en", tmp_path) == ""
    job = tab_training.current_job()
    assert job is not None and job.wait(120) and job.state == "finished", job.error_message
    info = json.loads((run / "run.json").read_text())
    assert info["step"] == 4 and info["continued"][-1]["schedule"] == "restart"
    status = tab_training.training_status(tmp_path)
    assert status["run_dir"] == str(run) and status["step"] == 4


def test_sweep_section_trains_the_grid_and_shows_the_table_best_marked_and_overlaid_curves(micro_model, tmp_path):
    from gui.tabs import sweep as tab_sweep

    cfg = C.load_yaml(REPO / "presets" / "demo.yaml", micro_overrides(micro_model))
    config, dataset = C.to_dict(cfg), {"source": cfg.data.source, "hub_split": "train", "column_map": {}}
    bad, name = tab_sweep.start_sweep(config, dataset, "lora.nope=1,2", "", "s", "en", tmp_path)
    assert "ls-error" in bad and "lora.nope" in bad and name == ""
    bad, _ = tab_sweep.start_sweep(config, dataset, "lora.r=4,8", "train.max_steps=zero", "s", "en", tmp_path)
    assert "ls-error" in bad and "train.max_steps" in bad
    assert not (tmp_path / "sweeps").exists() or not any((tmp_path / "sweeps").rglob("*.yaml"))
    msg, name = tab_sweep.start_sweep(config, dataset, "lora.r=4,8", "train.max_steps=2", "", "en", tmp_path)
    assert "2 runs" in msg and name == "gui-r"
    tab_sweep._thread.join(300)
    table, overlay, status, key = tab_sweep.view(name, "", "en", tmp_path)
    rows = table["value"]
    assert [r[2] for r in rows] == ["4", "8"] and [r[0] for r in rows].count("★") == 1
    assert all(r[6] == "Finished" for r in rows) and "2 of 2 runs finished" in status
    assert [r[3] for r in rows] == [8.0, 4.0]  # alpha 32 over r 4 and 8
    assert rows[0][5].startswith("above 4") and rows[1][5] == "within 1–4"
    assert {tr.name for tr in overlay.data} >= {rows[0][1], rows[1][1]}
    assert tab_sweep.view(name, key, "en", tmp_path)[3] == key  # nothing new: nothing re-sent
    again, _ = tab_sweep.start_sweep(dict(config, lora=dict(config["lora"], lora_alpha=64)), dataset, "lora.r=4,8",
                                     "train.max_steps=2", "gui-r", "en", tmp_path)
    assert "ls-error" in again and "other settings" in again


def test_start_with_a_bad_config_names_the_field(tmp_path):
    cfg = C.RunConfig()
    cfg.train.max_steps = 0
    out = tab_training.start_training(C.to_dict(cfg), None, "", "en", tmp_path)
    assert "ls-error" in out and "train.max_steps" in out
    assert not any(tmp_path.iterdir())


# ----------------------------------------------------------------------------- texts and the frame

@pytest.fixture(scope="module")
def app_vi(tmp_path_factory):
    from gui.app import build_app

    return build_app("vi", tmp_path_factory.mktemp("app-runs"), switch={"vi": "./", "en": "en/"})


def test_app_has_the_stable_api_names(app_vi):
    names = {fn.api_name for fn in app_vi.fns.values()}
    assert {"load_dataset", "preview_row", "validate_config", "estimate_memory", "start_training",
            "training_status", "stop_training"} <= names


def test_header_switches_language():
    from gui.app import header_html

    out = header_html("vi", {"vi": "./", "en": "en/"})
    assert '<a href="en/" lang="en" id="lang-en">English</a>' in out
    assert '<span class="ls-lang-current" lang="vi">Tiếng Việt</span>' in out and "LoRA Studio" in out
