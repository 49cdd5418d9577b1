"""The allocator the app and the CLI run under (core.allocator): jemalloc when installed, glibc when asked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core import allocator

REPO = Path(__file__).resolve().parents[1]
JEMALLOC = allocator.find_jemalloc()
needs_jemalloc = pytest.mark.skipif(JEMALLOC is None, reason="jemalloc is not installed (apt-get install libjemalloc2)")


@needs_jemalloc
def test_preload_env_adds_jemalloc_once_and_respects_the_users_choice():
    env = allocator.preload_env({"PATH": "/bin", "LD_PRELOAD": "/opt/other.so"})
    assert env["LD_PRELOAD"].split(":") == [JEMALLOC, "/opt/other.so"]
    assert env["MALLOC_CONF"] == allocator.CONF
    assert allocator.preload_env(env) is None, "already preloaded: no second restart"
    assert allocator.preload_env({allocator.ENV: "system"}) is None
    assert allocator.preload_env({allocator.ENV: "System"}) is None
    mine = allocator.preload_env({"MALLOC_CONF": "narenas:1"})
    assert mine["MALLOC_CONF"] == "narenas:1", "a MALLOC_CONF the user set is kept"


def test_no_jemalloc_no_restart(monkeypatch, tmp_path):
    monkeypatch.setattr(allocator, "CANDIDATES", (str(tmp_path / "libjemalloc.so.2"),))
    assert allocator.find_jemalloc() is None
    assert allocator.preload_env({}) is None


def _python(code: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MALLOC_CONF", allocator.ENV)}
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**base, "PYTHONPATH": str(REPO), **env},
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout.strip()


def test_pytest_itself_runs_under_the_system_allocator():
    assert allocator.active() == "system" or JEMALLOC in os.environ.get("LD_PRELOAD", "")
    assert allocator.release() is (allocator.active() == "jemalloc")


@needs_jemalloc
def test_reexec_restarts_under_jemalloc_with_the_same_arguments():
    code = ("import sys; from core import allocator; allocator.reexec_with_jemalloc(); "
            "print(allocator.active(), sys.argv[1:])")
    out = subprocess.run([sys.executable, "-c", code, "a", "--b"], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "jemalloc ['a', '--b']"
    assert _python(code, **{allocator.ENV: "system"}) == "system []"


@needs_jemalloc
def test_release_hands_the_kept_pages_back():
    code = """
import torch
from core import allocator
allocator.reexec_with_jemalloc()
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * 4096
blocks = [torch.ones(16 * 2**20) for _ in range(8)]  # 8 x 64 MiB
high = rss()
del blocks
kept = rss()
assert allocator.release()
print(allocator.active(), high, kept, rss())
"""
    name, high, kept, after = _python(code).split()
    high, kept, after = int(high), int(kept), int(after)
    assert name == "jemalloc"
    assert kept > high - 64 * 2**20, "with dirty_decay_ms:-1 freed pages stay until release()"
    assert after < kept - 400 * 2**20, (high, kept, after)
