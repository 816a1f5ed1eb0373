"""Pollers: failed MLflow runs, Kubernetes Jobs and Argo Workflows become alerts, each failure once.

A poll looks back to where the last successful poll of its scope started (the very first one: one
interval), minus a short overlap for late writes; failures already seen inside that overlap are skipped.
A poll that fails is retried with backoff, then logged and counted, and its cursor stays where it was,
so the next poll covers the gap. A lease on the cursor row keeps two replicas from polling one scope at once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sqlalchemy import Engine, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from bot.config import AppConfig
from bot.core.clock import Clock
from bot.core.errors import ConfigError, IntegrationError, RetryableError
from bot.core.models import AlertIn, Category
from bot.diagnostics.kube_common import INCIDENT_LABEL, REMEDIATION_ANNOTATION
from bot.metrics import Metrics
from bot.services.found import Found
from bot.services.intake import IntakeService
from bot.services.workflow_poller import WORKFLOW_POLLER, ArgoWorkflows
from bot.store.db import session_scope
from bot.store.tables import PollCursor

if TYPE_CHECKING:
    from bot.integrations.kubernetes import KubeGateway, V1Job, V1JobCondition, V1Pod
    from bot.integrations.mlflow import MlflowGateway

log = logging.getLogger(__name__)

MLFLOW_POLLER = "mlflow_failed_runs"
KUBE_POLLER = "kubernetes_failed_jobs"
JOB_IDS = {
    MLFLOW_POLLER: "poll_mlflow_runs",
    KUBE_POLLER: "poll_kube_jobs",
    WORKFLOW_POLLER: "poll_workflows",
}
OVERLAP = timedelta(minutes=5)  # failures written a little late (clock skew, slow commits) are still found
LEASE = timedelta(minutes=10)  # a replica that died mid-poll frees its scope after this
MAX_DELAY_S = 30.0
FAILED_RUN_STATUSES = ("FAILED", "KILLED")
RUN_TARGET_TAGS = ("job_name", "namespace", "pod", "container", "cluster")
_T = TypeVar("_T")


@dataclass
class PollReport:
    """What one run of one poller did."""

    poller: str
    outcome: str = "ok"  # ok / error / skipped (every scope was being polled by another replica)
    found: int = 0  # failures in the window
    ingested: int = 0  # new ones handed to intake
    opened: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Source(Protocol):
    name: str

    def scopes(self) -> list[str]:
        """Cursor names: one per independently polled part (a namespace, or the whole server)."""
        ...

    def fetch(self, scope: str, since: datetime) -> list[Found]:
        """Failures in `scope` that happened after `since`."""
        ...

    def enrich(self, found: Found) -> AlertIn:
        """The alert with any detail worth one more call, for failures not seen before."""
        ...


class MlflowRuns:
    """Runs that ended FAILED or KILLED in the watched experiments (all active ones when none are named)."""

    name = MLFLOW_POLLER

    def __init__(self, gateway: MlflowGateway, experiments: list[str]) -> None:
        self.gateway = gateway
        self.names = list(experiments)
        self._warned: set[str] = set()

    def scopes(self) -> list[str]:
        return [MLFLOW_POLLER]

    def fetch(self, scope: str, since: datetime) -> list[Found]:
        experiments = dict(self.gateway.experiments(self.names))
        for missing in set(self.names) - set(experiments.values()) - self._warned:
            log.warning("MLflow poller: experiment %r does not exist; it is not watched", missing)
            self._warned.add(missing)
        after_ms = int(since.timestamp() * 1000)
        return [
            self._found(run, experiments)
            for status in FAILED_RUN_STATUSES
            for run in self.gateway.runs_ended_after(list(experiments), status, after_ms)
        ]

    def enrich(self, found: Found) -> AlertIn:
        return found.alert

    def _found(self, run: Any, experiments: dict[str, str]) -> Found:
        info, tags = run.info, dict(run.data.tags or {})
        run_id, status = info.run_id, info.status
        name = info.run_name or tags.get("mlflow.runName") or run_id
        experiment = experiments.get(info.experiment_id, info.experiment_id)
        ended = datetime.fromtimestamp((info.end_time or 0) / 1000, UTC)
        title = f"MLflow run {name} {status} in {experiment}"
        user_tags = {k: str(v) for k, v in sorted(tags.items()) if not k.startswith("mlflow.")}
        when = f"{ended:%Y-%m-%d %H:%M:%S} UTC"
        summary = f"Run {name} ({run_id}) in experiment {experiment} ended {status} at {when}."
        text = "\n".join([summary, *(f"{k}: {v}" for k, v in user_tags.items())])
        labels = {"run_id": run_id, "experiment": experiment, "run_name": name, "status": status}
        labels |= {k: tags[k] for k in RUN_TARGET_TAGS if tags.get(k)}
        alert = AlertIn(
            source="mlflow_poll",
            fingerprint=f"mlflow-run:{run_id}",
            status="firing",
            title=title,
            text=text,
            labels=labels,
            annotations={"summary": title, "run_url": self.gateway.run_url(info.experiment_id, run_id)},
            starts_at=ended,
            # the poller knows what it found: a training run that ended badly (not a tracking outage)
            category=Category.TRAINING_CRASH.value,
            category_reason=f"the MLflow run poller found run {name} {status}",
            raw={
                "run_id": run_id,
                "experiment_id": info.experiment_id,
                "status": status,
                "start_time": info.start_time,
                "end_time": info.end_time,
                "tags": user_tags,
            },
        )
        return Found(ended, alert)


class KubeJobs:
    """Jobs with a true `Failed` condition in the watched namespaces (not the re-runs Level 1 started)."""

    name = KUBE_POLLER

    def __init__(self, gateway: KubeGateway, namespaces: list[str]) -> None:
        self.gateway = gateway
        self.namespaces = list(namespaces)

    def scopes(self) -> list[str]:
        return [f"{KUBE_POLLER}/{ns}" for ns in self.namespaces]

    def fetch(self, scope: str, since: datetime) -> list[Found]:
        ns = scope.split("/", 1)[1]
        found = []
        for job in self.gateway.list_jobs(ns):
            meta = job.metadata
            if (
                meta is None
                or INCIDENT_LABEL in (meta.labels or {})
                or REMEDIATION_ANNOTATION in (meta.annotations or {})
            ):
                continue  # the bot's own re-run: its result is already reported in the incident's thread
            failed = _failed_condition(job)
            at = failed and (failed.last_transition_time or failed.last_probe_time)
            if failed is not None and isinstance(at, datetime) and at > since:
                where = (str(meta.namespace or ns), str(meta.name), str(meta.uid))
                found.append(
                    Found(at, self._alert(*where, failed.reason or "Failed", failed.message or "", at))
                )
        return found

    def enrich(self, found: Found) -> AlertIn:
        alert = found.alert
        try:
            pods = self.gateway.list_job_pods(alert.labels["namespace"], alert.labels["job_name"])
        except IntegrationError as exc:  # the failure is reported either way; the pods only sharpen it
            log.info("Kubernetes poller: pods of %s not read: %s", alert.labels["job_name"], exc)
            return alert
        lines = [line for pod in pods for line in _terminations(pod)]
        return replace(alert, text="\n".join([alert.text, *lines])) if lines else alert

    def _alert(self, ns: str, name: str, uid: str, reason: str, message: str, at: datetime) -> AlertIn:
        title = f"Job {ns}/{name} failed: {reason}"
        return AlertIn(
            source="kube_poll",
            fingerprint=f"k8s-job:{ns}/{name}/{uid}",
            status="firing",
            title=title,
            text=f"{title}. {message}".strip(),
            labels={"namespace": ns, "job_name": name, "reason": reason, "cluster": self.gateway.cluster},
            annotations={"summary": title, "message": message},
            starts_at=at,
            raw={"uid": uid, "reason": reason, "message": message, "failed_at": at.isoformat()},
        )


def _failed_condition(job: V1Job) -> V1JobCondition | None:
    conditions = (job.status.conditions if job.status else None) or []
    return next((c for c in conditions if c.type == "Failed" and c.status == "True"), None)


def _terminations(pod: V1Pod) -> list[str]:
    """ "Pod p container c terminated: OOMKilled (exit 137)" for every container that exited non-zero."""
    lines = []
    name = pod.metadata.name if pod.metadata else "?"
    for cs in (pod.status.container_statuses if pod.status else None) or []:
        term = (cs.state.terminated if cs.state else None) or (
            cs.last_state.terminated if cs.last_state else None
        )
        if term is not None and term.exit_code:
            lines.append(
                f"Pod {name} container {cs.name} terminated: {term.reason or 'Error'} (exit {term.exit_code})"
            )
    return lines


class PollerService:
    """Runs the pollers: cursor, retries, intake, logs and metrics."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        config: Callable[[], AppConfig],
        intake: IntakeService,
        metrics: Metrics,
        *,
        kube: KubeGateway | None = None,
        mlflow: MlflowGateway | None = None,
        tries: int = 3,
        backoff_s: float = 1.0,
    ) -> None:
        self.engine, self.clock, self._config = engine, clock, config
        self.intake, self.metrics = intake, metrics
        self.kube, self.mlflow = kube, mlflow
        self.tries, self.backoff_s = max(1, tries), backoff_s
        self._mlflow_source: MlflowRuns | None = None

    def jobs(self) -> list[tuple[str, Callable[[], PollReport], timedelta]]:
        """(scheduler job id, function, interval) for every enabled poller whose system is configured."""
        pollers = self._config().intake.pollers
        jobs: list[tuple[str, Callable[[], PollReport], timedelta]] = []
        if pollers.mlflow_failed_runs.enabled and self.mlflow is not None:
            jobs.append((JOB_IDS[MLFLOW_POLLER], self.poll_mlflow_runs, pollers.mlflow_failed_runs.interval))
        if pollers.kubernetes_failed_jobs.enabled and self.kube is not None:
            jobs.append((JOB_IDS[KUBE_POLLER], self.poll_kube_jobs, pollers.kubernetes_failed_jobs.interval))
        if pollers.argo_failed_workflows.enabled and self.kube is not None:
            jobs.append(
                (JOB_IDS[WORKFLOW_POLLER], self.poll_workflows, pollers.argo_failed_workflows.interval)
            )
        return jobs

    def poll_all(self) -> list[PollReport]:
        """Run every enabled poller once, now."""
        return [run() for _, run, _ in self.jobs()]

    def poll_mlflow_runs(self) -> PollReport:
        """One poll for failed and killed MLflow runs."""
        if self.mlflow is None:
            raise ConfigError(["MLFLOW_TRACKING_URI: not set; the MLflow poller needs a tracking server"])
        config = self._config().intake.pollers
        names = list(config.mlflow_experiments)
        if self._mlflow_source is None or self._mlflow_source.names != names:
            self._mlflow_source = MlflowRuns(self.mlflow, names)
        return self._poll(self._mlflow_source, config.mlflow_failed_runs.interval)

    def poll_kube_jobs(self) -> PollReport:
        """One poll for failed Jobs in the watched namespaces."""
        if self.kube is None:
            raise ConfigError(["KUBECONFIG: not set; the Kubernetes poller needs a cluster"])
        config = self._config()
        source = KubeJobs(self.kube, list(config.kubernetes.namespaces))
        return self._poll(source, config.intake.pollers.kubernetes_failed_jobs.interval)

    def poll_workflows(self) -> PollReport:
        """One poll for failed Argo Workflows in the watched namespaces."""
        if self.kube is None:
            raise ConfigError(["KUBECONFIG: not set; the Argo Workflows poller needs a cluster"])
        config = self._config()
        source = ArgoWorkflows(self.kube, list(config.kubernetes.namespaces))
        return self._poll(source, config.intake.pollers.argo_failed_workflows.interval)

    # -- one poll ----------------------------------------------------------------------------------------
    def _poll(self, source: Source, interval: timedelta) -> PollReport:
        report = PollReport(source.name)
        scopes, polled = source.scopes(), 0
        for scope in scopes:
            try:
                polled += self._poll_scope(source, scope, interval, report)
            except Exception as exc:
                report.errors.append(f"{scope}: {exc}")
                self.metrics.poll_errors.labels(poller=source.name).inc()
                log.warning(
                    "poll %s failed: %s; the next poll covers this window again",
                    scope,
                    exc,
                    exc_info=not isinstance(exc, IntegrationError),
                )
        report.outcome = "error" if report.errors else ("ok" if polled or not scopes else "skipped")
        self.metrics.polls.labels(poller=source.name, outcome=report.outcome).inc()
        if report.ingested:
            log.info(
                "poll %s: %d new failures, %d incidents opened",
                source.name,
                report.ingested,
                len(report.opened),
            )
        return report

    def _poll_scope(self, source: Source, scope: str, interval: timedelta, report: PollReport) -> bool:
        """Poll one scope; False when another replica holds it. On failure the cursor stays put."""
        now = self.clock.now()
        cursor = self._claim(scope, now, interval)
        if cursor is None:
            return False
        since = max(cursor.last_polled_at - OVERLAP, cursor.window_start)
        try:
            found = self._with_retries(scope, partial(source.fetch, scope, since))
            new = [f for f in found if f.alert.fingerprint not in cursor.last_seen]
            if new:
                # stored before the cursor moves: a crash in between repeats an alert, never loses one
                report.opened += self.intake.ingest([source.enrich(f) for f in new]).opened
        except Exception:
            with contextlib.suppress(Exception):  # else the lease simply runs out
                self._release(scope)
            raise
        self._advance(cursor, now, found)
        report.found += len(found)
        report.ingested += len(new)
        return True

    def _with_retries(self, scope: str, call: Callable[[], _T]) -> _T:
        for attempt in range(1, self.tries + 1):
            try:
                return call()
            except RetryableError as exc:
                if attempt == self.tries:
                    raise
                delay = min(exc.retry_after or self.backoff_s * 2 ** (attempt - 1), MAX_DELAY_S)
                log.info(
                    "poll %s: %s; try %d of %d again in %.1fs", scope, exc, attempt + 1, self.tries, delay
                )
                self.clock.sleep(delay)
        raise AssertionError("unreachable")

    # -- the cursor row ----------------------------------------------------------------------------------
    def _claim(self, scope: str, now: datetime, interval: timedelta) -> PollCursor | None:
        """The scope's cursor, leased to this poll; None when another replica is polling it."""
        try:
            with session_scope(self.engine) as s:
                cursor = s.get(PollCursor, scope)
                if cursor is None:  # the first poll looks back one interval, never at the whole history
                    start = now - interval
                    cursor = PollCursor(
                        name=scope, window_start=start, last_polled_at=start, lease_until=now + LEASE
                    )
                    s.add(cursor)
                    return cursor
                claimed = s.exec(
                    update(PollCursor)
                    .where(
                        col(PollCursor.name) == scope,
                        or_(col(PollCursor.lease_until).is_(None), col(PollCursor.lease_until) < now),
                    )
                    .values(lease_until=now + LEASE)
                )
                if not claimed.rowcount:
                    return None
                s.refresh(cursor)
                return cursor
        except IntegrityError:  # another replica created it first
            return None

    def _release(self, scope: str) -> None:
        with session_scope(self.engine) as s:
            s.exec(update(PollCursor).where(col(PollCursor.name) == scope).values(lease_until=None))

    def _advance(self, cursor: PollCursor, now: datetime, found: list[Found]) -> None:
        next_since = max(now - OVERLAP, cursor.window_start)
        seen = {fp: datetime.fromisoformat(at) for fp, at in cursor.last_seen.items()}
        seen |= {f.alert.fingerprint: f.at for f in found}
        with session_scope(self.engine) as s:
            row = s.get(PollCursor, cursor.name)
            if row is None:
                return
            row.last_polled_at = now
            row.last_seen = {fp: at.isoformat() for fp, at in seen.items() if at > next_since}
            row.lease_until = None
            s.add(row)
