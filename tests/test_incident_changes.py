"""IncidentChanges: whoever shows incidents elsewhere (the App Home tab) is told that one changed."""

from __future__ import annotations

import logging

import pytest

from bot.services.changes import IncidentChanges


def test_every_observer_hears_of_a_change_even_after_one_fails(caplog: pytest.LogCaptureFixture) -> None:
    changes = IncidentChanges()
    heard: list[int | None] = []

    def broken(_incident_id: int | None) -> None:
        raise RuntimeError("observer bug")

    changes.subscribe(broken)
    changes.subscribe(heard.append)
    with caplog.at_level(logging.ERROR, logger="bot.services.changes"):
        changes.changed(7)
        changes.changed()

    assert heard == [7, None]
    assert [r.getMessage() for r in caplog.records] == [
        "an observer of incident changes failed on INC-7",
        "an observer of incident changes failed on a change",
    ]
