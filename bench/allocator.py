"""The allocator section: the demo preset's first steps under glibc's malloc and under jemalloc, side by side.

Each side is a fresh ``python -m core train`` process (the allocator is chosen when a process starts), the two
alternating so that a machine's drift falls on both. Per process: wall time, the kernel's share of the CPU time
(``wait4``'s rusage), peak RSS, the median time between steps from metrics.jsonl, and the losses, which must be
the same on both sides.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.system import summary
from core import allocator
from core.paths import REPO_ROOT
from core.run import RunFolder

DEMO = "presets/demo.yaml"
SIDES = ("system", "jemalloc")


def _train(side: str, runs_dir: Path, steps: int) -> dict:
    args = ["train", DEMO, "--set", f"train.max_steps={steps}", "--set", "train.save_steps=1000",
            "--set", "data.validation_fraction=0", "--set", "train.logging_steps=1", "--runs-dir", str(runs_dir)]
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MALLOC_CONF")}
    env.update(PYTHONPATH=str(REPO_ROOT), TOKENIZERS_PARALLELISM="false", **{allocator.ENV: side})
    log = runs_dir.with_suffix(".log")
    runs_dir.mkdir(parents=True)
    with open(log, "w") as out:
        t = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "core", *args], cwd=REPO_ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # the same pid after the re-exec under jemalloc
        wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"allocator bench ({side}) failed: {log.read_text()[-800:]}")
    run = RunFolder(Path(log.read_text().strip().splitlines()[-1]))  # the CLI's last line: the run folder
    records = run.read_metrics()
    steps_at = [(r["step"], r["elapsed"]) for r in records if r.get("loss") is not None]
    gaps = [(e1 - e0) / (s1 - s0) for (s0, e0), (s1, e1) in zip(steps_at[1:], steps_at[2:])]  # after the first
    used = run.read_info().get("allocator")
    if used != side:
        raise RuntimeError(f"allocator bench: asked for {side}, the run says {used}")
    return {"wall_s": wall, "user_s": usage.ru_utime, "sys_s": usage.ru_stime,
            "peak_rss": usage.ru_maxrss * 1024.0, "step_s": statistics.median(gaps),
            "losses": [r["loss"] for r in records if r.get("loss") is not None]}


def section(reps: int = 3, steps: int = 8) -> dict:
    if allocator.find_jemalloc() is None:
        return {"skipped": "jemalloc is not installed (sudo apt-get install libjemalloc2)",
                "markdown": "Not measured: jemalloc is not installed on this machine (`sudo apt-get install "
                            "libjemalloc2`, which `scripts/setup.sh` does when it runs as root)."}
    runs: dict[str, list[dict]] = {s: [] for s in SIDES}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(reps):
            for side in SIDES:
                runs[side].append(_train(side, Path(tmp) / f"{side}-{i}", steps))
    stats = {side: {k: summary([r[k] for r in rs]) for k in ("wall_s", "user_s", "sys_s", "peak_rss", "step_s")}
             for side, rs in runs.items()}
    ref = runs["system"][0]["losses"]
    loss_diff = max(abs(a - b) for rs in runs.values() for r in rs for a, b in zip(r["losses"], ref))
    speedup = stats["system"]["step_s"]["median"] / stats["jemalloc"]["step_s"]["median"]
    kernel = {s: 100 * stats[s]["sys_s"]["median"] / (stats[s]["sys_s"]["median"] + stats[s]["user_s"]["median"])
              for s in SIDES}

    def cell(s: dict, fmt: str = "{:.1f}", scale: float = 1.0) -> str:
        return (f"{fmt.format(s['median'] / scale)} ({fmt.format(s['min'] / scale)}–"
                f"{fmt.format(s['max'] / scale)})")

    rows = "\n".join(
        f"| {'glibc malloc (`LORA_STUDIO_ALLOCATOR=system`)' if side == 'system' else 'jemalloc (the default when installed)'} "
        f"| {cell(stats[side]['step_s'], '{:.2f}')} | {cell(stats[side]['wall_s'])} | {cell(stats[side]['user_s'])} | "
        f"{cell(stats[side]['sys_s'])} ({kernel[side]:.0f}%) | {cell(stats[side]['peak_rss'], '{:.2f}', 2**30)} |"
        for side in SIDES)
    md = (f"Command: `python -m bench --only allocator`. The demo preset (Gemma-3-270M, bfloat16), {steps} steps in a "
          f"fresh `python -m core train` process per side, the sides alternating, {reps} times each. The step time is "
          "the median between logged steps after the first.\n\n"
          "| allocator | s/step | wall s (with model load) | user CPU s | kernel CPU s (share) | peak RSS GiB |\n"
          "|---|---|---|---|---|---|\n" + rows + "\n\n"
          f"**jemalloc: {speedup:.2f}× faster steps**; largest loss difference between any two runs {loss_diff:.1e}. "
          "glibc returns each step's large freed blocks to the kernel and faults them in again, zeroed, on the next "
          f"step; jemalloc with `{allocator.CONF}` keeps them. The app (`app.py`, which `scripts/run.sh` starts) and "
          "`python -m core` restart "
          "themselves under jemalloc when Debian's `libjemalloc2` is installed (`core/allocator.py`); the pages are "
          "handed back when a training job ends.")
    return {"steps": steps, "reps": reps, "stats": stats, "speedup": round(speedup, 3),
            "kernel_percent": {s: round(v, 1) for s, v in kernel.items()}, "max_loss_diff": loss_diff,
            "markdown": md}
