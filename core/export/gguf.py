"""A merged model folder → a GGUF file (with Modelfile, README and report beside it), by llama.cpp's own tools.

Owns: the checks of the input folder and the output path, the staging folder that gives the converter the
chat template the run trained with, the converter and ``llama-quantize`` runs, the temporary names and the final
renames, and :func:`export_gguf`, the one orchestration (convert → verify → Modelfile → rename) that the CLI and
the GUI call. Must not: map tensors itself (the converter does), judge the result (:mod:`core.export.verify`),
or say anything in words for the GUI (errors carry the field; the report is data).

Every file is written under a hidden temporary name (``.NAME.partial-<pid>…``) and renamed when complete, the
GGUF last, so that an interrupted export never leaves a finished-looking file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.config import DecodingConfig
from core.errors import ConfigError, ModelLoadError, StudioError
from core.export import modelfile as MF
from core.export import toolchain

# quant → (the converter's --outtype, lossy?). f16 keeps 11 significant bits of each weight (what the converter
# calls near-lossless); q8_0 and q4_k_m are llama.cpp's 8-bit and 4-bit block formats. q4_k_m goes through an
# f16 file and llama-quantize, llama.cpp's documented route.
QUANTS: dict[str, tuple[str, bool]] = {"f16": ("f16", False), "q8_0": ("q8_0", True), "q4_k_m": ("f16", True)}
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")
REPORT = "export_report.json"


class ExportError(StudioError):
    """The converter or the quantizer refused the model, or the output cannot be written."""


class UnsupportedArchitecture(ExportError):
    """llama.cpp's converter does not know this architecture."""


# --------------------------------------------------------------------------- checks

def check_quant(quant: str) -> str:
    if quant not in QUANTS:
        raise ConfigError(f"--quant must be one of {', '.join(QUANTS)}, got {quant!r}", field="quant")
    return quant


def check_model_dir(model_dir: str | Path) -> dict:
    """The folder's config.json, once the folder is known to hold a model, weights and a tokenizer.

    Raises:
        ModelLoadError: naming the folder and what it lacks.
    """
    folder = Path(model_dir)
    if not folder.is_dir():
        raise ModelLoadError(f"no merged model folder at {folder} (merge the run first)", field="model_dir")
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ModelLoadError(f"{folder} is not a model folder: no readable config.json", field="model_dir") from None
    if not any((folder / f).is_file() for f in WEIGHT_FILES) and not any(folder.glob("model-*.safetensors")):
        raise ModelLoadError(f"{folder} has no weights (model.safetensors)", field="model_dir")
    if not any((folder / f).is_file() for f in TOKENIZER_FILES):
        raise ModelLoadError(f"{folder} has no tokenizer (tokenizer.json)", field="model_dir")
    return config


def check_out_dir(out_dir: Path) -> None:
    """Create the output folder and make sure a file can be written there."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".write-test-"):
            pass
    except OSError as e:
        raise ExportError(f"cannot write to the output folder {out_dir}: {e.strerror or e}", field="out_dir") from None


def _partial(target: Path, suffix: str = "") -> Path:
    return target.with_name(f".{target.name}.partial-{os.getpid()}{suffix}")


def remove_stale_partials(folder: Path) -> list[Path]:
    """Remove the ``.*.partial-<pid>*`` files and folders left by an export whose process is gone."""
    removed = []
    for p in Path(folder).glob(".*.partial-*"):
        m = re.search(r"\.partial-(\d+)", p.name)
        if not m or int(m.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(m.group(1)), 0)
        except ProcessLookupError:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink(missing_ok=True)
            removed.append(p)
        except PermissionError:  # someone else's live process
            pass
    return removed


# --------------------------------------------------------------------------- conversion

def _stage(model_dir: Path, into: Path, chat_template: str | None) -> Path:
    """A folder of links to the model's files (same name: the converter names the model after it), with
    ``chat_template`` in place of the model's own when given."""
    stage = into / model_dir.name
    stage.mkdir()
    for f in model_dir.iterdir():
        if f.is_file() and not f.name.startswith("."):
            (stage / f.name).symlink_to(f.resolve())
    if chat_template is not None:
        for name in ("chat_template.jinja", "chat_template.json"):
            (stage / name).unlink(missing_ok=True)
        tc = stage / "tokenizer_config.json"
        if tc.exists():
            cfg = json.loads(tc.read_text(encoding="utf-8"))
            if "chat_template" in cfg:
                tc.unlink()
                cfg.pop("chat_template")
                tc.write_text(json.dumps(cfg, ensure_ascii=False, indent=2), encoding="utf-8")
        (stage / "chat_template.jinja").write_text(chat_template, encoding="utf-8")
    return stage


def _converter_failure(log: Path, config: dict) -> ExportError:
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    arch = (config.get("architectures") or ["?"])[0]
    m = re.search(r"Model (\S+) is not supported|Architecture '([^']+)' not supported", text)
    if m:
        return UnsupportedArchitecture(f"llama.cpp's converter ({toolchain.LLAMA_CPP_PYTHON}) does not support the "
                                       f"architecture {m.group(1) or m.group(2)}", field="architectures")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith(("INFO:", "Writing:"))]
    return ExportError(f"llama.cpp's converter failed on {arch}: {(lines or ['no output'])[-1][:300]}",
                       field="architectures")


def convert(model_dir: str | Path, out_file: str | Path, quant: str = "f16", *,
            chat_template: str | None = None, build_tools: bool = False) -> Path:
    """Convert a merged model folder to one GGUF file, written under a temporary name and renamed at the end.

    Args:
        model_dir: a transformers folder (config.json, model.safetensors, tokenizer files).
        out_file: the GGUF to write (replaced if it exists).
        quant: f16 | q8_0 | q4_k_m.
        chat_template: embedded instead of the model's own (a plain-prompt run: :data:`MF.PLAIN_CHAT_TEMPLATE`).
        build_tools: q4_k_m needs llama-quantize; build it if missing (10-15 min on 2 cores) instead of failing.
    Returns:
        ``out_file``.
    Raises:
        ConfigError: unknown quant. ModelLoadError: not a model folder. UnsupportedArchitecture, ExportError,
        ToolchainError: see their docstrings.
    """
    check_quant(quant)
    model_dir, out_file = Path(model_dir).resolve(), Path(out_file).resolve()
    config = check_model_dir(model_dir)
    check_out_dir(out_file.parent)
    tools = None
    if quant == "q4_k_m":
        tools = toolchain.ensure_llama_tools() if build_tools else toolchain.find_llama_tools()
        if tools is None:
            raise toolchain.ToolchainError("q4_k_m needs llama.cpp's llama-quantize, which is not built here: run "
                                           "`python -m core.export.toolchain --build` (10-15 min on 2 cores) or "
                                           "export f16 / q8_0", field="quant")
    toolchain.ensure_converter()
    outtype, _ = QUANTS[quant]
    partial = _partial(out_file, ".gguf")
    log = out_file.with_name(f".{out_file.name}.partial-{os.getpid()}.log")
    try:
        with tempfile.TemporaryDirectory(prefix=f".stage.partial-{os.getpid()}-", dir=out_file.parent) as tmp:
            stage = _stage(model_dir, Path(tmp), chat_template)
            first = partial if tools is None else _partial(out_file, ".f16.gguf")
            code = toolchain.run_converter([str(stage), "--outfile", str(first), "--outtype", outtype], log_file=log)
            if code != 0 or not first.is_file():
                raise _converter_failure(log, config)
            if tools is not None:
                r = subprocess.run([str(tools.quantize), str(first), str(partial), "Q4_K_M"], capture_output=True,
                                   text=True, env=toolchain.tool_env(), timeout=3600, check=False)
                first.unlink(missing_ok=True)
                if r.returncode != 0 or not partial.is_file():
                    raise ExportError(f"llama-quantize failed: {toolchain.last_line(r.stderr or r.stdout)}",
                                      field="quant")
        os.replace(partial, out_file)
    finally:
        for p in (partial, _partial(out_file, ".f16.gguf"), log):
            p.unlink(missing_ok=True)
    return out_file


# --------------------------------------------------------------------------- the whole export

@dataclass
class ExportReport:
    """What was exported, where, and how close it came to the merged model (``verification``)."""

    model_dir: str
    gguf: str
    quant: str
    lossy: bool
    files: list[str]
    llama_cpp_python: str
    prompt_format: dict
    stops: list[list]  # [id, text]
    verification: dict | None  # core.export.verify.Verification as a dict; None when not verified
    verdict: str  # passed | lossy | failed | unverified
    seconds: dict = field(default_factory=dict)  # convert, verify
    created: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def export_gguf(model_dir: str | Path, out_dir: str | Path, *, quant: str = "f16", fmt: MF.PromptFormat,
                decoding: DecodingConfig | None = None, name: str | None = None, verify: bool = True,
                cases=None, verify_tokens: int = 32, build_tools: bool = False,
                progress: Callable[..., None] | None = None) -> ExportReport:
    """Export a merged model for Ollama / LM Studio / llama.cpp and verify it.

    Writes ``OUT/NAME-QUANT.gguf``, ``Modelfile``, ``README.md`` and ``export_report.json``. The GGUF is checked
    under its temporary name and renamed last. One export per folder: the Modelfile, README and report describe
    the GGUF written last (give each quant its own folder, e.g. ``RUN/gguf-q8_0/``).

    Args:
        model_dir: the merged model folder.
        out_dir: where the files go (created).
        quant: f16 | q8_0 | q4_k_m.
        fmt: the run's prompt format (chat template + system prompt, or plain prompts).
        decoding: the app's decoding defaults for the task (greedy; repetition_penalty 1.15 for MCQ …).
        name: the Ollama model name and file stem (default: the folder's name).
        verify: reload the GGUF and compare it with the merged model (see :mod:`core.export.verify`).
        cases: verification prompts (``core.merge.verify.prompt_set`` of the run); default: built-in sentences.
        verify_tokens: greedy tokens generated per prompt by each side for the generation checks.
        build_tools: build llama.cpp's binaries when missing (q4_k_m needs them; the verification uses them).
        progress: called as ``progress(stage)`` with convert | verify | write.
    Raises:
        see :func:`convert`; ConfigError for a chat run on a model without a chat template.
    """
    from transformers import AutoTokenizer

    from core.export.verify import verify_gguf

    say = progress or (lambda stage, **_: None)
    check_quant(quant)
    model_dir, out_dir = Path(model_dir).resolve(), Path(out_dir).resolve()
    check_model_dir(model_dir)
    check_out_dir(out_dir)
    remove_stale_partials(out_dir)
    decoding = decoding or DecodingConfig()
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", name or model_dir.name).strip("-").lower() or "model"
    gguf_name = f"{name}-{quant}.gguf"
    target = out_dir / gguf_name
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    gen_path = model_dir / "generation_config.json"
    stops = MF.stop_tokens(tokenizer, json.loads(gen_path.read_text(encoding="utf-8")) if gen_path.is_file() else None)
    MF.ollama_template(tokenizer, fmt)  # a chat run on a model without a chat template fails before converting

    t0 = time.monotonic()
    say("convert")
    partial = _partial(target, ".gguf")
    convert(model_dir, partial, quant, chat_template=None if fmt.chat else MF.PLAIN_CHAT_TEMPLATE,
            build_tools=build_tools)
    seconds = {"convert": round(time.monotonic() - t0, 1)}
    try:
        result = None
        if verify:
            say("verify")
            t1 = time.monotonic()
            tools = toolchain.ensure_llama_tools() if build_tools else None  # else those built, if any
            result = verify_gguf(model_dir, partial, quant, fmt=fmt, cases=cases, stops=stops,
                                 max_new_tokens=verify_tokens, tools=tools)
            seconds["verify"] = round(time.monotonic() - t1, 1)
        verdict = result.verdict if result else "unverified"
        say("write")
        figures = result.summary() if result else "not verified"
        header = (f"Made by LoRA Studio from {model_dir.name} ({quant}) with llama.cpp's converter "
                  f"{toolchain.LLAMA_CPP_PYTHON}.\nVerification: {verdict} ({figures}); see export_report.json.")
        texts = {"Modelfile": MF.modelfile_text(gguf_name, tokenizer, fmt, decoding, stops, header),
                 "README.md": MF.readme_text(name, gguf_name, fmt, decoding, verdict, figures)}
        report = ExportReport(
            model_dir=str(model_dir), gguf=str(target), quant=quant, lossy=QUANTS[quant][1],
            files=[gguf_name, "Modelfile", "README.md", REPORT], llama_cpp_python=toolchain.LLAMA_CPP_PYTHON,
            prompt_format=asdict(fmt), stops=[list(s) for s in stops],
            verification=result.to_dict() if result else None, verdict=verdict, seconds=seconds,
            created=dt.datetime.now().isoformat(timespec="seconds"))
        texts[REPORT] = json.dumps(report.to_dict(), indent=2, ensure_ascii=False, default=str)
        for file_name, text in texts.items():  # all written first, then renamed together, the GGUF last
            _partial(out_dir / file_name).write_text(text, encoding="utf-8")
        for file_name in texts:
            os.replace(_partial(out_dir / file_name), out_dir / file_name)
        os.replace(partial, target)
    finally:
        for p in [partial] + [_partial(out_dir / f) for f in ("Modelfile", "README.md", REPORT)]:
            p.unlink(missing_ok=True)
    return report
