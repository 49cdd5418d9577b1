"""Adapters: read and check a run's adapter, and keep several adapters on one base in memory.

An adapter is checked before peft sees it, so that a broken one fails with a sentence that
names the file and the module instead of a tensor-size traceback: missing files, NaN/inf
weights, a ``base_model_name_or_path`` that names another model, or shapes that do not fit the
base (an adapter trained on another model).

:class:`ModelSet` holds one base model and any number of adapters on it (peft's
``load_adapter`` / ``set_adapter`` / ``disable_adapter``), plus optionally the run's merged
model, so that the compare tab switches between them without reloading the base per pane.
"""

from __future__ import annotations

import hashlib
import json
import logging
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable

from core import config as C
from core.errors import AdapterError, DataError, ModelLoadError
from core.generate import Decoding, Generation, generate
from core.models import exact_4bit

log = logging.getLogger(__name__)

CONFIG_FILE = "adapter_config.json"
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
PEFT_PREFIX = "base_model.model."
RESERVED = ("base", "merged")


# --------------------------------------------------------------------------- the run folder

@dataclass
class RunInfo:
    """What a finished run folder says about itself: its config, run.json, adapter and base."""

    run_dir: Path
    cfg: C.RunConfig
    info: dict
    adapter_dir: Path
    base_path: str  # the base to load: run.json's resolved path, or the model re-resolved when it moved
    template: str

    @property
    def quantized(self) -> bool:
        """Trained on a 4-bit (QLoRA) or 8-bit base."""
        return bool(self.cfg.model.load_in_4bit or self.cfg.model.load_in_8bit)

    @property
    def base_names(self) -> set[str]:
        """Every name under which this run's base may appear in an adapter_config.json."""
        info = self.info
        names = {self.base_path, str(info.get("base_model") or ""), str(info.get("resolved_base_model") or "")}
        return {n for n in names if n}

    @classmethod
    def load(cls, run_dir: str | Path) -> "RunInfo":
        """Read a run folder.

        Raises:
            AdapterError: not a run folder, or no adapter in it.
        """
        from core import models as M
        from core.data import resolve_template

        run_dir = Path(run_dir).expanduser().resolve()
        if not run_dir.is_dir():
            raise AdapterError(f"run folder not found: {run_dir}", field=str(run_dir))
        for name in ("config.yaml", "run.json"):
            if not (run_dir / name).is_file():
                raise AdapterError(f"{run_dir} is not a run folder: it has no {name}", field=str(run_dir / name))
        cfg = C.load_yaml(run_dir / "config.yaml")
        try:
            info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise AdapterError(f"cannot read {run_dir / 'run.json'}: {e}", field=str(run_dir / "run.json")) from None
        adapter_dir = run_dir / "adapter"
        if not adapter_dir.is_dir():
            raise AdapterError(f"{run_dir} has no adapter/ folder: the run did not finish or save its adapter "
                               f"(status: {info.get('status', 'unknown')})", field=str(adapter_dir))
        resolved = str(info.get("resolved_base_model") or "")
        if resolved and (Path(resolved).is_dir() or not resolved.startswith("/")):
            base_path = resolved
        else:  # the run folder came from another machine, or the cache moved: resolve the name again
            base_path = M.resolve_model(str(info.get("base_model") or cfg.model.name_or_path))
        template = info.get("template") or resolve_template(cfg.data.template, info.get("schema", ""))
        return cls(run_dir, cfg, info, adapter_dir, base_path, template)


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
        Notes for the report (empty when the names agree).
    Raises:
        AdapterError: naming both models.
    """
    expected = [e for e in expected if e]
    cfg = read_adapter_config(adapter_dir)
    named = cfg.get("base_model_name_or_path")
    if not named or not expected or any(_same_model(str(named), e) for e in expected):
        return []
    if str(named).startswith(("/", ".", "~")) and not Path(str(named)).expanduser().exists():
        return [f"the adapter names base {named!r}, which does not exist here; its shapes were checked against "
                f"{expected[0]!r} instead"]
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
    from core import models as M

    src = run.adapter_dir if (run.adapter_dir / "tokenizer_config.json").is_file() else run.base_path
    return M.load_tokenizer(str(src), run.cfg.model.trust_remote_code)


def load_base(run: RunInfo, **changes):
    """The run's base model as ``cfg.model`` says (4-bit for a QLoRA run), with ``changes`` applied to that section.

    Returns:
        The model, in eval mode.
    """
    from core import models as M

    model, _, _ = M.load_model(replace(run.cfg.model, **changes), resolved=run.base_path)
    model.eval()
    return exact_4bit(model)


# --------------------------------------------------------------------------- several adapters on one base

class ModelSet:
    """One base model in memory, adapters on it by name, and optionally the run's merged model.

    ``which`` names are ``"base"`` (every adapter disabled), an adapter's name (``"adapter"`` is the
    run's own) and ``"merged"``.

    Args:
        base_model: a loaded transformers model (it becomes the PeftModel's base once an adapter is added).
        tokenizer: its tokenizer.
        cfg: the run config (for the template context); defaults to RunConfig().
        template: the template name for :meth:`prompt_for`.
        run_dir: the run folder, when made from a run.
        base_names: names of the base, to refuse adapters made for another one.
    """

    def __init__(self, base_model, tokenizer, *, cfg: C.RunConfig | None = None, template: str = "text",
                 run_dir: Path | None = None, base_names: Iterable[str] = ()):
        self.model = base_model  # the PeftModel once an adapter is loaded
        self.tokenizer = tokenizer
        self.cfg = cfg or C.RunConfig()
        self.template = template
        self.run_dir = Path(run_dir) if run_dir else None
        self.base_names = [n for n in base_names if n]
        self.merged = None
        self.adapters: dict[str, Path] = {}
        self.notes: list[str] = []
        self.column_map: dict[str, str] = {}

    @classmethod
    def from_run(cls, run_dir: str | Path, *, merged: bool = False) -> "ModelSet":
        """The run's base as trained (4-bit for QLoRA) with the run's adapter as ``"adapter"``.

        Args:
            run_dir: a finished run folder.
            merged: also load ``run_dir/merged`` as ``"merged"``.
        Raises:
            AdapterError: broken adapter or not a run folder; ModelLoadError: no merged folder.
        """
        run = RunInfo.load(run_dir)
        names = sorted(run.base_names, key=lambda n: n != run.base_path)
        ms = cls(load_base(run), tokenizer_for(run), cfg=run.cfg, template=run.template, run_dir=run.run_dir,
                 base_names=names)
        ms.column_map = dict(run.info.get("column_map") or {})
        ms.add_adapter(run.adapter_dir, "adapter")
        if merged:
            ms.load_merged(run.run_dir / "merged")
        return ms

    # ------------------------------------------------------------------ loading

    def add_adapter(self, path: str | Path, name: str) -> None:
        """Load another adapter made for the same base, under ``name``.

        Raises:
            AdapterError: a reserved or taken name, or a broken / foreign adapter.
        """
        if name in RESERVED or name in self.adapters:
            raise AdapterError(f"adapter name {name!r} is {'reserved' if name in RESERVED else 'already loaded'}",
                               field="name")
        if self.adapters:
            self.notes += check_adapter(path, self.model, self.base_names)
            try:
                self.model.load_adapter(str(path), adapter_name=name, is_trainable=False)
            except (RuntimeError, ValueError, KeyError) as e:
                raise AdapterError(f"cannot load the adapter {path}: {type(e).__name__}: "
                                   f"{str(e).splitlines()[0][:300]}", field=str(path)) from None
        else:
            self.model, notes = apply_adapter(self.model, path, adapter_name=name, expected_bases=self.base_names)
            self.notes += notes
        self.model.eval()
        self.adapters[name] = Path(path)

    def load_merged(self, folder: str | Path) -> None:
        """Load a merged model folder with stock ``AutoModelForCausalLM`` as ``"merged"``."""
        from transformers import AutoModelForCausalLM

        from core.generate import model_device

        folder = Path(folder)
        if not (folder / "config.json").is_file():
            hint = f"python -m core merge {self.run_dir}" if self.run_dir else "python -m core merge RUN_DIR"
            raise ModelLoadError(f"no merged model in {folder}: run `{hint}` first", field=str(folder))
        self.merged = exact_4bit(AutoModelForCausalLM.from_pretrained(str(folder), dtype="auto").eval())
        if not getattr(self.merged, "is_quantized", False):
            self.merged.to(model_device(self.model))

    def remove_adapter(self, name: str) -> None:
        """Drop one adapter (not the last: use :meth:`unload` to get the plain base back)."""
        if name not in self.adapters:
            loaded = ", ".join(self.adapters) or "none"
            raise AdapterError(f"no adapter named {name!r} (loaded: {loaded})", field="name")
        if len(self.adapters) == 1:
            self.unload()
            return
        self.model.delete_adapter(name)
        del self.adapters[name]

    def unload(self):
        """Remove every adapter and return the plain base model (peft's ``unload``: no merge)."""
        if self.adapters:
            self.model = self.model.unload()
            self.adapters.clear()
        return self.model

    def names(self) -> list[str]:
        return ["base", *self.adapters] + (["merged"] if self.merged is not None else [])

    # ------------------------------------------------------------------ using

    @contextmanager
    def use(self, which: str):
        """The model to run for ``which``, with the right adapter active (or all disabled for the base)."""
        if which == "merged":
            if self.merged is None:
                raise ModelLoadError("the merged model is not loaded", field="which")
            yield self.merged
        elif which == "base":
            ctx = self.model.disable_adapter() if self.adapters else nullcontext()
            with ctx:
                yield self.model
        elif which in self.adapters:
            self.model.set_adapter(which)
            yield self.model
        else:
            raise AdapterError(f"no model named {which!r} (loaded: {', '.join(self.names())})", field="which")

    def generate(self, prompts: list[str], which: str, decoding: Decoding | None = None) -> list[Generation]:
        """Generate for each prompt with ``which`` (base | adapter | merged | an added adapter's name)."""
        with self.use(which) as model:
            return generate(model, self.tokenizer, prompts, decoding)

    def logits(self, input_ids: list[int], which: str):
        """The logits of one token sequence (float32, on the CPU), for comparisons."""
        import torch

        from core.generate import model_device

        with self.use(which) as model, torch.no_grad():
            ids = torch.tensor([input_ids], device=model_device(model))
            return model(input_ids=ids).logits[0].float().cpu()

    def prompt_for(self, row: dict) -> str:
        """The run's own inference prompt for a raw row (the run's column names) or a role-keyed row.

        Raises:
            DataError: the row lacks what the template needs (for MCQ generation: a context).
        """
        from core import data as D
        from core.templates import inference_prompt

        # the run's own mapping first, then a role's name or one of its synonyms (a file with other headers)
        roles: dict[str, Any] = {role: row[col] for role, col in self.column_map.items() if col in row}
        lower = {str(c).strip().lower(): c for c in row}
        for role, synonyms in D.SYNONYMS.items():
            col = next((lower[s] for s in (role, *synonyms) if s in lower), None)
            if role not in roles and col is not None:
                roles[role] = row[col]
        if self.cfg.data.clean:
            roles = {k: D.clean_text(v) if isinstance(v, str) else v for k, v in roles.items()}
        ctx = D.template_context(self.tokenizer, self.cfg.data)
        try:
            return inference_prompt(self.template, roles, ctx)
        except DataError as e:
            raise DataError(f"{e} (the {self.template} template needs it; columns: {', '.join(map(str, row))})",
                            field=e.field) from None
