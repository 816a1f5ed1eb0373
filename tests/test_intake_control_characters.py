"""Control characters in an alert are written out where they are stored, the same way in every field:
two alerts that differ only by one stay two incidents, a reader sees what was sent, and the same alert
delivered twice is still one incident."""

from __future__ import annotations

import copy
from typing import Any

from bot.core.untrusted import scrub, visible
from bot.sandbox.world import SandboxWorld, alertmanager_payload
from tests.test_intake_dedupe import alert_rows, incidents

REPORT_LATE: dict[str, Any] = {  # no fingerprint: Alertmanager's is computed from the labels
    "labels": {"alertname": "NightlyReportLate", "team": "analytics", "report": "revenue"},
    "annotations": {"summary": "The nightly report has not been published"},
}


def with_label(value: str) -> dict[str, Any]:
    alert = copy.deepcopy(REPORT_LATE)
    alert["labels"]["report"] = value
    return alert


def test_two_alerts_that_differ_only_by_a_nul_byte_are_two_incidents(world: SandboxWorld) -> None:
    assert world.post_alerts(alertmanager_payload([with_label("rev\x00enue")])).status == 202
    assert world.post_alerts(alertmanager_payload([with_label("revenue")])).status == 202

    stored = incidents(world)
    assert [i.labels["report"] for i in stored] == ["rev\\x00enue", "revenue"]
    assert len({i.fingerprint for i in stored}) == 2
    assert [i.alert_count for i in stored] == [1, 1]


def test_escape_bidi_override_and_line_breaks_in_labels_are_written_out_and_kept_in_free_text(
    world: SandboxWorld,
) -> None:
    alert = copy.deepcopy(REPORT_LATE)
    alert["labels"].update(
        {"report": "\x1b[31mrevenue", "owner": "txt\u202eexe.sh", "step": "load\r\nexport", "tab": "a\tb"}
    )
    alert["annotations"]["description"] = "line one\r\nline two\n\x1b[2Jcleared\rover\u2066"
    assert world.post_alerts(alertmanager_payload([alert])).status == 202

    [inc] = incidents(world)
    assert inc.labels["report"] == "\\x1b[31mrevenue"
    assert inc.labels["owner"] == "txt\\u202eexe.sh"
    assert inc.labels["step"] == "load\\r\\nexport"  # a label is one line
    assert inc.labels["tab"] == "a\tb"
    # free text keeps its line breaks (a Windows line end is one), and writes out the rest
    described = "line one\nline two\n\\x1b[2Jcleared\\rover\\u2066"
    assert inc.annotations["description"] == described
    [row] = alert_rows(world)
    assert row.labels == inc.labels and row.annotations == inc.annotations
    assert row.raw["labels"]["step"] == "load\nexport"  # the raw body is free text, its names one line
    assert row.raw["labels"]["report"] == "\\x1b[31mrevenue"
    assert row.raw["annotations"]["description"] == described


def test_the_same_alert_with_control_characters_delivered_twice_is_one_incident(world: SandboxWorld) -> None:
    alert = with_label("rev\x00enue\u202e\r\n")
    answers = [world.post_alerts(alertmanager_payload([alert])) for _ in range(2)]

    assert [a.status for a in answers] == [202, 202]
    assert answers[1].json()["duplicates"] == 1  # the same notification again (an HA pair)
    [inc] = incidents(world)
    assert inc.alert_count == 1
    assert inc.labels["report"] == "rev\\x00enue\\u202e\\r\\n"
    assert len(alert_rows(world)) == 2


def test_each_control_character_is_written_its_own_way_and_a_secret_they_split_is_still_masked() -> None:
    hazards = [*"\x00\x01\x1b\x7f\x85\u202a\u202e\u2066\u2069\ufeff", "\ud800"]
    written = [visible(f"a{c}b") for c in hazards]
    assert len(set(written)) == len(hazards)
    assert all(w.isprintable() for w in written), written
    assert visible("a\r\nb\nc\td") == "a\nb\nc\td"
    assert visible("a\r\nb\nc\td", one_line=True) == "a\\r\\nb\\nc\td"
    assert scrub("xoxb-1234\x00567890") == "[REDACTED]"
    assert scrub({"job\n": "a\nb"}) == {"job\\n": "a\nb"}  # a name is one line; its value free text
