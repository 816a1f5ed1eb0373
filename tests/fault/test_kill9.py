"""`escalation-bot run` killed with SIGKILL at 20 seeded points of the demo scenarios and restarted on the
same database (SQLite, and a fresh PostgreSQL schema): every alert answered is kept, every Slack message
exists once, every due timer fires once, no acked decision is lost and no remediation is applied twice."""

from __future__ import annotations

import pytest

from tests.conftest import postgres_url
from tests.fault.campaign import KILL_IDS, Campaign

pytestmark = pytest.mark.slow


def _result(campaign: Campaign, db: str, run: str) -> str:
    if db == "postgres" and not postgres_url():
        pytest.skip("TEST_DATABASE_URL is not set: the PostgreSQL fault runs need a server (.ci/run sets it)")
    result = campaign.result(f"{db}-{run}")
    report = result.report()
    print(report)
    assert not result.violations, report
    return report


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
@pytest.mark.parametrize("run", ["baseline"])
def test_without_a_kill_the_scenarios_finish_and_keep_every_invariant(
    campaign: Campaign, db: str, run: str
) -> None:
    _result(campaign, db, run)


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
@pytest.mark.parametrize("run", KILL_IDS)
def test_after_a_kill_and_a_restart_the_scenarios_finish_and_keep_every_invariant(
    campaign: Campaign, db: str, run: str
) -> None:
    _result(campaign, db, run)
