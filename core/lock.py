"""One writer per run folder: an OS file lock held for the life of a training or a merge.

It reads and writes only ``RUN/.lock``; what the run folder holds is :mod:`core.run`'s.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from core.errors import StudioError


class RunLocked(StudioError):
    """Another process (or job) is writing this run folder."""


class RunLock:
    """An OS file lock on ``RUN/.lock`` for the life of a training or merge: one writer per run folder.

    The lock is ``fcntl.flock`` on an open file: the kernel drops it when its process dies, however it dies
    (kill -9 included), so a lock file left behind is recognised as stale and taken over. The file holds the
    holder's PID, host and purpose, so that a refused writer is told who holds it.

    Use as a context manager or with :meth:`acquire` / :meth:`release`.
    """

    def __init__(self, folder: Any, purpose: str = "training"):  # a core.run.RunFolder
        self.folder, self.purpose = folder, purpose
        self._fh = None
        self.took_over: dict | None = None  # what a stale lock file said, when this lock replaced it

    @property
    def path(self) -> Path:
        return self.folder.path / ".lock"

    def acquire(self) -> "RunLock":
        """Take the lock, or raise RunLocked naming the process that holds it."""
        import fcntl
        import socket

        fh = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = _parse_holder(fh.read())
            fh.close()
            who = f"process {holder.get('pid', '?')} on {holder.get('host', '?')}" if holder else "another process"
            doing = f" ({holder['purpose']})" if holder.get("purpose") else ""
            raise RunLocked(f"the run folder {self.folder.path} is in use by {who}{doing}; wait for it to finish or "
                            "stop it first", field=str(self.folder.path)) from None
        fh.seek(0)
        previous = _parse_holder(fh.read())
        if previous.get("pid") and previous.get("pid") != os.getpid():
            self.took_over = previous  # its process is gone: the kernel released its lock
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "purpose": self.purpose,
                             "since": dt.datetime.now().isoformat(timespec="seconds")}))
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            import fcntl

            try:
                self._fh.seek(0)
                self._fh.truncate()
            finally:
                fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
                self._fh.close()
                self._fh = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _parse_holder(text: str) -> dict:
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def is_locked(folder: Any) -> bool:  # a core.run.RunFolder
    """True while some process holds the run folder's lock (this one included)."""
    import fcntl

    if not (folder.path / ".lock").exists():
        return False
    with open(folder.path / ".lock", "a+", encoding="utf-8") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return False
