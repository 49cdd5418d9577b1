"""llama.cpp's own tools for the GGUF export: the pinned release, its install into the cache, how they are run.

Owns: the pinned llama-cpp-python source distribution (PyPI's sdist vendors llama.cpp, converter and C++ source
of one release together), its download with pip, the extraction of the Python converter
(``convert_hf_to_gguf.py``, ``conversion/``, its own ``gguf-py``) with the one extra package it imports
(sentencepiece, installed beside it, not into the venv), the on-demand cmake build of ``llama-quantize``,
``llama-completion`` and ``llama-tokenize``, and the clean subprocess environment all of them run in.
Must not: convert or verify a model (:mod:`core.export.gguf`), install anything into the venv, or import
torch/transformers (the converter runs in its own process).

Everything lands in ``$LORA_STUDIO_CACHE/llama.cpp/<version>/`` (default ``~/.cache/lora-studio``), written
under a temporary name and renamed, so that an interrupted install is never taken for a finished one.
From a shell: ``python -m core.export.toolchain`` installs the converter, ``--build`` also builds the binaries,
``--check`` only says what is there (exit status 1 when the converter is missing).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.errors import StudioError
from core.paths import cache_dir

# The pin. 0.3.36 vendors a llama.cpp whose converter knows Llama, Qwen2/3, Gemma-3 text (Gemma3ForCausalLM),
# Phi-3, Mistral and ~300 more architectures. Its own gguf-py says 0.19.0 like our PyPI pin but is newer
# (constants, writer): the converter puts it first on sys.path, so the venv's gguf 0.19.0 (which transformers
# uses to read GGUF files back) is left as it is. To move the pin: change both lines and run the tests.
LLAMA_CPP_PYTHON = "0.3.36"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"  # 76.6 MB
# The converter imports sentencepiece even for a tokenizer.json-only Llama (before it falls back to the BPE
# vocabulary); it is the only package it needs beyond torch, transformers, numpy and safetensors.
SENTENCEPIECE = "0.2.3"
SDIST_ENV = "LORA_STUDIO_LLAMA_CPP_SDIST"  # path of the sdist copied by hand, for an offline machine

_VENDOR = f"llama_cpp_python-{LLAMA_CPP_PYTHON}/vendor/llama.cpp/"
_CONVERTER_PARTS = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/gguf/", "models/templates/", "LICENSE")
# not needed to build the three tools: 75 MB of test vocabularies, 38 MB of docs, the tests and examples
_SOURCE_SKIP = ("models/", "docs/", "tests/", "examples/", "media/", "pocs/", "app/", "tools/ui/")
TOOLS = ("llama-quantize", "llama-completion", "llama-tokenize")
_CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=OFF",  # static: the binaries are copied out alone
    "-DGGML_NATIVE=ON",  # this CPU's instructions: the cache records the CPU and rebuilds on another one
    "-DLLAMA_OPENSSL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF",
    "-DLLAMA_BUILD_APP=OFF", "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",  # else cmake downloads a web UI from the Hub
)
_STAMP = ".installed.json"


class ToolchainError(StudioError):
    """llama.cpp's converter or binaries are missing and cannot be installed or built here."""


def root() -> Path:
    """``$LORA_STUDIO_CACHE/llama.cpp/<pinned version>/``."""
    return cache_dir() / "llama.cpp" / LLAMA_CPP_PYTHON


def _stamp_ok(folder: Path, **expect) -> bool:
    try:
        stamp = json.loads((folder / _STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return all(stamp.get(k) == v for k, v in expect.items())


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def last_line(text: str) -> str:
    """The last non-empty line of a tool's output, for a one-line error."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"


def _pip(*args: str, timeout: float) -> subprocess.CompletedProcess:
    """pip of this interpreter, as the user's pip config sets it up (index, proxy, certificates)."""
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


def _move_into_place(tmp: Path, target: Path) -> None:
    """Rename a finished temporary folder to ``target``, replacing an unfinished one (no stamp)."""
    if target.exists():
        shutil.rmtree(target)
    try:
        tmp.rename(target)
    except OSError:  # another process finished first: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- the source distribution

def sdist() -> Path:
    """The pinned sdist in the cache: downloaded with pip once (≈ 25 s: 3 s of download, the rest is pip
    preparing its metadata), its sha256 checked before it is kept.

    Raises:
        ToolchainError: pip cannot fetch it (offline, no index) or the file is not the pinned one.
    """
    name = f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz"
    target = root() / "sdist" / name
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=target.parent) as tmp:
        local = os.environ.get(SDIST_ENV)
        if local:
            if not Path(local).is_file():
                raise ToolchainError(f"{SDIST_ENV}={local} is not a file", field=SDIST_ENV)
            shutil.copy(local, Path(tmp) / name)
        else:
            # --no-binary for this package only: its build dependencies (scikit-build-core, cmake) may come as
            # wheels; with ':all:' a machine without cmake would compile cmake from source to read metadata
            r = _pip("download", "--no-deps", "--no-binary", "llama-cpp-python",
                     f"llama-cpp-python=={LLAMA_CPP_PYTHON}", "-d", tmp, timeout=900)
            if r.returncode != 0:
                raise ToolchainError(f"cannot install llama.cpp's converter: pip could not download "
                                     f"llama-cpp-python=={LLAMA_CPP_PYTHON} (offline?): {last_line(r.stderr)}",
                                     field="llama-cpp-python")
        got = Path(tmp) / name
        if not got.is_file() or _sha256(got) != SDIST_SHA256:
            raise ToolchainError(f"the downloaded {name} is not the pinned release (sha256 differs from "
                                 f"{SDIST_SHA256[:12]}…)", field="llama-cpp-python")
        os.replace(got, target)
    return target


def _extract(archive: Path, dest: Path, keep) -> int:
    """Extract the members under vendor/llama.cpp/ for which ``keep(relative path)`` holds; returns their count."""
    n = 0
    with tarfile.open(archive, "r:gz") as tar:
        for m in tar:
            if not m.name.startswith(_VENDOR) or not (m.isfile() or m.isdir()):
                continue
            rel = m.name[len(_VENDOR):]
            if rel and keep(rel):
                m.name = rel
                tar.extract(m, dest, filter="data")
                n += 1
    return n


# --------------------------------------------------------------------------- the converter

def converter_path() -> Path | None:
    """``convert_hf_to_gguf.py`` when the pinned converter is installed, else None (never downloads)."""
    folder = root() / "convert"
    return folder / "convert_hf_to_gguf.py" if _stamp_ok(folder, version=LLAMA_CPP_PYTHON) else None


def ensure_converter() -> Path:
    """Install the pinned converter into the cache if it is not there; idempotent.

    Cost of a first install: a 76.6 MB download and ≈ 30 s (3 s of it the download), 9 MB on disk for the
    converter and sentencepiece, plus the 74 MB sdist kept for building the binaries later without a network.

    Returns:
        The path of ``convert_hf_to_gguf.py``.
    Raises:
        ToolchainError: offline and not installed, or the download is not the pinned release.
    """
    found = converter_path()
    if found:
        return found
    archive = sdist()
    target = root() / "convert"
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=root()))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary folder
    try:
        n = _extract(archive, tmp, lambda rel: rel.startswith(_CONVERTER_PARTS))
        if not (tmp / "convert_hf_to_gguf.py").is_file() or not (tmp / "gguf-py" / "gguf").is_dir():
            raise ToolchainError(f"{archive.name} holds no vendor/llama.cpp/convert_hf_to_gguf.py", field=str(archive))
        r = _pip("install", "--no-deps", "--no-compile", "--target", str(tmp / "site"),
                 f"sentencepiece=={SENTENCEPIECE}", timeout=600)
        if r.returncode != 0:
            raise ToolchainError(f"cannot install sentencepiece=={SENTENCEPIECE} for the converter (offline?): "
                                 f"{last_line(r.stderr)}", field="sentencepiece")
        (tmp / _STAMP).write_text(json.dumps({"version": LLAMA_CPP_PYTHON, "sdist_sha256": SDIST_SHA256,
                                              "sentencepiece": SENTENCEPIECE, "files": n}))
        _move_into_place(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target / "convert_hf_to_gguf.py"


def tool_env() -> dict[str, str]:
    """The environment the converter and the binaries run in: the user's, less every PYTHON* variable, plus
    sentencepiece from the cache; offline, since a merged model is a local folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(PYTHONPATH=str(root() / "convert" / "site"), PYTHONNOUSERSITE="1", PYTHONIOENCODING="utf-8",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.pop("NO_LOCAL_GGUF", None)  # the converter must use its own gguf-py, not the venv's
    return env


def run_converter(args: list[str], *, log_file: Path, timeout: float = 3600) -> int:
    """Run ``convert_hf_to_gguf.py ARGS`` with this interpreter (the venv's torch and transformers); its output
    goes to ``log_file``. Returns the exit status."""
    script = ensure_converter()
    with open(log_file, "w", encoding="utf-8") as log:
        r = subprocess.run([sys.executable, str(script), *args], stdout=log, stderr=subprocess.STDOUT,
                           env=tool_env(), cwd=log_file.parent, timeout=timeout, check=False)
    return r.returncode


# --------------------------------------------------------------------------- the binaries

@dataclass(frozen=True)
class LlamaTools:
    """llama.cpp's binaries built from the pinned source."""

    quantize: Path
    completion: Path  # non-interactive generation with -no-cnv
    tokenize: Path


def _cpu() -> str:
    """What a -march=native binary depends on: the machine and its CPU flags."""
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = line.split(":", 1)[1].strip()
                break
    except OSError:
        flags = platform.processor()
    return platform.machine() + ":" + hashlib.sha256(flags.encode()).hexdigest()[:16]


def find_llama_tools() -> LlamaTools | None:
    """The binaries when they were built here for this CPU, else None (never builds)."""
    folder = root() / "bin"
    if not _stamp_ok(folder, version=LLAMA_CPP_PYTHON, cpu=_cpu()):
        return None
    paths = [folder / t for t in TOOLS]
    return LlamaTools(*paths) if all(p.is_file() for p in paths) else None


def ensure_llama_tools(jobs: int = 2) -> LlamaTools:
    """Build llama-quantize, llama-completion and llama-tokenize from the pinned source, once per CPU.

    Measured here: 10.5 CPU-minutes (most of it ggml's CPU kernels, libllama and llama-common), 14 min of wall time
    on 2 cores shared with a training run; a 98 MB build tree in a temporary folder; 29 MB of static binaries kept.

    Raises:
        ToolchainError: no cmake / C++ compiler, or the build fails (the last line of its log is quoted).
    """
    found = find_llama_tools()
    if found:
        return found
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            raise ToolchainError(f"building llama.cpp needs {tool} (Debian: apt-get install cmake g++)", field=tool)
    archive = sdist()
    target = root() / "bin"
    with tempfile.TemporaryDirectory(prefix=".build-", dir=root()) as tmp:
        src, build, out = Path(tmp) / "src", Path(tmp) / "build", Path(tmp) / "bin"
        _extract(archive, src, lambda rel: not rel.startswith(_SOURCE_SKIP))
        log = root() / "build.log"
        with open(log, "w", encoding="utf-8") as f:
            steps = [["cmake", "-S", str(src), "-B", str(build), *_CMAKE_FLAGS],
                     ["cmake", "--build", str(build), "--target", *TOOLS, "-j", str(jobs)]]
            for cmd in steps:
                f.write("$ " + " ".join(cmd) + "\n")
                f.flush()
                r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=tool_env(), timeout=4 * 3600,
                                   check=False)
                if r.returncode != 0:
                    raise ToolchainError(f"building llama.cpp failed ({' '.join(cmd[:2])}); see {log}: "
                                         f"{last_line(log.read_text(encoding='utf-8', errors='replace'))}",
                                         field="llama.cpp")
        out.mkdir()
        for t in TOOLS:
            built = next(iter(build.glob(f"bin/{t}")), None) or next(build.rglob(t), None)
            if built is None:
                raise ToolchainError(f"the llama.cpp build made no {t}; see {log}", field="llama.cpp")
            shutil.copy2(built, out / t)
        (out / _STAMP).write_text(json.dumps({"version": LLAMA_CPP_PYTHON, "cpu": _cpu(), "flags": _CMAKE_FLAGS}))
        _move_into_place(out, target)
    found = find_llama_tools()
    assert found is not None
    return found


# --------------------------------------------------------------------------- shell entry

def describe() -> dict:
    """What is installed, as data (paths or None)."""
    tools = find_llama_tools()
    converter = converter_path()
    return {"version": LLAMA_CPP_PYTHON, "root": str(root()), "converter": str(converter) if converter else None,
            "binaries": {t: str(getattr(tools, t.removeprefix("llama-"))) for t in TOOLS} if tools else None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.export.toolchain",
                                description="Install llama.cpp's GGUF converter (and optionally build its binaries) "
                                            "into the LoRA Studio cache.")
    p.add_argument("--build", action="store_true", help="also build llama-quantize/-completion/-tokenize (10-15 min)")
    p.add_argument("--check", action="store_true", help="install nothing; exit 1 when the converter is missing")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="parallel compile jobs for --build")
    args = p.parse_args(argv)
    try:
        if not args.check:
            ensure_converter()
            if args.build:
                ensure_llama_tools(args.jobs)
    except ToolchainError as e:
        print(f"toolchain: {e}", file=sys.stderr)
        return 1
    print(json.dumps(describe(), indent=2))
    return 0 if converter_path() else 1


if __name__ == "__main__":
    sys.exit(main())
