"""app.yaml's `reports.digest` and `retention` sections: crontab lines read as cron reads them, and every
bad value named with its key."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from bot.config import check_config
from bot.services.digest_schedule import next_slot


@pytest.mark.parametrize(
    ("line", "weekday"),
    [("0 9 * * 1", 0), ("0 9 * * 7", 6), ("0 9 * * 0", 6), ("0 9 * * mon", 0), ("0 9 * * 5", 4)],
)
def test_a_crontab_weekday_means_what_it_means_to_cron(line: str, weekday: int, tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(f"reports:\n  digest:\n    cron: '{line}'\n")
    assert check_config(str(path)) == []
    # Thursday 3 December 2026: the next slot falls on the weekday cron numbers (Monday is 0 here)
    slot = next_slot(line, "UTC", datetime(2026, 12, 3, 12, tzinfo=UTC))
    assert (slot.weekday(), slot.hour) == (weekday, 9)


@pytest.mark.parametrize(
    ("yaml", "key", "words"),
    [
        ("reports:\n  digest:\n    cron: '0 9 * *'\n", "reports.digest.cron", "has 4 fields, not 5"),
        ("reports:\n  digest:\n    cron: '61 9 * * 1'\n", "reports.digest.cron", "61"),
        ("reports:\n  digest:\n    cron: '0 9 * * 8'\n", "reports.digest.cron", "weekday 8 is not 0-7"),
        ("reports:\n  digest:\n    cron: '0 9 30 2 *'\n", "reports.digest.cron", "never fires"),
        ("reports:\n  digest:\n    timezone: Mars/Olympus\n", "reports.digest.timezone", "time zone"),
        ("reports:\n  digest:\n    timezone: America\n", "reports.digest.timezone", "time zone"),
        ("reports:\n  digest:\n    timezone: " + "A" * 10_000 + "\n", "reports.digest.timezone", "time zone"),
        ("reports:\n  digest:\n    period: 1h\n", "reports.digest.period", "reports.digest.period"),
        ("retention:\n  outbox: 5m\n", "retention.outbox", "retention.outbox"),
        ("retention:\n  batch: 10\n", "retention.batch", "between 100 and 100000"),
    ],
)
def test_a_bad_reports_or_retention_value_is_named(yaml: str, key: str, words: str, tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(yaml)
    problems = check_config(str(path))
    assert len(problems) == 1, problems
    assert problems[0].startswith(key) and words in problems[0], problems


@pytest.mark.parametrize("url", ["${FEATURE_STORE_URL", "${1X}", "postgresql://${}/db"])
def test_a_feature_table_url_with_an_unclosed_or_nameless_variable_is_named(url: str, tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    table = {"name": "f", "url": url, "table": "t", "timestamp_column": "ts"}
    path.write_text(yaml.safe_dump({"feature_store": {"tables": [table]}}))
    problems = check_config(str(path))
    assert len(problems) == 1, problems
    assert problems[0].startswith("feature_store.tables[0].url: a ${VAR} must be closed"), problems
