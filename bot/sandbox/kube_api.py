"""A loopback Kubernetes API server: serves recorded objects to the real client and records every request.

Only the slice of the API the bot uses is served: pods (get, list, log, delete), events (list), Jobs (get,
list, create, patch), CronJobs (get, list), Deployments (get, list, patch) and Argo Workflows
(`argoproj.io/v1alpha1`: get, list, create, replace). Jobs the bot creates are settled at once by a
pluggable rule (`on_job_created`) that decides whether the new Job succeeds, is OOM-killed or fails.
Workflows the bot creates (a resubmit) or replaces with their phase reset (an `argo retry`) are run by a
tiny controller (`bot.sandbox.kube.workflow_controller`, DAG entrypoints only) whose pluggable rule
(`on_workflow_run`) decides how each node it runs ends. The objects live in `bot.sandbox.kube.store`;
this module serves them and injects faults (held, hung and failed requests). SelfSubjectAccessReviews
are answered from the rules granted in `access` (`bot.sandbox.kube.access`; everything by default). With
a TLS context it serves HTTPS, as a real API server does to a pod's in-cluster client.
"""

from __future__ import annotations

import copy
import json
import ssl
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bot.sandbox.kube.access import REVIEW_PATH, AccessReviews, Rule
from bot.sandbox.kube.errors import API_PATH, RESOURCES, VERSIONS, ApiError, injected
from bot.sandbox.kube.job_rules import JobRule, Outcome, OutcomeKind, always, succeed_if_memory_at_least
from bot.sandbox.kube.store import ClusterStore
from bot.sandbox.kube.workflow_rules import (
    WorkflowRule,
    workflow_always,
    workflow_succeeds_if_memory_at_least,
)
from bot.sandbox.loopback import (
    Answer,
    LoopbackServer,
    Recorded,
    SandboxHandler,
    request_headers,
    wait_for_request,
)

__all__ = [
    "FIXTURES",
    "JobRule",
    "Outcome",
    "OutcomeKind",
    "PatchListener",
    "Recorded",
    "Rule",
    "SandboxKubeAPI",
    "WorkflowRule",
    "always",
    "succeed_if_memory_at_least",
    "workflow_always",
    "workflow_succeeds_if_memory_at_least",
]

FIXTURES = Path(__file__).parent / "fixtures" / "kube"

PatchListener = Callable[[str, str, str, dict[str, Any]], None]


class SandboxKubeAPI(LoopbackServer):
    """A stateful fake API server on 127.0.0.1; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        objects: list[dict[str, Any]] | None = None,
        *,
        on_job_created: JobRule | None = None,
        clock: Callable[[], datetime] | None = None,
        seed: int | None = None,
        on_workflow_run: WorkflowRule | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.tls = tls
        self.access = AccessReviews()  # what a SelfSubjectAccessReview is told the caller may do
        self.on_job_created: JobRule = on_job_created or always("succeeded")
        self.on_workflow_run: WorkflowRule = on_workflow_run or workflow_always("succeeded")
        self.requests: list[Recorded] = []
        self._store = ClusterStore(clock or (lambda: datetime.now(UTC)), seed)
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
        self._serve(SandboxHandler, "sandbox-kube-api", tls=self.tls)
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
            self._store.load(obj)

    def load_fixture(self, name: str) -> None:
        """Load every object of fixtures/kube/<name>.json."""
        for obj in json.loads((FIXTURES / f"{name}.json").read_text()):
            self.load(obj)

    def stored(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A copy of one stored object, as later requests would see it."""
        with self._lock:
            obj = self._store.objects.get((kind, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def writes(self) -> list[Recorded]:
        """The recorded requests that change something."""
        with self._lock:
            return [r for r in self.requests if r.method in ("POST", "PATCH", "PUT", "DELETE")]

    def wait_for(self, predicate: Callable[[Recorded], bool], timeout: float = 5.0) -> Recorded:
        """Block until a request matching `predicate` has been recorded, and return it."""
        return wait_for_request(
            self._recorded, self.requests, predicate, timeout, "the sandbox Kubernetes API"
        )

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
    def handle(self, method: str, raw_path: str, content_type: str | None, raw: bytes) -> Answer:
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
            headers = {k.lower(): v for k, v in request_headers().items()}  # names as HTTP/2 sends them
            self.requests.append(Recorded(method, parts.path, query, content_type, body, headers))
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
                raise injected(fault, method, parts.path)
            result = self._route(method, parts.path, query, content_type, body)
        except ApiError as err:
            return err.code, "application/json", json.dumps(err.status()).encode()
        if isinstance(result, str):
            return 200, "text/plain", result.encode()
        return (201 if method == "POST" else 200), "application/json", json.dumps(result).encode()

    def _route(self, method: str, path: str, query: dict[str, str], ctype: str | None, body: Any) -> Any:
        if path == REVIEW_PATH and method == "POST":
            return self.access.review(body)
        match = API_PATH.match(path)
        if not match or match["resource"] not in RESOURCES:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        resource, ns, name, sub = match["resource"], match["ns"], match["name"], match["sub"]
        kind, group, qualified = RESOURCES[resource]
        if group != match["group"] or (group and VERSIONS[group] != match["version"]):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        with self._lock:
            if sub == "log" and resource == "pods" and method == "GET":
                return self._store.pod_log(ns, name, query)
            if sub is None and method == "GET" and name is None:
                return self._store.list(kind, ns, query)
            if sub is None and method == "GET" and resource != "events":
                return self._store.get(kind, qualified, ns, name)
            if sub is None and method == "POST" and resource == "jobs" and name is None:
                return self._store.create_job(ns, body, self.on_job_created)
            if sub is None and method == "POST" and resource == "workflows" and name is None:
                return self._store.create_workflow(ns, body, self.on_workflow_run)
            if sub is None and method == "PUT" and resource == "workflows" and name:
                return self._store.replace_workflow(ns, name, body, self.on_workflow_run)
            if sub is None and method == "DELETE" and resource == "pods" and name:
                return self._store.delete(kind, qualified, ns, name)
            if sub is None and method == "PATCH" and resource in ("jobs", "deployments") and name:
                patched = self._store.patch(kind, qualified, ns, name, ctype, body)
                for listener in self._patch_listeners:
                    listener(kind, ns, name, copy.deepcopy(patched))
                return patched
        raise ApiError(
            405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
        )
