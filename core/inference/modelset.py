"""ModelSet: one base in memory with a run's adapters on it by name, and optionally its merged model; and the
one cache the GUI keeps of it, so that a tab switches between base, adapter and merged without reloading.

``which`` names are ``"base"`` (every adapter disabled), an adapter's name (``"adapter"`` is the run's own)
and ``"merged"``. Adapters go on through :func:`core.inference.adapters.apply_adapter` (checked first).
"""

from __future__ import annotations

import gc
import logging
import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterable

from core import config as C
from core import data as D
from core.config import DecodingConfig
from core.errors import AdapterError, DataError, ModelLoadError, StudioError
from core.inference.adapters import apply_adapter, check_adapter, load_base, tokenizer_for
from core.inference.generate import Generation, generate, logits, model_device
from core.models.load import exact_4bit, runnable_dtype
from core.run import RunFolder, RunInfo
from core.tasks import inference_prompt

log = logging.getLogger(__name__)

BASE, ADAPTER, MERGED = "base", "adapter", "merged"
WHICH = (BASE, ADAPTER, MERGED)
RESERVED = (BASE, MERGED)


def parse_which(which: str | Iterable[str]) -> tuple[str, ...]:
    """``"base,adapter"`` or a list → a tuple of names, checked, without repeats."""
    names = [w.strip() for w in (which.split(",") if isinstance(which, str) else which) if w.strip()]
    if not names:
        raise StudioError(f"--which must name at least one of {', '.join(WHICH)}", field="which")
    unknown = [w for w in names if w not in WHICH]
    if unknown:
        raise StudioError(f"--which accepts {', '.join(WHICH)}, got {', '.join(unknown)}", field="which")
    return tuple(dict.fromkeys(names))


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
        # a run trained on 16-bit weights where bf16 is native runs in float32 on a CPU that would emulate it
        runnable = {} if run.quantized else {"dtype": runnable_dtype(run.cfg.model.dtype)}
        ms = cls(load_base(run, **runnable), tokenizer_for(run), cfg=run.cfg, template=run.template,
                 run_dir=run.run_dir, base_names=names)
        ms.column_map = dict(run.info.get("column_map") or {})
        ms.add_adapter(run.adapter_dir, ADAPTER)
        if merged:
            ms.load_merged(run.folder.merged)
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

        folder = Path(folder)
        if not (folder / "config.json").is_file():
            hint = f"python -m core merge {self.run_dir}" if self.run_dir else "python -m core merge RUN_DIR"
            raise ModelLoadError(f"no merged model in {folder}: run `{hint}` first", field=str(folder))
        self.merged = exact_4bit(AutoModelForCausalLM.from_pretrained(str(folder), dtype="auto").eval())
        saved = str(self.merged.dtype).removeprefix("torch.")
        if not getattr(self.merged, "is_quantized", False) and runnable_dtype(saved) != saved:
            self.merged.float()  # as the base: 16-bit weights run in float32 where a CPU would emulate them
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
        return [BASE, *self.adapters] + ([MERGED] if self.merged is not None else [])

    # ------------------------------------------------------------------ using

    @contextmanager
    def use(self, which: str):
        """The model to run for ``which``, with the right adapter active (or all disabled for the base)."""
        if which == MERGED:
            if self.merged is None:
                raise ModelLoadError("the merged model is not loaded", field="which")
            yield self.merged
        elif which == BASE:
            ctx = self.model.disable_adapter() if self.adapters else nullcontext()
            with ctx:
                yield self.model
        elif which in self.adapters:
            self.model.set_adapter(which)
            yield self.model
        else:
            raise AdapterError(f"no model named {which!r} (loaded: {', '.join(self.names())})", field="which")

    def generate(self, prompts: list[str], which: str, decoding: DecodingConfig | None = None) -> list[Generation]:
        """Generate for each prompt with ``which`` (base | adapter | merged | an added adapter's name)."""
        with self.use(which) as model:
            return generate(model, self.tokenizer, prompts, decoding)

    def logits(self, input_ids: list[int], which: str):
        """The logits of one token sequence (float32, on the CPU), for comparisons."""
        with self.use(which) as model:
            return logits(model, input_ids)

    def prompt_for(self, row: dict) -> str:
        """The run's own inference prompt for a raw row (the run's column names) or a role-keyed row.

        Raises:
            DataError: the row lacks what the template needs (for MCQ generation: a context).
        """
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


class ModelCache:
    """Holds one ModelSet (one base in memory) and switches between runs that share it.

    A run on the cached base gets its adapter added under its own name; a run on another base, the
    merged model of a run other than the set's own, or an adapter rewritten since it was loaded (a
    resumed run) replaces the set. The lock serialises loading and generation, so two clicks never
    race on the same weights.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._set: ModelSet | None = None
        self._own: tuple | None = None  # (run_dir, adapter stamp, merged stamp) of the set's own run
        self._base: str | None = None
        self._extra: dict[str, tuple[str, float]] = {}  # run_dir -> (adapter name in the set, adapter stamp)

    def get(self, run_dir: Path, *, need_merged: bool) -> tuple[ModelSet, dict[str, str]]:
        """The ModelSet for ``run_dir`` and the names its models have in it.

        Call with ``self.lock`` held. Returns (model set, {"base": …, "adapter": …, ["merged": …]}).
        """
        folder = RunFolder(Path(run_dir).resolve())
        key = str(folder.path)
        stamp = folder.adapter_stamp()
        merged = folder.merged_stamp() if need_merged else None
        base = str(folder.read_info().get("resolved_base_model") or "")
        if self._set is not None:
            own_dir, own_stamp, own_merged = self._own
            if own_dir == key and own_stamp == stamp and (not need_merged or own_merged == merged):
                return self._set, self._names(key)
            fresh_extra = key in self._extra and self._extra[key][1] == stamp
            if own_dir != key and not need_merged and base and base == self._base and \
                    (fresh_extra or key not in self._extra):
                if not fresh_extra:
                    name = f"run{len(self._extra) + 1}"
                    self._set.add_adapter(folder.adapter, name)
                    self._extra[key] = (name, stamp)
                return self._set, self._names(key)
        self.clear()
        self._set = ModelSet.from_run(folder.path, merged=merged is not None)
        self._own, self._base, self._extra = (key, stamp, merged), base, {}
        return self._set, self._names(key)

    def _names(self, key: str) -> dict[str, str]:
        if self._own and self._own[0] == key:
            names = {BASE: BASE, ADAPTER: ADAPTER}
            if MERGED in self._set.names():
                names[MERGED] = MERGED
            return names
        return {BASE: BASE, ADAPTER: self._extra[key][0]}

    def generate_all(self, run_dir: Path, prompts: list[str], decoding: DecodingConfig,
                     on_model=None) -> dict[str, list[Generation]]:
        """Every model of the run (base, adapter, merged when the run is merged) on the same prompts, one at a time.

        Args:
            on_model: called with (index, count, which) before each model starts (a progress bar).
        """
        has_merged = RunFolder(Path(run_dir)).has_merged()
        outputs: dict[str, list[Generation]] = {}
        with self.lock:
            models, names = self.get(Path(run_dir), need_merged=has_merged)
            todo = [w for w in WHICH if w in names]
            for i, which in enumerate(todo):
                if on_model is not None:
                    on_model(i, len(todo), which)
                outputs[which] = models.generate(prompts, names[which], decoding)
        return outputs

    def clear(self) -> None:
        self._set, self._own, self._base, self._extra = None, None, None, {}
        gc.collect()


MODELS = ModelCache()  # the one cache of this process (the GUI's tabs share it)
