"""The scheduled digest: how the last period's incidents ended against the protocol's targets (the facts of
`/escalation stats`), posted to `reports.digest.channel` (default: the tech lead's channel) once per slot of
`reports.digest.cron` however many replicas run, with a chart (PNG) in its thread.

How it is posted once:
1. Scheduling. `ensure_scheduled` (at start, then hourly, and after each digest) adds a `digest` timer due
   at the next slot, in the same transaction as the processed-request key `digest:<slot>`; two replicas
   doing it at once add one timer (the second commit fails on the key's unique constraint). A timer
   waiting for a future slot the cron line no longer has (app.yaml changed) is cancelled, its key released.
2. Running. A timer is claimed by one process. The `digest` timer's run computes the stats and draws the
   chart, then in one transaction records `digest-posted:<slot>`, queues the text in the outbox and adds
   a `digest_chart` timer holding the PNG.
3. The outbox delivers the text once (a post whose answer was lost is looked up in Slack, not re-sent).
4. The `digest_chart` timer waits until the text is delivered, reads its thread for a file of the same
   name, and uploads the chart there unless it is there already.

A crash at each step:
- before step 2 commits: nothing was recorded; the timer's claim expires and the run starts again;
- after step 2 commits, before the timer is marked done: the run is repeated, finds `digest-posted:<slot>`
  and adds nothing; the text and the chart's timer are queued already;
- while the text is delivered: the outbox's own guarantee (step 3);
- while the chart is uploaded: the chart's timer runs again; a file that reached the thread is found and
  not uploaded twice.
A chart that cannot be drawn is left out and the text says why; one Slack refuses (no files:write scope,
uploads switched off) or that fails 5 times is left out and the text is edited to say why.

A missed slot (no replica running at its time): its timer runs when a replica starts, and stands for the
newest slot that has come by then. That slot's digest is posted, saying it is late, when it is less than one
period (`reports.digest.period`) late; otherwise it is skipped with a warning in the log, as the next
digest covers the same incidents.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from slack_sdk import WebClient
from sqlalchemy import Engine, delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.config import AppConfig
from bot.config.operations import DigestSettings
from bot.core.clock import Clock
from bot.integrations.slack import files
from bot.integrations.slack.outbox import enqueue
from bot.render import escape, render, tidy
from bot.services import digest_chart, stats, stats_text
from bot.services.digest_schedule import latest_slot, next_slot
from bot.services.messages import Composer
from bot.services.requests import record_once
from bot.services.timers import Claim, TimerService
from bot.store.db import session_scope
from bot.store.tables import OutboxMessage, ProcessedRequest, Timer

log = logging.getLogger(__name__)

DIGEST, DIGEST_CHART = "digest", "digest_chart"
TREND_WEEKS = 12  # the chart's weekly trend: the last 12 whole weeks, whatever the period
LATE_AFTER = timedelta(minutes=10)  # posted later than this after its slot, the digest says so
CHART_TRIES = 5  # a chart Slack keeps failing to take is given up on the 5th run (timers stop there)
# how long the chart waits before it looks again for its text's delivery: 15 s, doubled each time up to
# 10 minutes, so a Slack outage (the outbox waits up to 6 h) adds a few dozen timers with the PNG, not
# one every 15 s
TEXT_WAIT, TEXT_WAIT_MAX = timedelta(seconds=15), timedelta(minutes=10)
DIGEST_CHECK = timedelta(hours=1)  # how often a running bot makes sure the next slot has its timer
Draw = Callable[[str, Mapping[str, int], Sequence[tuple[date, Mapping[str, int]]]], bytes]


def _slot_of(t: Timer) -> datetime:
    return stats.utc(datetime.fromisoformat(str(t.payload["slot"])))


def _key(slot: datetime) -> str:
    """The processed-request key that says a `digest` timer was added for `slot`."""
    return f"digest:{slot.isoformat()}"


class Digests:
    """Schedules, posts and illustrates the digest; `draw` makes the chart's PNG (digest_chart.render)."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        client: WebClient,
        config: Callable[[], AppConfig],
        kick: Callable[[], None],
        draw: Draw = digest_chart.render,
    ) -> None:
        self.engine, self.clock, self.client = engine, clock, client
        self.config, self.kick, self.draw = config, kick, draw

    @property
    def settings(self) -> DigestSettings:
        return self.config().reports.digest

    def channel(self) -> str:
        return self.settings.channel or self.config().slack.channels.tech_lead

    def register(self, timers: TimerService) -> None:
        timers.handle(DIGEST, self.run, long=True)
        timers.handle(DIGEST_CHART, self.attach_chart, long=True)

    # -- scheduling ----------------------------------------------------------------------------------------
    def ensure_scheduled(self) -> datetime | None:
        """The next slot, with a `digest` timer waiting for it (added unless one waits for it or an earlier
        slot); None when the digest is off."""
        settings = self.settings
        if not settings.enabled:
            return None
        now = self.clock.now()
        slot = next_slot(settings.cron, settings.timezone, now)
        try:
            with session_scope(self.engine) as s:
                waiting = list(s.exec(select(Timer).where(Timer.kind == DIGEST, Timer.status == "pending")))
                # a slot already due (missed, or about to run) stands for the newest slot when it runs
                if any(_slot_of(t) == slot or _slot_of(t) <= now for t in waiting):
                    return slot
                for t in waiting:  # waiting for a slot the cron line no longer has: it changed
                    cancel = update(Timer).where(col(Timer.id) == t.id, col(Timer.status) == "pending")
                    s.execute(cancel.values(status="cancelled"))
                    # that slot may be scheduled again, should the line go back to it
                    s.execute(delete(ProcessedRequest).where(col(ProcessedRequest.key) == _key(_slot_of(t))))
                if record_once(s, _key(slot), now):
                    s.add(Timer(kind=DIGEST, due_at=slot, payload={"slot": slot.isoformat()}, created_at=now))
        except IntegrityError:
            log.debug("another replica scheduled the digest for %s at the same moment", slot)
        return slot

    # -- the digest timer ----------------------------------------------------------------------------------
    def run(self, t: Timer, claim: Claim) -> None:
        """Post the digest for the timer's slot (or the newest slot since), then schedule the next one."""
        try:
            if self.settings.enabled:
                self._post(_slot_of(t), claim)
        finally:
            self.ensure_scheduled()

    def _post(self, slot: datetime, claim: Claim) -> None:
        settings, now = self.settings, self.clock.now()
        target = max(slot, latest_slot(settings.cron, settings.timezone, now) or slot)
        if now - target >= settings.period:
            log.warning(
                "the digest for %s is not posted: no replica ran until %s, more than one period (%s) "
                "after it; the next digest covers its incidents",
                target.isoformat(),
                now.isoformat(),
                stats.period_name(settings.period),
            )
            return
        report = stats.report(self.engine, target, settings.period)
        heading = self._heading(report, target, now - target)
        png, chart_note = None, ""
        if settings.chart:
            weeks = self._weeks(target)
            try:
                png = self.draw(f"{heading['title']} — {heading['span']}", report.current.counts, weeks)
            except Exception as exc:  # the chart is extra: the text goes out without it, saying why
                log.exception("the digest chart for %s could not be drawn", target.isoformat())
                chart_note = f"The chart could not be attached: drawing it failed ({_said(exc)})."
        text = render("digest", **stats_text.values(report), **heading, chart_note=chart_note)
        with session_scope(self.engine) as s:
            if not claim.hold(s) or not record_once(s, f"digest-posted:{target.isoformat()}", now):
                return  # posted by an earlier run of this timer, or this process lost the timer
            post = enqueue(s, now, "post", channel=self.channel(), **Composer.plain(text))
            if png is not None:
                payload = self._chart_payload(target, post.id or 0, png, heading, report)
                s.add(Timer(kind=DIGEST_CHART, due_at=now, payload=payload, created_at=now))
        self.kick()

    def _heading(self, report: stats.Report, slot: datetime, late: timedelta) -> dict[str, Any]:
        zone = ZoneInfo(self.settings.timezone)
        start, end = report.current.start.astimezone(zone), slot.astimezone(zone)
        name = stats.period_name(report.period)
        return {
            "title": "Weekly escalation digest" if name == "7d" else f"Escalation digest, last {name}",
            "span": f"{start.day} {start:%b} to {end.day} {end:%b %Y}",
            "late": late > LATE_AFTER,
            "slot": f"{end:%a %d %b %H:%M} ({self.settings.timezone})",
        }

    def _weeks(self, slot: datetime) -> list[tuple[date, dict[str, int]]]:
        """The last TREND_WEEKS whole weeks (Monday 00:00 UTC) before `slot`, each with its counts."""
        day = slot.astimezone(UTC).date()
        monday = datetime.combine(day - timedelta(days=day.weekday()), datetime.min.time(), UTC)
        return stats.period_stats(self.engine, monday - timedelta(weeks=TREND_WEEKS), monday).weekly

    def _chart_payload(
        self, slot: datetime, post_id: int, png: bytes, heading: dict[str, Any], report: stats.Report
    ) -> dict[str, Any]:
        rates = "; ".join(f"{r.label} {r.rate} ({r.target})" for r in stats_text.rate_lines(report))
        return {
            "slot": slot.isoformat(),
            "post": post_id,
            "png": base64.b64encode(png).decode(),
            "filename": f"escalation-digest-{slot:%Y-%m-%d-%H%M}.png",
            "title": f"{heading['title']} — {heading['span']}",
            "alt_txt": (
                f"Bars of where the period's incidents ended against their targets: {rates}. A line of the "
                f"share fixed at Level 1 in each of the last {TREND_WEEKS} weeks against its target."
            )[:1000],
        }

    # -- the chart timer -----------------------------------------------------------------------------------
    def attach_chart(self, t: Timer, claim: Claim) -> None:
        """Upload the chart into the digest's thread once its text is in Slack."""
        p = t.payload
        with Session(self.engine) as s:
            post = s.get(OutboxMessage, int(p["post"]))
        if post is None or post.status == "dead":
            log.info("the digest for %s never reached Slack: its chart is not uploaded", p["slot"])
            return
        if post.status != "sent" or not post.result_ts or not post.result_channel:
            self._look_again_later(p, claim)
            return
        chart = files.Attachment(p["filename"], p["title"], p["alt_txt"], base64.b64decode(p["png"]))
        try:
            files.attach(self.client, post.result_channel, post.result_ts, chart)
        except files.AttachFailed as failed:
            if not failed.final and t.attempts < CHART_TRIES:
                raise  # the timer runs again later
            self._say_not_attached(post, failed, claim)

    def _look_again_later(self, payload: dict[str, Any], claim: Claim) -> None:
        now, looked = self.clock.now(), int(payload.get("looked", 0))
        wait = min(TEXT_WAIT * 2 ** min(looked, 10), TEXT_WAIT_MAX)
        again = {**payload, "looked": looked + 1}
        with session_scope(self.engine) as s:
            if claim.hold(s):
                s.add(Timer(kind=DIGEST_CHART, due_at=now + wait, payload=again, created_at=now))

    def _say_not_attached(self, post: OutboxMessage, failed: files.AttachFailed, claim: Claim) -> None:
        """Edit the digest's text to say the chart is not coming, and why."""
        why = f"{failed.error}; {failed.hint}" if failed.hint else failed.error
        log.warning("the digest chart could not be attached: %s", why)
        note = f"_The chart could not be attached: Slack answered {escape(tidy(why, 300))}._"
        text = f"{post.payload.get('text', '')}\n\n{note}"
        now = self.clock.now()
        with session_scope(self.engine) as s:
            if claim.hold(s) and record_once(s, f"digest-chart-refused:{post.id}", now):
                enqueue(s, now, "update", target_of=post.id, **Composer.plain(text))
        self.kick()


def _said(exc: Exception) -> str:
    return tidy(f"{type(exc).__name__}: {exc}", 200)
