"""The command line: everything the GUI does, headless.

    python -m core train PRESET.yaml [--set section.field=value …] [--runs-dir DIR]
    python -m core resume RUN_DIR
    python -m core presets
    python -m core inspect-data FILE_OR_SAMPLE [--set data.field=value …] [--model NAME]
    python -m core estimate PRESET.yaml [--set …]

Errors print one line, ``error: <what> (<field or file>)``, and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from core.errors import StudioError


def _cmd_train(args) -> int:
    from core import config as C
    from core.train import TrainingJob

    cfg = C.load_yaml(_preset_path(args.preset), args.set)
    job = TrainingJob(cfg, args.runs_dir)
    run_dir = job.run()
    for w in job.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(job.message, file=sys.stderr)
    print(run_dir)
    return 0


def _cmd_resume(args) -> int:
    from core import config as C
    from core.errors import JobError
    from core.train import TrainingJob

    run_dir = Path(args.run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise JobError(f"not a run folder (no config.yaml): {run_dir}", field=str(run_dir))
    cfg = C.load_yaml(run_dir / "config.yaml", args.set)
    job = TrainingJob(cfg, run_dir.parent, resume_dir=run_dir)
    print(job.run())
    return 0


def _preset_path(name: str) -> Path:
    from core.paths import PRESETS_DIR

    path = Path(name)
    if not path.exists() and (PRESETS_DIR / name).exists():
        return PRESETS_DIR / name
    if not path.exists() and (PRESETS_DIR / f"{name}.yaml").exists():
        return PRESETS_DIR / f"{name}.yaml"
    return path


def _cmd_presets(args) -> int:
    from core.presets import list_presets

    for p in list_presets():
        print(f"{p.name:<28} {p.summary}")
    return 0


def _cmd_inspect(args) -> int:
    from core import config as C
    from core import data as D
    from core import models as M

    cfg = C.RunConfig()
    cfg.data.source = args.source
    for expr in args.set:
        C.set_value(cfg, *C.parse_set(expr))
    if args.model:
        cfg.model.name_or_path = args.model
    frame = D.load_frame(cfg.data)
    guess = D.detect_schema(frame.columns, cfg.data.column_map)
    template = D.resolve_template(cfg.data.template, guess.schema)
    print(f"source:   {cfg.data.source}")
    print(f"rows:     {len(frame)}")
    print(f"columns:  {', '.join(map(str, frame.columns))}")
    print(f"schema:   {guess.schema} ({guess.describe('en')})")
    print("mapping:  " + ", ".join(f"{role} <- {col}" for role, col in guess.column_map.items()))
    print(f"template: {template}")
    held = sum(D.holdout_mask(frame))
    if held:
        print(f"held-out: {held} rows marked as a test split")
    if args.no_tokens:
        return 0
    tok = M.load_tokenizer(M.resolve_model(cfg.model.name_or_path))
    prepared = D.prepare(cfg.data, tok, frame=frame)
    s = prepared.stats
    print(f"tokens ({cfg.model.name_or_path}): n={s.n} min={s.min} mean={s.mean:.1f} median={s.median:.0f} "
          f"p95={s.p95} max={s.max}; {s.n_truncated} over max_length={s.max_length}, {s.n_filtered} filtered")
    print(f"split:    {len(prepared.train)} train / {len(prepared.validation)} validation / "
          f"{len(prepared.test_index)} held-out test")
    return 0


def _cmd_estimate(args) -> int:
    from core import config as C
    from core import models as M

    cfg = C.load_yaml(_preset_path(args.preset), args.set)
    est = M.estimate_memory(cfg)
    p = est.params
    print(f"trainable parameters: {p.trainable:,} of {p.total:,} ({p.trainable_percent:.2f}%)")
    for k, v in est.breakdown().items():
        print(f"{k:<12} {M.human_bytes(v)}")
    print(f"device: {est.device.name}, available {M.human_bytes(est.device.available_bytes)}: {est.verdict}")
    for tip in est.advice:
        print(f"tip: {tip}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core", description="LoRA Studio, headless.")
    sub = p.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train", help="train an adapter from a YAML preset")
    t.add_argument("preset", help="a YAML preset file (or the name of one in presets/)")
    t.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override a setting, e.g. --set lora.r=8 (repeatable)")
    t.add_argument("--runs-dir", default=None, help="parent folder of the run folder (default: runs/)")
    t.set_defaults(func=_cmd_train)

    r = sub.add_parser("resume", help="continue a stopped run from its last checkpoint")
    r.add_argument("run_dir")
    r.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override a setting, e.g. --set train.max_steps=20")
    r.set_defaults(func=_cmd_resume)

    ls = sub.add_parser("presets", help="list the presets")
    ls.set_defaults(func=_cmd_presets)

    i = sub.add_parser("inspect-data", help="detect the schema and token statistics of a dataset")
    i.add_argument("source", help="a CSV/JSON/JSONL/Parquet file, sample:NAME, or a Hub dataset id")
    i.add_argument("--set", action="append", default=[], metavar="data.FIELD=VALUE")
    i.add_argument("--model", default=None, help="tokenizer to count with (default: the default model)")
    i.add_argument("--no-tokens", action="store_true", help="skip the token statistics (no model needed)")
    i.set_defaults(func=_cmd_inspect)

    e = sub.add_parser("estimate", help="trainable parameters and memory estimate of a preset")
    e.add_argument("preset")
    e.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    e.set_defaults(func=_cmd_estimate)
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except StudioError as e:
        where = f" ({e.field})" if e.field and e.field not in str(e) else ""
        print(f"error: {e}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
