"""A run's rows and files of rows → prompts and generations: the held-out rows the GUI prefills from, a
typed paragraph → the run's own prompt, and whole files → a CSV with one column per model.

Rows go through the run's own template and column mapping, exactly as in training.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from core import data as D
from core.config import DecodingConfig
from core.errors import DataError, StudioError
from core.inference.modelset import MERGED, WHICH, ModelSet, parse_which
from core.models.load import load_tokenizer
from core.run import RunFolder
from core.tasks import format_row, inference_prompt

log = logging.getLogger(__name__)


@lru_cache(maxsize=8)
def run_tokenizer(run_dir: str):
    """The tokenizer saved beside a run's adapter (cached: the GUI asks for it on every click)."""
    return load_tokenizer(str(RunFolder(Path(run_dir)).adapter))


def run_template(run_dir: Path) -> str:
    """The template a run trained with ("" when run.json does not say)."""
    return str(RunFolder(run_dir).read_info().get("template") or "")


def run_prompt(run_dir: Path, row: dict) -> str:
    """The run's own inference prompt for a role-keyed row (for MCQ generation only ``context`` is needed)."""
    folder = RunFolder(run_dir)
    cfg = folder.read_config()
    if cfg.data.clean:  # as in training: NFC, collapsed spaces (a pasted paragraph often has odd ones)
        row = {k: D.clean_text(v) if isinstance(v, str) else v for k, v in row.items()}
    ctx = D.template_context(run_tokenizer(str(folder.path)), cfg.data)
    return inference_prompt(run_template(folder.path), row, ctx)


@lru_cache(maxsize=8)
def _heldout_rows(run_dir: str, split: str, stamp: float) -> tuple[dict, ...]:
    folder = RunFolder(Path(run_dir))
    cfg = folder.read_config()
    tok = run_tokenizer(run_dir)
    prepared = D.prepare(cfg.data, tok, seed=cfg.train.seed)  # the same split the run was trained with
    indices = prepared.test_index if split == "test" else [e.index for e in prepared.validation]
    records = prepared.frame.to_dict(orient="records")
    ctx = D.template_context(tok, cfg.data)
    rows = []
    for i in indices:
        try:
            row = D.map_row(records[i], prepared.guess, cfg.data.clean)
        except DataError as e:  # held-out rows are not checked by prepare(): skip a broken one
            log.info("skipping held-out row %d of %s: %s", i, run_dir, e)
            continue
        try:
            reference = format_row(row, prepared.template, ctx).reference
        except DataError:
            reference = ""
        rows.append({"index": i, "row": row, "reference": reference})
    return tuple(rows)


def heldout_rows(run_dir: Path, split: str = "test") -> list[dict]:
    """Rows of the run's held-out ``split`` ("test" or "validation"): {index, row (role-keyed), reference}.

    Raises:
        DataError: the run's data cannot be read any more.
    """
    folder = RunFolder(Path(run_dir))
    return list(_heldout_rows(str(folder.path.resolve()), split, folder.config.stat().st_mtime))


def check_output_file(path: Path, what: str = "--out") -> Path:
    """Refuse an output path that cannot be written as a file, before any work starts.

    Raises:
        StudioError: an existing folder, or a parent that is not a writable folder.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise StudioError(f"{what} {path} is a folder; give the file to write, e.g. {path / 'out.csv'}", field=what)
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise StudioError(f"{what} {path}: {parent} is not a folder", field=what) from None
    except OSError as e:
        raise StudioError(f"{what} {path}: cannot create {parent}: {e.strerror or e}", field=what) from None
    import os

    if not os.access(parent, os.W_OK):
        raise StudioError(f"{what} {path}: the folder {parent} is not writable", field=what)
    return path


def generate_file(run_dir: str | Path, input_path: str | Path, out_csv: str | Path,
                  which: Iterable[str] = WHICH, decoding: DecodingConfig | None = None) -> Path:
    """Generate for every row of a data file with the chosen models of a run; write a CSV.

    Each row goes through the run's own template (for MCQ generation only its ``context`` is
    needed). The output holds the input columns and one column per model, named base, adapter
    and merged.

    Args:
        run_dir: a run folder (``merged`` needs its merged/ folder: ``python -m core merge RUN_DIR``).
        input_path: a CSV / JSON / JSONL / Parquet file.
        out_csv: the CSV to write (UTF-8 with a BOM, so that Excel shows Vietnamese correctly).
        which: the models to generate with.
        decoding: generation settings (greedy by default).
    Returns:
        The CSV's path.
    Raises:
        DataError: unreadable input, or a row that lacks what the template needs (named by row).
        StudioError: an output that cannot be written (checked before any model is loaded).
        AdapterError / ModelLoadError: the run's adapter or merged model cannot be loaded.
    """
    names = parse_which(which)
    src = Path(input_path)
    if not src.is_file():
        raise DataError(f"input file not found: {src}", field="input")
    out_csv = check_output_file(Path(out_csv))
    frame = D.read_table(src)
    models = ModelSet.from_run(run_dir, merged=MERGED in names)
    prompts = []
    for i, row in enumerate(frame.to_dict(orient="records")):
        try:
            prompts.append(models.prompt_for(row))
        except DataError as e:
            raise DataError(f"{src.name} row {i + 1}: {e}", field=e.field) from None
    out = frame.copy()
    for name in names:
        log.info("generating %d rows with %s", len(prompts), name)
        out[name] = [g.text for g in models.generate(prompts, name, decoding or DecodingConfig())]
    tmp = out_csv.with_name(f".{out_csv.name}.tmp")
    out.to_csv(tmp, index=False, encoding="utf-8-sig")
    tmp.replace(out_csv)
    return out_csv
