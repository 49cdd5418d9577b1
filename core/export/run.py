"""Export a run: merge it when it has no current merge, then GGUF + Modelfile, verified against the merged model.

Owns: what a run's export needs from the run (its merged folder, prompt format, the task's decoding defaults and
its validation prompts) and where the export goes (``RUN/export/<quant>/``, one folder per quant so that each
Modelfile and report describes its own file). Must not: convert or judge (:mod:`core.export.gguf`,
:mod:`core.export.verify`), or say anything in words (the GUI and the CLI do).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core import tasks
from core.config import DecodingConfig, MergeConfig
from core.errors import StudioError
from core.export import modelfile as MF
from core.export.gguf import ExportReport, check_quant, export_gguf
from core.merge.report import load_report
from core.run import RunFolder, RunInfo

N_PROMPTS = 4  # the run's validation prompts the verification adds to its built-in sentences


class MergeNotUsable(StudioError):
    """The run's merged model failed its own check: exporting it would carry the error into the GGUF."""


def export_dir(run_dir: str | Path, quant: str) -> Path:
    return RunFolder(Path(run_dir)).export / quant


def current_merge(folder: RunFolder) -> Path | None:
    """The run's merged folder when it holds a merge of the adapter as it is now (newer than the adapter)."""
    stamp = folder.merged_stamp()
    return folder.merged if stamp is not None and stamp >= folder.adapter_stamp() else None


def export_run(run_dir: str | Path, *, quant: str = "f16", out: str | Path | None = None, verify: bool = True,
               build_tools: bool = False, progress: Callable[..., None] | None = None) -> ExportReport:
    """Export a run's merged model (merging first when needed) for Ollama / LM Studio / llama.cpp.

    Args:
        run_dir: a run folder with an adapter.
        quant: f16 | q8_0 | q4_k_m.
        out: the output folder (default ``RUN/export/<quant>``).
        verify: compare the GGUF with the merged model on built-in sentences and the run's validation prompts.
        build_tools: build llama.cpp's binaries when missing (q4_k_m needs llama-quantize).
        progress: called as ``progress(code, **args)`` with the locale code of each stage: ``merge.stage.*`` when
            it merges first, then ``export.stage.convert | verify | write``.
    Raises:
        MergeNotUsable: the merged model failed its verification (``merged/merge_report.json``).
        AdapterError / ConfigError / ExportError: from the merge and the export.
    """
    check_quant(quant)
    say = progress or (lambda code, **_: None)
    run = RunInfo.load(run_dir)
    folder = run.folder
    merged = current_merge(folder)
    if merged is None:
        from core.merge.run import merge_run

        settings = MergeConfig()
        merge_run(folder.path, dtype=settings.dtype, onto=settings.onto, n_prompts=settings.n_prompts,
                  max_new_tokens=settings.max_new_tokens,
                  progress=lambda stage, **kw: say(f"merge.stage.{stage}", **kw))
        merged = folder.merged
    report = load_report(merged) or {}
    if report.get("passed") is False and not report.get("lossy"):
        raise MergeNotUsable(f"the merged model failed its check against base + adapter ({merged / 'merge_report.json'}); "
                             "merge again (python -m core merge RUN) before exporting", field=str(merged))
    cfg = run.cfg
    fmt = MF.PromptFormat(chat=bool(cfg.data.use_chat_template), system_prompt=cfg.data.system_prompt or "")
    decoding = DecodingConfig(repetition_penalty=tasks.get(run.template).repetition_penalty)
    cases = None
    if verify:
        from transformers import AutoTokenizer

        from core.merge.verify import prompt_set

        cases = prompt_set(run, AutoTokenizer.from_pretrained(merged), N_PROMPTS)[0]
    return export_gguf(merged, Path(out) if out else export_dir(folder.path, quant), quant=quant, fmt=fmt,
                       decoding=decoding, name=folder.name, verify=verify, cases=cases, build_tools=build_tools,
                       progress=lambda stage, **kw: say(f"export.stage.{stage}", **kw))
