"""A loopback MLflow tracking server: recorded JSON for the real MlflowClient, with fault switches.

It serves the slice of MLflow's REST API the bot reads (health, version, runs, experiments, artifacts
through the `mlflow-artifacts` proxy, the model registry) from fixtures/mlflow/<name>.json, keeps the
model versions it is asked to create (PENDING_REGISTRATION, then READY after `pending_reads` reads),
records every request, and can be switched `down()` (every answer an HTTP error) and `up()` again.
States the open-source server cannot produce, such as FAILED_REGISTRATION, come from the fixture.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from bot.sandbox.loopback import LoopbackServer

FIXTURES = Path(__file__).parent / "fixtures" / "mlflow"
VERSION = "3.17.2"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
_REASONS = {401: "Unauthorized", 403: "Forbidden", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout"}  # fmt: skip
_ARTIFACT_URI = re.compile(r"^mlflow-artifacts:/+(?P<root>.+)$")

Reply = tuple[int, str, bytes]
RegistrationRule = Callable[[dict[str, Any]], str]


@dataclass(frozen=True)
class Recorded:
    """One request as the sandbox received it."""

    method: str
    path: str
    query: dict[str, str]
    body: Any  # the decoded JSON body, or None


class _MlflowError(Exception):
    def __init__(self, code: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.error_code, self.message = code, error_code, message


def _json(code: int, payload: Any) -> Reply:
    return code, "application/json", json.dumps(payload).encode()


def _now_ms(clock: Callable[[], datetime]) -> int:
    return int(clock().timestamp() * 1000)


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
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.RLock()
        self._recorded = threading.Condition(self._lock)
        self._experiments: list[dict[str, Any]] = []
        self._runs: dict[str, dict[str, Any]] = {}
        self._artifacts: dict[str, dict[str, str]] = {}
        self._models: dict[str, dict[str, Any]] = {}
        self._versions: dict[tuple[str, str], dict[str, Any]] = {}
        self._pending: dict[tuple[str, str], list[Any]] = {}  # (name, version) -> [reads left, status]
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
        self._serve(_Handler, "sandbox-mlflow")
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
            self._experiments.extend(data.get("experiments", []))
            for run in data.get("runs", []):
                self._runs[run["info"]["run_id"]] = run
            for run_id, files in data.get("artifacts", {}).items():
                self._artifacts.setdefault(run_id, {}).update(files)
            for model in data.get("registered_models", []):
                self._models[model["name"]] = model
            for version in data.get("model_versions", []):
                self._versions[(version["name"], version["version"])] = version
            self._server_info = data.get("server_info", self._server_info)

    def model_version(self, name: str, version: str) -> dict[str, Any] | None:
        """A copy of one stored model version."""
        with self._lock:
            found = self._versions.get((name, str(version)))
            return copy.deepcopy(found) if found is not None else None

    def set_artifact(self, run_id: str, path: str, text: str | None) -> None:
        """Add, replace or (with None) remove one artifact file of a run."""
        with self._lock:
            files = self._artifacts.setdefault(run_id, {})
            if text is None:
                files.pop(path, None)
            else:
                files[path] = text

    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point `alias` of model `name` at `version` (moving it off any other version)."""
        with self._lock:
            for (n, v), found in self._versions.items():
                kept = [a for a in found.get("aliases", []) if a != alias or n != name]
                found["aliases"] = kept + ([alias] if (n, v) == (name, str(version)) else [])

    def wait_for(self, predicate: Callable[[Recorded], bool], timeout: float = 5.0) -> Recorded:
        """Block until a request matching `predicate` has been recorded, and return it."""
        with self._recorded:
            found: list[Recorded] = []

            def seen() -> bool:
                found[:] = [r for r in self.requests if predicate(r)][:1]
                return bool(found)

            if not self._recorded.wait_for(seen, timeout):
                raise TimeoutError("no matching request reached the sandbox MLflow server")
            return found[0]

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
    def handle(self, method: str, raw_path: str, raw: bytes) -> Reply:
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
            self.requests.append(Recorded(method, parts.path, query, body))
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
        except _MlflowError as err:
            return _json(err.code, {"error_code": err.error_code, "message": err.message})

    def _take_fault(self) -> int | None:
        if self._down is None:
            return None
        status, left = self._down
        if left is not None:
            self._down = (status, left - 1) if left > 1 else None
        return status

    def _route(self, method: str, path: str, query: dict[str, str], body: dict[str, Any]) -> Reply:
        if method == "GET" and path == "/health":
            return 200, "text/plain; charset=utf-8", b"OK"
        if method == "GET" and path == "/version":
            return 200, "text/plain; charset=utf-8", VERSION.encode()
        if method == "GET" and path == "/api/3.0/mlflow/server-info":
            return _json(200, self._server_info)
        if path == ARTIFACTS and method == "GET":
            return _json(200, self._list_proxied(query.get("path", "")))
        if path.startswith(ARTIFACTS + "/") and method == "GET":
            return self._download(unquote(path[len(ARTIFACTS) + 1 :]))
        routes: dict[tuple[str, str], Callable[[dict[str, Any]], Any]] = {
            ("GET", "/api/2.0/mlflow/runs/get"): self._get_run,
            ("POST", "/api/2.0/mlflow/runs/search"): self._search_runs,
            ("POST", "/api/2.0/mlflow/experiments/search"): self._search_experiments,
            ("GET", "/api/2.0/mlflow/artifacts/list"): self._list_artifacts,
            ("POST", "/api/2.0/mlflow/logged-models/search"): lambda _args: {},
            ("GET", "/api/2.0/mlflow/registered-models/get"): self._get_registered_model,
            ("GET", "/api/2.0/mlflow/model-versions/get"): self._get_model_version,
            ("POST", "/api/2.0/mlflow/model-versions/create"): self._create_model_version,
            ("GET", "/api/2.0/mlflow/registered-models/alias"): self._get_by_alias,
        }
        handler = routes.get((method, path))
        if handler is None:
            page = "<!doctype html>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n"
            return 404, "text/html; charset=utf-8", page.encode()
        return _json(200, handler(query if method == "GET" else body))

    # -- tracking ------------------------------------------------------------------------------------
    def _run(self, run_id: str) -> dict[str, Any]:
        run = self._runs.get(run_id)
        if run is None:
            raise _MlflowError(404, "RESOURCE_DOES_NOT_EXIST", f"Run with id={run_id} not found")
        return run

    def _get_run(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"run": self._run(str(args.get("run_id") or args.get("run_uuid") or ""))}

    def _search_runs(self, args: dict[str, Any]) -> dict[str, Any]:
        experiments = {str(e) for e in args.get("experiment_ids", [])}
        wanted = re.search(r"status\s*=\s*'(\w+)'", str(args.get("filter") or ""))
        runs = [
            r
            for r in self._runs.values()
            if r["info"]["experiment_id"] in experiments
            and (wanted is None or r["info"]["status"] == wanted.group(1))
        ]
        return {"runs": runs[: int(args.get("max_results") or 1000)]} if runs else {}

    def _search_experiments(self, args: dict[str, Any]) -> dict[str, Any]:
        found = self._experiments[: int(args.get("max_results") or 1000)]
        return {"experiments": found} if found else {}

    def _files(self, run_id: str, prefix: str) -> list[dict[str, Any]]:
        """FileInfo entries directly under `prefix` ("" for the root), paths relative to the run root."""
        entries: dict[str, dict[str, Any]] = {}
        base = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        for path, text in self._artifacts.get(run_id, {}).items():
            if not path.startswith(base):
                continue
            head, sep, _ = path[len(base) :].partition("/")
            full = base + head
            entries[full] = (
                {"path": full, "is_dir": True}
                if sep
                else {"path": full, "is_dir": False, "file_size": len(text.encode())}
            )
        return [entries[k] for k in sorted(entries)]

    def _list_artifacts(self, args: dict[str, Any]) -> dict[str, Any]:
        run = self._run(str(args.get("run_id") or args.get("run_uuid") or ""))
        files = self._files(run["info"]["run_id"], str(args.get("path") or ""))
        return {"root_uri": run["info"]["artifact_uri"], "files": files}

    def _locate(self, proxied: str) -> tuple[str, str] | None:
        """(run_id, path inside the run) for a path under the artifacts proxy root."""
        for run_id, run in self._runs.items():
            match = _ARTIFACT_URI.match(run["info"]["artifact_uri"])
            root = match.group("root").strip("/") if match else None
            if root and (proxied == root or proxied.startswith(root + "/")):
                return run_id, proxied[len(root) :].strip("/")
        return None

    def _list_proxied(self, proxied: str) -> dict[str, Any]:
        found = self._locate(proxied.strip("/"))
        if found is None:
            return {}
        run_id, inner = found
        # The proxy lists paths relative to the directory asked for; a file lists as nothing.
        files = [
            {**f, "path": f["path"][len(inner) + 1 :] if inner else f["path"]}
            for f in self._files(run_id, inner)
        ]
        return {"files": files} if files else {}

    def _download(self, proxied: str) -> Reply:
        found = self._locate(proxied.strip("/"))
        text = self._artifacts.get(found[0], {}).get(found[1]) if found else None
        if text is None:
            raise _MlflowError(404, "RESOURCE_DOES_NOT_EXIST", f"No such artifact: '{proxied}'")
        return 200, "text/plain", text.encode()

    # -- registry ------------------------------------------------------------------------------------
    def _model(self, name: str) -> dict[str, Any]:
        model = self._models.get(name)
        if model is None:
            raise _MlflowError(404, "RESOURCE_DOES_NOT_EXIST", f"Registered Model with name={name} not found")
        return model

    def _version(self, name: str, version: str) -> dict[str, Any]:
        key = (name, version)
        pending = self._pending.get(key)
        if pending is not None:
            if pending[0] <= 0:
                self._versions[key]["status"] = pending[1]
                self._versions[key]["last_updated_timestamp"] = _now_ms(self._clock)
                del self._pending[key]
            else:
                pending[0] -= 1
        found = self._versions.get(key)
        if found is None:
            raise _MlflowError(
                404, "RESOURCE_DOES_NOT_EXIST", f"Model Version (name={name}, version={version}) not found"
            )
        return found

    def _get_registered_model(self, args: dict[str, Any]) -> dict[str, Any]:
        name = str(args.get("name", ""))
        model = copy.deepcopy(self._model(name))
        versions = [v for (n, _), v in self._versions.items() if n == name]
        aliases = [{"alias": a, "version": v["version"]} for v in versions for a in v.get("aliases", [])]
        if versions:
            latest = max(versions, key=lambda v: int(v["version"]))
            model["latest_versions"] = [{k: v for k, v in latest.items() if k != "aliases"}]
        if aliases:
            model["aliases"] = aliases
        return {"registered_model": model}

    def _get_model_version(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"model_version": self._version(str(args.get("name", "")), str(args.get("version", "")))}

    def _get_by_alias(self, args: dict[str, Any]) -> dict[str, Any]:
        name, alias = str(args.get("name", "")), str(args.get("alias", ""))
        self._model(name)
        for (n, _), version in self._versions.items():
            if n == name and alias in version.get("aliases", []):
                return {"model_version": version}
        raise _MlflowError(400, "INVALID_PARAMETER_VALUE", f"Registered model alias {alias} not found.")

    def _create_model_version(self, args: dict[str, Any]) -> dict[str, Any]:
        name, source = str(args.get("name", "")), str(args.get("source", ""))
        if not source:
            raise _MlflowError(
                400, "INVALID_PARAMETER_VALUE", "Missing value for required parameter 'source'."
            )
        self._model(name)
        number = str(1 + max((int(v) for n, v in self._versions if n == name), default=0))
        now = _now_ms(self._clock)
        version: dict[str, Any] = {
            "name": name,
            "version": number,
            "creation_timestamp": now,
            "last_updated_timestamp": now,
            "current_stage": "None",
            "description": str(args.get("description") or ""),
            "source": source,
            "run_id": str(args.get("run_id") or ""),
            "status": "PENDING_REGISTRATION",
            "run_link": "",
        }
        if args.get("tags"):
            version["tags"] = list(args["tags"])
        final = self.on_version_created(copy.deepcopy(version))
        if self.pending_reads <= 0:
            version["status"] = final
        else:
            self._pending[(name, number)] = [self.pending_reads, final]
        self._versions[(name, number)] = version
        return {"model_version": version}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        sandbox: SandboxMlflowAPI = self.server.sandbox  # type: ignore[attr-defined]
        code, content_type, payload = sandbox.handle(self.command, self.path, raw)
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""
