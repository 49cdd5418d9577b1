"""The typed config: metadata complete, coercion, validation messages, presets."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from core import config as C
from core.errors import ConfigError
from core.presets import list_presets

ALL_FIELDS = [(s, f) for s in C.SECTIONS for f in C.section_fields(s)]


@pytest.mark.parametrize("section,f", ALL_FIELDS, ids=[f"{s}.{f.name}" for s, f in ALL_FIELDS])
def test_every_field_has_bilingual_help_label_and_group(section, f):
    meta = f.metadata
    for lang in ("en", "vi"):
        assert meta["help"][lang].strip(), f"{section}.{f.name} lacks {lang} help"
        assert meta["label"][lang].strip(), f"{section}.{f.name} lacks {lang} label"
    assert meta["group"] in ("basic", "advanced")
    tp = C.field_type(section, f.name)
    if tp in (int, float) and f.name not in ("learning_rate", "embedding_learning_rate"):
        assert meta["min"] is not None and meta["max"] is not None, f"{section}.{f.name} has no bounds"


def test_vietnamese_help_has_diacritics():
    for section, f in ALL_FIELDS:
        assert any(ord(ch) > 127 for ch in f.metadata["help"]["vi"]), f"{section}.{f.name}"


def test_defaults_are_valid():
    assert [i for i in C.validate(C.RunConfig()) if i.level == "error"] == []


@pytest.mark.parametrize("key,value,expected", [
    ("lora.r", "8", 8), ("lora.use_rslora", "true", True), ("lora.use_rslora", "off", False),
    ("train.learning_rate", "5e-5", 5e-5), ("lora.target_modules", "q_proj,v_proj", ["q_proj", "v_proj"]),
    ("lora.target_modules", "all-linear", "all-linear"), ("lora.modules_to_save", ["lm_head"], ["lm_head"]),
    ("model.bnb_4bit_quant_type", "fp4", "fp4"), ("train.num_train_epochs", 2, 2.0),
])
def test_set_value_coerces_to_declared_type(key, value, expected):
    cfg = C.RunConfig()
    C.set_value(cfg, key, value)
    section, name = key.split(".")
    assert getattr(getattr(cfg, section), name) == expected


@pytest.mark.parametrize("key,value,needle", [
    ("lora.r", "eight", "`lora.r` must be an integer, got 'eight'"),
    ("lora.use_rslora", "maybe", "`lora.use_rslora` must be true or false, got 'maybe'"),
    ("model.bnb_4bit_quant_type", "int3", "must be one of nf4, fp4, got 'int3'"),
    ("train.learning_rate", "nan", "must be a finite number"),
    ("lora.rank", 8, "unknown setting `lora.rank`"),
    ("optimizer.lr", 1, "unknown setting `optimizer.lr`"),
])
def test_bad_values_name_field_and_value(key, value, needle):
    with pytest.raises(ConfigError) as e:
        C.set_value(C.RunConfig(), key, value)
    assert needle in str(e.value)


def test_validate_collects_every_error_with_field_and_value():
    cfg = C.RunConfig()
    cfg.lora.r = 0
    cfg.train.learning_rate = -1e-4
    cfg.data.validation_fraction = 0.9
    errors = [i for i in C.validate(cfg) if i.level == "error"]
    text = "; ".join(map(str, errors))
    assert "lora.r: must be ≥ 1, got 0" in text
    assert "train.learning_rate: must be ≥ 0.0, got -0.0001" in text
    assert "data.validation_fraction: must be ≤ 0.5, got 0.9" in text
    with pytest.raises(ConfigError) as e:
        C.check(cfg)
    assert len(e.value.issues) == len(errors) >= 3


@pytest.mark.parametrize("changes,code", [
    ({"lora.r": 16, "lora.lora_alpha": 128}, "alpha_ratio"),
    ({"lora.r": 64, "lora.lora_alpha": 4, "lora.use_rslora": True}, "rslora_scale"),
    ({"lora.r": 256, "lora.lora_alpha": 256}, "high_rank"),
    ({"lora.modules_to_save": ["lm_head", "embed_tokens"]}, "heavy_modules"),
    ({"train.num_train_epochs": 10}, "many_epochs"),
    ({"train.embedding_learning_rate": 1e-5}, "embedding_lr_unused"),
])
def test_seed_advice_is_a_warning_with_reason(changes, code):
    cfg = C.RunConfig()
    for k, v in changes.items():
        C.set_value(cfg, k, v)
    issues = C.validate(cfg)
    hits = [i for i in issues if i.code == code]
    assert hits and all(i.level == "warning" for i in hits)
    assert not [i for i in issues if i.level == "error"]


def test_no_warning_for_sensible_settings():
    cfg = C.RunConfig()
    C.set_value(cfg, "lora.r", 64)
    C.set_value(cfg, "lora.lora_alpha", 64)
    C.set_value(cfg, "lora.use_rslora", True)
    assert C.validate(cfg) == []


def test_unknown_preset_key_is_rejected(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("lora:\n  r: 8\ntraining:\n  lr: 1\n")
    with pytest.raises(ConfigError) as e:
        C.load_yaml(p)
    assert "unknown preset key `training` in bad.yaml" in str(e.value)


def test_yaml_round_trip_keeps_every_value(tmp_path):
    cfg = C.RunConfig()
    C.set_value(cfg, "lora.target_modules", ["q_proj", "v_proj"])
    C.set_value(cfg, "data.column_map", {"question": "q"})
    C.set_value(cfg, "train.learning_rate", 3e-5)
    p = tmp_path / "x.yaml"
    p.write_text(C.dump_yaml(cfg))
    assert C.load_yaml(p) == cfg
    assert C.diff_from_default(cfg) == yaml.safe_load(C.dump_yaml(cfg, only_changes=True))


def test_parse_set():
    assert C.parse_set("lora.target_modules=[q_proj, v_proj]") == ("lora.target_modules", ["q_proj", "v_proj"])
    with pytest.raises(ConfigError, match="section.field=value"):
        C.parse_set("lora.r")


PRESETS = list_presets()


def test_presets_exist():
    names = {p.name for p in PRESETS}
    assert {"demo", "vi_mcq_sft", "vi_mcq_r256", "informatics_cpt", "qlora_nf4_r128", "price_qlora"} <= names


@pytest.mark.parametrize("preset", PRESETS, ids=[p.name for p in PRESETS])
def test_every_preset_loads_validates_and_holds_only_deltas(preset):
    raw = yaml.safe_load(preset.path.read_text(encoding="utf-8"))
    assert raw.get("description"), "a preset says what it is for"
    cfg = C.load_yaml(preset.path)
    assert [i for i in C.validate(cfg) if i.level == "error"] == []
    defaults = C.to_dict(C.RunConfig())
    for section in C.SECTIONS:
        for key, value in (raw.get(section) or {}).items():
            assert value != defaults[section][key], f"{preset.name}: {section}.{key} repeats the default"


def test_field_names_are_the_libraries_own():
    """A plain unpacking builds LoraConfig / TrainingArguments: names must exist there."""
    import inspect

    from peft import LoraConfig
    from transformers import BitsAndBytesConfig, TrainingArguments

    lora_names = {f.name for f in dataclasses.fields(LoraConfig)}
    assert {f.name for f in C.section_fields("lora")} <= lora_names
    ta = {f.name for f in dataclasses.fields(TrainingArguments)}
    # nproc is the launcher's (accelerate launch --num_processes), not the trainer's
    ours = {f.name for f in C.section_fields("train")} - {"warmup_ratio", "embedding_learning_rate", "precision",
                                                          "skip_prompt_logits", "nproc"}
    assert ours <= ta
    bnb = set(inspect.signature(BitsAndBytesConfig.__init__).parameters)
    assert {"load_in_4bit", "load_in_8bit", "bnb_4bit_quant_type", "bnb_4bit_use_double_quant",
            "bnb_4bit_compute_dtype"} <= bnb
