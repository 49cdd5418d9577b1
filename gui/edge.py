"""The GUI's edge: the one place where an exception becomes a message on the page and a traceback in the log.

A :class:`core.errors.StudioError` (bad input, a missing file) becomes its one line, naming the field, in the
page's language; anything else is logged with its traceback and shown as an unexpected error. Handlers use
:func:`shows_errors` instead of writing their own ``try``/``except``.
"""

from __future__ import annotations

import functools
import html
import inspect
import logging
import traceback
from typing import Any, Callable

from core.errors import StudioError
from core.locale import text as t

log = logging.getLogger("lora_studio.gui")


def error_message(e: BaseException, lang: str) -> str:
    """A StudioError becomes its one-line message; anything else is logged with its traceback."""
    if isinstance(e, StudioError):
        where = f" ({t('common.field', lang)}: {e.field})" if e.field and e.field not in str(e) else ""
        return f"{t('common.error_prefix', lang)}: {e}{where}"
    log.error("unexpected error in a handler:\n%s", "".join(traceback.format_exception(e)))
    return f"{t('common.unexpected', lang)}: {type(e).__name__}: {str(e)[:300]}"


def error_html(e: BaseException, lang: str) -> str:
    return f'<div class="ls-error" role="alert">{html.escape(error_message(e, lang))}</div>'


def note_html(text: str, kind: str = "info") -> str:
    """A small boxed message (kind: info | ok | warn | error), text escaped."""
    role = ' role="alert"' if kind == "error" else ""
    return f'<div class="ls-note ls-{kind}"{role}>{html.escape(text)}</div>'


def shows_errors(fallback: Callable[[str], Any]):
    """Decorate a handler so that any exception it raises is shown instead of breaking the page.

    Args:
        fallback: the error panel's HTML → the handler's return value (e.g. ``lambda err: (err, "", "")``).
            The handler's ``lang`` argument chooses the language (Vietnamese when it has none).
    """
    def wrap(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)  # gradio reads the signature (gr.Progress defaults) through __wrapped__
        def handler(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - the GUI edge: every failure becomes a message
                try:
                    lang = signature.bind_partial(*args, **kwargs).arguments.get("lang", "vi")
                except TypeError:
                    lang = "vi"
                return fallback(error_html(e, lang if lang in ("vi", "en") else "vi"))
        return handler
    return wrap
