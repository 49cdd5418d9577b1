"""The memory allocator the app and ``python -m core`` run under: jemalloc when Debian's package is installed.

Why: a training step frees and reallocates the same large blocks (activations, gradients, the output layer's
logits) every step. glibc's malloc hands big blocks back to the kernel with ``munmap`` and faults fresh zeroed
pages in on the next step, so a 2-core CPU spends a third of its time in the kernel. jemalloc configured never
to return freed pages (``dirty_decay_ms:-1``) reuses them instead: on the demo preset 3.0–3.6 s/step against
7.8–11.1 with glibc, identical losses, the same peak RSS (``python -m bench --only allocator``).

The pages it keeps are given back at the end of each training job (:func:`release`), so an idle app does not
hold the last run's peak.

An allocator must be chosen before the process starts, so :func:`reexec_with_jemalloc` restarts the process
once with ``LD_PRELOAD`` set (the entry points call it before importing torch). ``LORA_STUDIO_ALLOCATOR=system``
keeps glibc's malloc.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

ENV = "LORA_STUDIO_ALLOCATOR"  # "system": glibc's malloc; anything else (or unset): jemalloc when installed
# never hand freed pages back while the process runs (release() does it between jobs); no background thread,
# which would compete with torch's two threads for the two cores
CONF = "background_thread:false,dirty_decay_ms:-1,muzzy_decay_ms:-1"
CANDIDATES = tuple(f"/usr/lib/{arch}-linux-gnu/libjemalloc.so.2" for arch in ("x86_64", "aarch64")) + (
    "/usr/lib64/libjemalloc.so.2", "/usr/lib/libjemalloc.so.2", "/usr/local/lib/libjemalloc.so.2")
MALLCTL_ARENAS_ALL = 4096  # jemalloc's index for "every arena"


def find_jemalloc() -> str | None:
    """The path of an installed libjemalloc.so.2, or None."""
    return next((p for p in CANDIDATES if Path(p).is_file()), None)


def preload_env(env: dict[str, str] | None = None) -> dict[str, str] | None:
    """The environment to restart this process with under jemalloc; None when there is nothing to change.

    Nothing changes when the user chose the system allocator, when jemalloc is not installed, or when it is
    already preloaded (so a failed preload cannot restart the process again and again).
    """
    env = dict(os.environ if env is None else env)
    lib = find_jemalloc()
    if env.get(ENV, "").lower() == "system" or lib is None or lib in env.get("LD_PRELOAD", ""):
        return None
    env["LD_PRELOAD"] = ":".join(p for p in (lib, env.get("LD_PRELOAD", "")) if p)
    env.setdefault("MALLOC_CONF", CONF)
    return env


def reexec_with_jemalloc() -> None:
    """Replace this process by the same command line under jemalloc, or return at once when :func:`preload_env`
    says there is nothing to change. Call it first thing in an entry point: the process starts over."""
    env = preload_env()
    if env is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def _mallctl():
    try:
        return ctypes.CDLL(None).mallctl  # exported by a preloaded jemalloc only
    except (AttributeError, OSError):
        return None


def active() -> str:
    """``"jemalloc"`` when this process runs under jemalloc, else ``"system"``."""
    return "jemalloc" if _mallctl() is not None else "system"


def release() -> bool:
    """Give the pages jemalloc kept back to the kernel (after a training job); False under another allocator."""
    mallctl = _mallctl()
    if mallctl is None:
        return False
    name = f"arena.{MALLCTL_ARENAS_ALL}.purge".encode()
    return mallctl(ctypes.c_char_p(name), None, None, None, ctypes.c_size_t(0)) == 0
