"""Adapters: check a run's adapter before peft sees it, apply it with stock peft, and load the base as trained.

An adapter is checked so that a broken one fails with a sentence that names the file and the module
instead of a tensor-size traceback: missing files, NaN/inf weights, a ``base_model_name_or_path`` that
names another model, or shapes that do not fit the base (an adapter trained on another model). Every
path that puts an adapter on a model — the merge, the Compare and Classroom tabs, the analysis, the
evaluation — goes through :func:`apply_adapter`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable

from core.errors import AdapterError
from core.models.load import exact_4bit, load_model, load_tokenizer
from core.run import ADAPTER_CONFIG, RunInfo

log = logging.getLogger(__name__)

CONFIG_FILE = ADAPTER_CONFIG
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
PEFT_PREFIX = "base_model.model."



# --------------------------------------------------------------------------- checking an adapter

def adapter_files(adapter_dir: str | Path) -> tuple[Path, Path]:
    """The config and weights files of a PEFT adapter folder.

    Raises:
        AdapterError: naming the missing file.
    """
    adapter_dir = Path(adapter_dir)
    if not adapter_dir.is_dir():
        raise AdapterError(f"adapter folder not found: {adapter_dir}", field=str(adapter_dir))
    config = adapter_dir / CONFIG_FILE
    if not config.is_file():
        raise AdapterError(f"the adapter is incomplete: {config} is missing", field=str(config))
    for name in WEIGHT_FILES:
        if (adapter_dir / name).is_file():
            return config, adapter_dir / name
    raise AdapterError(f"the adapter is incomplete: {adapter_dir / WEIGHT_FILES[0]} is missing",
                       field=str(adapter_dir / WEIGHT_FILES[0]))


def read_adapter_config(adapter_dir: str | Path) -> dict:
    config, _ = adapter_files(adapter_dir)
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AdapterError(f"cannot read {config}: {e}", field=str(config)) from None
    if not isinstance(data, dict) or "peft_type" not in data:
        raise AdapterError(f"{config} is not a PEFT adapter config (no peft_type)", field=str(config))
    return data


def adapter_sha256(adapter_dir: str | Path) -> str:
    """One sha256 over the adapter's config and weights: what a merged folder was made from."""
    config, weights = adapter_files(adapter_dir)
    h = hashlib.sha256()
    for path in (config, weights):
        h.update(path.name.encode() + b"\0")
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def load_adapter_tensors(adapter_dir: str | Path) -> dict[str, Any]:
    """The adapter's tensors, with NaN / inf refused (naming the file and the tensor).

    Raises:
        AdapterError: unreadable weights file, or non-finite values.
    """
    import torch

    _, weights = adapter_files(adapter_dir)
    try:
        if weights.suffix == ".safetensors":
            from safetensors.torch import load_file

            tensors = load_file(str(weights))
        else:
            tensors = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as e:  # safetensors, pickle and zip each raise their own types for a corrupt file
        raise AdapterError(f"cannot read the adapter weights {weights}: {type(e).__name__}: "
                           f"{str(e).splitlines()[0][:200] if str(e) else ''}", field=str(weights)) from None
    bad = [(k, t) for k, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        key, t = bad[0]
        n = int((~torch.isfinite(t)).sum())
        more = f" (and {len(bad) - 1} more tensors)" if len(bad) > 1 else ""
        raise AdapterError(f"the adapter {weights} holds NaN/inf weights: {n} of {t.numel()} values of {key}{more}; "
                           "training diverged, retrain with a lower learning rate", field=str(weights))
    return tensors


def _same_model(a: str, b: str) -> bool:
    if a == b:
        return True
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()


def check_base_name(adapter_dir: str | Path, expected: Iterable[str]) -> list[str]:
    """Refuse an adapter whose ``base_model_name_or_path`` names another model.

    A name that points to a folder which no longer exists here (a run copied from another machine)
    is let through with a note: the shape check decides then.

    Returns:
        Notes for the report as ``{"code", "args"}`` (empty when the names agree).
    Raises:
        AdapterError: naming both models.
    """
    expected = [e for e in expected if e]
    cfg = read_adapter_config(adapter_dir)
    named = cfg.get("base_model_name_or_path")
    if not named or not expected or any(_same_model(str(named), e) for e in expected):
        return []
    if str(named).startswith(("/", ".", "~")) and not Path(str(named)).expanduser().exists():
        return [{"code": "adapter_base_moved", "args": {"named": str(named), "checked": expected[0]}}]
    raise AdapterError(f"the adapter {Path(adapter_dir) / CONFIG_FILE} was made for another base: it names "
                       f"{named!r}, but the base here is {expected[0]!r}", field=str(Path(adapter_dir) / CONFIG_FILE))


def _dims(module) -> tuple[int | None, int | None]:
    """(in, out) features of a linear-like or embedding module, quantized or wrapped by peft."""
    for attr in ("base_layer", "original_module"):  # peft wrappers
        if hasattr(module, attr) and not hasattr(module, "in_features"):
            module = getattr(module, attr)
    if hasattr(module, "in_features"):
        return module.in_features, module.out_features
    if hasattr(module, "num_embeddings"):
        return module.num_embeddings, module.embedding_dim
    w = getattr(module, "weight", None)
    if w is not None and w.dim() == 2 and type(w).__name__ not in ("Params4bit", "Int8Params"):
        return w.shape[1], w.shape[0]
    return None, None


def _submodule(model, path: str):
    """``path`` inside a transformers model, or inside the one a PeftModel wraps."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return inner.get_submodule(path)
    except AttributeError:
        return None


def check_shapes(model, tensors: dict[str, Any], adapter_dir: str | Path, base_name: str = "") -> None:
    """Every adapter tensor must fit the module it targets in ``model``.

    Raises:
        AdapterError: naming the module, the expected and the found size.
    """
    where = f" {base_name}" if base_name else ""
    weights = adapter_files(adapter_dir)[1]
    problems = []
    for key, t in tensors.items():
        rest = key.removeprefix(PEFT_PREFIX)
        for suffix, axis, which in ((".lora_A.weight", 1, "in"), (".lora_B.weight", 0, "out"),
                                    (".lora_embedding_A", 1, "in"), (".lora_embedding_B", 0, "out"),
                                    (".lora_magnitude_vector", 0, "out")):
            if rest.endswith(suffix):
                name = rest[: -len(suffix)]
                module = _submodule(model, name)
                if module is None:
                    problems.append(f"module {name} does not exist in the base{where}")
                    break
                n_in, n_out = _dims(module)
                want = n_in if which == "in" else n_out
                if want is not None and t.dim() > axis and t.shape[axis] != want:
                    problems.append(f"module {name} has {which}put size {want} in the base{where}, the adapter's "
                                    f"{suffix.strip('.')} has {t.shape[axis]}")
                break
        else:  # a fully trained module (modules_to_save): the whole tensor
            mod_name, _, param = rest.rpartition(".")
            module = _submodule(model, mod_name) if mod_name else None
            if module is None:
                problems.append(f"module {mod_name or rest} does not exist in the base{where}")
                continue
            if hasattr(module, "original_module"):
                module = module.original_module
            p = getattr(module, param, None)
            if p is not None and hasattr(p, "shape") and type(p).__name__ not in ("Params4bit", "Int8Params") \
                    and tuple(p.shape) != tuple(t.shape):
                problems.append(f"module {mod_name} has {param} of shape {tuple(p.shape)} in the base{where}, "
                                f"the adapter's is {tuple(t.shape)}")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise AdapterError(f"the adapter {weights} was made for another base: {problems[0]}{more}", field=str(weights))


def check_adapter(adapter_dir: str | Path, model, expected_bases: Iterable[str] = ()) -> list[str]:
    """All the checks at once: files, NaN/inf, base name, shapes against ``model``.

    Returns:
        Notes (e.g. a base folder that moved).
    Raises:
        AdapterError: the first problem found, naming the file and the module.
    """
    expected_bases = list(expected_bases)
    notes = check_base_name(adapter_dir, expected_bases)
    tensors = load_adapter_tensors(adapter_dir)
    check_shapes(model, tensors, adapter_dir, expected_bases[0] if expected_bases else "")
    return notes


def apply_adapter(model, adapter_dir: str | Path, *, adapter_name: str = "default",
                  expected_bases: Iterable[str] = ()):
    """Check the adapter, then stock ``PeftModel.from_pretrained`` onto ``model``, in eval mode.

    Returns:
        (the PeftModel, notes)
    """
    from peft import PeftModel

    notes = check_adapter(adapter_dir, model, expected_bases)
    try:
        peft_model = PeftModel.from_pretrained(model, str(adapter_dir), adapter_name=adapter_name, is_trainable=False)
    except (RuntimeError, ValueError, KeyError) as e:  # what the checks above could not foresee
        raise AdapterError(f"cannot apply the adapter {adapter_dir}: {type(e).__name__}: "
                           f"{str(e).splitlines()[0][:300]}", field=str(adapter_dir)) from None
    peft_model.eval()
    return peft_model, notes


def tokenizer_for(run: RunInfo):
    """The tokenizer saved beside the adapter (what training used), else the base's."""
    src = run.adapter_dir if (run.adapter_dir / "tokenizer_config.json").is_file() else run.base_path
    return load_tokenizer(str(src), run.cfg.model.trust_remote_code)


def load_base(run: RunInfo, **changes):
    """The run's base model as ``cfg.model`` says (4-bit for a QLoRA run), with ``changes`` applied to that section.

    Returns:
        The model, in eval mode.
    """
    model, _, _ = load_model(replace(run.cfg.model, **changes), resolved=run.base_path)
    model.eval()
    return exact_4bit(model)


# --------------------------------------------------------------------------- several adapters on one base
