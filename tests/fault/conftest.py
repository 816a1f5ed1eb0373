"""One campaign per session runs every fault run the selected tests need, in parallel (see campaign.py);
each test then asserts on its own run's result. The seed, the kill points and the timings are printed at the
end of the session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.conftest import postgres_url
from tests.fault.campaign import Campaign
from tests.fault.harness import close_launcher, freeze_env

SEED = int(os.environ.get("FAULT_SEED", "20261126"))
_campaign: list[Campaign] = []


def _wanted(session: pytest.Session) -> set[str]:
    """Run ids ("<db>-<name>") of the selected fault tests; PostgreSQL only where TEST_DATABASE_URL is set."""
    wanted = set()
    for item in session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "db" in params and "run" in params:
            if params["db"] == "postgres" and not postgres_url():
                continue
            wanted.add(f"{params['db']}-{params['run']}")
    return wanted


@pytest.fixture(scope="session")
def campaign(request: pytest.FixtureRequest) -> Iterator[Campaign]:
    freeze_env()
    c = Campaign(SEED, postgres_url(), _wanted(request.session))
    _campaign.append(c)
    c.start()
    yield c
    c.close()
    close_launcher()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for c in _campaign:
        terminalreporter.section("fault suite")
        for line in c.summary():
            terminalreporter.write_line(line)
