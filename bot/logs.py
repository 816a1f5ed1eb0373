"""Logging that never writes a secret: every record is redacted whole (message, arguments, traceback and
stack) when it is made, so no handler (a file, stderr, a test's capture) can see a secret."""

from __future__ import annotations

import logging
import threading
from typing import Any

from bot.core.redact import redact

_installed = False
_lock = threading.Lock()


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Redact the record's message, traceback and stack. A message without a secret keeps its format
    string and arguments (formatters such as uvicorn's access log read the arguments); one with a secret
    keeps them redacted one by one when that hides it, else becomes the redacted text."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: keep what can be shown
        message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = redact(message), ()
    clean = redact(message)
    if clean != message:
        record.msg, record.args = _redacted_parts(record, clean)
    if record.exc_info and record.exc_info[0] is not None:
        # formatted now, redacted, and kept as text: a handler would otherwise format the live exception
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        record.exc_info = None
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    return record


def _redacted_parts(record: logging.LogRecord, clean: str) -> tuple[Any, Any]:
    if isinstance(record.msg, str) and isinstance(record.args, tuple) and record.args:
        msg = redact(record.msg)
        args = tuple(a if isinstance(a, int | float) else redact(str(a)) for a in record.args)
        try:
            if msg % args == clean:
                return msg, args
        except (TypeError, ValueError):
            pass
    return clean, ()


def install_redaction() -> None:
    """Make every log record of the process redacted when it is created (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            return redact_record(previous(*args, **kwargs))

        logging.setLogRecordFactory(factory)
        _installed = True


def configure(verbose: bool) -> None:
    install_redaction()
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
