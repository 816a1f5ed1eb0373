"""A loopback Kubernetes API server: serves recorded objects to the real client and records every request.

Only the slice of the API the bot uses is served: pods (get, list, log), events (list), Jobs (get, list,
create, patch), CronJobs (get, list) and Deployments (get, list, patch). Jobs the bot creates are
settled at once by a pluggable rule (`on_job_created`) that decides whether the new Job succeeds, is
OOM-killed or fails.
"""

from __future__ import annotations

import copy
import json
import random
import re
import string
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from bot.config import parse_memory
from bot.sandbox.loopback import LoopbackServer

FIXTURES = Path(__file__).parent / "fixtures" / "kube"

OutcomeKind = Literal["succeeded", "oom_killed", "failed"]
_EXIT = {"succeeded": (0, "Completed"), "oom_killed": (137, "OOMKilled"), "failed": (1, "Error")}
_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>batch|apps)/v1)/namespaces/(?P<ns>[^/]+)/(?P<resource>[a-z]+)"
    r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>log))?$"
)
# resource -> (kind, API group, qualified name used in Status messages)
_RESOURCES = {
    "pods": ("Pod", None, "pods"),
    "events": ("Event", None, "events"),
    "jobs": ("Job", "batch", "jobs.batch"),
    "cronjobs": ("CronJob", "batch", "cronjobs.batch"),
    "deployments": ("Deployment", "apps", "deployments.apps"),
}
_GENERATED_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid")


@dataclass(frozen=True)
class Outcome:
    """How a Job the bot created ends; `pending_reads` reads of the Job see it running first."""

    result: OutcomeKind
    log: str = ""
    pending_reads: int = 0


JobRule = Callable[[dict[str, Any]], Outcome | OutcomeKind]
PatchListener = Callable[[str, str, str, dict[str, Any]], None]


def always(result: OutcomeKind, log: str = "") -> JobRule:
    """A rule that ends every created Job the same way."""
    return lambda job: Outcome(result, log)


def succeed_if_memory_at_least(quantity: str) -> JobRule:
    """A rule that OOM-kills a created Job unless every container's memory limit is at least `quantity`."""
    needed = parse_memory(quantity)

    def rule(job: dict[str, Any]) -> Outcome:
        containers = job.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
        limits = [c.get("resources", {}).get("limits", {}).get("memory") for c in containers]
        if limits and all(limit and parse_memory(limit) >= needed for limit in limits):
            return Outcome("succeeded")
        return Outcome("oom_killed")

    return rule


@dataclass(frozen=True)
class Recorded:
    """One request as the sandbox received it."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str | None
    body: Any  # the decoded JSON body (a dict for objects), or None


class _ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _merge(target: Any, patch: Any, strategic: bool) -> Any:
    """RFC 7386 merge; a strategic merge also merges lists of named objects by name."""
    if isinstance(patch, list) and strategic and isinstance(target, list):
        merged = [copy.deepcopy(item) for item in target]
        for item in patch:
            at = next(
                (
                    i
                    for i, t in enumerate(merged)
                    if isinstance(item, dict) and isinstance(t, dict) and t.get("name") == item.get("name")
                ),
                None,
            )
            if at is None:
                merged.append(item)
            else:
                merged[at] = _merge(merged[at], item, strategic)
        return merged
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value, strategic)
    return result


def _lookup(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _selector(raw: str | None, param: str) -> list[tuple[str, str]]:
    pairs = []
    for term in filter(None, (raw or "").split(",")):
        key, sep, value = term.partition("==") if "==" in term else term.partition("=")
        if not sep or "!" in key:
            raise _ApiError(400, "BadRequest", f"unable to parse requirement: {param} {term!r}")
        pairs.append((key.strip(), value.strip()))
    return pairs


class SandboxKubeAPI(LoopbackServer):
    """A stateful fake API server on 127.0.0.1; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        objects: list[dict[str, Any]] | None = None,
        *,
        on_job_created: JobRule | None = None,
        clock: Callable[[], datetime] | None = None,
        seed: int | None = None,
    ) -> None:
        self.on_job_created: JobRule = on_job_created or always("succeeded")
        self.requests: list[Recorded] = []
        self._clock = clock or (lambda: datetime.now(UTC))
        self._random = random.Random(seed)
        self._objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._logs: dict[tuple[str, str, str | None, bool], str] = {}
        self._pending: dict[tuple[str, str], list[Any]] = {}  # (ns, job) -> [reads left, objects, logs]
        self._resource_version = 500000
        self._lock = threading.RLock()
        self._recorded = threading.Condition(self._lock)
        self._gate = threading.Event()
        self._gate.set()
        self._hangs: list[tuple[str, str | None]] = []
        self._hang_release = threading.Event()
        self._faults: list[tuple[str, int]] = []
        self._patch_listeners: list[PatchListener] = []
        # Called with each request as it arrives, before it is applied and answered (fault tests kill the
        # caller here, or add latency).
        self.on_request: list[Callable[[Recorded], object]] = []
        for obj in objects or []:
            self.load(obj)

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> SandboxKubeAPI:
        """Start serving on a free loopback port."""
        self._serve(_Handler, "sandbox-kube-api")
        return self

    def stop(self) -> None:
        """Let every held or hung request go, then shut the server down."""
        self.release()
        self.release_hangs()
        self._shutdown()

    @property
    def url(self) -> str:
        """The base URL the client is configured with."""
        return self._url("the sandbox Kubernetes API")

    # -- state ---------------------------------------------------------------------------------------
    def load(self, obj: dict[str, Any]) -> None:
        """Add or replace one object (or a `PodLog` entry)."""
        with self._lock:
            if obj.get("kind") == "PodLog":
                key = (obj["namespace"], obj["pod"], obj.get("container"), bool(obj.get("previous")))
                self._logs[key] = obj["text"]
                return
            meta = obj["metadata"]
            self._objects[(obj["kind"], meta.get("namespace", "default"), meta["name"])] = copy.deepcopy(obj)

    def load_fixture(self, name: str) -> None:
        """Load every object of fixtures/kube/<name>.json."""
        for obj in json.loads((FIXTURES / f"{name}.json").read_text()):
            self.load(obj)

    def stored(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A copy of one stored object, as later requests would see it."""
        with self._lock:
            obj = self._objects.get((kind, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def writes(self) -> list[Recorded]:
        """The recorded requests that change something."""
        with self._lock:
            return [r for r in self.requests if r.method in ("POST", "PATCH", "PUT", "DELETE")]

    def wait_for(self, predicate: Callable[[Recorded], bool], timeout: float = 5.0) -> Recorded:
        """Block until a request matching `predicate` has been recorded, and return it."""
        with self._recorded:
            found: list[Recorded] = []

            def seen() -> bool:
                found[:] = [r for r in self.requests if predicate(r)][:1]
                return bool(found)

            if not self._recorded.wait_for(seen, timeout):
                raise TimeoutError("no matching request reached the sandbox Kubernetes API")
            return found[0]

    # -- faults --------------------------------------------------------------------------------------
    def hold(self) -> None:
        """Make every request wait, after it is recorded, until release()."""
        self._gate.clear()

    def release(self) -> None:
        """Let held requests (and later ones) through."""
        self._gate.set()

    def hang(self, path_substring: str, method: str | None = None) -> None:
        """Never answer requests whose path contains `path_substring` (and whose method is `method`, when
        given) until release_hangs()."""
        with self._lock:
            self._hangs.append((path_substring, method))

    def release_hangs(self) -> None:
        """Answer every hung request and stop hanging new ones."""
        with self._lock:
            self._hangs.clear()
            released, self._hang_release = self._hang_release, threading.Event()
        released.set()

    def fail(self, path_substring: str, status: int = 500) -> None:
        """Answer requests whose path contains `path_substring` with an error Status (403 or 500)."""
        with self._lock:
            self._faults.append((path_substring, status))

    def clear_faults(self) -> None:
        """Stop failing requests."""
        with self._lock:
            self._faults.clear()

    def on_patch(self, listener: PatchListener) -> None:
        """Call `listener(kind, namespace, name, patched object)` after every accepted PATCH."""
        with self._lock:
            self._patch_listeners.append(listener)

    # -- request handling ----------------------------------------------------------------------------
    def handle(
        self, method: str, raw_path: str, content_type: str | None, raw: bytes
    ) -> tuple[int, str, bytes]:
        """Answer one request: (status code, content type, body)."""
        parts = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        body: Any = None
        media = (content_type or "").split(";")[0].strip()
        # The client sends no Content-Type on create calls; its bodies are JSON all the same.
        if raw and (not media or media.endswith("json")):
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        with self._recorded:
            self.requests.append(Recorded(method, parts.path, query, content_type, body))
            self._recorded.notify_all()
            hanging = any(s in parts.path and m in (None, method) for s, m in self._hangs)
            hang = self._hang_release if hanging else None
            fault = next((code for s, code in self._faults if s in parts.path), None)
            recorded = self.requests[-1]
        for hook in list(self.on_request):
            hook(recorded)
        self._gate.wait()
        if hang is not None:
            hang.wait()
        try:
            if fault is not None:
                raise self._fault(fault, method, parts.path)
            result = self._route(method, parts.path, query, content_type, body)
        except _ApiError as err:
            return (
                err.code,
                "application/json",
                json.dumps(_status(err.code, err.reason, err.message)).encode(),
            )
        if isinstance(result, str):
            return 200, "text/plain", result.encode()
        return (201 if method == "POST" else 200), "application/json", json.dumps(result).encode()

    def _fault(self, code: int, method: str, path: str) -> _ApiError:
        if code != 403:
            return _ApiError(code, "InternalError", "Internal error occurred: etcdserver: request timed out")
        match = _PATH.match(path)
        resource, ns, name = (match["resource"], match["ns"], match["name"]) if match else ("", "", None)
        verb = {"POST": "create", "PATCH": "patch", "DELETE": "delete"}.get(method, "get" if name else "list")
        group = _RESOURCES.get(resource, ("", None, resource))[1] or ""
        subject = f'{_RESOURCES.get(resource, ("", None, resource))[2]} "{name}"' if name else resource
        return _ApiError(
            403,
            "Forbidden",
            f'{subject} is forbidden: User "system:serviceaccount:ml-platform:'
            f'escalation-bot" cannot {verb} resource "{resource}" in API group "{group}" '
            f'in the namespace "{ns}"',
        )

    def _route(self, method: str, path: str, query: dict[str, str], ctype: str | None, body: Any) -> Any:
        match = _PATH.match(path)
        if not match or match["resource"] not in _RESOURCES:
            raise _ApiError(404, "NotFound", "the server could not find the requested resource")
        resource, ns, name = match["resource"], match["ns"], match["name"]
        kind, group, qualified = _RESOURCES[resource]
        if group != match["group"]:
            raise _ApiError(404, "NotFound", "the server could not find the requested resource")
        with self._lock:
            if match["sub"] == "log" and resource == "pods" and method == "GET":
                return self._pod_log(ns, name, query)
            if match["sub"] is None and method == "GET" and name is None:
                return self._list(kind, ns, query)
            if match["sub"] is None and method == "GET" and resource != "events":
                return self._get(kind, qualified, ns, name)
            if match["sub"] is None and method == "POST" and resource == "jobs" and name is None:
                return self._create_job(ns, body)
            if match["sub"] is None and method == "PATCH" and resource in ("jobs", "deployments") and name:
                return self._patch(kind, qualified, ns, name, ctype, body)
        raise _ApiError(
            405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
        )

    def _get(self, kind: str, qualified: str, ns: str, name: str) -> dict[str, Any]:
        pending = self._pending.get((ns, name)) if kind == "Job" else None
        if pending is not None:
            if pending[0] <= 0:
                self._settle(ns, name)
            else:
                pending[0] -= 1
        obj = self._objects.get((kind, ns, name))
        if obj is None:
            raise _ApiError(404, "NotFound", f'{qualified} "{name}" not found')
        return obj

    def _list(self, kind: str, ns: str, query: dict[str, str]) -> dict[str, Any]:
        labels = _selector(query.get("labelSelector"), "labelSelector")
        fields = _selector(query.get("fieldSelector"), "fieldSelector")
        items = [
            obj
            for (k, n, _), obj in sorted(self._objects.items())
            if k == kind
            and n == ns
            and all(obj["metadata"].get("labels", {}).get(key) == value for key, value in labels)
            and all(str(_lookup(obj, key)) == value for key, value in fields)
        ]
        api_version = {"Job": "batch/v1", "CronJob": "batch/v1", "Deployment": "apps/v1"}.get(kind, "v1")
        return {
            "kind": f"{kind}List",
            "apiVersion": api_version,
            "metadata": {"resourceVersion": str(self._resource_version)},
            "items": items,
        }

    def _pod_log(self, ns: str, pod_name: str, query: dict[str, str]) -> str:
        pod = self._get("Pod", "pods", ns, pod_name)
        names = [c["name"] for c in pod["spec"]["containers"]]
        container = query.get("container") or (names[0] if len(names) == 1 else None)
        if container is None:
            raise _ApiError(
                400,
                "BadRequest",
                f"a container name must be specified for pod {pod_name}, choose one of: [{' '.join(names)}]",
            )
        if container not in names:
            raise _ApiError(400, "BadRequest", f"container {container} is not valid for pod {pod_name}")
        previous = query.get("previous") == "true"
        text = self._logs.get(
            (ns, pod_name, container, previous), self._logs.get((ns, pod_name, None, previous))
        )
        if text is None and previous:
            raise _ApiError(
                400,
                "BadRequest",
                f'previous terminated container "{container}" in pod "{pod_name}" not found',
            )
        lines = (text or "").splitlines(keepends=True)
        if "tailLines" in query:
            lines = lines[-int(query["tailLines"]) :] if int(query["tailLines"]) > 0 else []
        return "".join(lines)

    def _patch(
        self, kind: str, qualified: str, ns: str, name: str, ctype: str | None, body: Any
    ) -> dict[str, Any]:
        current = self._get(kind, qualified, ns, name)
        media = (ctype or "").split(";")[0].strip()
        if media not in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            raise _ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - "
                "accepted media types include: application/merge-patch+json, "
                "application/strategic-merge-patch+json",
            )
        patched: dict[str, Any] = _merge(current, body, strategic=media.startswith("application/strategic"))
        patched["metadata"]["resourceVersion"] = self._next_version()
        patched["metadata"]["generation"] = int(current["metadata"].get("generation", 1)) + 1
        self._objects[(kind, ns, name)] = patched
        for listener in self._patch_listeners:
            listener(kind, ns, name, copy.deepcopy(patched))
        return patched

    def _next_version(self) -> str:
        self._resource_version += 1
        return str(self._resource_version)

    def _suffix(self) -> str:
        return "".join(self._random.choices(string.ascii_lowercase, k=5))

    # -- Jobs the bot creates -------------------------------------------------------------------------
    def _create_job(self, ns: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or body.get("kind", "Job") != "Job":
            raise _ApiError(400, "BadRequest", "the body of the request is not a batch/v1 Job")
        job = copy.deepcopy(body)
        meta, spec = job.setdefault("metadata", {}), job.get("spec") or {}
        template = spec.get("template") or {}
        problems = self._job_problems(spec, template)
        name = meta.get("name")
        while not name and meta.get("generateName"):
            candidate = meta["generateName"] + self._suffix()
            name = candidate if ("Job", ns, candidate) not in self._objects else None
        if not name:
            problems.append("metadata.name: Required value: name or generateName is required")
        if problems:
            raise _ApiError(422, "Invalid", f'Job.batch "{name or ""}" is invalid: ' + "; ".join(problems))
        if ("Job", ns, name) in self._objects:
            raise _ApiError(409, "AlreadyExists", f'jobs.batch "{name}" already exists')
        uid, now = str(uuid.uuid4()), self._timestamp()
        meta.update(
            name=name,
            namespace=ns,
            uid=uid,
            resourceVersion=self._next_version(),
            generation=1,
            creationTimestamp=now,
        )
        generated = {
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
        }
        template.setdefault("metadata", {}).setdefault("labels", {}).update(generated)
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completions", 1)
        spec.setdefault("parallelism", 1)
        job["apiVersion"], job["kind"], job["spec"] = "batch/v1", "Job", spec
        outcome = self.on_job_created(copy.deepcopy(job))
        outcome = outcome if isinstance(outcome, Outcome) else Outcome(outcome)
        final_objects, final_logs = self._finish(job, generated, outcome, now)
        if outcome.pending_reads > 0:
            pending_job = copy.deepcopy(job)
            pending_job["status"] = {"startTime": now, "active": 1, "ready": 1}
            self._objects[("Job", ns, name)] = pending_job
            self._pending[(ns, name)] = [outcome.pending_reads, final_objects, final_logs]
            return pending_job
        self._store(final_objects, final_logs)
        return final_objects[0]

    @staticmethod
    def _job_problems(spec: dict[str, Any], template: dict[str, Any]) -> list[str]:
        problems = []
        if spec.get("selector") and not spec.get("manualSelector"):
            problems.append("spec.selector: Invalid value: `selector` not auto-generated")
        labels = template.get("metadata", {}).get("labels", {})
        if any(key in labels for key in _GENERATED_LABELS):
            problems.append(
                "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`"
            )
        if template.get("spec", {}).get("restartPolicy") not in ("Never", "OnFailure"):
            problems.append(
                'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"'
            )
        if not template.get("spec", {}).get("containers"):
            problems.append("spec.template.spec.containers: Required value")
        return problems

    def _finish(
        self, job: dict[str, Any], labels: dict[str, str], outcome: Outcome, now: str
    ) -> tuple[list[dict[str, Any]], dict[tuple[str, str, str | None, bool], str]]:
        """The Job, its pod and its events as they are once the Job has ended, plus the pod's log."""
        meta, spec = job["metadata"], job["spec"]
        ns, name = meta["namespace"], meta["name"]
        exit_code, reason = _EXIT[outcome.result]
        ok = outcome.result == "succeeded"
        settled = copy.deepcopy(job)
        if ok:
            conditions = [
                {"type": "Complete", "status": "True", "lastProbeTime": now, "lastTransitionTime": now}
            ]
            settled["status"] = {
                "startTime": now,
                "completionTime": now,
                "succeeded": 1,
                "ready": 0,
                "conditions": conditions,
            }
        else:
            failed = {
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "lastProbeTime": now,
                "message": "Job has reached the specified backoff limit",
                "lastTransitionTime": now,
            }
            settled["status"] = {
                "startTime": now,
                "failed": 1,
                "ready": 0,
                "conditions": [{"type": "FailureTarget", **failed}, {"type": "Failed", **failed}],
            }
        pod_name = f"{name}-{self._suffix()}"
        pod_spec = copy.deepcopy(spec["template"]["spec"])
        pod_spec["nodeName"] = "sandbox-node-1"
        statuses = [
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": f"{c.get('image', '')}@sha256:{uuid.uuid4().hex}",
                "ready": False,
                "started": False,
                "restartCount": 0,
                "state": {
                    "terminated": {
                        "exitCode": exit_code,
                        "reason": reason,
                        "startedAt": now,
                        "finishedAt": now,
                    }
                },
            }
            for c in pod_spec["containers"]
        ]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": ns,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": now,
                "resourceVersion": self._next_version(),
                "labels": {**spec["template"]["metadata"].get("labels", {}), **labels},
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": name,
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": pod_spec,
            "status": {
                "phase": "Succeeded" if ok else "Failed",
                "startTime": now,
                "containerStatuses": statuses,
            },
        }
        event_reason = "Completed" if ok else "BackoffLimitExceeded"
        event_message = "Job completed" if ok else "Job has reached the specified backoff limit"
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{name}.{uuid.uuid4().hex[:16]}",
                "namespace": ns,
                "creationTimestamp": now,
            },
            "involvedObject": {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": name,
                "namespace": ns,
                "uid": meta["uid"],
            },
            "type": "Normal" if ok else "Warning",
            "reason": event_reason,
            "message": event_message,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": "job-controller"},
        }
        text = outcome.log or _default_log(name, outcome.result)
        logs = {(ns, pod_name, c["name"], False): text for c in pod_spec["containers"]}
        return [settled, pod, event], logs

    def _store(
        self, objects: Iterable[dict[str, Any]], logs: dict[tuple[str, str, str | None, bool], str]
    ) -> None:
        for obj in objects:
            self.load(obj)
        self._logs.update(logs)

    def _settle(self, ns: str, name: str) -> None:
        _, objects, logs = self._pending.pop((ns, name))
        self._store(objects, logs)

    def _timestamp(self) -> str:
        return self._clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _default_log(job: str, result: OutcomeKind) -> str:
    if result == "succeeded":
        return f"{job}: starting\n{job}: finished successfully\n"
    if result == "oom_killed":
        return f"{job}: starting\n{job}: loading data into memory\n"
    return (
        f"{job}: starting\nTraceback (most recent call last):\n"
        f'  File "/app/main.py", line 42, in <module>\n    main()\n'
        f"RuntimeError: {job} failed\n"
    )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        sandbox: SandboxKubeAPI = self.server.sandbox  # type: ignore[attr-defined]
        code, content_type, payload = sandbox.handle(
            self.command, self.path, self.headers.get("Content-Type"), raw
        )
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""
