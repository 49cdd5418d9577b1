"""Specific exceptions raised by the engine.

The engine raises; only the edges (the CLI's ``main`` and the GUI's one error handler) catch
and turn them into a one-line message. Each carries the field or file it is about.
"""

from __future__ import annotations


class StudioError(Exception):
    """Base of every error the engine raises on purpose (bad input, missing resource)."""

    def __init__(self, message: str, *, field: str | None = None, issues: list | None = None):
        super().__init__(message)
        self.field = field
        self.issues = issues or []

    def __reduce__(self):
        # pickled whole (a chain stage runs in its own process and its error comes back to the parent): the
        # default pickling calls cls(message) and loses the keyword-only field and issues
        return _rebuild, (type(self), str(self), self.field, self.issues)


def _rebuild(cls: type, message: str, field: str | None, issues: list) -> StudioError:
    return cls(message, field=field, issues=issues)


class ConfigError(StudioError):
    """A setting is unknown, of the wrong type or out of bounds."""


class DataError(StudioError):
    """A dataset file is missing, unreadable, empty, or lacks the mapped columns."""


class ModelLoadError(StudioError):
    """A model cannot be found or loaded (offline hub, gated model, missing package)."""


class JobError(StudioError):
    """A training job cannot start (one already running) or failed."""


class AdapterError(StudioError):
    """An adapter folder is missing files, holds NaN weights or was made for another base."""
