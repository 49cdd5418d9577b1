"""Hyperparameters tab: the generated config form, presets, live validation, memory estimate, CLI command.

Every edit reads the whole form back into a RunConfig (``gui.forms.read_form``), stores it in
``ctx.config`` (which the Dataset and Training tabs read), validates it with
``core.config.validate`` and, when a field that matters for memory changed, re-estimates memory.
"""

from __future__ import annotations

import html
import json
import logging
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import yaml

from core import config as C
from core.errors import ConfigError, StudioError
from core.models.memory import DataProfile, MemoryEstimate, data_profile, estimate_memory, human_bytes, human_count
from core.paths import PRESETS_DIR, REPO_ROOT, safe_join
from core.presets import list_presets
from core.run import slug
from gui import forms
from gui.edge import error_html, note_html
from gui.state import AppContext, effective_config
from core import locale
from core.locale import text as t

log = logging.getLogger("lora_studio.gui")

DEFAULT_PRESET = "demo"
USER_PRESETS = "presets"  # folder under runs_dir for the user's own presets
# Fields whose change alters the memory estimate; other edits do not recompute it.
MEMORY_KEYS = ("model.name_or_path", "model.load_in_4bit", "model.load_in_8bit", "model.dtype",
               "model.attn_implementation", "model.trust_remote_code", "lora.r", "lora.target_modules",
               "lora.modules_to_save", "lora.use_dora",
               "lora.layers_to_transform", "lora.lora_dropout", "model.bnb_4bit_compute_dtype",
               "data.max_length", "data.packing", "data.completion_only_loss", "train.per_device_train_batch_size",
               "train.gradient_checkpointing", "train.optim", "train.precision", "train.skip_prompt_logits",
               "train.train_sampling_strategy", "train.nproc")



# --------------------------------------------------------------------------- presets

def user_presets_dir(runs_dir: Path) -> Path:
    return Path(runs_dir) / USER_PRESETS


def preset_choices(runs_dir: Path, lang: str) -> list[tuple[str, str]]:
    """(label, path) of the bundled presets, then the user's own."""
    out = [(p.name, str(p.path)) for p in list_presets()]
    mine = user_presets_dir(runs_dir)
    if mine.is_dir():
        out += [(f"{p.stem} ({t('params.mine', lang)})", str(p)) for p in sorted(mine.glob("*.yaml"))]
    return out


def default_preset_path() -> str:
    path = PRESETS_DIR / f"{DEFAULT_PRESET}.yaml"
    return str(path) if path.exists() else ""


def initial_config() -> C.RunConfig:
    """The form's starting point: the default preset (the classroom demo), or the defaults."""
    path = default_preset_path()
    return C.load_yaml(path) if path else C.RunConfig()


def preset_dataset(path: str | Path) -> dict | None:
    """The dataset a preset names (data.source / hub_split / column_map), or None if it names none."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    data = raw.get("data") or {}
    if "source" not in data:
        return None
    default = C.DataConfig()
    return {"source": str(data["source"]), "hub_split": str(data.get("hub_split", default.hub_split)),
            "column_map": dict(data.get("column_map") or {})}


def save_preset(name: str, config: dict, dataset: dict, runs_dir: Path) -> Path:
    """Write the current config's deltas as ``<runs>/presets/<slug>.yaml``; the name cannot leave that folder.

    Raises:
        ConfigError: for an empty name or a config that cannot be built.
    """
    clean = slug(Path(str(name or "").replace("\\", "/")).name.removesuffix(".yaml"))
    if not (name or "").strip() or clean in ("", "run"):
        raise ConfigError("a preset needs a name", field="preset")
    folder = user_presets_dir(runs_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = safe_join(folder, f"{clean}.yaml")
    cfg = effective_config(config, dataset)
    path.write_text(C.dump_yaml(cfg, only_changes=True), encoding="utf-8")
    return path


def import_preset_file(file_path: str, runs_dir: Path) -> Path:
    """Check an uploaded YAML preset and copy it into the user presets folder (sanitized name)."""
    C.load_yaml(file_path)  # raises ConfigError naming every bad key
    folder = user_presets_dir(runs_dir)
    folder.mkdir(parents=True, exist_ok=True)
    target = safe_join(folder, f"{slug(Path(file_path).stem)}.yaml")
    target.write_text(Path(file_path).read_text(encoding="utf-8"), encoding="utf-8")
    return target


# --------------------------------------------------------------------------- checks (pure)

def _label(key: str, lang: str) -> str:
    section, _, name = key.partition(".")
    try:
        return C.field_spec(section, name).metadata["label"][lang]
    except (ConfigError, KeyError):
        return key


def issues_html(form_errors: list[ConfigError], issues: list[C.Issue], lang: str) -> str:
    """Errors then warnings, each with the field's label, its key and the engine's message."""
    errors = [(e.field or "", str(e)) for e in form_errors] + [(i.field, i.message) for i in issues
                                                               if i.level == "error"]
    warnings = [(i.field, i.message) for i in issues if i.level == "warning"]
    if not errors and not warnings:
        return note_html(t("params.ok", lang), "ok")

    def items(rows):
        return "".join(f'<li><b>{html.escape(_label(k, lang))}</b> <code>{html.escape(k)}</code>: '
                       f'{html.escape(m)}</li>' for k, m in rows)

    out = ""
    if errors:
        out += (f'<div class="ls-note ls-error" role="alert"><b>{html.escape(t("params.errors", lang, n=len(errors)))}'
                f'</b><ul>{items(errors)}</ul></div>')
    if warnings:
        out += (f'<div class="ls-note ls-warn"><b>{html.escape(t("params.warnings", lang, n=len(warnings)))}</b>'
                f'<ul>{items(warnings)}</ul></div>')
    return out


def check_config(config: dict, dataset: dict | None, lang: str, form_errors: list[ConfigError] | None = None) -> str:
    try:
        cfg = effective_config(config, dataset)
    except StudioError as e:
        return error_html(e, lang)
    return issues_html(form_errors or [], C.validate(cfg), lang)


def _flat(cfg: C.RunConfig) -> dict[str, Any]:
    d = C.to_dict(cfg)
    out = {k: d[k] for k in C.TOP_LEVEL}
    for s in C.SECTIONS:
        out.update({f"{s}.{k}": v for k, v in d[s].items()})
    return out


def _cli_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, dict)):
        return json.dumps(v, ensure_ascii=False)  # YAML reads JSON flow style
    return str(v)


def accelerate_display(nproc: int) -> str:
    from core.train.launch import WORKER, accelerate_command

    return shlex.join(accelerate_command(nproc, ["-m", "core", WORKER, "RUN_DIR"]))


def cli_command(cfg: C.RunConfig, preset_path: str | None) -> str:
    """``python -m core train <preset> --set k=v …`` reproducing ``cfg`` from the preset it started from."""
    path = Path(preset_path) if preset_path else None
    base = C.load_yaml(path) if path and path.is_file() else C.RunConfig()
    if path is None or not path.is_file():
        shown = "presets/demo.yaml"
        base = C.load_yaml(PRESETS_DIR / "demo.yaml") if (PRESETS_DIR / "demo.yaml").exists() else base
    else:
        try:
            shown = str(path.resolve().relative_to(REPO_ROOT))
        except ValueError:
            shown = str(path)
    now, then = _flat(cfg), _flat(base)
    sets = [f"{k}={_cli_value(v)}" for k, v in now.items()
            if v != then.get(k) and k not in ("description", "train.nproc")]
    parts = ["python -m core train", shlex.quote(shown)] + [f"--set {shlex.quote(s)}" for s in sets]
    n = cfg.train.nproc
    if n != then.get("train.nproc", 1) or n > 1:
        parts.append(f"--nproc {n}")
    line = " \\\n    ".join([" ".join(parts[:2])] + parts[2:]) if len(parts) > 2 else " ".join(parts)
    if n > 1:  # what the launcher runs: accelerate's DDP launcher over the processes (RUN_DIR: the new run folder)
        line += "\n# " + accelerate_display(n)
    return line


def memory_key(config: dict) -> str:
    flat = {}
    for key in MEMORY_KEYS:
        section, name = key.split(".")
        flat[key] = (config.get(section) or {}).get(name)
    return json.dumps(flat, sort_keys=True, default=str)


def memory_html(est: MemoryEstimate, lang: str) -> str:
    """Verdict, need vs available, the breakdown, trainable parameters, and the fixes when it is tight."""
    verdict = est.verdict
    need = human_bytes(est.total)
    have = human_bytes(est.device.available_bytes or est.device.total_bytes)
    rows = "".join(f"<tr><td>{html.escape(t('params.part.' + k, lang))}</td><td>{human_bytes(v)}</td></tr>"
                   for k, v in est.breakdown().items() if k != "total")
    rows += f"<tr class='ls-total'><td>{html.escape(t('params.part.total', lang))}</td><td>{need}</td></tr>"
    p = est.params
    params = t("params.params", lang, tr=human_count(p.trainable), total=human_count(p.total),
               pct=p.trainable_percent)
    out = (f'<div class="ls-verdict ls-{verdict}" id="hp-verdict"><div class="ls-verdict-title">'
           f'{html.escape(t("params.verdict." + verdict, lang))}</div>'
           f'<div>{t("params.need", lang, need=need, have=have, device=html.escape(est.device.name))}</div></div>'
           f'<p class="ls-params">{params}</p>'
           f'<table class="ls-breakdown">{rows}</table>')
    if est.length:
        basis = t("params.basis.data" if est.from_data else "params.basis.bound", lang, batch=est.batch_size,
                  length=est.length, positions=est.logit_positions)
        out += f'<p class="ls-basis" id="hp-basis">{html.escape(basis)}</p>'
    if est.precision is not None:
        pr = est.precision
        line = t("params.precision", lang, compute=pr.compute, weights=pr.weights,
                 why=t("params.precision.why." + pr.why, lang, weights=pr.weights))
        out += f'<p class="ls-basis" id="hp-precision" data-why="{pr.why}">{html.escape(line)}</p>'
    if est.auto_checkpointing_from:
        key = "params.auto_checkpointing" + (".activations" if est.auto_checkpointing_why == "activations" else "")
        out += (f'<p class="ls-basis" id="hp-auto-checkpointing">'
                f'{html.escape(t(key, lang, without=human_bytes(est.auto_checkpointing_from)))}</p>')
    if est.advice:
        tips = "".join(f"<li>{html.escape(t('params.advice.' + code, lang))}</li>" for code in est.advice
                       if locale.has("params.advice." + code))
        out += f'<div class="ls-advice"><b>{html.escape(t("params.advice", lang))}</b><ul>{tips}</ul></div>'
    return out


def local_profile(cfg: C.RunConfig) -> DataProfile | None:
    """The data's profile (lengths, learned positions, token stats), for local data only: never wait on the
    network here. Computed once per data section and model."""
    src = str(cfg.data.source)
    if not (src.startswith("sample:") or Path(src).is_file()):
        return None
    try:
        return data_profile(cfg)
    except (StudioError, OSError, ValueError):
        return None  # a data or model error is the Dataset tab's and the estimate's to show


def estimate(config: dict, dataset: dict | None, lang: str) -> str:
    """The memory estimate of the current config as HTML; an error message when the model is unknown."""
    try:
        cfg = effective_config(config, dataset)
        # the data's own lengths make the estimate tighter; without them it is an upper bound
        profile = local_profile(cfg)
        est = estimate_memory(cfg, profile=profile)
        out = memory_html(est, lang)
        n = cfg.train.nproc
        if n > 1:  # the estimate is that of one process; N of them share a CPU machine's memory
            key = "params.nproc.gpu" if est.device.kind == "cuda" else "params.nproc.cpu"
            out += (f'<p class="ls-basis" id="hp-nproc">'
                    f'{html.escape(t(key, lang, n=n, each=human_bytes(est.total), all=human_bytes(n * est.total)))}</p>')
        if profile is not None:  # the batches' padding, drawn at random and grouped by length
            b = cfg.train.per_device_train_batch_size
            key = ("params.padding.packed" if cfg.data.packing else "params.padding.on"
                   if cfg.train.train_sampling_strategy == "group_by_length" else "params.padding.off")
            padding = t(key, lang, random=100 * profile.padding_fraction(b),
                        grouped=100 * profile.padding_fraction(b, grouped=True))
            out += f'<p class="ls-basis" id="hp-padding">{html.escape(padding)}</p>'
        stats = profile.stats if profile else None
        if stats is not None and stats.n_answer_cut:  # what the lengths also tell: answers that max_length cuts
            out += note_html(t("params.answer_cut", lang, cut=stats.n_answer_cut, n=stats.n, m=stats.max_length,
                               need=stats.suggested_max_length), "warn")
        return out
    except Exception as e:  # noqa: BLE001 - the GUI edge
        return error_html(e, lang)


# --------------------------------------------------------------------------- handlers

def on_form(keys: list[str], lang: str, config: dict, values: list[Any]) -> tuple[dict, str]:
    """Read the form into ``ctx.config``; the coercion errors are shown at once."""
    base = None
    try:
        base = effective_config(config, None)
    except StudioError:
        pass
    cfg, errors = forms.read_form(keys, values, base=base)
    return C.to_dict(cfg), json.dumps([[e.field or "", str(e)] for e in errors], ensure_ascii=False)


def validate_config(config: dict, dataset: dict, preset: str | None, form_errors: str, lang: str) -> tuple[str, str]:
    """Validation messages (HTML) and the equivalent CLI command."""
    errs = [ConfigError(m, field=f) for f, m in json.loads(form_errors or "[]")]
    shown = check_config(config, dataset, lang, errs)
    try:
        cli = cli_command(effective_config(config, dataset), preset)
    except StudioError as e:
        cli = f"# {e}"
    return shown, cli


def maybe_estimate(config: dict, dataset: dict, last: str, lang: str) -> tuple:
    key = memory_key(config or {})
    if key == last:
        return gr.skip(), gr.skip()
    return estimate(config, dataset, lang), key


def apply_preset(path: str | None, dataset: dict, lang: str) -> tuple:
    """Fill the form from a preset; a preset that names a dataset also sets the Dataset tab's choice."""
    if not path:
        return (gr.skip(),) * (len(forms.form_keys()) + 3)
    try:
        cfg = C.load_yaml(path)
        named = preset_dataset(path)
    except Exception as e:  # noqa: BLE001
        return (*[gr.skip()] * len(forms.form_keys()), gr.skip(), gr.skip(), error_html(e, lang))
    new_dataset = named if named is not None else gr.skip()
    return (*forms.form_values(cfg), C.to_dict(cfg), new_dataset,
            note_html(t("params.loaded", lang, name=Path(path).stem), "ok"))


# --------------------------------------------------------------------------- layout

@dataclass
class ParamsTab:
    preset: gr.Dropdown
    load_file: gr.UploadButton
    save_name: gr.Textbox
    save: gr.Button
    preset_msg: gr.HTML
    form: forms.Form
    form_errors: gr.Textbox
    checks: gr.HTML
    memory: gr.HTML
    recompute: gr.Button
    cli: gr.Code
    memory_key: gr.State


def build(ctx: AppContext) -> ParamsTab:
    lang, runs_dir = ctx.lang, ctx.runs_dir
    cfg0 = effective_config(ctx.config.value, None)

    gr.Markdown(t("params.intro", lang), elem_classes=["ls-intro"])
    with gr.Row(equal_height=False, elem_classes=["ls-toolbar"]):
        preset = gr.Dropdown(preset_choices(runs_dir, lang), value=default_preset_path() or None,
                             label=t("params.preset", lang), elem_id="hp-preset", scale=3)
        load_file = gr.UploadButton(t("params.load_file", lang), file_types=[".yaml", ".yml"], size="md", scale=1,
                                    elem_id="hp-load-file")
        save_name = gr.Textbox(label=t("params.save_name", lang), scale=2, elem_id="hp-save-name")
        save = gr.Button(t("params.save", lang), size="md", scale=1, elem_id="hp-save")
    preset_msg = gr.HTML(elem_id="hp-preset-msg")
    with gr.Row():
        with gr.Column(scale=3):
            form = forms.build_form(lang, cfg0)
        with gr.Column(scale=2, elem_classes=["ls-side"]):
            gr.Markdown(f"### {t('params.checks', lang)}")
            checks = gr.HTML(elem_id="hp-checks")
            with gr.Row():
                gr.Markdown(f"### {t('params.memory', lang)}")
                recompute = gr.Button(t("params.recompute", lang), size="sm", elem_id="hp-recompute", scale=0,
                                      min_width=120)
            memory = gr.HTML(elem_id="hp-memory")
            cli = gr.Code(label=t("params.cli", lang), language="shell", interactive=False, elem_id="hp-cli",
                          lines=3, wrap_lines=True)
    form_errors = gr.Textbox(value="[]", visible=False)
    mem_key = gr.State("")

    keys = form.keys
    config, dataset = ctx.config, ctx.dataset

    def _read(cfg, *values):
        return on_form(keys, lang, cfg, list(values))

    # note: these closures' parameter names are what gradio_client shows for the API endpoints
    def _validate(config, dataset, preset, form_errors):
        return validate_config(config, dataset, preset, form_errors, lang)

    def _estimate(cfg, ds, last):
        return maybe_estimate(cfg, ds, last, lang)

    def _force_estimate(config, dataset):
        return estimate(config, dataset, lang), memory_key(config or {})

    def _apply(p, ds):
        return apply_preset(p, ds, lang)

    def _save(name, cfg, ds):
        if not (name or "").strip():
            return gr.skip(), note_html(t("params.save.noname", lang), "warn")
        try:
            path = save_preset(name, cfg, ds, runs_dir)
        except Exception as e:  # noqa: BLE001
            return gr.skip(), error_html(e, lang)
        return (gr.update(choices=preset_choices(runs_dir, lang), value=str(path)),
                note_html(t("params.saved", lang, path=str(path)), "ok"))

    def _import(f, ds):
        try:
            path = import_preset_file(f, runs_dir)
        except Exception as e:  # noqa: BLE001
            return (gr.skip(), *[gr.skip()] * (len(keys) + 2), error_html(e, lang))
        return (gr.update(choices=preset_choices(runs_dir, lang), value=str(path)), *apply_preset(str(path), ds, lang))

    validate_args = dict(fn=_validate, inputs=[config, dataset, preset, form_errors], outputs=[checks, cli])
    estimate_args = dict(fn=_estimate, inputs=[config, dataset, mem_key], outputs=[memory, mem_key])

    gr.on([c.input for c in form.components], _read, [config, *form.components], [config, form_errors],
          api_name=False, trigger_mode="always_last"
          ).then(api_name="validate_config", **validate_args
                 ).then(api_name=False, trigger_mode="always_last", **estimate_args)
    preset.input(_apply, [preset, dataset], [*form.components, config, dataset, preset_msg], api_name=False
                 ).then(lambda: "[]", None, form_errors, api_name=False
                        ).then(api_name=False, **validate_args).then(api_name=False, **estimate_args)
    load_file.upload(_import, [load_file, dataset], [preset, *form.components, config, dataset, preset_msg],
                     api_name=False).then(api_name=False, **validate_args).then(api_name=False, **estimate_args)
    save.click(_save, [save_name, config, dataset], [preset, preset_msg], api_name=False
               ).then(api_name=False, **validate_args)
    recompute.click(_force_estimate, [config, dataset], [memory, mem_key], api_name="estimate_memory")
    # the Dataset tab changes data.source: the checks and the CLI command follow
    dataset.change(api_name=False, **validate_args)
    return ParamsTab(preset, load_file, save_name, save, preset_msg, form, form_errors, checks, memory, recompute, cli,
                     mem_key)


def initial_load(tab: ParamsTab, ctx: AppContext):
    """Event args for gui.app's ``demo.load``: checks, CLI command and memory estimate on page open."""

    def _initial(cfg, ds, p):
        shown, cli = validate_config(cfg, ds, p, "[]", ctx.lang)
        return shown, cli, estimate(cfg, ds, ctx.lang), memory_key(cfg or {})

    return _initial, [ctx.config, ctx.dataset, tab.preset], [tab.checks, tab.cli, tab.memory, tab.memory_key]
