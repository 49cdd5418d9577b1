"""The GPU section: the engine against a bare HF + trl script on seed-shaped models, in bf16, on CUDA.

The seeds fine-tune Qwen2.5-0.5B-Instruct and Llama-3.2-1B. The GPU machine we test on cannot download them, and the
speed of a step does not depend on the weights' values, so each model is built from its architecture's config with
random weights (bf16) and SmolLM2's tokenizer (its token ids all lie inside either vocabulary; the output layer keeps
the seed's full vocabulary, so its cost is the real one). The data are the bundled MCQs.

Reported per model: tokens/s of the engine, of bare trl (the same rows, LoRA settings, batch and steps; what a
notebook does) and of the engine with QLoRA (bitsandbytes 4-bit) when bitsandbytes is there; the ratio; peak CUDA
memory of each (``torch.cuda.max_memory_allocated``); MFU against the GPU's bf16 matmul peak measured in the same
run. Without CUDA the section says so and measures nothing.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench.system import summary

# the seeds' models, from their published config.json (architecture only: no weights)
SHAPES = {
    "qwen2.5-0.5b-instruct": dict(arch="qwen2", vocab_size=151936, hidden_size=896, intermediate_size=4864,
                                  num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                                  rope_theta=1_000_000.0, tie_word_embeddings=True, max_position_embeddings=32768),
    "llama-3.2-1b": dict(arch="llama", vocab_size=128256, hidden_size=2048, intermediate_size=8192,
                         num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8, head_dim=64,
                         rope_theta=500_000.0, tie_word_embeddings=True, max_position_embeddings=131072),
}
TINY = dict(vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2)


def tokenizer_dir() -> str:
    """SmolLM2's tokenizer: LORA_STUDIO_TOKENIZER on the GPU machine (scripts/gpu_check.sh), else the embedded one."""
    if os.environ.get("LORA_STUDIO_TOKENIZER"):
        return os.environ["LORA_STUDIO_TOKENIZER"]
    from core.models.registry import resolve_model

    return resolve_model("embedded:smollm2-135m-instruct")


def build_model(name: str, out: Path, *, tiny: bool = False) -> Path:
    """A model folder of the seed's shape with random bf16 weights and SmolLM2's tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    shape = dict(SHAPES[name])
    arch = shape.pop("arch")
    if tiny:
        shape.update(TINY)
        shape.pop("head_dim", None)
    tok = AutoTokenizer.from_pretrained(tokenizer_dir())
    shape["vocab_size"] = max(shape["vocab_size"], len(tok))
    cls, conf = (Qwen2ForCausalLM, Qwen2Config) if arch == "qwen2" else (LlamaForCausalLM, LlamaConfig)
    config = conf(**shape, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = cls(config).to(torch.bfloat16)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    del model
    return out


def bf16_peak(n: int = 8192, reps: int = 10) -> float:
    """Best bf16 GEMM throughput of this GPU (TFLOP/s): the MFU denominator, measured in the same run."""
    import torch

    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    best = 0.0
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        torch.cuda.synchronize()
        best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e12)
    return round(best, 1)


def _peak_reset() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak() -> int | None:
    import torch

    return int(torch.cuda.max_memory_allocated()) if torch.cuda.is_available() else None


def measure(model_dir: Path, tmp: Path, *, steps: int, batch: int, max_length: int, reps: int,
            qlora: bool) -> dict:
    """Engine (bf16), bare trl (bf16) and, with ``qlora``, the engine on a 4-bit base: tokens/s and peak memory."""
    import torch

    from bench.throughput import engine_run, make_cfg, trl_run

    bf16 = torch.cuda.is_available()  # the tests run this code on the CPU, in float32
    names = ["engine", "trl"] + (["engine_qlora"] if qlora else [])
    rates: dict[str, list[float]] = {n: [] for n in names}
    peaks: dict[str, int | None] = {}
    for i in range(reps):
        k = i % len(names)
        for name in names[k:] + names[:k]:  # the order rotates: a drift of the machine favours no side
            cfg = make_cfg(str(model_dir), "sample:vi_informatics_mcq", steps, batch, max_length,
                           skip_prompt_logits=True, bf16=bf16)
            if name == "engine_qlora":
                cfg.model.load_in_4bit = True
                cfg.model.bnb_4bit_compute_dtype = "bfloat16"
            _peak_reset()
            rate = trl_run(cfg, tmp / f"trl{i}", bf16=bf16) if name == "trl" else engine_run(cfg, tmp / "runs")
            rates[name].append(rate)
            peaks[name] = max(peaks.get(name) or 0, _peak() or 0) or None
    out = {"tokens_per_s": {k: summary(v) for k, v in rates.items()}, "peak_bytes": peaks,
           "ratio": summary([e / t for e, t in zip(rates["engine"], rates["trl"])])}
    if qlora:
        out["qlora_vs_lora"] = summary([q / e for q, e in zip(rates["engine_qlora"], rates["engine"])])
    return out


def section(*, reps: int = 2, tiny: bool = False, allow_cpu: bool = False, shapes: tuple[str, ...] = tuple(SHAPES)
            ) -> dict:
    """The GPU figures, or ``{"skipped": reason}`` without CUDA (``allow_cpu`` with ``tiny``: the same code on a
    micro model of each shape on the CPU, for the tests)."""
    import importlib.util

    import torch

    if not torch.cuda.is_available() and not allow_cpu:
        out = {"skipped": "no CUDA device on this machine"}
        return {**out, "markdown": markdown(out)}
    from bench.report import mfu

    qlora = importlib.util.find_spec("bitsandbytes") is not None and torch.cuda.is_available()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    peak = bf16_peak() if torch.cuda.is_available() else None
    steps, batch, max_length = (2, 1, 1024) if tiny else (12, 8, 1024)
    out: dict = {"gpu": gpu, "bf16_peak_tflops": peak, "steps": steps, "batch": batch, "max_length": max_length,
                 "torch": torch.__version__, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in shapes:
            model_dir = build_model(name, tmp / name, tiny=tiny)
            r = measure(model_dir, tmp / f"{name}-work", steps=steps, batch=batch, max_length=max_length,
                        reps=reps, qlora=qlora)
            figures = model_figures(model_dir, max_length)
            if peak:
                system = {"matmul": {"gflops_best": peak * 1000}}
                r["mfu"] = mfu({**figures, "tokens_per_s": r["tokens_per_s"]}, system)
            out["models"][name] = {**figures, **r}
            print(f"gpu {name}: engine/trl {r['ratio']['median']:.2f}x, engine "
                  f"{r['tokens_per_s']['engine']['median']:.0f} tokens/s", flush=True)
    out["markdown"] = markdown(out)
    return out


def _gib(n: int | None) -> str:
    return f"{n / 2**30:.2f}" if n else "—"


def markdown(r: dict) -> str:
    """The section of docs/BENCHMARKS.md."""
    how = ("Made with `bash scripts/gpu_check.sh` on the GPU machine (see the script for how the missing wheels travel), "
           "then `python -m bench --only gpu --import gpu.json` here.")
    if "skipped" in r:
        return ("Not measured yet: no GPU has been available to this project (" + r["skipped"] + "). The check is "
                "ready: tests/test_gpu.py (a training step in bf16 and fp16, QLoRA, the sparse-logits loss, merge and "
                "verification, generation, the memory estimate against the CUDA peak) and this section, on "
                "Qwen2.5-0.5B-Instruct- and Llama-3.2-1B-shaped models with random weights. " + how)
    lines = [f"GPU: {r['gpu']} (torch {r['torch']}), bf16 matmul peak {r['bf16_peak_tflops']} TFLOP/s measured in "
             f"the same run. {r['steps']} steps, batch {r['batch']}, max_length {r['max_length']}, the bundled MCQs; "
             "seed-shaped models with random bf16 weights. " + how, "",
             "| model | engine tokens/s | bare trl tokens/s | engine / trl | engine MFU | trl MFU | peak GiB engine / "
             "trl | QLoRA tokens/s (× LoRA) | QLoRA peak GiB |", "|---|---|---|---|---|---|---|---|---|"]
    for name, m in r["models"].items():
        tps, peaks, f = m["tokens_per_s"], m["peak_bytes"], m.get("mfu") or {}
        q = tps.get("engine_qlora")
        qtext = f"{q['median']:.0f} (×{m['qlora_vs_lora']['median']:.2f})" if q else "— (no bitsandbytes)"
        lines.append(f"| {name} | {tps['engine']['median']:.0f} | {tps['trl']['median']:.0f} | "
                     f"{m['ratio']['median']:.2f} | {100 * f['engine']:.1f}% | {100 * f['trl']:.1f}% | "
                     f"{_gib(peaks.get('engine'))} / {_gib(peaks.get('trl'))} | {qtext} | "
                     f"{_gib(peaks.get('engine_qlora'))} |" if f else
                     f"| {name} | {tps['engine']['median']:.0f} | {tps['trl']['median']:.0f} | "
                     f"{m['ratio']['median']:.2f} | — | — | {_gib(peaks.get('engine'))} / {_gib(peaks.get('trl'))} | "
                     f"{qtext} | {_gib(peaks.get('engine_qlora'))} |")
    return "\n".join(lines)


def model_figures(model_dir: Path, max_length: int) -> dict:
    """Parameters, shape and the data's mean length and learned share: what the MFU needs."""
    from bench.throughput import make_cfg
    from core import data as D
    from core.models.load import load_tokenizer
    from core.models.lora import count_parameters

    cfg = make_cfg(str(model_dir), "sample:vi_informatics_mcq", 1, 1, max_length, True)
    params, conf = count_parameters(cfg)
    train = D.prepare(cfg.data, load_tokenizer(str(model_dir)), seed=cfg.train.seed).train
    lengths = [min(len(e.input_ids), max_length) for e in train]
    learned = sum(sum(1 for x in e.labels[:max_length] if x != -100) for e in train)
    head = conf.vocab_size * conf.hidden_size
    return {"params": params.total, "body_params": params.total - head, "vocab": int(conf.vocab_size),
            "layers": conf.num_hidden_layers, "hidden": conf.hidden_size,
            "mean_tokens": round(sum(lengths) / len(lengths), 1), "learned_fraction": round(learned / sum(lengths), 4)}
