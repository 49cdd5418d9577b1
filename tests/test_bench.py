"""The benchmarks run (on a tiny setting); their figures live in docs/BENCHMARKS.md, never in tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_bench_quick_runs_on_a_tiny_setting():
    env = dict(os.environ, PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false")
    res = subprocess.run([sys.executable, "-m", "bench", "--quick", "--tiny", "--reps", "1"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    m = re.search(r"^engine/trl throughput ratio: (\d+\.\d\d)$", res.stdout, re.MULTILINE)
    assert m and float(m.group(1)) > 0
    assert '"gflops_best"' in res.stdout  # the system section measured the matmul peak
