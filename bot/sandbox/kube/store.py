"""The cluster's objects as the sandbox API server keeps them: reads with selectors and pod logs, merge
patches, pod deletion, Jobs created by the bot, and Workflows created or replaced by it, which the
sandbox's workflow controller runs; both end at once or after a few reads."""

from __future__ import annotations

import copy
import random
import string
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from bot.sandbox.kube import workflows
from bot.sandbox.kube.errors import ApiError
from bot.sandbox.kube.job_endings import Logs, ending
from bot.sandbox.kube.job_rules import JobRule, Outcome
from bot.sandbox.kube.jobs import admit, posted_job
from bot.sandbox.kube.patching import PATCH_TYPES, matches, merge, selector
from bot.sandbox.kube.workflow_controller import Settled, needs_run
from bot.sandbox.kube.workflow_controller import run as run_workflow
from bot.sandbox.kube.workflow_names import API_VERSION as WORKFLOW_API_VERSION
from bot.sandbox.kube.workflow_names import QUALIFIED as WORKFLOWS
from bot.sandbox.kube.workflow_rules import WorkflowRule

_API_VERSIONS = {
    "Job": "batch/v1",
    "CronJob": "batch/v1",
    "Deployment": "apps/v1",
    "Workflow": WORKFLOW_API_VERSION,
}


class ClusterStore:
    """Objects by (kind, namespace, name) and pod logs; callers hold the server's lock."""

    def __init__(self, clock: Callable[[], datetime], seed: int | None) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.logs: Logs = {}
        self._pending: dict[tuple[str, str], list[Any]] = {}  # (ns, job) -> [reads left, objects, logs]
        self._running: dict[tuple[str, str], list[Any]] = {}  # (ns, workflow) -> [reads left, Settled]
        self._resource_version = 500000
        self._clock = clock
        self._random = random.Random(seed)

    def load(self, obj: dict[str, Any]) -> None:
        """Add or replace one object (or a `PodLog` entry)."""
        if obj.get("kind") == "PodLog":
            key = (obj["namespace"], obj["pod"], obj.get("container"), bool(obj.get("previous")))
            self.logs[key] = obj["text"]
            return
        meta = obj["metadata"]
        self.objects[(obj["kind"], meta.get("namespace", "default"), meta["name"])] = copy.deepcopy(obj)

    def get(self, kind: str, qualified: str, ns: str, name: str) -> dict[str, Any]:
        """One object; a Job or Workflow the bot started and whose reads before its end are spent has
        ended now."""
        pending = self._pending.get((ns, name)) if kind == "Job" else None
        if pending is not None:
            if pending[0] <= 0:
                _, objects, logs = self._pending.pop((ns, name))
                self._store(objects, logs)
            else:
                pending[0] -= 1
        running = self._running.get((ns, name)) if kind == "Workflow" else None
        if running is not None:
            if running[0] <= 0:
                self._settle(ns, self._running.pop((ns, name))[1])
            else:
                running[0] -= 1
        obj = self.objects.get((kind, ns, name))
        if obj is None:
            raise ApiError(404, "NotFound", f'{qualified} "{name}" not found')
        return obj

    def list(self, kind: str, ns: str, query: dict[str, str]) -> dict[str, Any]:
        labels = selector(query.get("labelSelector"), "labelSelector")
        fields = selector(query.get("fieldSelector"), "fieldSelector")
        items = [
            obj
            for (k, n, _), obj in sorted(self.objects.items())
            if k == kind and n == ns and matches(obj, labels, fields)
        ]
        return {
            "kind": f"{kind}List",
            "apiVersion": _API_VERSIONS.get(kind, "v1"),
            "metadata": {"resourceVersion": str(self._resource_version)},
            "items": items,
        }

    def pod_log(self, ns: str, pod_name: str, query: dict[str, str]) -> str:
        pod = self.get("Pod", "pods", ns, pod_name)
        names = [c["name"] for c in pod["spec"]["containers"]]
        init = [c["name"] for c in pod["spec"].get("initContainers") or []]
        container = query.get("container") or (names[0] if len(names) == 1 else None)
        if container is None:
            raise ApiError(
                400,
                "BadRequest",
                f"a container name must be specified for pod {pod_name}, choose one of: [{' '.join(names)}]"
                + (f" or one of the init containers: [{' '.join(init)}]" if init else ""),
            )
        if container not in names + init:
            raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {pod_name}")
        previous = query.get("previous") == "true"
        text = self.logs.get(
            (ns, pod_name, container, previous), self.logs.get((ns, pod_name, None, previous))
        )
        if text is None and previous:
            raise ApiError(
                400,
                "BadRequest",
                f'previous terminated container "{container}" in pod "{pod_name}" not found',
            )
        lines = (text or "").splitlines(keepends=True)
        if "tailLines" in query:
            lines = lines[-int(query["tailLines"]) :] if int(query["tailLines"]) > 0 else []
        return "".join(lines)

    def patch(
        self, kind: str, qualified: str, ns: str, name: str, ctype: str | None, body: Any
    ) -> dict[str, Any]:
        current = self.get(kind, qualified, ns, name)
        media = (ctype or "").split(";")[0].strip()
        if media not in PATCH_TYPES:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - "
                "accepted media types include: " + ", ".join(PATCH_TYPES),
            )
        patched: dict[str, Any] = merge(current, body, strategic=media.startswith("application/strategic"))
        patched["metadata"]["resourceVersion"] = self._next_version()
        patched["metadata"]["generation"] = int(current["metadata"].get("generation", 1)) + 1
        self.objects[(kind, ns, name)] = patched
        return patched

    def create_job(self, ns: str, body: Any, rule: JobRule) -> dict[str, Any]:
        """Admit a Job and let `rule` decide how it ends: at once, or after its pending reads."""
        job, problems = posted_job(body)
        name = job["metadata"].get("name")
        while not name and job["metadata"].get("generateName"):
            candidate = job["metadata"]["generateName"] + self._suffix()
            name = candidate if ("Job", ns, candidate) not in self.objects else None
        if not name:
            problems.append("metadata.name: Required value: name or generateName is required")
        if problems:
            raise ApiError(422, "Invalid", f'Job.batch "{name or ""}" is invalid: ' + "; ".join(problems))
        if ("Job", ns, name) in self.objects:
            raise ApiError(409, "AlreadyExists", f'jobs.batch "{name}" already exists')
        uid, now = str(uuid.uuid4()), self._timestamp()
        labels = admit(job, ns, name, uid, now, self._next_version())
        decided = rule(copy.deepcopy(job))
        outcome = decided if isinstance(decided, Outcome) else Outcome(decided)
        objects, logs = ending(job, labels, outcome, now, f"{name}-{self._suffix()}", self._next_version())
        if outcome.pending_reads > 0:
            running = copy.deepcopy(job)
            running["status"] = {"startTime": now, "active": 1, "ready": 1}
            self.objects[("Job", ns, name)] = running
            self._pending[(ns, name)] = [outcome.pending_reads, objects, logs]
            return running
        self._store(objects, logs)
        return objects[0]

    def delete(self, kind: str, qualified: str, ns: str, name: str) -> dict[str, Any]:
        """Remove an object (and a pod's logs); the answer is the object marked as being deleted."""
        gone = copy.deepcopy(self.get(kind, qualified, ns, name))
        del self.objects[(kind, ns, name)]
        if kind == "Pod":
            self.logs = {key: text for key, text in self.logs.items() if key[:2] != (ns, name)}
        gone["metadata"].update(deletionTimestamp=self._timestamp(), deletionGracePeriodSeconds=0)
        return gone

    def create_workflow(self, ns: str, body: Any, rule: WorkflowRule) -> dict[str, Any]:
        """Admit a new Workflow; the controller then runs its DAG."""
        workflow = workflows.posted(body, ns)
        name = workflow["metadata"].get("name")
        while not name:
            candidate = workflow["metadata"]["generateName"] + self._suffix()
            name = candidate if ("Workflow", ns, candidate) not in self.objects else None
        if ("Workflow", ns, name) in self.objects:
            raise workflows.already_exists(name)
        workflows.admit(workflow, name, str(uuid.uuid4()), self._timestamp(), self._next_version())
        return self._written(ns, name, workflow, rule)

    def replace_workflow(self, ns: str, name: str, body: Any, rule: WorkflowRule) -> dict[str, Any]:
        """Replace a stored Workflow (optimistic concurrency on resourceVersion); a Workflow reset for a
        retry is then run again by the controller."""
        current = self.get("Workflow", WORKFLOWS, ns, name)
        workflow = workflows.replaced(current, body, ns, name, self._next_version())
        self._running.pop((ns, name), None)
        return self._written(ns, name, workflow, rule)

    def _written(self, ns: str, name: str, workflow: dict[str, Any], rule: WorkflowRule) -> dict[str, Any]:
        self.objects[("Workflow", ns, name)] = workflow
        if needs_run(workflow):
            pods = {n: obj for (k, space, n), obj in self.objects.items() if k == "Pod" and space == ns}
            settled = run_workflow(workflow, pods, rule, self._timestamp(), self._next_version)
            if settled.pending_reads > 0:
                shown = workflows.running(workflow, self._timestamp(), self._next_version())
                self.objects[("Workflow", ns, name)] = shown
                self._running[(ns, name)] = [settled.pending_reads, settled]
            else:
                self._settle(ns, settled)
        return copy.deepcopy(workflow)

    def _settle(self, ns: str, settled: Settled) -> None:
        meta = settled.workflow["metadata"]
        shown = self.objects.get(("Workflow", ns, meta["name"]), settled.workflow)
        meta["resourceVersion"] = self._next_version()
        meta["generation"] = int(shown["metadata"].get("generation", 1)) + 1
        logs: Logs = {(ns, pod, "main", False): text for pod, text in settled.logs.items()}
        self._store([*settled.pods, settled.workflow], logs)

    def _store(self, objects: Iterable[dict[str, Any]], logs: Logs) -> None:
        for obj in objects:
            self.load(obj)
        self.logs.update(logs)

    def _next_version(self) -> str:
        self._resource_version += 1
        return str(self._resource_version)

    def _suffix(self) -> str:
        return "".join(self._random.choices(string.ascii_lowercase, k=5))

    def _timestamp(self) -> str:
        return self._clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
