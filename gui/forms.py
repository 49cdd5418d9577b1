"""The Hyperparameters form, generated from the config tree (as transformers' hf_argparser does for a CLI).

bool → Checkbox, Literal → Dropdown, int/float → Number (a Slider when the range is short),
str → Textbox, list → comma-separated Textbox, target_modules → multiselect Dropdown. Labels, help,
defaults and bounds all come from the field metadata in core/config.py; nothing is typed here by
hand, so the form, the presets and the CLI cannot disagree. Reading the form back is building a
RunConfig with ``core.config.set_value``, so the coercion and its errors are the CLI's own.

The pure part (:func:`widget_spec`, :func:`form_values`, :func:`read_form`) needs no gradio and
is what the handler tests exercise; :func:`build_form` turns the specs into components.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union, get_origin

from core import config as C
from core.errors import ConfigError
from core.models.registry import model_choices
from core.locale import text as t


# Chosen on the Dataset tab, not in this form.
DATASET_KEYS = ("data.source", "data.hub_split", "data.column_map")
# The projection names of the common decoder families (Llama, Qwen2, Gemma, Mistral); all-linear covers any.
KNOWN_MODULES = ("all-linear", "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
SLIDER_MAX_TICKS = 200  # a slider only when it has at most this many positions


@dataclass(frozen=True)
class WidgetSpec:
    """What widget one config field gets; everything read from its declaration."""

    key: str  # "lora.r"
    kind: str  # bool | choice | int | float | str | list | modules | model
    label: str
    info: str
    group: str  # basic | advanced
    choices: tuple = ()
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    slider: bool = False


def form_keys() -> list[str]:
    """Every config field the form shows, section by section, in declaration order."""
    return [f"{s}.{f.name}" for s in C.SECTIONS for f in C.section_fields(s) if f"{s}.{f.name}" not in DATASET_KEYS]


def widget_spec(key: str, lang: str) -> WidgetSpec:
    section, name = key.split(".", 1)
    f = C.field_spec(section, name)
    meta = f.metadata
    tp = C.field_type(section, name)
    common = dict(key=key, label=meta["label"][lang], info=meta["help"][lang], group=meta.get("group", "advanced"))
    choices = C.literal_choices(tp)
    if key == "model.name_or_path":
        return WidgetSpec(kind="model", choices=tuple(model_choices()), **common)
    if key == "lora.target_modules":
        return WidgetSpec(kind="modules", choices=KNOWN_MODULES, **common)
    if choices is not None:
        return WidgetSpec(kind="choice", choices=tuple(choices), **common)
    if tp is bool:
        return WidgetSpec(kind="bool", **common)
    if tp in (int, float):
        lo, hi, step = meta.get("min"), meta.get("max"), meta.get("step")
        slider = (lo is not None and hi is not None and step is not None and (hi - lo) / step <= SLIDER_MAX_TICKS)
        return WidgetSpec(kind="int" if tp is int else "float", minimum=lo, maximum=hi, step=step, slider=slider,
                          **common)
    if tp is str:
        return WidgetSpec(kind="str", **common)
    if get_origin(tp) is list or get_origin(tp) is Union:
        return WidgetSpec(kind="list", **common)
    raise TypeError(f"no widget for {key} of type {tp!r}")  # a new config type: teach the form about it


def specs(lang: str) -> list[WidgetSpec]:
    return [widget_spec(k, lang) for k in form_keys()]


# --------------------------------------------------------------------------- values in and out

def _get(cfg: C.RunConfig, key: str) -> Any:
    section, name = key.split(".", 1)
    return getattr(getattr(cfg, section), name)


def to_widget(spec_kind: str, value: Any) -> Any:
    """A config value as its widget holds it."""
    if spec_kind == "modules":
        return [value] if isinstance(value, str) else list(value)
    if spec_kind == "list":
        return ", ".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)
    return value


def from_widget(spec_kind: str, value: Any) -> Any:
    """A widget's value as ``set_value`` takes it (it does the coercion and raises ConfigError)."""
    if spec_kind == "modules":
        items = [value] if isinstance(value, str) else list(value or [])
        items = [str(v).strip() for v in items if str(v).strip()]
        return "all-linear" if "all-linear" in items else items
    if spec_kind in ("int", "float") and isinstance(value, str):
        return value.strip()
    return value


def form_values(cfg: C.RunConfig, keys: list[str] | None = None) -> list[Any]:
    """The widget values of ``cfg`` for ``keys`` (default: every form key), in order."""
    keys = keys or form_keys()
    kinds = {k: widget_spec(k, "en").kind for k in keys}
    return [to_widget(kinds[k], _get(cfg, k)) for k in keys]


def read_form(keys: list[str], values: list[Any], base: C.RunConfig | None = None
              ) -> tuple[C.RunConfig, list[ConfigError]]:
    """Build a RunConfig from widget values; every value that cannot be coerced is collected, not raised.

    Args:
        keys: the form keys, in the order of ``values``.
        values: what the widgets hold.
        base: the config to start from (its fields outside the form are kept); default: RunConfig().
    Returns:
        (config, errors); a field in error keeps the base's value.
    """
    cfg = C.from_dict(C.to_dict(base)) if base is not None else C.RunConfig()  # a copy: base stays untouched
    errors: list[ConfigError] = []
    for key, value in zip(keys, values, strict=True):
        kind = widget_spec(key, "en").kind
        try:
            if value is None and kind in ("int", "float"):
                raise ConfigError(f"`{key}` must be a number, got an empty value", field=key)
            C.set_value(cfg, key, from_widget(kind, value))
        except ConfigError as e:
            errors.append(e)
    return cfg, errors


# --------------------------------------------------------------------------- components

@dataclass
class Form:
    """The generated widgets, in ``form_keys()`` order."""

    keys: list[str]
    components: list[Any]
    specs: list[WidgetSpec]

    def component(self, key: str):
        return self.components[self.keys.index(key)]


def elem_id(key: str) -> str:
    return "cfg-" + key.replace(".", "-")


def make_component(spec: WidgetSpec, value: Any):
    """One gradio component for one field; label and help from the metadata, value from the config."""
    import gradio as gr

    common = dict(label=spec.label, info=spec.info, elem_id=elem_id(spec.key), value=to_widget(spec.kind, value))
    if spec.kind == "bool":
        return gr.Checkbox(**common)
    if spec.kind == "choice":
        return gr.Dropdown(choices=list(spec.choices), **common)
    if spec.kind == "model":  # a registry choice, or any Hub id / local folder typed in
        return gr.Dropdown(choices=list(spec.choices), allow_custom_value=True, **common)
    if spec.kind == "modules":
        return gr.Dropdown(choices=list(spec.choices), multiselect=True, allow_custom_value=True, **common)
    if spec.kind in ("int", "float"):
        if spec.slider:
            return gr.Slider(minimum=spec.minimum, maximum=spec.maximum, step=spec.step, **common)
        # note: without a declared step a float field (the learning rate) must accept any decimal
        step = spec.step if spec.step is not None else (1 if spec.kind == "int" else 1e-6)
        return gr.Number(minimum=spec.minimum, maximum=spec.maximum, step=step,
                         precision=0 if spec.kind == "int" else None, **common)
    if spec.kind == "list":
        return gr.Textbox(**common)
    return gr.Textbox(lines=2 if spec.key == "data.system_prompt" else 1, **common)


def build_form(lang: str, cfg: C.RunConfig) -> Form:
    """Create the widgets in the current Blocks: Basic (open) then Advanced (accordion), each by section."""
    import gradio as gr

    all_specs = specs(lang)
    made: dict[str, Any] = {}

    def section_block(group: str) -> None:
        for section in C.SECTIONS:
            in_section = [s for s in all_specs if s.key.startswith(section + ".") and s.group == group]
            if not in_section:
                continue
            with gr.Group(elem_classes=["ls-form-section"]):
                gr.Markdown(f"#### {t('form.section.' + section, lang)}", elem_classes=["ls-section-title"])
                for i in range(0, len(in_section), 2):  # two fields a row: the help texts stay readable
                    with gr.Row(equal_height=False):
                        for spec in in_section[i:i + 2]:
                            made[spec.key] = make_component(spec, _get(cfg, spec.key))

    gr.Markdown(f"### {t('form.basic', lang)}")
    section_block("basic")
    with gr.Accordion(t("form.advanced", lang), open=False, elem_id="cfg-advanced"):
        section_block("advanced")
    keys = [s.key for s in all_specs]
    return Form(keys, [made[k] for k in keys], all_specs)

