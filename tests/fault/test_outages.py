"""Outages while the scenarios run (see faults.py): Slack answering 500 and then a 429 storm; Kubernetes
down and then slow, and the MLflow tracking server down. The bot keeps every invariant, honours Retry-After
and finishes the scenarios once each fault clears."""

from __future__ import annotations

import pytest

from tests.fault.campaign import FAULT_IDS, Campaign
from tests.fault.test_kill9 import _result

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
@pytest.mark.parametrize("run", FAULT_IDS)
def test_through_an_outage_the_scenarios_finish_and_keep_every_invariant(
    campaign: Campaign, db: str, run: str
) -> None:
    _result(campaign, db, run)
