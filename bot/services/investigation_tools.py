"""The read-only tools Claude may call while it investigates an incident, over the gateways Level 1 uses.

Each tool has a strict input schema (names match the shape Kubernetes or MLflow gives them), reads one
thing, and answers with a short, redacted summary. A Kubernetes tool reads only the namespaces Level 1
may work in (kubernetes.namespaces, else the incident's own): a call for another namespace is answered
with a ToolError and nothing is read. A tool whose system is not configured is not offered.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot.core.errors import IntegrationError
from bot.core.redact import redact, redact_obj
from bot.diagnostics.base import Context
from bot.integrations.kubernetes import to_wire
from bot.llm import Tool, ToolError
from bot.services.learning import Past

LOG_LINES = 200  # most lines a log tail may ask for
LOG_CHARS = 6_000  # a log tail's last characters sent back
LIST_MAX = 20  # events, pods, metrics, artifacts … in one answer
TEXT_MAX = 500  # one message or value in an answer

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
_DNS_NAME = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
_RUN_ID = r"^[A-Za-z0-9_-]{1,64}$"
_MODEL = r"^[A-Za-z0-9][A-Za-z0-9 ._/-]{0,254}$"

_NS = {"type": "string", "pattern": _DNS_LABEL, "description": "the Kubernetes namespace"}
_NAME = {"type": "string", "pattern": _DNS_NAME}


def _schema(required: list[str], **properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _short(value: Any) -> Any:
    """A value as an answer carries it: redacted, each string cut to TEXT_MAX."""
    value = redact_obj(value)
    if isinstance(value, str):
        return value if len(value) <= TEXT_MAX else value[:TEXT_MAX] + "…"
    if isinstance(value, dict):
        return {k: _short(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_short(v) for v in value[:LIST_MAX]]
    return value


class InvestigationTools:
    """The tools for one incident: `offered()` lists those whose system is configured."""

    def __init__(self, ctx: Context, similar: list[Past]) -> None:
        self.ctx = ctx
        self.similar = similar
        own = ctx.target.namespace
        self.namespaces = tuple(ctx.policy.namespaces) or ((own,) if own else ())

    def offered(self) -> tuple[Tool, ...]:
        deps, tools = self.ctx.deps, []
        if deps.kube is not None:
            tools += [
                Tool("pod_status", "A pod's phase, conditions and each container's state, restarts and "
                     "resources.", _schema(["namespace", "pod"], namespace=_NS, pod=_NAME), self.pod_status),
                Tool("pod_log_tail", "The last lines of a container's log (of its previous run when "
                     "previous is true).", _schema(
                         ["namespace", "pod", "lines"], namespace=_NS, pod=_NAME,
                         container={"type": "string", "pattern": _DNS_LABEL},
                         lines={"type": "integer", "minimum": 1, "maximum": LOG_LINES},
                         previous={"type": "boolean"},
                     ), self.log_tail),
                Tool("events", "Kubernetes events about one object (a pod, Job, Workflow) by name.",
                     _schema(["namespace", "name"], namespace=_NS, name=_NAME,
                             kind={"type": "string", "enum": ["Pod", "Job", "Workflow", "CronJob"]}),
                     self.events),
                Tool("job", "A Kubernetes Job's status and conditions, its containers' resources, and "
                     "its pods.", _schema(["namespace", "name"], namespace=_NS, name=_NAME), self.job),
            ]  # fmt: skip
            if self.ctx.target.workflow:
                tools.append(
                    Tool("workflow", "An Argo Workflow's phase, message and failed nodes.",
                         _schema(["namespace", "name"], namespace=_NS, name=_NAME), self.workflow)
                )  # fmt: skip
        if deps.mlflow is not None:
            tools += [
                Tool("mlflow_run", "An MLflow run's status, params, latest metrics, tags and artifacts.",
                     _schema(["run_id"], run_id={"type": "string", "pattern": _RUN_ID}), self.mlflow_run),
                Tool("model_version", "A registered model version's status, message, source and run.",
                     _schema(["name", "version"], name={"type": "string", "pattern": _MODEL},
                             version={"type": "string", "pattern": r"^[0-9]{1,9}$"}), self.model_version),
            ]  # fmt: skip
        tables = self._tables()
        if deps.sql is not None and tables:
            names = {"type": "string", "enum": sorted(tables)}
            tools.append(
                Tool("feature_freshness", "The newest row's timestamp and the row count of a configured "
                     "feature table.", _schema(["table"], table=names), self.feature_freshness)
            )  # fmt: skip
        tools.append(
            Tool("past_incidents", "Resolved incidents like this one: how each was fixed.",
                 _schema([]), self.past_incidents)
        )  # fmt: skip
        return tuple(tools)

    # -- Kubernetes -------------------------------------------------------------------------------------
    def _allowed(self, ns: str) -> str:
        if ns not in self.namespaces:
            allowed = ", ".join(self.namespaces) or "none"
            raise ToolError(
                f"namespace {ns} is not allowed (the namespaces allowed: {allowed}); nothing read"
            )
        return ns

    def _read(self, what: str, read: Callable[[], Any]) -> Any:
        try:
            return read()
        except IntegrationError as exc:
            raise ToolError(redact(f"{what}: {exc}")) from None

    def pod_status(self, args: dict[str, Any]) -> object:
        ns = self._allowed(args["namespace"])
        pod = to_wire(self._read("read pod", lambda: self.ctx.deps.kube.read_pod(ns, args["pod"])))
        spec, status = pod.get("spec", {}), pod.get("status", {})
        resources = {c.get("name"): c.get("resources", {}) for c in spec.get("containers", [])}
        return _short(
            {
                "phase": status.get("phase"),
                "reason": status.get("reason"),
                "message": status.get("message"),
                "node": spec.get("nodeName"),
                "conditions": [
                    {k: c.get(k) for k in ("type", "status", "reason", "message")}
                    for c in status.get("conditions", [])
                ],
                "containers": [
                    {
                        "name": c.get("name"),
                        "ready": c.get("ready"),
                        "restarts": c.get("restartCount"),
                        "state": c.get("state"),
                        "last_state": c.get("lastState"),
                        "resources": resources.get(c.get("name")),
                    }
                    for c in status.get("containerStatuses", [])
                ],
            }
        )

    def log_tail(self, args: dict[str, Any]) -> object:
        ns = self._allowed(args["namespace"])
        text = self._read(
            "read log",
            lambda: self.ctx.deps.kube.read_pod_log(
                ns, args["pod"], args.get("container"), int(args["lines"]), bool(args.get("previous"))
            ),
        )
        text = redact(str(text))
        return text if len(text) <= LOG_CHARS else "…" + text[-LOG_CHARS:]

    def events(self, args: dict[str, Any]) -> object:
        ns = self._allowed(args["namespace"])
        found = self._read(
            "list events", lambda: self.ctx.deps.kube.list_events(ns, args["name"], args.get("kind"))
        )
        keep = ("type", "reason", "message", "count", "lastTimestamp")
        return _short([{k: to_wire(e).get(k) for k in keep} for e in found[-LIST_MAX:]])

    def job(self, args: dict[str, Any]) -> object:
        ns, name = self._allowed(args["namespace"]), args["name"]
        job = to_wire(self._read("read job", lambda: self.ctx.deps.kube.read_job(ns, name)))
        pods = self._read("list job pods", lambda: self.ctx.deps.kube.list_job_pods(ns, name))
        spec, status = job.get("spec", {}), job.get("status", {})
        containers = spec.get("template", {}).get("spec", {}).get("containers", [])
        return _short(
            {
                "backoff_limit": spec.get("backoffLimit"),
                "active_deadline_seconds": spec.get("activeDeadlineSeconds"),
                "status": {k: status.get(k) for k in ("active", "succeeded", "failed", "startTime")},
                "conditions": [
                    {k: c.get(k) for k in ("type", "status", "reason", "message")}
                    for c in status.get("conditions", [])
                ],
                "containers": [
                    {"name": c.get("name"), "image": c.get("image"), "resources": c.get("resources")}
                    for c in containers
                ],
                "pods": [
                    {"name": p.get("metadata", {}).get("name"), "phase": p.get("status", {}).get("phase")}
                    for p in (to_wire(p) for p in pods)
                ],
            }
        )

    def workflow(self, args: dict[str, Any]) -> object:
        ns = self._allowed(args["namespace"])
        found = self._read("read workflow", lambda: self.ctx.deps.kube.read_workflow(ns, args["name"]))
        status = found.get("status", {})
        failed = [
            {k: n.get(k) for k in ("displayName", "type", "phase", "message", "templateName")}
            for n in (status.get("nodes") or {}).values()
            if n.get("phase") in ("Failed", "Error")
        ]
        return _short(
            {"phase": status.get("phase"), "message": status.get("message"), "failed_nodes": failed}
        )

    # -- MLflow and the feature store -------------------------------------------------------------------
    def mlflow_run(self, args: dict[str, Any]) -> object:
        gateway, run_id = self.ctx.deps.mlflow, args["run_id"]
        run = self._read("get run", lambda: gateway.get_run(run_id))
        artifacts = self._read("list artifacts", lambda: gateway.list_artifacts(run_id))
        info, data = run.info, run.data
        return _short(
            {
                "status": info.status,
                "experiment_id": info.experiment_id,
                "start_time": info.start_time,
                "end_time": info.end_time,
                "params": dict(list(data.params.items())[:LIST_MAX]),
                "metrics": dict(list(data.metrics.items())[:LIST_MAX]),
                "tags": {k: v for k, v in data.tags.items() if not k.startswith("mlflow.log-model")},
                "artifacts": [{"path": a.path, "dir": a.is_dir, "bytes": a.file_size} for a in artifacts],
            }
        )

    def model_version(self, args: dict[str, Any]) -> object:
        name, version = args["name"], args["version"]
        found = self._read("get model version", lambda: self.ctx.deps.mlflow.get_model_version(name, version))
        keep = ("name", "version", "status", "status_message", "source", "run_id", "current_stage")
        return _short({**{k: getattr(found, k, None) for k in keep}, "tags": dict(found.tags or {})})

    def _tables(self) -> dict[str, Any]:
        config = self.ctx.config
        tables = list(config.feature_store.tables) if config is not None else []
        return {t.name: t for t in tables}

    def feature_freshness(self, args: dict[str, Any]) -> object:
        table = self._tables()[args["table"]]
        found = self._read("freshness", lambda: self.ctx.deps.sql.freshness(table))
        newest: datetime | None = found.max_loaded_at
        age = (self.ctx.now() - newest).total_seconds() if newest is not None else None
        return _short(
            {
                "table": table.name,
                "newest_row": newest.isoformat() if newest else None,
                "age_seconds": round(age) if age is not None else None,
                "rows": found.row_count,
                "query": found.query,
            }
        )

    def past_incidents(self, args: dict[str, Any]) -> object:
        return _short([p.to_json() for p in self.similar]) or "no resolved incident is like this one"
