"""An incident stored by an earlier release still loads and escalates.

`fixtures/stored_incident_0004.sql` is a SQLite dump written by the release whose newest migration is 0004,
before the policy snapshot carried a schema version: one incident from a failing pipeline step, waiting at
Level 2 with its message posted. The bot of today opens that database, migrates it and carries the
incident on: nobody acknowledges, so it escalates to the tech lead with the policy it was opened with."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from bot.core.clock import FakeClock
from bot.core.policy import POLICY_SCHEMA, Policy, policy_of
from bot.sandbox.world import SandboxWorld
from bot.store.tables import Escalation, Incident
from tests.shown import shown

DUMP = Path(__file__).parent / "fixtures" / "stored_incident_0004.sql"


def _database(tmp_path: Path) -> str:
    path = tmp_path / "stored.db"
    with sqlite3.connect(path) as con:
        con.executescript(DUMP.read_text())
    return f"sqlite:///{path}"


def test_an_incident_stored_before_the_policy_had_a_version_loads_and_escalates(tmp_path: Path) -> None:
    url = _database(tmp_path)
    clock = FakeClock()
    with SandboxWorld(clock=clock, database_url=url) as world:
        assert world.bot is not None
        with Session(world.bot.services.engine) as s:
            [inc] = s.exec(select(Incident)).all()
            assert (inc.level, inc.status) == ("L2", "open")
            policy = policy_of(inc)
            [esc] = s.exec(select(Escalation)).all()
        assert policy.channels["tech_lead"] == "#tech-leads"
        assert policy.allowlist["rerun_job_with_more_memory"]["max_memory"] == "16Gi"
        deadline = policy.ack_deadline_s["L2"] * policy.urgent_factor  # severity critical: time matters
        posted = esc.at if esc.at.tzinfo else esc.at.replace(tzinfo=UTC)
        clock.advance((posted + timedelta(seconds=deadline + 1) - clock.now()).total_seconds())
        world.settle()

        [l3] = world.slack.messages("#tech-leads")
        assert "Level 3 · INC-1" in l3["text"]
        assert "not acknowledged within" in shown(l3)
        with Session(world.bot.services.engine) as s:
            [inc] = s.exec(select(Incident)).all()
            assert (inc.level, inc.status) == ("L3", "open")
            assert policy_of(inc) == policy  # the snapshot it was opened with, read back the same


def _stored_policy() -> dict[str, object]:
    for line in DUMP.read_text().splitlines():
        if line.startswith('INSERT INTO "incidents"'):
            start = line.index('{"channels"')
            return json.loads(line[start : line.index("}','", start) + 1])
    raise AssertionError("the dump holds no incident")


def test_a_snapshot_is_written_with_its_schema_and_read_back_the_same() -> None:
    old = Policy.from_dict(_stored_policy())
    written = old.to_dict()
    assert written["schema"] == POLICY_SCHEMA
    assert Policy.from_dict(written) == old


def test_fields_a_newer_release_added_are_left_out() -> None:
    newer = {**Policy.from_dict(_stored_policy()).to_dict(), "schema": POLICY_SCHEMA, "snooze_max_s": 3600}
    assert Policy.from_dict(newer) == Policy.from_dict(_stored_policy())


def test_a_snapshot_of_the_wrong_shape_says_what_is_wrong() -> None:
    broken = {**_stored_policy(), "l1_max_attempts": "twice"}
    with pytest.raises(ValueError, match="l1_max_attempts"):
        Policy.from_dict(broken)
    with pytest.raises(ValueError, match="schema must be a whole number"):
        Policy.from_dict({**_stored_policy(), "schema": "one"})
