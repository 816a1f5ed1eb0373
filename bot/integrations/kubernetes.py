"""The Kubernetes adapter: the only module that talks to the API server through the `kubernetes` client.

Every call passes a request timeout and turns client and transport failures into IntegrationError
(RetryableError for 429, 5xx and connection problems) whose message names the call that failed.
`connect` finds the cluster the way `run` does: KUBECONFIG, else the pod's service account.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from kubernetes import client
from kubernetes.client import CoreV1Event, V1Job, V1JobCondition, V1Pod
from kubernetes.config import ConfigException, new_client_from_config
from kubernetes.config.incluster_config import (
    SERVICE_HOST_ENV_NAME,
    SERVICE_PORT_ENV_NAME,
    InClusterConfigLoader,
)
from pydantic import ValidationError

from bot.config.integrations import KubernetesSettings
from bot.core.errors import IntegrationError, RetryableError
from bot.integrations.kube_bodies import format_memory, job_rerun_body, to_wire

# The API models the diagnostics read, re-exported so no other module imports the client.
__all__ = [
    "Connection",
    "CoreV1Event",
    "KubeGateway",
    "V1Job",
    "V1JobCondition",
    "V1Pod",
    "connect",
    "format_memory",
    "job_rerun_body",
    "to_wire",
]

SYSTEM = "kubernetes"
# Where the kubelet mounts a pod's service-account token, cluster CA and namespace.
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_T = TypeVar("_T")
# Argo Workflows, served as a custom resource
_ARGO_GROUP, _ARGO_VERSION, _WORKFLOWS = "argoproj.io", "v1alpha1", "workflows"


@dataclass(frozen=True)
class Connection:
    """The gateway the environment leads to, or why there is none."""

    gateway: KubeGateway | None
    source: str  # "KUBECONFIG=<path>", "service account ... in namespace ...", or "" when there is neither
    problem: str = ""  # why the source that is there could not be used

    @property
    def configured(self) -> bool:
        return bool(self.source)


def connect(
    kubeconfig: str | None, settings: KubernetesSettings, account_dir: Path | None = None
) -> Connection:
    """The cluster from KUBECONFIG when it is set; else, in a pod (KUBERNETES_SERVICE_HOST and _PORT set),
    from its service account in `account_dir` (token re-read when the kubelet rotates it); else none.
    Every call the gateway makes then waits at most `settings.request_timeout`."""
    configuration = client.Configuration()
    # Reconnect twice on connection errors, but never re-send a request that timed out.
    configuration.retries = urllib3.Retry(total=2, connect=2, read=0, status=0, backoff_factor=0.2)
    timeout = settings.request_timeout.total_seconds()
    if kubeconfig:
        source = f"KUBECONFIG={kubeconfig}"
        try:
            api_client = new_client_from_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
        except (ConfigException, OSError, ValueError) as exc:
            return Connection(None, source, f"cannot load it: {exc}")
        return Connection(KubeGateway(api_client, settings.cluster_name, timeout), source)
    # the kubelet sets these two in every container; the client reads them itself
    if not (os.environ.get(SERVICE_HOST_ENV_NAME) and os.environ.get(SERVICE_PORT_ENV_NAME)):
        return Connection(None, "")
    folder = SERVICE_ACCOUNT_DIR if account_dir is None else account_dir
    namespace_file = folder / "namespace"
    namespace = namespace_file.read_text().strip() if namespace_file.is_file() else "?"
    source = f"the pod's service account (namespace {namespace})"
    token, ca = str(folder / "token"), str(folder / "ca.crt")
    loader = InClusterConfigLoader(token_filename=token, cert_filename=ca)  # type: ignore[no-untyped-call]
    try:
        loader.load_and_set(configuration)  # type: ignore[no-untyped-call]
    except (ConfigException, OSError) as exc:
        return Connection(None, source, f"{exc} (looked in {folder})")
    return Connection(KubeGateway(client.ApiClient(configuration), settings.cluster_name, timeout), source)


class KubeGateway:
    """Reads and re-runs Jobs, pods, logs and events through one configured ApiClient."""

    def __init__(
        self, api_client: client.ApiClient, cluster: str = "default", request_timeout: float = 10.0
    ) -> None:
        self.api_client = api_client
        self.cluster = cluster
        self.request_timeout = request_timeout
        self._core = client.CoreV1Api(api_client)
        self._batch = client.BatchV1Api(api_client)
        self._apps = client.AppsV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self._authorization = client.AuthorizationV1Api(api_client)

    @classmethod
    def for_url(cls, url: str, cluster: str = "sandbox", request_timeout: float = 10.0) -> KubeGateway:
        """A gateway to an API server that needs no credentials (the sandbox)."""
        configuration = client.Configuration(host=url)
        configuration.retries = False  # a fault must surface at once, not after urllib3's hidden retries
        return cls(client.ApiClient(configuration), cluster, request_timeout)

    def describe(self) -> str:
        """Which cluster this gateway talks to, for reports and `doctor`."""
        return f"cluster {self.cluster} ({self.api_client.configuration.host})"

    def close(self) -> None:
        """Release the connection pool."""
        self.api_client.close()  # type: ignore[no-untyped-call]

    def read_job(self, ns: str, name: str) -> client.V1Job:
        """GET /apis/batch/v1/namespaces/{ns}/jobs/{name}."""
        return self._call(
            f"GET job {ns}/{name}", lambda t: self._batch.read_namespaced_job(name, ns, _request_timeout=t)
        )

    def list_jobs(self, ns: str, label_selector: str | None = None) -> list[client.V1Job]:
        """GET /apis/batch/v1/namespaces/{ns}/jobs (optionally filtered by labels)."""
        jobs = self._call(
            f"LIST jobs {ns}" + (f" {label_selector}" if label_selector else ""),
            lambda t: self._batch.list_namespaced_job(ns, label_selector=label_selector, _request_timeout=t),
        )
        return list(jobs.items or [])

    def list_job_pods(self, ns: str, job: str) -> list[client.V1Pod]:
        """The pods a Job created (label `job-name=<job>`)."""
        pods = self._call(
            f"LIST pods {ns} job-name={job}",
            lambda t: self._core.list_namespaced_pod(
                ns, label_selector=f"job-name={job}", _request_timeout=t
            ),
        )
        return list(pods.items or [])

    def read_pod(self, ns: str, name: str) -> client.V1Pod:
        """GET /api/v1/namespaces/{ns}/pods/{name}."""
        return self._call(
            f"GET pod {ns}/{name}", lambda t: self._core.read_namespaced_pod(name, ns, _request_timeout=t)
        )

    def read_pod_log(
        self, ns: str, pod: str, container: str | None = None, tail_lines: int = 50, previous: bool = False
    ) -> str:
        """The last `tail_lines` lines of a container's log (of its previous run when `previous`)."""
        where = f"{ns}/{pod}" + (f"/{container}" if container else "") + (" (previous)" if previous else "")
        text = self._call(
            f"GET log {where}",
            lambda t: self._core.read_namespaced_pod_log(
                pod,
                ns,
                container=container,
                tail_lines=tail_lines,
                previous=previous or None,
                _request_timeout=t,
            ),
        )
        return text or ""

    def list_events(self, ns: str, name: str, kind: str | None = None) -> list[client.CoreV1Event]:
        """Events whose involved object is `name` (and of `kind`, when given)."""
        selector = f"involvedObject.name={name}" + (f",involvedObject.kind={kind}" if kind else "")
        events = self._call(
            f"LIST events {ns} {selector}",
            lambda t: self._core.list_namespaced_event(ns, field_selector=selector, _request_timeout=t),
        )
        return list(events.items or [])

    def create_job(self, ns: str, body: dict[str, Any] | client.V1Job) -> client.V1Job:
        """POST /apis/batch/v1/namespaces/{ns}/jobs."""
        job = client.V1Job.from_dict(body) if isinstance(body, dict) else body
        if job is None:
            raise IntegrationError(SYSTEM, f"POST job {ns}: empty Job body")
        return self._call(
            f"POST job {ns}", lambda t: self._batch.create_namespaced_job(ns, job, _request_timeout=t)
        )

    def read_cronjob(self, ns: str, name: str) -> client.V1CronJob:
        """GET /apis/batch/v1/namespaces/{ns}/cronjobs/{name}."""
        return self._call(
            f"GET cronjob {ns}/{name}",
            lambda t: self._batch.read_namespaced_cron_job(name, ns, _request_timeout=t),
        )

    def list_pods(
        self, ns: str, label_selector: str | None = None, field_selector: str | None = None
    ) -> list[client.V1Pod]:
        """Pods in `ns` matching the selectors (e.g. field_selector="status.phase=Pending")."""
        selectors = ",".join(filter(None, [label_selector, field_selector])) or "all"
        pods = self._call(
            f"LIST pods {ns} {selectors}",
            lambda t: self._core.list_namespaced_pod(
                ns, label_selector=label_selector, field_selector=field_selector, _request_timeout=t
            ),
        )
        return list(pods.items or [])

    def read_last_log_line(self, ns: str, pod: str, container: str | None = None) -> str:
        """The container's last log line, prefixed with its RFC 3339 timestamp (timestamps=true)."""
        where = f"{ns}/{pod}" + (f"/{container}" if container else "")
        text = self._call(
            f"GET log {where} (last line, timestamps)",
            lambda t: self._core.read_namespaced_pod_log(
                pod, ns, container=container, tail_lines=1, timestamps=True, _request_timeout=t
            ),
        )
        return (text or "").strip()

    def read_deployment(self, ns: str, name: str) -> client.V1Deployment:
        """GET /apis/apps/v1/namespaces/{ns}/deployments/{name}."""
        return self._call(
            f"GET deployment {ns}/{name}",
            lambda t: self._apps.read_namespaced_deployment(name, ns, _request_timeout=t),
        )

    def patch_deployment(self, ns: str, name: str, body: dict[str, Any]) -> client.V1Deployment:
        """PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name} (strategic merge patch)."""
        return self._call(
            f"PATCH deployment {ns}/{name}",
            lambda t: self._apps.patch_namespaced_deployment(name, ns, body, _request_timeout=t),
        )

    def read_workflow(self, ns: str, name: str) -> dict[str, Any]:
        """GET /apis/argoproj.io/v1alpha1/namespaces/{ns}/workflows/{name} (the Workflow as a dict)."""
        what = f"GET workflow {ns}/{name}"
        found = self._call(
            what,
            lambda t: self._custom.get_namespaced_custom_object(
                _ARGO_GROUP, _ARGO_VERSION, ns, _WORKFLOWS, name, _request_timeout=t
            ),
        )
        return _object(what, found)

    def list_workflows(self, ns: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        """GET /apis/argoproj.io/v1alpha1/namespaces/{ns}/workflows (optionally filtered by labels, e.g.
        `workflows.argoproj.io/phase=Failed`)."""
        what = f"LIST workflows {ns}" + (f" {label_selector}" if label_selector else "")
        found = _object(
            what,
            self._call(
                what,
                lambda t: self._custom.list_namespaced_custom_object(
                    _ARGO_GROUP,
                    _ARGO_VERSION,
                    ns,
                    _WORKFLOWS,
                    label_selector=label_selector,
                    _request_timeout=t,
                ),
            ),
        )
        return [_object(what, item) for item in found.get("items") or []]

    def replace_workflow(self, ns: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT /apis/argoproj.io/v1alpha1/namespaces/{ns}/workflows/{name}: replaces the whole Workflow.
        `body.metadata.resourceVersion` must be the stored one: a stale one is IntegrationError 409."""
        what = f"PUT workflow {ns}/{name}"
        written = self._call(
            what,
            lambda t: self._custom.replace_namespaced_custom_object(
                _ARGO_GROUP, _ARGO_VERSION, ns, _WORKFLOWS, name, body, _request_timeout=t
            ),
        )
        return _object(what, written)

    def create_workflow(self, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /apis/argoproj.io/v1alpha1/namespaces/{ns}/workflows (a resubmit; honours generateName)."""
        what = f"POST workflow {ns}"
        created = self._call(
            what,
            lambda t: self._custom.create_namespaced_custom_object(
                _ARGO_GROUP, _ARGO_VERSION, ns, _WORKFLOWS, body, _request_timeout=t
            ),
        )
        return _object(what, created)

    def delete_pod(self, ns: str, name: str) -> None:
        """DELETE /api/v1/namespaces/{ns}/pods/{name}."""
        self._call(
            f"DELETE pod {ns}/{name}",
            lambda t: self._core.delete_namespaced_pod(name, ns, _request_timeout=t),
        )

    def may(self, ns: str, group: str, resource: str, verb: str, name: str | None = None) -> tuple[bool, str]:
        """Whether this gateway's identity may `verb` `resource` ("pods/log": a subresource) in `ns`, and
        the API server's reason: POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews."""
        plain, _, sub = resource.partition("/")
        attributes = client.V1ResourceAttributes(
            namespace=ns, group=group, resource=plain, subresource=sub or None, verb=verb, name=name
        )
        review = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes)
        )
        answer = self._call(
            f"POST selfsubjectaccessreview ({verb} {resource} in {ns})",
            lambda t: self._authorization.create_self_subject_access_review(review, _request_timeout=t),
        )
        status = answer.status
        return bool(status and status.allowed), str(status.reason or "") if status else ""

    def _call(self, what: str, call: Callable[[float], _T]) -> _T:
        try:
            return call(self.request_timeout)
        except client.ApiException as exc:
            raise _api_error(what, exc) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise RetryableError(SYSTEM, f"{what}: {type(exc).__name__}: {exc}") from exc
        except ValidationError as exc:
            raise IntegrationError(
                SYSTEM, f"{what}: unexpected response: {exc.error_count()} invalid fields"
            ) from exc


def _object(what: str, answer: Any) -> dict[str, Any]:
    """A custom object the client returned as parsed JSON; anything else is an unexpected response."""
    if not isinstance(answer, dict):
        raise IntegrationError(SYSTEM, f"{what}: unexpected response: {type(answer).__name__}, not an object")
    return answer


def _api_error(what: str, exc: client.ApiException) -> IntegrationError:
    status = int(exc.status or 0)
    reason, message = exc.reason or "", ""
    try:
        body = json.loads(exc.body or "")
        reason, message = body.get("reason") or reason, body.get("message", "")
    except (ValueError, AttributeError):
        message = (exc.body or "")[:200] if isinstance(exc.body, str) else ""
    text = f"{what}: {status} {reason}" + (f" ({message})" if message else "")
    if status == 429 or status >= 500:
        retry_after = (exc.headers or {}).get("Retry-After")
        seconds = float(retry_after) if retry_after and retry_after.isdigit() else None
        return RetryableError(SYSTEM, text, status, retry_after=seconds)
    return IntegrationError(SYSTEM, text, status or None)
