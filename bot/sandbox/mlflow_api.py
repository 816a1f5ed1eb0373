"""A loopback MLflow tracking server: recorded JSON for the real MlflowClient, with fault switches.

It serves the slice of MLflow's REST API the bot reads (health, version, runs, experiments, artifacts
through the `mlflow-artifacts` proxy, the model registry) from fixtures/mlflow/<name>.json, keeps the
model versions it is asked to create (PENDING_REGISTRATION, then READY after `pending_reads` reads),
records every request, and can be switched `down()` (every answer an HTTP error) and `up()` again.
States the open-source server cannot produce, such as FAILED_REGISTRATION, come from the fixture.
The data lives in `bot.sandbox.mlflow.tracking` and `bot.sandbox.mlflow.registry`.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from bot.sandbox.loopback import Answer, LoopbackServer, Recorded, SandboxHandler, wait_for_request
from bot.sandbox.mlflow.errors import MlflowError, json_answer
from bot.sandbox.mlflow.registry import RegistrationRule, Registry
from bot.sandbox.mlflow.tracking import Tracking

__all__ = [
    "ARTIFACTS",
    "FIXTURES",
    "RESTARTED_AT",
    "VERSION",
    "Recorded",
    "RegistrationRule",
    "SandboxMlflowAPI",
]

FIXTURES = Path(__file__).parent / "fixtures" / "mlflow"
VERSION = "3.17.2"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
_REASONS = {401: "Unauthorized", 403: "Forbidden", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout"}  # fmt: skip


class SandboxMlflowAPI(LoopbackServer):
    """A stateful fake MLflow server on 127.0.0.1; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        fixture: str | None = "default",
        *,
        pending_reads: int = 1,
        on_version_created: RegistrationRule | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.requests: list[Recorded] = []
        self.pending_reads = pending_reads
        self.on_version_created: RegistrationRule = on_version_created or (lambda _version: "READY")
        self._lock = threading.RLock()
        self._recorded = threading.Condition(self._lock)
        self._tracking = Tracking()
        self._registry = Registry(clock or (lambda: datetime.now(UTC)))
        self._server_info: dict[str, Any] = {}
        self._down: tuple[int, int | None] | None = None  # (status, requests left or None for ever)
        self._latency = 0.0
        self._stopping = threading.Event()
        if fixture:
            self.load_fixture(fixture)

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> SandboxMlflowAPI:
        """Start serving on a free loopback port."""
        self._stopping.clear()
        self._serve(SandboxHandler, "sandbox-mlflow")
        return self

    def stop(self) -> None:
        """Shut the server down (a request held by `latency` is answered at once)."""
        self._stopping.set()
        self._shutdown()

    @property
    def url(self) -> str:
        """The tracking URI the client is configured with."""
        return self._url("the sandbox MLflow server")

    # -- state ---------------------------------------------------------------------------------------
    def load_fixture(self, name: str) -> None:
        """Load experiments, runs, artifacts and the registry from fixtures/mlflow/<name>.json."""
        data = json.loads((FIXTURES / f"{name}.json").read_text())
        with self._lock:
            self._tracking.load(data)
            self._registry.load(data)
            self._server_info = data.get("server_info", self._server_info)

    def model_version(self, name: str, version: str) -> dict[str, Any] | None:
        """A copy of one stored model version."""
        with self._lock:
            found = self._registry.versions.get((name, str(version)))
            return copy.deepcopy(found) if found is not None else None

    def set_artifact(self, run_id: str, path: str, text: str | None) -> None:
        """Add, replace or (with None) remove one artifact file of a run."""
        with self._lock:
            self._tracking.set_artifact(run_id, path, text)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point `alias` of model `name` at `version` (moving it off any other version)."""
        with self._lock:
            self._registry.set_alias(name, alias, version)

    def wait_for(self, predicate: Callable[[Recorded], bool], timeout: float = 5.0) -> Recorded:
        """Block until a request matching `predicate` has been recorded, and return it."""
        return wait_for_request(
            self._recorded, self.requests, predicate, timeout, "the sandbox MLflow server"
        )

    # -- faults --------------------------------------------------------------------------------------
    def down(self, status: int = 503, requests: int | None = None) -> None:
        """Answer every request with `status` (for ever, or for the next `requests` requests)."""
        with self._lock:
            self._down = (status, requests)

    def up(self) -> None:
        """Answer normally again."""
        with self._lock:
            self._down = None

    @property
    def is_down(self) -> bool:
        with self._lock:
            return self._down is not None

    def latency(self, seconds: float) -> None:
        """Delay every answer by `seconds` (0 to stop)."""
        self._latency = seconds

    def recover_on_restart(self, kube: Any, deployment: str) -> None:
        """Come back up when the sandbox Kubernetes API sees Deployment `namespace/name` restarted."""
        namespace, name = deployment.split("/", 1)

        def patched(kind: str, ns: str, obj_name: str, obj: dict[str, Any]) -> None:
            annotations = obj.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations", {})
            if (kind, ns, obj_name) == ("Deployment", namespace, name) and RESTARTED_AT in annotations:
                self.up()

        kube.on_patch(patched)

    # -- request handling ----------------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, content_type: str | None, raw: bytes) -> Answer:
        """Answer one request: (status code, content type, body)."""
        parts = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        with self._recorded:
            self.requests.append(Recorded(method, parts.path, query, content_type, body))
            self._recorded.notify_all()
            fault = self._take_fault()
        if self._latency:
            self._stopping.wait(self._latency)
        if fault is not None:
            reason = _REASONS.get(fault, "Error")
            page = f"<html><head><title>{fault} {reason}</title></head><body>{fault} {reason}</body></html>"
            return fault, "text/html", page.encode()
        try:
            with self._lock:
                return self._route(method, parts.path, query, body if isinstance(body, dict) else {})
        except MlflowError as err:
            return err.answer()

    def _take_fault(self) -> int | None:
        if self._down is None:
            return None
        status, left = self._down
        if left is not None:
            self._down = (status, left - 1) if left > 1 else None
        return status

    def _route(self, method: str, path: str, query: dict[str, str], body: dict[str, Any]) -> Answer:
        if method == "GET" and path == "/health":
            return 200, "text/plain; charset=utf-8", b"OK"
        if method == "GET" and path == "/version":
            return 200, "text/plain; charset=utf-8", VERSION.encode()
        if method == "GET" and path == "/api/3.0/mlflow/server-info":
            return json_answer(200, self._server_info)
        if path == ARTIFACTS and method == "GET":
            return json_answer(200, self._tracking.list_proxied(query.get("path", "")))
        if path.startswith(ARTIFACTS + "/") and method == "GET":
            return 200, "text/plain", self._tracking.download(unquote(path[len(ARTIFACTS) + 1 :])).encode()
        tracking, registry = self._tracking, self._registry
        routes: dict[tuple[str, str], Callable[[dict[str, Any]], Any]] = {
            ("GET", "/api/2.0/mlflow/runs/get"): tracking.get_run,
            ("POST", "/api/2.0/mlflow/runs/search"): tracking.search_runs,
            ("POST", "/api/2.0/mlflow/experiments/search"): tracking.search_experiments,
            ("GET", "/api/2.0/mlflow/artifacts/list"): tracking.list_artifacts,
            ("POST", "/api/2.0/mlflow/logged-models/search"): lambda _args: {},
            ("GET", "/api/2.0/mlflow/registered-models/get"): registry.get_registered_model,
            ("GET", "/api/2.0/mlflow/model-versions/get"): registry.get_model_version,
            ("POST", "/api/2.0/mlflow/model-versions/create"): lambda args: registry.create_model_version(
                args, self.on_version_created, self.pending_reads
            ),
            ("GET", "/api/2.0/mlflow/registered-models/alias"): registry.get_by_alias,
        }
        handler = routes.get((method, path))
        if handler is None:
            page = "<!doctype html>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n"
            return 404, "text/html; charset=utf-8", page.encode()
        return json_answer(200, handler(query if method == "GET" else body))
