"""python -m bench [--quick] [--only SECTION …] [--tiny]

Runs the benchmarks and writes docs/BENCHMARKS.md (results kept in docs/bench_results.json, so a
section can be re-run alone). Sections:
    system       machine, versions, fp32 matmul peak
    throughput   engine vs bare trl, tokens/s, and MFU
    load         embedded model load: safetensors cache vs GGUF
    memory       peak RSS of a training run vs the memory estimate
    e2e          time from Start to a merged and verified model (demo preset)
    allocator    the demo preset's steps under glibc's malloc vs jemalloc: step time, kernel CPU time, losses
    ui           training_status latency through gradio_client, idle and while training
    demo         the classroom result: MCQ validity of base vs fine-tuned on the test split
    mcq-checks   the content checks on the bundled gold MCQs: false flags, moved keys caught (seconds)
    mcq-read     MCQs for the test split read as a teacher reads them: reader-judged correct k/n per case
    mcq-reader   the quiz's second reader (the base model checks each key): right on the train split's gold MCQs?
                 and does it choose better among the read evaluation's fully read candidates? (~12 min)
    nf4          bitsandbytes' NF4 against a reference quantizer in numpy, and the CPU shortcut that scrambles it
    merge-matrix every merge a user can click (model × method × dtype × init × target), 2 steps each, checked
    price        presets/price_qlora.yaml on SmolLM2 (CPU budget): its MAE beside mean, linear regression, gradient boosting
    scaling      tokens/s and peak memory against max_length, batch size and LoRA rank, engine vs bare trl (figure)
    gpu          on CUDA: engine vs bare trl in bf16 on Qwen2.5-0.5B- and Llama-3.2-1B-shaped models, peak memory,
                 MFU, QLoRA vs LoRA (scripts/gpu_check.sh); without CUDA it says so and measures nothing

--quick and --tiny print their figures and write them to $TMPDIR/lora-studio-bench/: they never rewrite docs/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from core.paths import REPO_ROOT

DOCS = REPO_ROOT / "docs"
RESULTS = DOCS / "bench_results.json"
SECTIONS = ("system", "throughput", "load", "memory", "allocator", "e2e", "ui", "demo", "mcq-checks", "mcq-read", "mcq-reader", "nf4", "merge-matrix", "price", "scaling", "gpu")
# the long ones run only when asked for: the read evaluation needs a person to read, the matrix ~40 min
DEFAULT = ("system", "throughput", "load", "memory", "allocator", "e2e", "ui", "demo", "mcq-checks", "nf4", "scaling")
QUICK = ("system", "throughput")


def _portable(obj, tmp: str):
    """The results without this machine's paths: the repo as a relative path, temporary folders as <tmp>."""
    if isinstance(obj, dict):
        return {k: _portable(v, tmp) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_portable(v, tmp) for v in obj]
    if isinstance(obj, str):
        return obj.replace(str(REPO_ROOT) + os.sep, "").replace(tmp, "<tmp>").replace(tempfile.gettempdir(), "<tmp>")
    return obj


def _load() -> dict:
    return json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}


def _tiny_model(tmp: Path) -> str:
    """A micro random Llama with SmolLM2's tokenizer, for checking that the benchmarks run at all."""
    from bench.micro import micro_models

    return micro_models(tmp, ("micro-llama",))["micro-llama"]


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    p = argparse.ArgumentParser(prog="python -m bench")
    p.add_argument("--quick", action="store_true", help="system + throughput at a small size (a minute or two); prints only")
    p.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    p.add_argument("--tiny", action="store_true", help="a micro random model: checks that the code runs (tests)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/ untouched")
    p.add_argument("--demo-run", action="append", default=None,
                   help="demo / mcq-read / price: use this trained run instead of training its preset (mcq-read: "
                        "repeat it to compare runs)")
    p.add_argument("--reread", action="store_true",
                   help="mcq-read: report the last generation again (after new verdicts) instead of generating")
    p.add_argument("--keep", action="store_true",
                   help="mcq-read with --demo-run: reuse the last generation of the runs it already holds (by run "
                        "folder name) and generate only for the new ones")
    p.add_argument("--whole-vocabulary", action="store_true",
                   help="mcq-read: also the pipeline over the whole vocabulary (the baseline of the run's vocabulary "
                        "the Classroom writes with)")
    p.add_argument("--reader", action="store_true",
                   help="mcq-read: also the pipeline with the second reader (the base model's check of each "
                        "candidate's key, core quiz --reader)")
    p.add_argument("--candidates", type=int, default=None, metavar="N",
                   help="mcq-read: the pipeline writes N candidates a question (default: the Classroom's)")
    p.add_argument("--full", action="store_true", help="merge-matrix: every cell (default: a representative subset)")
    p.add_argument("--export", default=None, metavar="FILE",
                   help="also write the figures of the sections run to FILE (the GPU machine's way to send them back)")
    p.add_argument("--import", dest="import_", default=None, metavar="FILE",
                   help="gpu: take the figures from FILE (written by --export on the GPU machine) instead of measuring")
    args = p.parse_args(argv)

    from bench import report, system, throughput

    sections = args.only or (QUICK if args.quick else DEFAULT)
    results = _load()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = _tiny_model(tmp) if args.tiny else "embedded:smollm2-135m-instruct"
        short = str(REPO_ROOT / "tests" / "data" / "short_mcq.jsonl")
        if "system" in sections:
            results["system"] = {"machine": system.machine(), "matmul": system.matmul_peak()}
        if "throughput" in sections:
            small = args.quick or args.tiny
            results["throughput"] = throughput.run(
                model, short if small else "sample:vi_informatics_mcq", steps=4 if small else 6, batch=2 if small else 4,
                max_length=512 if small else 768, reps=args.reps, bf16=not small)
            # the peak each MFU divides by, measured in this run (machines, and one machine's load, differ)
            peak = {"matmul": system.matmul_peak()}
            results["throughput"]["matmul"] = peak["matmul"]
            results["throughput"]["mfu"] = report.mfu(results["throughput"], peak)
            if not small:  # the micro model the tests use, for its MFU beside the embedded model's
                results["throughput_micro"] = throughput.run(
                    _tiny_model(tmp), short, steps=8, batch=4, max_length=256, reps=args.reps)
                results["throughput_micro"]["mfu"] = report.mfu(results["throughput_micro"], peak)
            r = results["throughput"]["ratio"]["median"]
            print(f"engine/trl throughput ratio: {r:.2f}")
            print(f"engine overhead (same loss path as trl): "
                  f"{results['throughput']['ratio_same_loss_path']['median']:.2f}")
        if not (args.quick or args.tiny):
            from bench import e2e

            for name in ("load", "memory", "ui"):
                if name in sections:
                    results[name] = getattr(e2e, name)(reps=args.reps)
            if "allocator" in sections:
                from bench import allocator

                results["allocator"] = allocator.section(reps=args.reps)
            demo_run = args.demo_run[0] if args.demo_run else None
            if "e2e" in sections:
                results["e2e"] = e2e.e2e(reps=args.reps, runs_dir=tmp / "e2e")
                demo_run = demo_run or results["e2e"]["run_dirs"][0]  # evaluate a run e2e trained: no third training
            if "demo" in sections:
                results["demo"] = e2e.demo(run_dir=demo_run)
            if "mcq-read" in sections:
                from bench import mcq_read

                last = results.get("mcq_read", {})
                again = last.get("generated") if args.reread else None
                runs = (last["runs"] if again is not None
                        else args.demo_run or [demo_run or e2e.train_demo(tmp / "mcq-read")])
                kept = mcq_read.rows_by_run(last) if args.keep else {}
                results["mcq_read"] = mcq_read.section(runs, generated=again, kept=kept, candidates=args.candidates,
                                                       whole_vocabulary=args.whole_vocabulary,
                                                       reader=args.reader)
        if "mcq-reader" in sections and not (args.quick or args.tiny):
            from bench import mcq_reader

            results["mcq_reader"] = mcq_reader.section(results.get("mcq_read", {}))
        if "mcq-checks" in sections:
            from bench import mcq_checks

            results["mcq_checks"] = mcq_checks.section()
        if "nf4" in sections:
            from bench import nf4

            results["nf4"] = nf4.section()
        if "price" in sections and not (args.quick or args.tiny):
            from bench import price

            results["price"] = price.section(tmp / "price", run_dir=args.demo_run[0] if args.demo_run else None)
        if "scaling" in sections and not (args.quick or args.tiny):
            from bench import scaling

            results["scaling"] = res = scaling.run(reps=1)
            # --no-write: the figure too stays out of docs/
            figures = Path(tempfile.gettempdir()) / "lora-studio-bench" if args.no_write else DOCS / "figures"
            scaling.figure(res, figures / "scaling.png")
            res["markdown"] = scaling.markdown(res, "figures/scaling.png")
        if "gpu" in sections:
            if args.import_:
                results["gpu"] = json.loads(Path(args.import_).read_text(encoding="utf-8"))["gpu"]
            else:
                from bench import gpu

                results["gpu"] = gpu.section(reps=1 if args.tiny else 2, tiny=args.tiny)
        if "merge-matrix" in sections:
            from bench import merge_matrix

            results["merge_matrix"] = merge_matrix.run(tmp / "matrix", full=args.full, tiny=args.tiny)
    keys = [k.replace("-", "_") for k in sections]
    mine = _portable({k: results[k] for k in keys if k in results}, str(tmp))
    if args.export:
        Path(args.export).write_text(json.dumps(mine, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    if args.tiny or args.no_write or args.quick:
        print(json.dumps(mine, indent=1, default=str)[:4000])
        # kept outside docs/: a quick or tiny figure is not the committed result
        out = Path(tempfile.gettempdir()) / "lora-studio-bench" / f"{'tiny' if args.tiny else 'quick'}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(mine, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
        print(f"figures saved to {out}; docs/ unchanged")
        return 0
    DOCS.mkdir(exist_ok=True)
    results = _portable(results, str(tmp))
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    (DOCS / "BENCHMARKS.md").write_text(report.markdown(results), encoding="utf-8")
    print(f"wrote {DOCS / 'BENCHMARKS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
