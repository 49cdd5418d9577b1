"""The machine and the software versions, and this CPU's measured fp32 matmul peak."""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        mem = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    import torch

    from core.run import versions

    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem / 2**30, 1),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "versions": versions()}


def matmul_peak(n: int = 1536, reps: int = 5) -> dict:
    """Best-of-``reps`` fp32 GEMM throughput (GFLOP/s) with torch's own threads: the MFU denominator."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b  # warm-up: thread pool and caches
    rates = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        rates.append(2 * n**3 / (time.perf_counter() - t) / 1e9)
    out = {"n": n, "gflops_best": round(max(rates), 1), "gflops_median": round(statistics.median(rates), 1)}
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():  # native bfloat16: the denominator for bf16 training
        a16, b16 = a.bfloat16(), b.bfloat16()
        a16 @ b16
        best = 0.0
        for _ in range(reps):
            t = time.perf_counter()
            a16 @ b16
            best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
        out["gflops_bf16_best"] = round(best, 1)
    return out


def summary(values: list[float]) -> dict:
    """Median with min–max, the form every figure in BENCHMARKS.md takes."""
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "n": len(values)}
