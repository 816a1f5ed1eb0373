"""The scheduled digest: a seeded history (tests/test_stats.py's, whose figures are worked out by hand there)
posted once at its cron slot to the tech lead's channel with the numbers of `/escalation stats`, and its
chart uploaded into the thread with files_upload_v2, through the Slack emulator, on SQLite and PostgreSQL.
Once only: a run repeated after a crash, a lost upload answer and two bots on one database each post it
once; the next slot is scheduled once. The cron line is read in its time zone and as cron reads weekdays."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from matplotlib.image import imread
from sqlalchemy import update
from sqlmodel import Session, col, select

from bot.app import Bot
from bot.config import parse_config
from bot.core.clock import FakeClock
from bot.sandbox.world import DEMO_CONFIG, SandboxWorld
from bot.services.digest import DIGEST, DIGEST_CHART
from bot.services.digest_schedule import cron_weekdays, latest_slot, next_slot
from bot.store.tables import Timer
from tests.test_postgres import replica, settle_together
from tests.test_stats import CASES, END, at, seed

TECH_LEADS = "#tech-leads"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
THURSDAYS = "0 9 * * 4"  # END, the seeded history's end, is Thursday 26 Nov 09:00 UTC


def config(**digest: Any) -> dict[str, Any]:
    return {**DEMO_CONFIG, "reports": {"digest": {"cron": THURSDAYS, **digest}}}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("pg_url") if request.param == "postgresql" else None


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(END - timedelta(hours=1))


def seeded_world(clock: FakeClock, database_url: str | None = None, **digest: Any) -> SandboxWorld:
    world = SandboxWorld(clock=clock, database_url=database_url, config=config(**digest)).start()
    assert world.bot is not None
    seed(world.bot.services.engine, CASES)
    return world


@pytest.fixture
def make_world(clock: FakeClock) -> Iterator[Callable[..., SandboxWorld]]:
    """Seeded worlds with the digest settings given, each stopped at the end of the test."""
    made: list[SandboxWorld] = []

    def make(database_url: str | None = None, **digest: Any) -> SandboxWorld:
        made.append(seeded_world(clock, database_url, **digest))
        return made[-1]

    yield make
    for w in made:
        w.stop()


@pytest.fixture
def world(database_url: str | None, make_world: Callable[..., SandboxWorld]) -> SandboxWorld:
    # the database first: its schema is dropped after the worlds on it stopped
    return make_world(database_url)


def bot_of(world: SandboxWorld) -> Bot:
    assert world.bot is not None
    return world.bot


def advance_to(clock: FakeClock, when: datetime) -> None:
    clock.advance((when - clock.now()).total_seconds())


def digest_timers(world: SandboxWorld, status: str = "pending") -> list[Timer]:
    with Session(bot_of(world).services.engine) as s:
        query = select(Timer).where(Timer.kind == DIGEST, Timer.status == status)
        return list(s.exec(query))


def due(timers: list[Timer]) -> list[datetime]:
    return [t.due_at.replace(tzinfo=UTC) if t.due_at.tzinfo is None else t.due_at for t in timers]


def shared_files(world: SandboxWorld, parent_ts: str) -> list[dict[str, Any]]:
    return [f for m in world.slack.thread(TECH_LEADS, parent_ts) for f in m.get("files", [])]


def test_the_due_digest_posts_the_periods_numbers_once_and_its_chart_in_the_thread(
    world: SandboxWorld, clock: FakeClock, tmp_path: Any
) -> None:
    bot = bot_of(world)
    assert bot.digests.ensure_scheduled() == END
    assert due(digest_timers(world)) == [END]

    advance_to(clock, END + timedelta(seconds=30))
    world.settle()

    [digest] = world.slack.messages(TECH_LEADS)
    lines = digest["text"].splitlines()
    assert lines[0] == "*Weekly escalation digest* — 19 Nov to 26 Nov 2026"
    # worked out by hand in tests/test_stats.py: A1-A10 and A12 this week, B1-B6 the week before
    assert lines[1] == "11 incidents opened: 9 resolved, 2 open · 5 left Level 1 · 1 reached L4"
    assert lines[2:5] == [
        "✗ Resolved at L1: *45%* (5 of 11; target 70%) · ▼ 38 points vs previous 7d (83%)",
        "✗ Of the rest, resolved at L2: *40%* (2 of 5; target 80%) · ▼ 60 points vs previous 7d (100%)",
        "✗ Reached L4: *9%* (1 of 11; target under 2%) · ▲ 9 points vs previous 7d (0%)",
    ]
    # L2 acknowledged after 8, 12 and 30 minutes (A8, A5, A6); resolved there after 2h (A5) and 3h 5m (A6)
    assert "• L2: ack 12m / 30m · resolve 2h / 3h 5m · 5 reached" in lines
    assert "• Categories: training crash 3 · feature store issue 1 · version incompatibility 1" in lines
    assert "• Pipelines: etl-daily 2 · features-sync 1 · nightly-train 1" in lines
    assert "could not be attached" not in digest["text"] and "Posted late" not in digest["text"]

    [chart] = shared_files(world, digest["ts"])
    assert chart["name"] == "escalation-digest-2026-11-26-0900.png"
    assert chart["title"] == "Weekly escalation digest — 19 Nov to 26 Nov 2026"
    assert "Resolved at L1 45% (target 70%)" in chart["alt_txt"]
    png = world.slack.file_data(chart["id"])
    assert png.startswith(PNG_SIGNATURE) and 10_000 < len(png) < 200_000
    height, width, _ = imread(io.BytesIO(png)).shape
    assert (width, height) == (1000, 440)
    (tmp_path / chart["name"]).write_bytes(png)  # where a person can look at it

    # the next Thursday is scheduled, once; running everything again posts nothing more
    assert due(digest_timers(world)) == [END + timedelta(days=7)]
    assert bot.digests.ensure_scheduled() == END + timedelta(days=7)
    world.settle()
    assert len(world.slack.messages(TECH_LEADS)) == 1 and len(world.slack.files()) == 1
    assert len(digest_timers(world)) == 1


def expire_claims(world: SandboxWorld, kind: str) -> None:
    """As if the process that ran these timers died after their work committed, before marking them done."""
    with Session(bot_of(world).services.engine) as s:
        s.execute(
            update(Timer)
            .where(col(Timer.kind) == kind, col(Timer.status) == "done")
            .values(status="running", claimed_by="dead", claimed_until=END)
        )
        s.commit()


def test_a_digest_run_again_after_a_crash_posts_one_text_and_one_chart(
    world: SandboxWorld, clock: FakeClock
) -> None:
    bot_of(world).digests.ensure_scheduled()
    advance_to(clock, END + timedelta(seconds=30))
    world.settle()

    expire_claims(world, DIGEST)
    expire_claims(world, DIGEST_CHART)
    clock.advance(60)
    world.settle()

    [digest] = world.slack.messages(TECH_LEADS)
    assert len(shared_files(world, digest["ts"])) == 1
    assert len(world.slack.calls_to("files.completeUploadExternal")) == 1
    assert len(world.slack.calls_to("conversations.replies")) == 2  # the second run found the chart there
    assert len(digest_timers(world)) == 1


def test_a_chart_whose_upload_answer_was_lost_is_found_in_the_thread_and_not_uploaded_again(
    world: SandboxWorld, clock: FakeClock
) -> None:
    bot_of(world).digests.ensure_scheduled()
    world.slack.drop_after_send("files.completeUploadExternal")
    advance_to(clock, END + timedelta(seconds=30))
    world.settle()
    [digest] = world.slack.messages(TECH_LEADS)
    assert len(shared_files(world, digest["ts"])) == 1  # Slack took it; the bot never heard

    clock.advance(61)  # the chart's timer is tried again after 30 s
    world.settle()

    assert len(shared_files(world, digest["ts"])) == 1
    assert len(world.slack.calls_to("files.completeUploadExternal")) == 1
    assert "could not be attached" not in world.slack.messages(TECH_LEADS)[0]["text"]


def test_two_bots_on_one_database_running_due_timers_at_once_post_one_digest(
    pg_url: str, make_world: Callable[..., SandboxWorld], clock: FakeClock
) -> None:
    world = make_world(pg_url)
    with replica(world) as (second, _url):
        bots = [bot_of(world), second]
        together = threading.Barrier(len(bots))

        def ensure(bot: Bot) -> datetime | None:
            together.wait()
            return bot.digests.ensure_scheduled()

        with ThreadPoolExecutor(len(bots)) as pool:
            assert list(pool.map(ensure, bots)) == [END, END]
        assert due(digest_timers(world)) == [END]

        advance_to(clock, END + timedelta(seconds=30))
        settle_together(*bots)

        [digest] = world.slack.messages(TECH_LEADS)
        assert digest["text"].startswith("*Weekly escalation digest* — 19 Nov to 26 Nov 2026")
        assert len(shared_files(world, digest["ts"])) == 1 and len(world.slack.files()) == 1
        assert due(digest_timers(world)) == [END + timedelta(days=7)]


def test_a_digest_missed_while_no_replica_ran_is_posted_late_for_the_newest_slot(
    make_world: Callable[..., SandboxWorld], clock: FakeClock
) -> None:
    world = make_world()
    bot_of(world).digests.ensure_scheduled()
    advance_to(clock, END + timedelta(days=8))  # Thursday 26 Nov and 3 Dec went by
    world.settle()

    [digest] = world.slack.messages(TECH_LEADS)
    assert digest["text"].splitlines()[:2] == [
        "*Weekly escalation digest* — 26 Nov to 3 Dec 2026",
        "_Posted late: no replica was running at Thu 03 Dec 09:00 (UTC)._",
    ]
    assert due(digest_timers(world)) == [END + timedelta(days=14)]


def test_a_digest_more_than_one_period_late_is_skipped_and_the_next_one_scheduled(
    make_world: Callable[..., SandboxWorld], clock: FakeClock
) -> None:
    world = make_world(period="1d")
    bot_of(world).digests.ensure_scheduled()
    advance_to(clock, END + timedelta(days=2))
    world.settle()

    assert world.slack.messages(TECH_LEADS) == []
    assert due(digest_timers(world)) == [END + timedelta(days=7)]


def test_a_chart_that_cannot_be_drawn_leaves_the_text_saying_why(
    make_world: Callable[..., SandboxWorld], clock: FakeClock
) -> None:
    world = make_world(channel="#ml-decisions")

    def broken(*_args: Any) -> bytes:
        raise RuntimeError("no fonts")

    bot_of(world).digests.draw = broken
    bot_of(world).digests.ensure_scheduled()
    advance_to(clock, END + timedelta(seconds=30))
    world.settle()

    assert world.slack.messages(TECH_LEADS) == []
    [digest] = world.slack.messages("#ml-decisions")
    assert digest["text"].splitlines()[-1] == (
        "_The chart could not be attached: drawing it failed (RuntimeError: no fonts)._"
    )
    assert world.slack.files() == [] and digest_timers(world, "failed") == []


@pytest.mark.parametrize(
    ("method", "scope"),
    [("files.getUploadURLExternal", "files:write"), ("conversations.replies", "channels:history")],
)
def test_a_chart_slack_refuses_is_given_up_at_once_and_the_text_edited_to_say_why(
    world: SandboxWorld, clock: FakeClock, method: str, scope: str
) -> None:
    world.slack.error_next(method, "missing_scope")  # Slack names the scope it wants: that one is shown
    bot_of(world).digests.ensure_scheduled()
    advance_to(clock, END + timedelta(seconds=30))
    world.settle()

    [digest] = world.slack.messages(TECH_LEADS)
    assert digest["text"].endswith(
        "_The chart could not be attached: Slack answered missing_scope; the Slack app needs the "
        f"{scope} scope (add it and reinstall the app)._"
    )
    assert digest["text"].startswith("*Weekly escalation digest*")
    assert world.slack.files() == []
    assert len(world.slack.calls_to("files.getUploadURLExternal")) == (method.startswith("files."))


def test_a_disabled_digest_schedules_nothing_and_a_timer_left_from_before_posts_nothing(
    make_world: Callable[..., SandboxWorld],
    clock: FakeClock,
) -> None:
    world = make_world()
    bot = bot_of(world)
    bot.digests.ensure_scheduled()
    bot.config = parse_config(config(enabled=False))
    assert bot.digests.ensure_scheduled() is None
    advance_to(clock, END + timedelta(seconds=30))
    world.settle()

    assert world.slack.messages(TECH_LEADS) == []
    assert digest_timers(world) == []


def test_the_cron_line_is_read_in_its_time_zone_with_cron_weekdays() -> None:
    thursday = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    # Monday 09:00 in Berlin is 08:00 UTC in winter, 07:00 in summer; "1" is Monday, as in cron
    assert next_slot("0 9 * * 1", "Europe/Berlin", thursday) == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    june = datetime(2026, 6, 3, tzinfo=UTC)
    assert next_slot("0 9 * * 1", "Europe/Berlin", june) == datetime(2026, 6, 8, 7, 0, tzinfo=UTC)
    assert next_slot("0 9 * * 1", "UTC", datetime(2026, 11, 30, 9, 0, tzinfo=UTC)) == at(12, 7, 9)
    assert latest_slot("0 9 * * 1", "UTC", datetime(2026, 11, 30, 9, 0, tzinfo=UTC)) == at(11, 30, 9)
    assert latest_slot("*/5 * * * *", "UTC", datetime(2026, 11, 30, 9, 7, tzinfo=UTC)) == at(11, 30, 9, 5)
    assert [cron_weekdays(f) for f in ("*", "0", "7", "1-5", "5-7", "*/2", "sat,SUN")] == [
        "*",
        "sun",
        "sun",
        "mon,tue,wed,thu,fri",
        "sun,fri,sat",
        "sun,tue,thu,sat",
        "sun,sat",
    ]


def test_a_berlin_digest_is_scheduled_at_eight_utc_in_winter(
    make_world: Callable[..., SandboxWorld], clock: FakeClock
) -> None:
    world = make_world(cron="0 9 * * 1", timezone="Europe/Berlin")
    assert bot_of(world).digests.ensure_scheduled() == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    assert due(digest_timers(world)) == [datetime(2026, 11, 30, 8, 0, tzinfo=UTC)]


def test_the_chart_is_drawn_where_the_home_directory_cannot_be_written() -> None:
    script = (
        "import os; from datetime import date; from bot.services.digest_chart import render; "
        "week = (date(2026, 11, 23), {'total': 3}); "
        "png = render('t', {'total': 3, 'resolved_l1': 2, 'beyond_l1': 1}, [week]); "
        "print(len(png), os.environ['MPLCONFIGDIR'])"
    )
    env = {"HOME": "/dev/null", "PATH": "/usr/bin:/bin"}  # nothing can be made under /dev/null
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    size, folder = done.stdout.split()
    assert int(size) > 1000 and "escalation-bot-matplotlib" in folder
    assert "Matplotlib created a temporary" not in done.stderr


def test_a_cron_line_changed_while_a_digest_waits_moves_it_and_it_is_posted_once(
    make_world: Callable[..., SandboxWorld], clock: FakeClock
) -> None:
    world = make_world()
    bot = bot_of(world)
    assert bot.digests.ensure_scheduled() == END
    later = END + timedelta(hours=1)
    bot.config = parse_config(config(cron="0 10 * * 4"))  # a release that moves the digest an hour later
    assert bot.digests.ensure_scheduled() == later
    assert due(digest_timers(world)) == [later]
    bot.config = parse_config(config())  # and one that moves it back
    assert bot.digests.ensure_scheduled() == END
    assert due(digest_timers(world)) == [END]
    bot.config = parse_config(config(cron="0 10 * * 4"))
    bot.digests.ensure_scheduled()

    advance_to(clock, END + timedelta(seconds=30))
    world.settle()
    assert world.slack.messages(TECH_LEADS) == []  # nothing at the old time
    advance_to(clock, later + timedelta(seconds=30))
    world.settle()

    [digest] = world.slack.messages(TECH_LEADS)
    assert digest["text"].startswith("*Weekly escalation digest* — 19 Nov to 26 Nov 2026")
    assert "Posted late" not in digest["text"]
    assert due(digest_timers(world)) == [later + timedelta(days=7)]


def test_a_chart_waiting_out_a_slack_outage_for_its_text_looks_again_ever_less_often(
    make_world: Callable[..., SandboxWorld], clock: FakeClock
) -> None:
    world = make_world()
    world.slack.fail_for("chat.postMessage", 600, 503)  # real seconds: longer than this test runs
    bot_of(world).digests.ensure_scheduled()
    advance_to(clock, END + timedelta(seconds=30))
    world.settle()
    for _minute in range(120):  # two hours of the outbox waiting the outage out
        clock.advance(60)
        world.settle()
    assert world.slack.messages(TECH_LEADS) == []

    with Session(bot_of(world).services.engine) as s:
        looks = list(s.exec(select(Timer).where(Timer.kind == DIGEST_CHART)))
    # 15 s doubled up to 10 minutes: 15 s .. 8 min, then 10 minutes apart (each timer holds the PNG)
    assert 15 <= len(looks) <= 22, len(looks)

    world.slack.clear_faults()
    for _minute in range(30):
        clock.advance(60)
        world.settle()
        messages = world.slack.messages(TECH_LEADS)
        if messages and shared_files(world, messages[0]["ts"]):
            break
    [digest] = world.slack.messages(TECH_LEADS)
    assert len(shared_files(world, digest["ts"])) == 1
