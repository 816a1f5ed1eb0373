"""MLflow adapter: the tracking server and model registry through the real MlflowClient, failing fast.

MLflow's client retries 7 times over about 4 minutes by default; a bot that must report within its
Level 1 budget sets its own request timeout and retry count before the first call.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from bot.core.errors import IntegrationError, RetryableError
from bot.core.redact import redact

SYSTEM = "mlflow"


@dataclass(frozen=True)
class Probe:
    """One plain HTTP GET against the tracking server (MlflowClient has no health call)."""

    url: str
    ok: bool
    status: int | None
    body: str
    latency_ms: int
    error: str | None = None

    def evidence(self) -> dict[str, Any]:
        return {
            "call": f"GET {self.url}",
            "status": self.status,
            "response": self.body[:500],
            "latency_ms": self.latency_ms,
            "error": self.error,
        }


def configure_client(timeout_s: float, max_retries: int) -> None:
    """Set MLflow's HTTP timeout and retries for this process (MLflow reads them per request)."""
    from mlflow.environment_variables import (
        MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
    )

    MLFLOW_HTTP_REQUEST_TIMEOUT.set(str(max(1, int(timeout_s))))  # type: ignore[no-untyped-call]
    MLFLOW_HTTP_REQUEST_MAX_RETRIES.set(str(max_retries))  # type: ignore[no-untyped-call]
    MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.set("1")  # type: ignore[no-untyped-call]


class MlflowGateway:
    """The calls Level 1 makes to MLflow; every failure becomes an IntegrationError naming the call."""

    def __init__(self, tracking_uri: str, timeout_s: float = 10.0, max_retries: int = 2) -> None:
        from mlflow import MlflowClient

        configure_client(timeout_s, max_retries)
        self.tracking_uri = tracking_uri.rstrip("/")
        self.timeout_s = timeout_s
        self.client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def describe(self) -> str:
        return f"MLflow tracking server {redact(self.tracking_uri)}"

    # -- plain HTTP probes -------------------------------------------------------------------------------
    def probe(self, path: str, timeout_s: float | None = None) -> Probe:
        """GET `path` (e.g. /health, /version) without retries, timing it."""
        url = f"{self.tracking_uri}{path}"
        shown = redact(url)
        started = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=timeout_s or min(self.timeout_s, 5.0)) as resp:
                body = resp.read(2000).decode("utf-8", "replace")
                ms = int((time.monotonic() - started) * 1000)
                return Probe(shown, 200 <= resp.status < 300, resp.status, body.strip(), ms)
        except urllib.error.HTTPError as exc:
            ms = int((time.monotonic() - started) * 1000)
            body = exc.read(2000).decode("utf-8", "replace") if exc.fp else ""
            return Probe(shown, False, exc.code, body.strip(), ms, f"HTTP {exc.code} {exc.reason}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            ms = int((time.monotonic() - started) * 1000)
            reason = getattr(exc, "reason", exc)
            return Probe(shown, False, None, "", ms, redact(f"{type(reason).__name__}: {reason}"))

    # -- client calls ----------------------------------------------------------------------------------
    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return fn(*args, **kwargs)
        except MlflowException as exc:
            code = getattr(exc, "error_code", "") or ""
            message = redact(f"{what}: {code} {exc.message}".strip())
            status = getattr(exc, "get_http_status_code", lambda: None)()
            if code in ("TEMPORARILY_UNAVAILABLE", "INTERNAL_ERROR") or (status or 0) >= 500:
                raise RetryableError(SYSTEM, message, status) from None
            raise IntegrationError(SYSTEM, message, status) from None
        except Exception as exc:  # connection errors surface as requests/urllib3 exceptions
            raise RetryableError(SYSTEM, redact(f"{what}: {type(exc).__name__}: {exc}")) from None

    def get_run(self, run_id: str) -> Any:
        return self._call(f"GET run {run_id}", self.client.get_run, run_id)

    def search_runs(self, experiment_ids: list[str], filter_string: str, max_results: int = 50) -> list[Any]:
        return list(
            self._call(
                "search runs",
                self.client.search_runs,
                experiment_ids,
                filter_string=filter_string,
                max_results=max_results,
            )
        )

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[Any]:
        return list(
            self._call(f"list artifacts {run_id}/{path or ''}", self.client.list_artifacts, run_id, path)
        )

    def read_artifact_text(self, run_id: str, path: str, max_bytes: int = 65536) -> str | None:
        """The text of one run artifact (None when it does not exist), at most `max_bytes`."""
        import tempfile
        from pathlib import Path

        parent = str(Path(path).parent) if "/" in path else None
        names = {f.path for f in self.list_artifacts(run_id, parent) if not f.is_dir}
        if path not in names:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            local = self._call(
                f"download artifact {run_id}/{path}", self.client.download_artifacts, run_id, path, tmp
            )
            data = Path(local).read_bytes()[:max_bytes]
        return data.decode("utf-8", "replace")

    def read_artifact_tail(self, run_id: str, path: str, max_bytes: int = 65536) -> str | None:
        """The last `max_bytes` of one run artifact as text (None when it does not exist)."""
        import tempfile
        from pathlib import Path

        parent = str(Path(path).parent) if "/" in path else None
        names = {f.path for f in self.list_artifacts(run_id, parent) if not f.is_dir}
        if path not in names:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            local = self._call(
                f"download artifact {run_id}/{path}", self.client.download_artifacts, run_id, path, tmp
            )
            with Path(local).open("rb") as f:
                size = f.seek(0, 2)
                f.seek(max(0, size - max_bytes))
                data = f.read()
        return data.decode("utf-8", "replace")

    def search_experiments(self, max_results: int = 1) -> list[Any]:
        """A cheap authenticated API call: the first `max_results` experiments."""
        return list(
            self._call(
                f"search experiments (max_results={max_results})",
                self.client.search_experiments,
                max_results=max_results,
            )
        )

    def experiments(self, names: list[str]) -> list[tuple[str, str]]:
        """(id, name) of the named experiments that exist; of every active one when `names` is empty."""
        if names:
            found = [self._call(f"GET experiment {n}", self.client.get_experiment_by_name, n) for n in names]
            return [(e.experiment_id, e.name) for e in found if e is not None]
        from mlflow.entities import ViewType

        result: list[tuple[str, str]] = []
        token: str | None = None
        while True:
            page = self._call(
                "search experiments (active)",
                self.client.search_experiments,
                view_type=ViewType.ACTIVE_ONLY,
                max_results=1000,
                page_token=token,
            )
            result.extend((e.experiment_id, e.name) for e in page)
            token = page.token
            if not token:
                return result

    def runs_ended_after(
        self, experiment_ids: list[str], status: str, after_ms: int, page_size: int = 500
    ) -> list[Any]:
        """Every run in the experiments with `status` whose end_time is after `after_ms`, oldest first."""
        if not experiment_ids:
            return []
        # the search grammar compares status with one value only: no IN list for attributes
        query = f"attributes.status = '{status}' AND attributes.end_time > {int(after_ms)}"
        runs: list[Any] = []
        token: str | None = None
        while True:
            page = self._call(
                f"search runs ({query})",
                self.client.search_runs,
                experiment_ids,
                filter_string=query,
                max_results=page_size,
                order_by=["attributes.end_time ASC"],
                page_token=token,
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def run_url(self, experiment_id: str, run_id: str) -> str:
        """The run's page in the MLflow UI (credentials in the tracking URI are redacted)."""
        return redact(f"{self.tracking_uri}/#/experiments/{experiment_id}/runs/{run_id}")

    def get_registered_model(self, name: str) -> Any:
        return self._call(f"GET registered model {name}", self.client.get_registered_model, name)

    def get_model_version(self, name: str, version: str) -> Any:
        return self._call(f"GET model version {name}/{version}", self.client.get_model_version, name, version)

    def get_model_version_by_alias(self, name: str, alias: str) -> Any:
        return self._call(
            f"GET model alias {name}@{alias}", self.client.get_model_version_by_alias, name, alias
        )

    def create_model_version(
        self, name: str, source: str, run_id: str | None = None, tags: dict[str, str] | None = None
    ) -> Any:
        return self._call(
            f"POST model version {name} from {source}",
            self.client.create_model_version,
            name,
            source,
            run_id=run_id,
            tags=tags,
            await_creation_for=0,
        )
