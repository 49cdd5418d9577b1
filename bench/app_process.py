"""``python app.py`` as its own process on a free port, for the tests, the benchmarks and the screenshots script."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from core.paths import REPO_ROOT
from core.train.launch import free_port  # one owner: the launcher's rendezvous port too


def serve(runs: Path, log: Path, *, lang: str = "vi", extra: tuple[str, ...] = (),
          timeout: float = 180) -> tuple[subprocess.Popen, str]:
    """Start the app on ``runs`` (its output appended to ``log``) and wait until it answers.

    Returns:
        (the process, its URL)
    Raises:
        RuntimeError: the app exited, or did not answer within ``timeout`` seconds (the log's tail in the message).
    """
    port = free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(REPO_ROOT))
    with Path(log).open("a") as out:
        proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--runs-dir", str(runs), "--lang", lang,
                                 *extra], cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with {proc.returncode}:\n{Path(log).read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"app.py did not answer within {timeout:.0f} s:\n{Path(log).read_text()[-3000:]}")
