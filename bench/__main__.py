"""python -m bench [--quick] [--only SECTION …] [--tiny]

Runs the benchmarks and writes docs/BENCHMARKS.md (results kept in docs/bench_results.json, so a
section can be re-run alone). Sections:
    system       machine, versions, fp32 matmul peak
    throughput   engine vs bare trl, tokens/s, and MFU
    load         embedded model load: safetensors cache vs GGUF
    memory       peak RSS of a training run vs the memory estimate
    e2e          time from Start to a merged and verified model (demo preset)
    ui           training_status latency through gradio_client, idle and while training
    demo         the classroom result: MCQ validity of base vs fine-tuned on the test split
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
SECTIONS = ("system", "throughput", "load", "memory", "e2e", "ui", "demo")
QUICK = ("system", "throughput")


def _load() -> dict:
    return json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}


def _tiny_model(tmp: Path) -> str:
    """A micro random Llama with SmolLM2's tokenizer, for checking that the benchmarks run at all."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from core.models.registry import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model("embedded:smollm2-135m-instruct"))
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    model.save_pretrained(tmp / "tiny")
    tok.save_pretrained(tmp / "tiny")
    return str(tmp / "tiny")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    p = argparse.ArgumentParser(prog="python -m bench")
    p.add_argument("--quick", action="store_true", help="system + throughput at a small size (a minute or two)")
    p.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    p.add_argument("--tiny", action="store_true", help="a micro random model: checks that the code runs (tests)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/ untouched")
    p.add_argument("--demo-run", default=None, help="demo section: evaluate this trained demo run instead of training")
    args = p.parse_args(argv)

    from bench import report, system, throughput

    sections = args.only or (QUICK if args.quick else SECTIONS)
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
            results["throughput"]["mfu"] = report.mfu(results["throughput"], results.get("system"))
            if not small:  # the micro model the tests use, for its MFU beside the embedded model's
                results["throughput_micro"] = throughput.run(
                    _tiny_model(tmp), short, steps=8, batch=4, max_length=256, reps=args.reps)
                results["throughput_micro"]["mfu"] = report.mfu(results["throughput_micro"], results.get("system"))
            r = results["throughput"]["ratio"]["median"]
            print(f"engine/trl throughput ratio: {r:.2f}")
            print(f"engine overhead (same loss path as trl): "
                  f"{results['throughput']['ratio_same_loss_path']['median']:.2f}")
        if not (args.quick or args.tiny):
            from bench import e2e

            for name in ("load", "memory", "ui"):
                if name in sections:
                    results[name] = getattr(e2e, name)(reps=args.reps)
            demo_run = args.demo_run
            if "e2e" in sections:
                results["e2e"] = e2e.e2e(reps=args.reps, runs_dir=tmp / "e2e")
                demo_run = demo_run or results["e2e"]["run_dirs"][0]  # evaluate a run e2e trained: no third training
            if "demo" in sections:
                results["demo"] = e2e.demo(run_dir=demo_run)
    if args.tiny or args.no_write:
        print(json.dumps({k: results[k] for k in sections if k in results}, indent=1, default=str)[:4000])
        return 0
    DOCS.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    (DOCS / "BENCHMARKS.md").write_text(report.markdown(results), encoding="utf-8")
    print(f"wrote {DOCS / 'BENCHMARKS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
