"""The composition root: config → adapters → services → Slack app and web server.

Nothing is built at import time."""

from __future__ import annotations

import contextlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from slack_bolt import App, BoltRequest
from slack_bolt.authorization import AuthorizeResult
from slack_sdk import WebClient

from bot import shutdown
from bot.config import AppConfig, Env, expand_env
from bot.core.clock import Clock, SystemClock
from bot.core.models import Category
from bot.core.redact import remember_secrets
from bot.diagnostics.base import Deps
from bot.diagnostics.registry import CategoryDiagnostics, default_registry
from bot.integrations.feature_store import FeatureStoreGateway
from bot.integrations.slack.client import make_client
from bot.integrations.slack.groups import GroupResolver
from bot.integrations.slack.outbox import OutboxDelivery
from bot.integrations.slack.people import TimeZones
from bot.llm import RuleBased, language_model
from bot.logs import install_redaction
from bot.metrics import Metrics
from bot.services import usage
from bot.services.answers import Answers
from bot.services.assistant import Assistant
from bot.services.changes import IncidentChanges
from bot.services.container import Services
from bot.services.decision_drafts import DRAFT_DECISION, DecisionDrafts
from bot.services.deliveries import DeliveryQueue
from bot.services.digest import DIGEST_CHECK, Digests
from bot.services.engine import IncidentEngine
from bot.services.foreground import Foreground
from bot.services.group_actions import GroupActions
from bot.services.home import HomeService
from bot.services.inbox import Inbox
from bot.services.incidents import IncidentService
from bot.services.intake import IntakeService
from bot.services.level1 import Level1Service
from bot.services.manual import ManualEscalation
from bot.services.messages import Composer
from bot.services.pollers import PollerService
from bot.services.queries import IncidentQueries
from bot.services.refresh import MessageRefresh
from bot.services.replies import Replies
from bot.services.requests import ProcessedRequests
from bot.services.retention import Retention
from bot.services.snooze import Snoozes
from bot.services.timers import TimerService
from bot.services.views import Views
from bot.store.db import DEFAULT_DATABASE_URL, make_engine, migrate, require_head
from handlers.inbox import REPLAY

log = logging.getLogger(__name__)


class TrackingExecutor(ThreadPoolExecutor):
    """A thread pool that can tell when it has nothing in flight (so the demo and tests can wait on it)."""

    def __init__(self, max_workers: int, thread_name_prefix: str) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self._idle = threading.Condition()
        self._in_flight = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        with self._idle:
            self._in_flight += 1
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: Any) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)


class Bot:
    """One bot process: Slack app, web endpoints, scheduler, all sharing one set of services."""

    def __init__(
        self,
        config: AppConfig,
        env: Env,
        *,
        clock: Clock | None = None,
        kube: Any = None,
        registry: dict[Category, CategoryDiagnostics] | None = None,
        pace: bool = True,
    ) -> None:
        install_redaction()  # before anything can log a secret
        self.config, self.env = config, env
        remember_secrets(env.secret_values())  # redacted wherever they would show up
        clock = clock or SystemClock()
        engine = make_engine(env.database_url_or_default(DEFAULT_DATABASE_URL))
        if config.runtime.migrate_on_start:
            migrate(engine)
        else:
            require_head(engine)  # SchemaMismatch unless someone ran `escalation-bot db upgrade`
        bot_token = env.slack_bot_token.get_secret_value() if env.slack_bot_token else ""
        self.client = make_client(bot_token, env.slack_api_url)
        metrics = Metrics()
        groups = GroupResolver(self.client, config.slack.group_cache_ttl.total_seconds())
        mlflow = None
        if env.mlflow_tracking_uri:
            from bot.integrations.mlflow import MlflowGateway

            mlflow = MlflowGateway(
                env.mlflow_tracking_uri,
                config.mlflow.request_timeout.total_seconds(),
                config.mlflow.max_retries,
            )
        # messages link a run a check read to its page in the MLflow UI
        composer = Composer(groups.mention, run_url=mlflow.run_url if mlflow is not None else None)
        self.scheduler: BackgroundScheduler | None = None
        refresh = MessageRefresh(
            composer,
            lambda: self.config.intake.debounce,
            lambda: self.config.intake.storm_window,
            lambda: (self.config.intake.group_at, self.config.intake.group_window),
        )
        self.changes = IncidentChanges()  # who is told that incidents changed: the Home tabs
        transitions = IncidentEngine(engine, clock, composer, refresh, metrics, self.kick, self.changes)
        incidents = IncidentService(transitions, clock, groups.membership, self.kick)
        if kube is None:
            from bot.integrations.kubernetes import connect

            # KUBECONFIG, else the pod's service account; every call waits kubernetes.request_timeout
            found = connect(env.kubeconfig, config.kubernetes)
            if found.problem:
                log.warning(
                    "Kubernetes from %s: %s; Level 1 skips Kubernetes checks", found.source, found.problem
                )
            kube = found.gateway
        # the cluster an alert without a cluster label is about: the one the bot talks to
        cluster = str(getattr(kube, "cluster", None) or config.kubernetes.cluster_name)
        intake = IntakeService(transitions, clock, lambda: self.config, metrics, self.kick, cluster)
        deps = Deps(
            kube=kube, mlflow=mlflow, sql=FeatureStoreGateway(config.feature_store.tables, expand_env)
        )
        # Claude, or rule-based drafts without a key; replicas share the daily token budget (the database)
        llm = language_model(config.llm, env, metrics, clock, lambda start: usage.tokens_since(engine, start))
        assistant = Assistant(engine, clock, llm, metrics, lambda: self.config)
        level1 = Level1Service(
            engine,
            clock,
            transitions,
            composer,
            registry or default_registry(),
            deps,
            metrics,
            lambda: self.config,
            assistant,
        )
        lease = config.runtime.claim_lease
        foreground = Foreground()
        timers = TimerService(
            engine,
            clock,
            transitions,
            level1,
            composer,
            metrics,
            foreground,
            config.runtime.l1_workers,
            lease,
        )
        # with a language model, Level 4 decisions are posted once Claude drafted them (or fell back)
        transitions.drafts_decisions = not isinstance(llm, RuleBased)
        if isinstance(llm, RuleBased):
            log.info("no ANTHROPIC_API_KEY is set: every draft and answer is rule-based, and says so")
        drafts = DecisionDrafts(engine, clock, assistant, composer, level1.registry, self.kick)
        timers.handle(DRAFT_DECISION, drafts.run, long=True, persistent=True)
        # the scheduled digest of how incidents ended, posted once per slot across replicas
        self.digests = Digests(engine, clock, self.client, lambda: self.config, self.kick)
        self.digests.register(timers)
        rate = config.runtime.slack_rate_per_channel if pace else 1000.0
        outbox = OutboxDelivery(
            engine,
            self.client,
            clock,
            metrics,
            config.slack.channels.admin,
            rate_per_channel=rate,
            burst=config.runtime.slack_burst if pace else 1000,
            lease=lease,
        )
        self.services = Services(
            config,
            env,
            clock,
            engine,
            metrics,
            composer,
            transitions,
            incidents,
            IncidentQueries(engine),
            Replies(engine, clock, composer, self.kick),
            ProcessedRequests(engine, clock),
            intake,
            ManualEscalation(transitions, clock, lambda: self.config, metrics),
            level1,
            timers,
            outbox,
            groups,
            Inbox(engine, clock, lease),
            Views(engine, clock, self.kick),
            DeliveryQueue(engine, clock, intake, metrics, self.kick, foreground),
            foreground,
            escalation_groups=GroupActions(engine, clock, composer, incidents, self.kick),
            snoozes=Snoozes(incidents, transitions, clock, TimeZones(self.client).offset, self.kick),
            home=HomeService(
                engine,
                clock,
                IncidentQueries(engine),
                groups.membership,
                lambda: self.config.slack.home_refresh,
                self.kick,
                lambda: self.kick(("home",)),
            ),
            assistant=assistant,
            answers=Answers(engine, clock, assistant, composer, lambda: self.config, timers, self.kick),
        )
        self.changes.subscribe(self.services.home.changed)
        self.pollers = PollerService(
            engine, clock, lambda: self.config, intake, metrics, kube=deps.kube, mlflow=deps.mlflow
        )
        self._auth: dict[str, Any] | None = None
        self._auth_lock = threading.Lock()
        self.listeners = TrackingExecutor(16, "slack")
        self.slack = self._slack_app()
        from bot.web import build_web

        self.web = build_web(self.slack, self.services)
        self.socket: Any = None  # the Socket Mode connection, when SLACK_APP_TOKEN is set

    # -- Slack -----------------------------------------------------------------------------------------
    def auth(self) -> dict[str, Any]:
        """auth.test once per process: who the bot is (for the self-filter and mentions)."""
        with self._auth_lock:
            if self._auth is None:
                self._auth = dict(self.client.auth_test().data)  # type: ignore[arg-type]
            return self._auth

    def _slack_app(self) -> App:
        def authorize(**_kw: Any) -> AuthorizeResult:
            auth = self.auth()
            return AuthorizeResult(
                enterprise_id=None,
                team_id=auth.get("team_id"),
                bot_token=self.client.token,
                bot_user_id=auth.get("user_id"),
                bot_id=auth.get("bot_id"),
            )

        signing_secret = self.env.slack_signing_secret
        app = App(
            # a token-less twin: bolt takes the token from `authorize` for each request
            client=WebClient(base_url=self.client.base_url, timeout=self.client.timeout, retry_handlers=[]),
            signing_secret=signing_secret.get_secret_value() if signing_secret else "",
            authorize=authorize,
            # Socket Mode requests skip it by their mode; anything that comes over HTTP is verified
            request_verification_enabled=True,
            listener_executor=self.listeners,
            # listeners answer Slack the moment they ack and go on in `listeners` (handlers.common.durable)
            process_before_response=True,
            # handed to the inbox's error handler, which marks a request no listener takes as done
            raise_error_for_unhandled_request=True,
        )
        import handlers

        handlers.register_all(app, self.services)
        return app

    # -- running ---------------------------------------------------------------------------------------
    def kick(self, jobs: tuple[str, ...] = ("deliveries", "timers", "outbox")) -> None:
        """Run the timer and outbox jobs (or `jobs`) now instead of at their next tick."""
        scheduler = self.scheduler
        if scheduler is None or not scheduler.running:
            return
        for job_id in jobs:
            with contextlib.suppress(Exception):  # the scheduler may be rescheduling it right now
                scheduler.modify_job(job_id, next_run_time=_now_aware())

    def start_background(self) -> None:
        """Start the heartbeat as APScheduler interval jobs (each coalesced, one instance at a time): timers,
        webhook deliveries, Slack requests left by a dead process, outbox delivery and enabled pollers."""
        self.auth()
        runtime = self.config.runtime
        scheduler = BackgroundScheduler(
            timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
        )
        jobs: list[tuple[str, Any, timedelta]] = [
            ("timers", self.services.timers.run_due, runtime.timer_interval),
            ("deliveries", self.services.deliveries.drain, runtime.timer_interval),
            ("inbox", self.replay_inbox, runtime.claim_lease / 2),
            ("outbox", self.services.outbox.deliver_while_due, runtime.outbox_interval),
            ("home", self.services.home.refresh, self.config.slack.home_refresh),
            *self.pollers.jobs(),
            ("digest", self.digests.ensure_scheduled, DIGEST_CHECK),  # the next slot has its timer
        ]
        if self.config.retention.enabled:  # deletes are idempotent: every replica may prune
            s = self.services
            pruning = Retention(s.engine, s.clock, lambda: self.config.retention, s.metrics)
            jobs.append(("retention", pruning.run, self.config.retention.interval))
        for job_id, work, interval in jobs:
            scheduler.add_job(
                self.services.timers.draining.job(work),  # skipped once the process shuts down
                "interval",
                id=job_id,
                seconds=interval.total_seconds(),
                next_run_time=_now_aware(),
            )
        scheduler.start()
        self.scheduler = scheduler
        if self.env.slack_app_token:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            self.socket = SocketModeHandler(self.slack, self.env.slack_app_token.get_secret_value())
            self.socket.connect()

    def replay_inbox(self, older_than: timedelta | None = None) -> int:
        """Hand the listeners again every Slack request that was stored but never finished (its process
        died after the ack); each is stored once, so this is how a click survives a crash."""
        rows = self.services.inbox.unfinished(
            self.config.runtime.claim_lease if older_than is None else older_than
        )
        for row in rows:
            log.warning(
                "handling Slack %s request %s again: the process stopped before finishing it",
                row.kind,
                row.id,
            )
            request = BoltRequest(body=dict(row.body), mode="socket_mode", context={REPLAY: row.id})
            self.slack.dispatch(request)
        return len(rows)

    def stop(self, grace: float | None = None) -> bool:
        """Take no new work, let the work in hand finish for up to `grace` seconds (runtime.shutdown_grace),
        then give back every claim still held, for another replica to take at once (bot.shutdown); whether
        the work in hand all finished."""
        return shutdown.stop(self, grace)

    def settle(self, timeout: float = 30.0, max_rounds: int = 500) -> None:
        """Finish Slack listeners still running after their ack, then run timers and deliver the outbox
        until nothing more is due (the demo and tests use this instead of the scheduler)."""
        s = self.services
        for _ in range(max_rounds):
            if not self.listeners.wait_idle(timeout):
                raise TimeoutError("Slack listeners did not finish")
            worked = s.deliveries.drain() + s.timers.run_due(inline=True) + s.outbox.deliver_due()
            if not worked and self.listeners.wait_idle(0):
                return


class _KickWhileRunning(logging.Filter):
    """Drops APScheduler's warning that a job was "skipped: maximum number of running instances reached".
    The bot asks a job to run now whenever there is work (`kick`); when it is already running, the run in
    progress picks the work up or the next interval does, so the skip is expected. In a storm it was
    logged hundreds of times a second and buried every other line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in str(record.msg)


_SCHEDULER_LOG = logging.getLogger("apscheduler.scheduler")
_SCHEDULER_LOG.addFilter(_KickWhileRunning())


def _now_aware() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC) + timedelta(milliseconds=1)
