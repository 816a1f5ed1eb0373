"""Log records are redacted when they are made, and a record without a secret keeps its arguments, so a
formatter that reads them (uvicorn's access log) still works."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from uvicorn.logging import AccessFormatter

from bot.logs import install_redaction
from tests.logcapture import captured

TOKEN = "xoxb-123456789012-abcdefghijkl"
ACCESS = '%s - "%s %s HTTP/%s" %d'


@pytest.fixture
def access_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    formatter = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s')
    with captured("test.uvicorn.access", formatter, logging.INFO) as capture:
        yield capture


def test_the_access_log_is_written_and_a_token_in_a_path_is_redacted(
    access_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = access_log
    logger.info(ACCESS, "127.0.0.1:5000", "GET", "/healthz", "1.1", 200)
    logger.info(ACCESS, "127.0.0.1:5000", "GET", f"/x?token={TOKEN}", "1.1", 200)
    assert out.getvalue().splitlines() == [
        '127.0.0.1:5000 - "GET /healthz HTTP/1.1" 200 OK',
        '127.0.0.1:5000 - "GET /x?token=[REDACTED] HTTP/1.1" 200 OK',
    ]


def test_a_secret_in_an_argument_or_the_format_is_redacted() -> None:
    install_redaction()
    by_argument = logging.LogRecord("t", logging.INFO, __file__, 1, "sent %s to %d", (TOKEN, 3), None)
    in_format = logging.LogRecord("t", logging.INFO, __file__, 1, f"sent {TOKEN} %s", ("x",), None)
    made = logging.getLogRecordFactory()
    for record in (by_argument, in_format):
        redacted = made(
            record.name, record.levelno, record.pathname, record.lineno, record.msg, record.args, None
        )
        assert TOKEN not in redacted.getMessage()
        assert "[REDACTED]" in redacted.getMessage()
