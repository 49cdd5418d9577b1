"""``merge_run``: the one merge of a run — build, save, reload, verify, report — as the CLI, the GUI, the
chain and the bench all call it.

It reports its stages as codes (``progress(stage, **args)``, words in ``core.locale`` under
``merge.stage.*``). It writes the merged folder under a temporary name (``.merged.merging-<pid>-…``) and
renames it at the end; a temporary folder left by a merge whose process is gone is removed here.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from core import allocator, locale
from core.config import DecodingConfig, MergeConfig
from core.errors import ConfigError, StudioError
from core.inference.adapters import adapter_sha256, apply_adapter, load_adapter_tensors, load_base, tokenizer_for
from core.inference.generate import model_device
from core.merge.build import (build_merged, dequantize_as_computed, dtype_name, precision, reload_merged,
                              resolve_onto, save_merged, trained_on, upcast_unquantized)
from core.merge.markdown import summary, write_markdown
from core.merge.report import DTYPES, REPORT_JSON, REPORT_MD, MergeReport, TargetResult, load_report
from core.merge.verify import Reference, measure, prompt_set
from core.run import RunFolder, RunInfo, versions

log = logging.getLogger(__name__)

_MERGE_LOCK = threading.Lock()  # one merge at a time per process: each holds two to three models in memory
Progress = Callable[..., None]  # progress(stage code, **its numbers)


def _log_stage(stage: str, **args: Any) -> None:
    log.info(locale.text(f"merge.stage.{stage}", "en", **args))


def _check_out(out: Path) -> None:
    """Refuse to replace a folder that is not a merged model made here."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / REPORT_JSON).is_file())):
        raise StudioError(f"the output folder {out} exists and is not a merged model made by LoRA Studio "
                          "(no merge_report.json); choose another --out", field=str(out))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale_temporaries(parent: Path, name: str) -> list[Path]:
    """Remove ``.<name>.merging-<pid>-*`` folders whose process is gone (a killed merge); returns them."""
    removed = []
    for tmp in Path(parent).glob(f".{name}.merging-*"):
        try:
            pid = int(tmp.name.split(".merging-", 1)[1].split("-", 1)[0])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def clean_stale_merges(runs_dir: str | Path) -> list[Path]:
    """Remove the temporary folders that killed merges left in the run folders of ``runs_dir`` (at app start)."""
    removed = []
    for merged_parent in Path(runs_dir).glob("*/"):
        removed += remove_stale_temporaries(merged_parent, RunFolder(merged_parent).merged.name)
    return removed


def merge_run(run_dir: str | Path, *, dtype: str = "float32", onto: str = "auto", out: str | Path | None = None,
              n_prompts: int = MergeConfig().n_prompts, max_new_tokens: int = MergeConfig().max_new_tokens,
              progress: Progress | None = None) -> MergeReport:
    """Merge a run's adapter into its base, verify the result, and write it with its report.

    Args:
        run_dir: a finished run folder.
        dtype: float32 | bfloat16 | float16, the saved precision (the merge itself runs in float32).
        onto: auto | original | dequantized | 4bit (see :mod:`core.merge`).
        out: the output folder (default ``RUN_DIR/merged``).
        n_prompts: verification prompts from the run's validation data.
        max_new_tokens: greedy tokens generated per prompt for the first-divergence check.
        progress: called as ``progress(stage, **args)`` at each stage (the GUI shows it in its language).
    Returns:
        The MergeReport; ``already_merged`` is True when the folder already held this merge (nothing rewritten).
        The models it loaded are gone when it returns, and their pages handed back to the system (a chain trains
        its next stage in the same process: under jemalloc, which keeps freed pages, they stayed held).
    Raises:
        AdapterError: missing files, NaN weights, an adapter made for another base.
        ConfigError: bad dtype / onto; StudioError: an output folder that is not ours.
    """
    try:
        with _MERGE_LOCK:
            return _merge_run(run_dir, dtype, onto, out, n_prompts, max_new_tokens, progress or _log_stage)
    finally:
        gc.collect()  # _merge_run's models are unreachable now
        allocator.release()


def _reference_model(run: RunInfo, dtype: str) -> tuple[Any, str, str, dict, list[dict]]:
    """The adapter as trained, held so that it computes like the merged model will.

    The reference computes in the run's dtype (a 4-bit base: in its compute dtype) — except when a run on 16-bit
    weights is merged to float32: both sides then compute in float32, so that the check compares like with like
    (16-bit arithmetic alone moves logits by more than any merge error).

    Returns:
        (model with the adapter applied, the dtype it computes in, reference code, its args, notes)
    """
    run_dtype = dtype_name(run.cfg.model.dtype)
    ref_dtype = dtype_name(run.cfg.model.bnb_4bit_compute_dtype if run.quantized else run.cfg.model.dtype)
    if not run.quantized and ref_dtype != "float32" and dtype == "float32":
        model = load_base(run, dtype="float32")
        code, args = "float32_base", {"dtype": ref_dtype}
        notes = [{"code": "float32_reference_lora", "args": {"dtype": ref_dtype}}]
        ref_dtype = "float32"
    elif run.quantized and dtype == "float32" and run_dtype != "float32":
        # QLoRA on 16-bit weights: the 4-bit layers as trained (same codes, same compute dtype), the norms and
        # embeddings in float32 — the dequantized merge holds exactly these weights, also in float32
        model = upcast_unquantized(load_base(run))
        code, args = "float32_unquantized", {"trained_on": trained_on(run)}
        notes = [{"code": "float32_reference_qlora", "args": {"dtype": run_dtype}}]
    elif run.cfg.model.load_in_8bit and dtype == "float32":
        # LLM.int8 rounds the activations to 8 bits at every matmul too: that is arithmetic, like bf16 rounding,
        # not a property of the weights, and no merged model can repeat it. The reference holds the int8 weights
        # exactly as trained, dequantized, computing in float32 — the dequantized merge holds the same weights
        model = dequantize_as_computed(load_base(run))
        code, args = "float32_dequantized_8bit", {}
        notes = [{"code": "float32_reference_8bit", "args": {}}]
        ref_dtype = "float32"
    else:
        model, code, args, notes = load_base(run), "as_trained", {}, []
    model, more = apply_adapter(model, run.adapter_dir, expected_bases=run.base_names)
    return model, ref_dtype, code, args, notes + more


def _merge_run(run_dir, dtype, onto, out, n_prompts, max_new_tokens, say: Progress) -> MergeReport:
    if dtype not in DTYPES:
        raise ConfigError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}", field="dtype")
    if n_prompts < 1:
        raise ConfigError(f"n_prompts must be ≥ 1, got {n_prompts}", field="n_prompts")
    t_start = time.monotonic()
    run = RunInfo.load(run_dir)
    target = resolve_onto(run, onto)
    out = Path(out).expanduser().resolve() if out else run.folder.merged
    sha = adapter_sha256(run.adapter_dir)

    previous = load_report(out)
    if previous and previous.get("adapter_sha256") == sha and previous.get("dtype") == dtype \
            and previous.get("target") == target and (out / "config.json").is_file():
        report = MergeReport.from_dict(previous)
        report.already_merged = True
        say("already_merged", sha=sha[:12])
        return report
    _check_out(out)
    load_adapter_tensors(run.adapter_dir)  # NaN / unreadable: fail before loading any model
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out.parent, out.name)
    notes: list[dict] = []
    if previous:
        notes.append({"code": "replaced_previous", "args": {"target": previous.get("target"),
                                                            "dtype": previous.get("dtype"),
                                                            "sha": str(previous.get("adapter_sha256"))[:12]}})

    say("loading_reference")
    tokenizer = tokenizer_for(run)
    cases, source, more = prompt_set(run, tokenizer, n_prompts)
    notes += more
    ref_model, ref_dtype, ref_code, ref_args, more = _reference_model(run, dtype)
    notes += more
    say("generating_reference", n=len(cases))
    reference = Reference(ref_model, tokenizer, cases, DecodingConfig(max_new_tokens=max_new_tokens))
    device = model_device(ref_model)

    # the chosen target first (saved), then for a QLoRA run the other float target (measured only)
    order = [target] + [t for t in ("dequantized", "original") if run.quantized and t != target]
    results: dict[str, TargetResult] = {}
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.merging-{os.getpid()}-", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the merged folder is an ordinary model folder
    files: list[str] = []
    try:
        for name in order:
            lossy = name == "4bit" or (name == "original" and run.quantized)
            say("merging", target=name)
            merged, more = build_merged(run, name, dtype)
            notes += [n for n in more if n not in notes]
            saved = name == target
            if saved:
                say("saving", dtype=dtype)
                files = save_merged(merged, tokenizer, run, tmp)
                del merged
                gc.collect()
                merged = reload_merged(tmp, dtype, device)
            else:
                merged.to(device)
            say("verifying", target=name)
            results[name] = measure(reference, merged, tokenizer, target=name, dtype=dtype,
                                    tolerance_dtypes=(dtype, ref_dtype), lossy=lossy, saved=saved)
            del merged
            gc.collect()
        report = MergeReport(
            run_dir=str(run.run_dir), out_dir=str(out), adapter_dir=str(run.adapter_dir), adapter_sha256=sha,
            base_model=str(run.info.get("base_model") or run.cfg.model.name_or_path),
            resolved_base_model=run.base_path, quantized_run=run.quantized, trained_on=trained_on(run),
            requested_onto=onto, target=target, dtype=dtype, reference=ref_code, reference_args=ref_args,
            precision=precision(run),
            prompts={"source": source, "n": len(cases), "n_tokens": sum(len(c.input_ids) for c in cases),
                     "max_new_tokens": max_new_tokens,
                     "cases": [{"n_tokens": len(c.input_ids), "preview": c.preview} for c in cases]},
            results=results, notes=notes, files=files + [REPORT_JSON, REPORT_MD],
            created=dt.datetime.now().isoformat(timespec="seconds"),
            seconds=round(time.monotonic() - t_start, 2), versions=versions())
        report.write_json(tmp)
        write_markdown(report, tmp)
        _replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info(summary(report))
    return report


def _replace(tmp: Path, out: Path) -> None:
    """Put the complete new folder in place; the old one is removed only once the new one is there."""
    old = out.parent / f".{out.name}.old-{os.getpid()}-{threading.get_ident()}"
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
