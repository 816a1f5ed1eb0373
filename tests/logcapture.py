"""One logger of the bot's process written to a string through a given formatter, with redaction
installed as the bot installs it: what a log handler would see."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from bot.logs import install_redaction


@contextmanager
def captured(
    name: str, formatter: logging.Formatter, level: int
) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    install_redaction()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    try:
        yield logger, out
    finally:
        logger.removeHandler(handler)
