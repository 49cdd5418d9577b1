"""The command line: everything the GUI does, headless.

    python -m core train PRESET.yaml [--set section.field=value …] [--runs-dir DIR] [--nproc N]
    python -m core resume RUN_DIR [--more-steps N | --more-epochs E] [--schedule extend|restart] [--nproc N]
    python -m core runs [--runs-dir DIR]
    python -m core presets
    python -m core inspect-data FILE_OR_SAMPLE [--set data.field=value …] [--model NAME]
    python -m core estimate PRESET.yaml [--set …]
    python -m core merge RUN_DIR [--dtype float32|bfloat16|float16] [--onto auto|original|dequantized|4bit] [--out DIR]
    python -m core export RUN_DIR --to gguf [--quant f16|q8_0|q4_k_m] [--out DIR] [--build-tools]
    python -m core generate RUN_DIR --input FILE.jsonl --out FILE.csv [--which base,adapter,merged] [--max-new-tokens N]
    python -m core quiz RUN_DIR --input CHAPTER.txt --out quiz.csv [--per-paragraph K] [--candidates N]
    python -m core chain STAGE1.yaml STAGE2.yaml [… more] [--set k=v …] [--stage-set N:k=v …] [--runs-dir DIR]

Errors print one line, ``error: <what> (<field or file>)``, and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

from core import config as C
from core import locale
from core.errors import ConfigError, StudioError
from core.run import RunFolder


def _settings(cls, args, flags: dict[str, str]):
    """A DecodingConfig / MergeConfig / AnalysisConfig from the command's flags, bounds checked up front.

    Args:
        cls: the config dataclass.
        flags: field name → the flag that sets it (the errors name the flag).
    Raises:
        ConfigError: one line naming the flag and its value.
    """
    obj = cls()
    for name, flag in flags.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"), None)
        if value is not None:
            C.set_field(obj, name, value, key=flag)
    errors = [i for i in C.validate_section(obj, names=flags) if i.level == "error"]
    if errors:
        raise ConfigError("; ".join(map(str, errors)), field=errors[0].field)
    return obj


class _StopOnSignal:
    """Ctrl-C (SIGINT) and SIGTERM act like Stop: the step finishes, a checkpoint and the adapter are saved, the run
    says "stopped". A second signal aborts at once. The previous handlers come back on exit."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, job):
        self.job = job
        self.received: list[int] = []
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.received:
            raise KeyboardInterrupt  # the second one: do not wait for the step
        self.received.append(signum)
        print(f"{signal.Signals(signum).name}: stopping after the current step (press Ctrl-C again to abort at once)",
              file=sys.stderr, flush=True)
        if self.job is not None:  # a sweep between two runs has none: it stops before the next
            self.job.stop()

    def __enter__(self) -> "_StopOnSignal":
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    @property
    def exit_code(self) -> int:
        """0, or 128 + the signal (130 for Ctrl-C, 143 for SIGTERM), as a shell expects of an interrupted command."""
        return 128 + self.received[0] if self.received else 0


def _run_job(job) -> int:
    with _StopOnSignal(job) as stop:
        run_dir = job.run()
    for w in job.warnings:
        print(f"warning: {w}", file=sys.stderr)
    for note in job.notes:
        print(f"note: {note}", file=sys.stderr)
    print(job.message, file=sys.stderr)
    print(run_dir)
    return stop.exit_code


def _with_nproc(sets: list[str], nproc: int | None) -> list[str]:
    return [*sets, f"train.nproc={nproc}"] if nproc is not None else sets


def _run_launch(launch) -> int:
    """A run over several processes (core.train.launch): Ctrl-C or SIGTERM asks them all to stop after the step; a
    second one stops them at once. Prints what _run_job prints."""
    from core.run import describe_status

    received: list[int] = []

    def handle(signum, frame) -> None:
        if received:
            launch.abort()
            return
        received.append(signum)
        print(f"{signal.Signals(signum).name}: stopping every process after the current step (press Ctrl-C again to "
              "abort at once)", file=sys.stderr, flush=True)
        launch.stop()

    previous = {sig: signal.signal(sig, handle) for sig in _StopOnSignal.SIGNALS}
    try:
        run_dir = launch.start()
        print(f"training in {launch.cfg.train.nproc} processes; their output: {launch.folder.workers_log}",
              file=sys.stderr, flush=True)
        rc = launch.wait()
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)
    for w in launch.warnings:
        print(f"warning: {w}", file=sys.stderr)
    info = RunFolder(run_dir).read_info()
    print(describe_status(info), file=sys.stderr)
    if info.get("status") == "failed":
        print(f"error: {info.get('error') or 'a training process failed'} (see {launch.folder.workers_log})",
              file=sys.stderr)
        print(run_dir)
        return 2 if rc == 2 else 1
    print(run_dir)
    return 128 + received[0] if received else 0


def _cmd_train(args) -> int:
    from core.train.job import TrainingJob

    cfg = C.load_yaml(_preset_path(args.preset), _with_nproc(args.set, args.nproc))
    if cfg.train.nproc != 1:
        from core.train.launch import Launch

        return _run_launch(Launch(cfg, args.runs_dir))
    return _run_job(TrainingJob(cfg, args.runs_dir))


def _cmd_worker(args) -> int:
    """One process of a multi-process run (started by core.train.launch through accelerate launch, not by hand)."""
    from core.train.job import TrainingJob

    folder = RunFolder(Path(args.run_dir))
    cfg = folder.read_config()
    more = None
    if args.more_steps or args.more_epochs:
        from core.train.resume import More

        more = More(steps=args.more_steps or 0, epochs=args.more_epochs or 0.0, schedule=args.schedule)
    if args.resume or more is not None:
        job = TrainingJob(cfg, folder.path.parent, resume_dir=folder.path, more=more, launched=True)
    else:
        job = TrainingJob(cfg, folder.path.parent, launched=True, into=folder.path)
    with _StopOnSignal(job):  # a signal to one process: it stops, and the others with it (SharedStop)
        job.run()
    print(job.message, file=sys.stderr)
    return 0


def _cmd_resume(args) -> int:
    from core.errors import JobError
    from core.run import Status
    from core.train.job import TrainingJob

    folder = RunFolder(Path(args.run_dir))
    if not folder.config.is_file():
        raise JobError(f"not a run folder (no {folder.config.name}): {folder.path}", field=str(folder.path))
    cfg = folder.read_config(_with_nproc(args.set, args.nproc))

    def job(more=None):
        if cfg.train.nproc != 1:
            from core.train.launch import Launch

            return _run_launch(Launch(cfg, folder.path.parent, resume_dir=folder.path, more=more))
        return _run_job(TrainingJob(cfg, folder.path.parent, resume_dir=folder.path, more=more))

    if args.more_steps is not None or args.more_epochs is not None:
        from core.train.resume import More

        return job(More(steps=args.more_steps or 0, epochs=args.more_epochs or 0.0, schedule=args.schedule))
    info = folder.read_info()
    if info.get("status") == str(Status.FINISHED):
        print(f"{folder.name} already finished at step {info.get('step', '?')}: nothing to resume, nothing changed "
              "(train it further with --more-steps N)", file=sys.stderr)
        print(folder.path)
        return 0
    return job()


def _cmd_sweep(args) -> int:
    from core.paths import default_runs_dir
    from core.sweep import SWEEP_JSON, Sweep, parse_grid

    preset = _preset_path(args.preset)
    runs_dir = Path(args.runs_dir or default_runs_dir())
    sweep = Sweep.plan(preset, parse_grid(args.grid), runs_dir, sets=args.set, name=args.name, evaluate=args.evaluate)
    stop = _StopOnSignal(None)
    with stop:
        def follow(job) -> None:
            stop.job = job
            if stop.received:  # a signal between two runs: this one does not start its steps
                job.stop()

        sweep.run(on_job=follow, stopped=lambda: bool(stop.received), log=lambda m: print(m, file=sys.stderr))
    rows = sweep.table()
    keys = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in ("best",)]
    print("  ".join(keys) + "  best", file=sys.stderr)
    for r in rows:
        cells = [f"{r[k]:.4g}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in keys]
        print("  ".join(cells) + ("  *" if r["best"] else ""), file=sys.stderr)
    print(sweep.folder / SWEEP_JSON)
    return stop.exit_code


def _cmd_runs(args) -> int:
    from core.run import describe_status, list_runs

    runs = list_runs(args.runs_dir)
    if not runs:
        print(f"no runs in {args.runs_dir or 'runs/'}", file=sys.stderr)
    for info in runs:
        print(f"{info['name']:<44} {describe_status(info)}")
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
    from core import data as D
    from core.models.load import load_tokenizer
    from core.models.registry import resolve_model
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
    tok = load_tokenizer(resolve_model(cfg.model.name_or_path))
    prepared = D.prepare(cfg.data, tok, frame=frame)
    s = prepared.stats
    print(f"tokens ({cfg.model.name_or_path}): n={s.n} min={s.min} mean={s.mean:.1f} median={s.median:.0f} "
          f"p95={s.p95} max={s.max}; {s.n_truncated} over max_length={s.max_length} ({s.n_answer_cut} with "
          f"their answer cut short), {s.n_filtered} filtered")
    print(f"split:    {len(prepared.train)} train / {len(prepared.validation)} validation / "
          f"{len(prepared.test_index)} held-out test")
    return 0


def _cmd_estimate(args) -> int:
    from core.models.memory import data_profile, estimate_memory, human_bytes
    cfg = C.load_yaml(_preset_path(args.preset), args.set)
    profile = data_profile(cfg)
    est = estimate_memory(cfg, profile=profile)
    p = est.params
    print(f"data: {100 * profile.learned_fraction:.0f}% of the tokens are learned; a large batch of "
          f"{est.batch_size} rows (95th percentile) is {est.length} tokens long (max_length {cfg.data.max_length}) "
          f"and computes logits at {est.logit_positions} positions per row")
    b = cfg.train.per_device_train_batch_size
    print(f"padding: {100 * profile.padding_fraction(b):.0f}% of the batch tokens at random, "
          f"{100 * profile.padding_fraction(b, grouped=True):.0f}% with train.train_sampling_strategy="
          f"group_by_length (this run: {cfg.train.train_sampling_strategy})"
          + ("; none with data.packing=true (this run: rows packed end to end, each attending only to itself)"
             if cfg.data.packing else ""))
    print(f"trainable parameters: {p.trainable:,} of {p.total:,} ({p.trainable_percent:.2f}%)")
    for k, v in est.breakdown().items():
        print(f"{k:<12} {human_bytes(v)}")
    print(f"device: {est.device.name}, available {human_bytes(est.device.available_bytes)}: {est.verdict}")
    mode = cfg.train.gradient_checkpointing
    print(f"gradient checkpointing: {'on' if est.checkpointing else 'off'} (train.gradient_checkpointing={mode}"
          + (f"; without it {human_bytes(est.auto_checkpointing_from)}: "
             + ("more than fits comfortably)" if est.auto_checkpointing_why == "not_fit"
                else "mostly activations, recomputed at about 40-50% more time per step)")
             if est.auto_checkpointing_from else ")"))
    pr = est.precision
    print(f"precision: {pr.compute} compute, {pr.weights} weights (train.precision={cfg.train.precision}, "
          f"model.dtype={cfg.model.dtype}: {pr.why})")
    if pr.emulated:
        print("warning: this CPU has no native bfloat16 (AVX512-BF16 / AMX): 16-bit arithmetic is emulated, tens of "
              "times slower than float32; set train.precision and model.dtype to auto")
    n = cfg.train.nproc
    if n > 1:
        where = "on each GPU" if est.device.kind == "cuda" else f"{human_bytes(n * est.total)} for all {n} on this machine"
        print(f"processes: {n} (train.nproc); the estimate above is per process: {where}")
    for tip in est.advice:
        print(f"tip: {tip}")
    return 0


def _cmd_evaluate(args) -> int:
    from core.evaluate import evaluate_run, report_table
    from core.inference.modelset import parse_which

    report = evaluate_run(args.run_dir, split=args.split, which=parse_which(args.which), limit=args.limit,
                          max_new_tokens=args.max_new_tokens, repetition_penalty=args.repetition_penalty,
                          progress=lambda stage, **fmt: print(locale.text(f"evaluate.stage.{stage}", "en", **fmt),
                                                            file=sys.stderr))
    rows = report_table(report)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    print(f"{report['split']} split: {report['n_rows']} rows, {report['n_prompts']} prompts")
    for r in rows:
        print("  " + "  ".join(f"{k}={r[k]}" for k in keys if r.get(k) is not None))
    if "forgetting" in report:
        f = report["forgetting"]
        print(f"forgetting: general-text perplexity {f['general_perplexity_before']} -> "
              f"{f['general_perplexity_after']} (x{f['ratio']})")
    if "baselines_mae" in report:
        print(f"baselines MAE: {report['baselines_mae']}")
    print(RunFolder(Path(args.run_dir)).eval_report)
    return 0


def _cmd_analyze(args) -> int:
    from core.analysis.explain import explain
    from core.analysis.result import compare
    from core.analysis.run import analyze_run

    settings = _settings(C.AnalysisConfig, args, {"top_k": "--top-k", "epsilon": "--epsilon", "method": "--method"})
    result, _ = analyze_run(args.run_dir, settings)
    print(explain(result, lang=args.lang))
    if args.against:
        other, _ = analyze_run(args.against, settings)
        print(json.dumps(compare(result, other), indent=1, default=str))
    print(RunFolder(Path(args.run_dir)).analysis)
    return 0


def _say_merge_stage(stage: str, **fmt) -> None:
    print(locale.text(f"merge.stage.{stage}", "en", **fmt), file=sys.stderr)


def _cmd_merge(args) -> int:
    from core.merge.markdown import summary
    from core.merge.report import REPORT_MD
    from core.merge.run import merge_run

    settings = _settings(C.MergeConfig, args, {"dtype": "--dtype", "onto": "--onto", "n_prompts": "--prompts"})
    report = merge_run(args.run_dir, dtype=settings.dtype, onto=settings.onto, out=args.out,
                       n_prompts=settings.n_prompts, max_new_tokens=settings.max_new_tokens,
                       progress=_say_merge_stage)
    for name, r in report.results.items():
        if name != report.target:
            print(f"also measured, not saved: {name}: max |Δlogit| {r.max_abs_dlogit:.3g}, KL {r.kl_mean:.2g}, "
                  f"greedy agreement {r.greedy_agreement:.1%}" + (" (lossy)" if r.lossy else ""), file=sys.stderr)
    print(summary(report), file=sys.stderr)
    print(f"report: {Path(report.out_dir) / REPORT_MD}", file=sys.stderr)
    print(report.out_dir)
    if report.lossy:
        print(f"warning: lossy merge ({report.target}): the merged model is not the adapter as trained; "
              "see the measured loss in the report", file=sys.stderr)
        return 0
    if not report.passed:
        print("error: verification failed: the merged model does not answer like base + adapter "
              f"({summary(report)})", file=sys.stderr)
        return 1
    return 0


def _cmd_export(args) -> int:
    from core.export.run import export_run

    report = export_run(args.run_dir, quant=args.quant, out=args.out, verify=not args.no_verify,
                        build_tools=args.build_tools,
                        progress=lambda code, **fmt: print(locale.text(code, "en", **fmt), file=sys.stderr))
    figures = (report.verification or {}).get("summary") or ""
    print(f"export: {report.verdict}" + (f" ({figures})" if figures else ""), file=sys.stderr)
    print(report.gguf)
    if report.verdict == "failed":
        print("error: the GGUF does not answer like the merged model; see export_report.json beside it",
              file=sys.stderr)
        return 1
    return 0


def _cmd_generate(args) -> int:
    from core.inference.batch import generate_file

    decoding = _settings(C.DecodingConfig, args, {
        "max_new_tokens": "--max-new-tokens", "do_sample": "--sample", "temperature": "--temperature",
        "top_p": "--top-p", "seed": "--seed", "repetition_penalty": "--repetition-penalty"})
    print(generate_file(args.run_dir, args.input, args.out, which=args.which, decoding=decoding))
    return 0


def _cmd_quiz(args) -> int:
    from core.inference.batch import check_output_file
    from core.inference.modelset import ModelSet
    from core.inference.quiz import QuizWriter, question_template, read_quiz_input, to_items
    from core.run import RunInfo
    from core.tasks.quiz_export import WRITERS

    if args.per_paragraph < 1 or args.candidates < 1:
        raise ConfigError(f"--per-paragraph and --candidates must be ≥ 1, got {args.per_paragraph} and "
                          f"{args.candidates}", field="--per-paragraph")
    out = check_output_file(Path(args.out))
    rows = read_quiz_input(args.input)  # a missing, empty or paragraph-less file: before any model loads
    run = RunInfo.load(args.run_dir)  # not a run folder: likewise
    question_template(run.run_dir)  # another task: likewise
    writer = QuizWriter(ModelSet.from_run(run.run_dir), candidates=args.candidates, narrow=not args.full_vocabulary,
                        reader=args.reader)
    questions = []
    for i, row in enumerate(rows, 1):
        got = writer.write(row["context"], answer=row.get("answer"), k=args.per_paragraph, seed=i)
        questions += got
        print(f"paragraph {i}/{len(rows)}: " + ", ".join(f"{q.status}" + (f" ({'; '.join(q.reasons)})" if q.reasons
                                                                           else "") for q in got), file=sys.stderr)
    items = to_items(questions)
    write, _ = WRITERS[args.format]
    for w in write(items, out):
        print(f"warning: question {w.number} {w.field}: {w.length} characters, over the platform's {w.limit}",
              file=sys.stderr)
    n_ok = sum(q.status == "ok" for q in questions)
    print(f"{len(items)} questions written ({n_ok} passed every check, {len(questions) - n_ok} flagged for a "
          f"teacher to look at)", file=sys.stderr)
    print(out)
    return 0


def _cmd_chain(args) -> int:
    from core.merge.chain import run_chain
    from core.merge.markdown import summary

    per_stage: dict[int, list[str]] = {}
    for expr in args.stage_set:
        stage, sep, kv = expr.partition(":")
        if not sep or not stage.strip().isdigit() or not 1 <= int(stage) <= len(args.presets):
            raise ConfigError(f"--stage-set expects N:section.field=value with N from 1 to {len(args.presets)}, "
                              f"got {expr!r}", field="--stage-set")
        per_stage.setdefault(int(stage), []).append(kv)

    def show(stage) -> None:
        print(f"stage {stage.preset}: run {stage.run_dir}", file=sys.stderr)
        if stage.merged is not None:
            print(f"  merged into {stage.merged.out_dir}: {summary(stage.merged)}", file=sys.stderr)
        print(stage.run_dir, flush=True)

    run_chain([_preset_path(p) for p in args.presets], overrides=args.set, stage_overrides=per_stage,
              runs_dir=args.runs_dir, dtype=args.dtype, n_prompts=args.prompts, on_stage=show)
    return 0


def _help(cls, name: str) -> str:
    return next(f for f in C.fields_of(cls) if f.name == name).metadata["help"]["en"].replace("%", "%%")


def _flag(parser, cls, name: str, flag: str, help: str | None = None) -> None:
    """An option whose default, choices and help come from the config dataclass's field."""
    tp = C.field_type_of(cls, name)
    choices = C.literal_choices(tp)
    default = getattr(cls(), name)
    kind = None if choices else (str if tp is str else tp)
    parser.add_argument(flag, default=default, choices=choices, type=kind,
                        help=f"{help or _help(cls, name)} (default: {default})".replace("%", "%%"))


def build_parser() -> argparse.ArgumentParser:
    from core.export.gguf import QUANTS  # both light: the standard library only
    from core.tasks.quiz_export import WRITERS

    from core.train.launch import WORKER

    p = argparse.ArgumentParser(prog="python -m core", description="LoRA Studio, headless.")
    sub = p.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train", help="train an adapter from a YAML preset")
    t.add_argument("preset", help="a YAML preset file (or the name of one in presets/)")
    t.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override a setting, e.g. --set lora.r=8 (repeatable)")
    t.add_argument("--runs-dir", default=None, help="parent folder of the run folder (default: runs/)")
    t.add_argument("--nproc", type=int, default=None, metavar="N",
                   help="train as N processes with accelerate launch (DDP: N GPUs, or N CPU processes over gloo); "
                        "the same as --set train.nproc=N")
    t.set_defaults(func=_cmd_train)

    w = sub.add_parser(WORKER)  # one process of a multi-process run; started by the launcher (no help: not for users)
    w.add_argument("run_dir")
    w.add_argument("--resume", action="store_true")
    w.add_argument("--more-steps", type=int, default=0)
    w.add_argument("--more-epochs", type=float, default=0.0)
    w.add_argument("--schedule", default="extend")
    w.set_defaults(func=_cmd_worker)

    r = sub.add_parser("resume", help="continue a stopped run from its last checkpoint, or train a finished one more")
    r.add_argument("run_dir")
    r.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override a setting, e.g. --set train.max_steps=20")
    more = r.add_mutually_exclusive_group()
    more.add_argument("--more-steps", type=int, default=None, metavar="N",
                      help="train a finished run N more steps from its last checkpoint")
    more.add_argument("--more-epochs", type=float, default=None, metavar="E",
                      help="train a finished run E more epochs of its data from its last checkpoint")
    r.add_argument("--nproc", type=int, default=None, metavar="N",
                   help="processes to continue with (default: as the run was trained, train.nproc)")
    r.add_argument("--schedule", choices=("extend", "restart"), default="extend",
                   help="with --more-*: stretch the learning-rate schedule over the new total (extend, default) or "
                        "run it afresh over the new steps, warm-up included (restart)")
    r.set_defaults(func=_cmd_resume)

    sw = sub.add_parser("sweep", help="train a grid of settings one run after another, with a results table")
    sw.add_argument("preset", help="a YAML preset file (or the name of one in presets/)")
    sw.add_argument("--grid", action="append", default=[], metavar="SECTION.FIELD=V1,V2,…",
                    help="values to sweep, e.g. --grid lora.r=8,16,64 (repeatable: every combination)")
    sw.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                    help="a setting every run shares (repeatable)")
    sw.add_argument("--name", default=None, help="the sweep's name (default: from the preset and the grid's keys); "
                                                  "the same name resumes a stopped sweep")
    sw.add_argument("--evaluate", action="store_true",
                    help="after each run, the task metric on the test split and forgetting (slower)")
    sw.add_argument("--runs-dir", default=None, help="the runs folder; the sweep is written to RUNS/sweeps/NAME/")
    sw.set_defaults(func=_cmd_sweep)

    rs = sub.add_parser("runs", help="list the runs and what each is doing (interrupted runs included)")
    rs.add_argument("--runs-dir", default=None, help="the runs folder (default: runs/)")
    rs.set_defaults(func=_cmd_runs)

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
    ev = sub.add_parser("evaluate", help="loss, MCQ validity, forgetting (and price MAE) of a run")
    ev.add_argument("run_dir")
    ev.add_argument("--split", default="test", choices=("test", "validation", "train"))
    ev.add_argument("--which", default="base,adapter,merged", help="models to evaluate (merged if present)")
    ev.add_argument("--limit", type=int, default=None, help="at most N generation prompts")
    ev.add_argument("--max-new-tokens", type=int, default=None)
    ev.add_argument("--repetition-penalty", type=float, default=None,
                    help="penalty on the answer's own repeated tokens, the same for every model "
                         "(default: 1.15 for MCQ generation, 1.0 otherwise; 1.0 = plain greedy)")
    ev.set_defaults(func=_cmd_evaluate)

    an = sub.add_parser("analyze", help="LoRA weight diagnostics: ΔW spectra, effective rank, intruder dimensions")
    an.add_argument("run_dir")
    an.add_argument("--against", default=None, help="a second run to compare with")
    _flag(an, C.AnalysisConfig, "top_k", "--top-k")
    _flag(an, C.AnalysisConfig, "epsilon", "--epsilon")
    _flag(an, C.AnalysisConfig, "method", "--method")
    an.add_argument("--lang", default="en", choices=("en", "vi"))
    an.set_defaults(func=_cmd_analyze)

    m = sub.add_parser("merge", help="merge a run's adapter into its base and verify the result")
    m.add_argument("run_dir")
    _flag(m, C.MergeConfig, "dtype", "--dtype")
    _flag(m, C.MergeConfig, "onto", "--onto")
    m.add_argument("--out", default=None, help="output folder (default: RUN_DIR/merged)")
    _flag(m, C.MergeConfig, "n_prompts", "--prompts")
    m.set_defaults(func=_cmd_merge)

    x = sub.add_parser("export", help="export a run for Ollama / LM Studio / llama.cpp (GGUF + Modelfile), verified")
    x.add_argument("run_dir")
    x.add_argument("--to", default="gguf", choices=("gguf",), help="the format (default: gguf)")
    x.add_argument("--quant", default="f16", choices=tuple(QUANTS),
                   help="f16: as merged (verified to pass); q8_0 / q4_k_m: smaller, lossy, measured (default: f16)")
    x.add_argument("--out", default=None, help="output folder (default: RUN_DIR/export/QUANT)")
    x.add_argument("--no-verify", action="store_true", help="skip the comparison with the merged model")
    x.add_argument("--build-tools", action="store_true",
                   help="build llama.cpp's binaries if missing (q4_k_m needs llama-quantize; a few minutes)")
    x.set_defaults(func=_cmd_export)

    g = sub.add_parser("generate", help="generate for every row of a file with base / adapter / merged, to a CSV")
    g.add_argument("run_dir")
    g.add_argument("--input", required=True, help="a CSV / JSON / JSONL / Parquet file (MCQ: a context column)")
    g.add_argument("--out", required=True, help="the CSV to write")
    g.add_argument("--which", default="base,adapter,merged", help="comma-separated: base, adapter, merged")
    _flag(g, C.DecodingConfig, "max_new_tokens", "--max-new-tokens")
    g.add_argument("--sample", action="store_true", help=_help(C.DecodingConfig, "do_sample"))
    for name in ("temperature", "repetition_penalty", "top_p", "seed"):
        _flag(g, C.DecodingConfig, name, "--" + name.replace("_", "-"))
    g.set_defaults(func=_cmd_generate)

    q = sub.add_parser("quiz", help="write a quiz from a chapter: questions, checked, to CSV / GIFT / Moodle / Kahoot")
    q.add_argument("run_dir", help="a run trained on multiple-choice questions")
    q.add_argument("--input", required=True, help="a JSONL of {context, answer?} or a text file, paragraphs "
                                                  "separated by blank lines")
    q.add_argument("--out", required=True, help="the file to write")
    q.add_argument("--per-paragraph", type=int, default=1, help="questions per paragraph (default 1)")
    q.add_argument("--candidates", type=int, default=4, help="answers sampled per question, the best kept (default 4)")
    q.add_argument("--format", default="csv", choices=tuple(WRITERS))
    q.add_argument("--full-vocabulary", action="store_true",
                   help="let the model write any token of its vocabulary (default: the tokens of the run's training "
                        "rows and of the paragraph; 2-3x faster on a CPU with a large vocabulary)")
    q.add_argument("--reader", action="store_true",
                   help="a second reader: the base model scores each candidate's options, ranks the candidates by "
                        "whether it backs the key, and flags a key it disputes (about 2 s more a question on 2 cores)")
    q.set_defaults(func=_cmd_quiz)

    c = sub.add_parser("chain", help="train presets in turn, each on the previous stage's merged model")
    c.add_argument("presets", nargs="+", help="two or more presets, in order")
    c.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override a setting in every stage (repeatable)")
    c.add_argument("--stage-set", action="append", default=[], metavar="N:SECTION.FIELD=VALUE",
                   help="override a setting in stage N only, e.g. 2:data.max_length=512 (repeatable)")
    c.add_argument("--runs-dir", default=None, help="parent folder of the run folders (default: runs/)")
    _flag(c, C.MergeConfig, "dtype", "--dtype", help="precision of the intermediate merged models")
    _flag(c, C.MergeConfig, "n_prompts", "--prompts", help="verification prompts of each merge")
    c.set_defaults(func=_cmd_chain)
    sub.metavar = "{" + ",".join(name for name in sub.choices if name != WORKER) + "}"  # the worker is not a command
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
    except KeyboardInterrupt:  # a second Ctrl-C: the run folder keeps its last checkpoint
        print("error: aborted; resume from the last checkpoint with `python -m core resume RUN_DIR`", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
