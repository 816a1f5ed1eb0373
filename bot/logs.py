"""Logging that never writes a secret: every record is redacted whole (message, arguments, traceback and
stack) when it is made, so no handler (a file, stderr, a test's capture) can see a secret.

Logs are text, or with LOG_FORMAT=json one JSON object a line: ts (ISO 8601, UTC), level, logger, message,
and where known what the line is about (incident, escalation_level, source: set with `about(...)` around
work on an incident), plus exc (the traceback) when there is one."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from bot.core.redact import redact

_installed = False
_lock = threading.Lock()
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ABOUT_ATTR = "log_about"  # where a record keeps what it is about, taken from the context it was made in
_ABOUT: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    ABOUT_ATTR, default=MappingProxyType({})
)
_INCIDENT = re.compile(r"\bINC-([0-9]{1,10})\b")
# a record's own attributes; anything else on it came from `extra=` and is written as a field of its own
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", ABOUT_ATTR, "color_message"}


@contextmanager
def about(*, incident: int | None = None, level: Any = None, source: str | None = None) -> Iterator[None]:
    """Every log line made inside (in this thread or task) says which incident, escalation level (L1..L4)
    and source (alertmanager, mlflow, slack, timer, ...) it is about; what is not given is kept from an
    enclosing `about`."""
    given = {"escalation_level": level, "source": source}
    said: dict[str, Any] = {k: str(v) for k, v in given.items() if v}  # a Level enum as "L2"
    if incident:
        said["incident"] = incident
    token = _ABOUT.set({**_ABOUT.get(), **said})
    try:
        yield
    finally:
        _ABOUT.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object a line (a message's own line breaks are escaped), its text redacted once more."""

    def format(self, record: logging.LogRecord) -> str:
        message = redact(record.getMessage())
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
            **getattr(record, ABOUT_ATTR, {}),
        }
        named = _INCIDENT.search(message)
        if "incident" not in entry and named:
            entry["incident"] = int(named.group(1))
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry and isinstance(value, str | int | float | bool):
                entry[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exc"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


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
            record = redact_record(previous(*args, **kwargs))
            setattr(record, ABOUT_ATTR, _ABOUT.get())
            return record

        logging.setLogRecordFactory(factory)
        _installed = True


def configure(verbose: bool, log_format: str | None = None) -> None:
    """Log to stderr, redacted: as text, or as JSON lines when `log_format` (LOG_FORMAT) is "json". Any
    other value logs text; `run` and `check-config --env` name it as a problem."""
    install_redaction()
    handler = logging.StreamHandler()
    if (log_format or "").strip().lower() == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, handlers=[handler])


def json_logs() -> bool:
    """Whether the root logger writes JSON lines (then uvicorn's loggers are left to it too)."""
    return any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)
