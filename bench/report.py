"""Model FLOP utilisation and the Markdown of docs/BENCHMARKS.md."""

from __future__ import annotations

import datetime as dt


def mfu(tp: dict, system: dict | None) -> dict | None:
    """Achieved training FLOP/s over the measured fp32 matmul peak.

    FLOPs per token = 6·N of the body (embeddings excluded; forward 2N, backward 4N: the usual convention;
    with LoRA the frozen weights need no weight gradient, so the true work is nearer 4N and this overstates
    it by up to 1.5×), plus attention, 12·L·d·T for a sequence of T tokens, plus the output layer, 6·V·d,
    counted on the tokens whose next token is learned only (the loss needs no others). The same FLOPs per
    token are credited to every side, so the MFU ratio of two sides is their throughput ratio.
    """
    if not system:
        return None
    peak = system["matmul"]["gflops_best"] * 1e9
    body = tp.get("body_params", tp["params"])
    head = 6 * tp.get("vocab", 0) * tp["hidden"] * tp.get("learned_fraction", 0)
    per_token = 6 * body + 12 * tp["layers"] * tp["hidden"] * tp["mean_tokens"] + head
    out = {"flops_per_token": per_token, "peak_gflops": round(peak / 1e9, 1)}
    for name in ("engine", "trl"):
        rate = tp["tokens_per_s"][name]["median"]
        out[name] = round(per_token * rate / peak, 4)
    if "engine_bf16" in tp["tokens_per_s"] and system["matmul"].get("gflops_bf16_best"):
        out["engine_bf16"] = round(per_token * tp["tokens_per_s"]["engine_bf16"]["median"]
                                   / (system["matmul"]["gflops_bf16_best"] * 1e9), 4)
        out["peak_bf16_gflops"] = system["matmul"]["gflops_bf16_best"]
    return out


def _mm(s: dict, fmt: str = "{:.1f}") -> str:
    return f"{fmt.format(s['median'])} ({fmt.format(s['min'])}–{fmt.format(s['max'])}, n={s['n']})"


def markdown(r: dict) -> str:
    lines = ["# Benchmarks", "",
             f"Written by `python -m bench` on {dt.date.today().isoformat()}. Every figure is a median with "
             "min–max over the repetitions; ratios are measured side by side in one run. Re-run one section "
             "with `python -m bench --only SECTION`.", ""]
    if "system" in r:
        m = r["system"]["machine"]
        lines += ["## Machine", "", f"- CPU: {m['cpu']} — {m['cores']} cores, {m['memory_gib']} GiB, GPU: {m['gpu']}",
                  f"- torch threads: {m['torch_threads']}, Python {m['python']}",
                  "- versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
                  f"- fp32 matmul peak (n={r['system']['matmul']['n']}): {r['system']['matmul']['gflops_best']} GFLOP/s "
                  f"(best of 5; median {r['system']['matmul']['gflops_median']})"
                  + (f"; bf16 matmul peak {r['system']['matmul']['gflops_bf16_best']} GFLOP/s"
                     if r['system']['matmul'].get('gflops_bf16_best') else ""), ""]
    if "throughput" in r:
        t = r["throughput"]
        lines += ["## 1. Training throughput: engine vs bare trl", "",
                  f"Command: `python -m bench --only throughput` (quick: `python -m bench --quick`). Model "
                  f"`{t['model']}`, data `{t['source']}` (mean {t['mean_tokens']} tokens/row), batch {t['batch']}, "
                  f"{t['steps']} steps, LoRA r16 all-linear, identical pre-tokenized rows and seed on both sides, float32 "
                  f"unless the row says bf16, gradient checkpointing off on both (trl 1.x turns it on by default: "
                  f"less memory, slower steps; the engine's auto decides from the memory estimate).", "",
                  "| side | tokens/s |", "|---|---|",
                  f"| engine (TrainingJob, defaults) | {_mm(t['tokens_per_s']['engine'])} |",
                  f"| engine, trl's own loss path (`train.skip_prompt_logits=false`) | "
                  f"{_mm(t['tokens_per_s']['engine_full_logits'])} |",
                  f"| bare trl SFTTrainer script | {_mm(t['tokens_per_s']['trl'])} |"]
        if "engine_bf16" in t["tokens_per_s"]:
            lines += [f"| engine, bfloat16 weights + bf16 compute (the demo preset's setting) | "
                      f"{_mm(t['tokens_per_s']['engine_bf16'])} |"]
        lines += ["",
                  f"**engine/trl throughput ratio: {_mm(t['ratio'], '{:.2f}')}** — engine overhead alone (same loss "
                  f"path): {_mm(t['ratio_same_loss_path'], '{:.2f}')}.", "",
                  "Beyond trl's defaults: with the loss on the answer only, the engine runs the output layer and the "
                  "loss only at positions whose next token is learned, a chunk of positions at a time, each chunk's "
                  "gradient taken at once so that no logits are kept for backward (`core.train.loss`): the same loss "
                  "(tested to 1e-5 with equal gradients) without the batch × length × vocabulary logits of the prompt."
                  + (f" On a CPU with native bfloat16, bf16 weights and compute add more: engine bf16 / trl "
                     f"{_mm(t['ratio_bf16'], '{:.2f}')} (LoRA weights and optimizer stay float32; the merge is "
                     "checked in float32)." if t.get("ratio_bf16") else ""), ""]
    rows = [(key, r[key]) for key in ("throughput_micro", "throughput") if r.get(key, {}).get("mfu")]
    if rows:
        lines += ["## 2. Model FLOP utilisation", "",
                  "FLOPs/token = 6·N + 12·L·d·T + 6·V·d·f (N parameters of the body without embeddings, L layers, "
                  "d hidden size, T mean row length, V vocabulary, f the fraction of tokens whose next token is "
                  "learned: the output layer is useful work only there) — 6·N overstates LoRA work, whose frozen "
                  "weights need no weight gradient; both sides are credited the same FLOPs per token. Peak: the fp32 (bf16) matmul "
                  "peak measured in the same run as the throughput, just before it (the column shows it). Micro-model figures come from `python -m bench --only throughput`, which "
                  "also runs the micro random Llama the tests use.", "",
                  "| model | GFLOP/token | engine | bare trl | engine bf16 (of bf16 peak) | peaks fp32 / bf16 GFLOP/s |",
                  "|---|---|---|---|---|---|"]
        for key, tp in rows:
            f = tp["mfu"]
            bf = f"{100 * f['engine_bf16']:.1f}%" if "engine_bf16" in f else "—"
            lines.append(f"| `{tp['model'] if key == 'throughput' else 'micro Llama (hidden 64, 2 layers)'}` | "
                         f"{f['flops_per_token'] / 1e9:.3f} | {100 * f['engine']:.1f}% | {100 * f['trl']:.1f}% | {bf} | "
                         f"{f['peak_gflops']} / {f.get('peak_bf16_gflops', '—')} |")
        lines.append("")
    for key, title in (("ui", "3. UI responsiveness"), ("e2e", "4. Time to result"), ("memory", "5. Memory"),
                       ("allocator", "5b. The memory allocator: glibc vs jemalloc"),
                       ("load", "6. Model load time"),
                       ("scaling", "7. How cost grows: max_length, batch size, LoRA rank"),
                       ("demo", "Classroom demo: MCQ structure (correctness: the read evaluation below)"),
                       ("mcq_read", "Classroom: questions a teacher can use (read evaluation)"),
                       ("mcq_reader", "Classroom: the second reader (the base model checks each key)"),
                       ("mcq_checks", "Classroom: the automatic content checks"),
                       ("nf4", "NF4 on the CPU: bitsandbytes against a reference quantizer"),
                       ("merge_matrix", "Merge matrix: every merge a user can click"),
                       ("price", "The price recipe: fine-tuned model against the baselines"),
                       ("gpu", "GPU: seed-shaped models, engine vs bare trl in bf16")):
        if key in r and r[key].get("markdown"):
            lines += [f"## {title}", "", r[key]["markdown"], ""]
    missing = [k for k in ("throughput", "ui", "e2e", "memory", "load", "demo") if k not in r]
    if missing:
        lines += ["## Not yet measured", "", "These sections have not been run on this machine yet: "
                  + ", ".join(f"`python -m bench --only {k}`" for k in missing) + ".", ""]
    return "\n".join(lines) + "\n"
