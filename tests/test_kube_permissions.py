"""The rights `kube_permissions.required(config)` lists (what `doctor` asks about and the shipped RBAC grants)
cover every request the bot really makes: every Kubernetes-touching path is driven against the loopback
API server, each recorded request is mapped to the attributes the API server's authorizer checks (verb,
API group, resource/subresource, namespace, name), and each must be covered. A static check ties every
KubeGateway method that calls the API to the right it needs, so a new call cannot slip past both."""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from tempfile import TemporaryDirectory
from typing import Any

from bot.config import AppConfig, parse_config
from bot.core.models import Category
from bot.integrations import kubernetes
from bot.integrations.kube_permissions import _WRITES, required
from bot.integrations.kubernetes import KubeGateway
from bot.sandbox.demo import STAND_IN_KEY, run_escalation, run_level1, run_triage
from bot.sandbox.kube_api import Recorded
from bot.sandbox.llm_fixtures import claude_stand_in
from bot.sandbox.mlflow_api import SandboxMlflowAPI
from bot.sandbox.scenario_cluster import NS, FeatureTables, demo_config, job_rule, load_cluster
from bot.sandbox.world import SandboxWorld, alertmanager_payload
from bot.services.investigation_tools import InvestigationTools
from tests.kube_fixtures import make_context, recorded_clock
from tests.test_pollers import job
from tests.test_workflows_level1 import workflow_alert

ARGO = "argoproj.io"
# Every authenticated caller may create these (the default ClusterRole system:basic-user): `doctor`
# asks its questions this way, so no Role grants it.
EVERYONE = {("create", "authorization.k8s.io", "selfsubjectaccessreviews")}

# The right each KubeGateway method that calls the API server needs: (verb, API group, resource).
GATEWAY_CALLS: dict[str, tuple[str, str, str]] = {
    "read_job": ("get", "batch", "jobs"),
    "list_jobs": ("list", "batch", "jobs"),
    "create_job": ("create", "batch", "jobs"),
    "read_cronjob": ("get", "batch", "cronjobs"),
    "read_pod": ("get", "", "pods"),
    "list_pods": ("list", "", "pods"),
    "list_job_pods": ("list", "", "pods"),
    "delete_pod": ("delete", "", "pods"),
    "read_pod_log": ("get", "", "pods/log"),
    "read_last_log_line": ("get", "", "pods/log"),
    "list_events": ("list", "", "events"),
    "read_deployment": ("get", "apps", "deployments"),
    "patch_deployment": ("patch", "apps", "deployments"),
    "read_workflow": ("get", ARGO, "workflows"),
    "list_workflows": ("list", ARGO, "workflows"),
    "replace_workflow": ("update", ARGO, "workflows"),
    "create_workflow": ("create", ARGO, "workflows"),
    "may": ("create", "authorization.k8s.io", "selfsubjectaccessreviews"),
}

_CORE = re.compile(r"^/api/v1/(?P<rest>.+)$")
_GROUPED = re.compile(r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)/(?P<rest>.+)$")
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


@dataclass(frozen=True)
class Access:
    """A request as the API server's authorizer sees it."""

    verb: str
    group: str
    resource: str  # with its subresource, e.g. "pods/log"
    namespace: str | None  # None: cluster-scoped
    name: str | None  # None: the collection

    def kind(self) -> tuple[str, str, str]:
        return self.verb, self.group, self.resource

    def __str__(self) -> str:
        kind = f"{self.resource}.{self.group}" if self.group else self.resource
        where = f" in {self.namespace}" if self.namespace else " (cluster-scoped)"
        return f"{self.verb} {kind}" + (f" {self.name}" if self.name else "") + where


def access_of(request: Recorded) -> Access:
    """The authorizer's attributes of one request; ValueError for a path that is not a resource path."""
    if core := _CORE.match(request.path):
        group, rest = "", core["rest"]
    elif grouped := _GROUPED.match(request.path):
        group, rest = grouped["group"], grouped["rest"]
    else:
        raise ValueError(f"{request.method} {request.path} is not a Kubernetes resource path")
    parts = rest.split("/")
    namespace = None
    if parts[0] == "namespaces" and len(parts) >= 3:
        namespace, parts = parts[1], parts[2:]
    resource, name, sub = parts[0], (parts[1:2] or [None])[0], "/".join(parts[2:])
    if request.method == "GET":
        watching = request.query.get("watch") in ("true", "1")
        verb = "watch" if watching else ("get" if name else "list")
    elif request.method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = _VERBS[request.method]
    return Access(verb, group, f"{resource}/{sub}" if sub else resource, namespace, name)


def uncovered(requests: list[Recorded], config: AppConfig) -> list[str]:
    """Each distinct request no permission in required(config) (nor EVERYONE) allows."""
    rights = required(config)
    missing: dict[str, None] = {}
    for request in requests:
        a = access_of(request)
        if a.kind() in EVERYONE:
            continue
        if not any(
            (p.verb, p.group, p.resource, p.namespace) == (a.verb, a.group, a.resource, a.namespace)
            and (p.name is None or p.name == a.name)
            for p in rights
        ):
            missing[f"{a} ({request.method} {request.path})"] = None
    return list(missing)


# -- the paths the bot reaches Kubernetes by ----------------------------------------------------------------


def _resubmit(world: SandboxWorld) -> None:
    """A Workflow past its deadline: retry_workflow resubmits it as a new run (POST, not PUT)."""
    world.kube.load_fixture("workflow_deadline")
    world.post_alerts(alertmanager_payload([workflow_alert("nightly-retrain-q9w3e", "e0000000000000a1")]))
    world.settle()


def _pollers(world: SandboxWorld) -> None:
    """The Job poller (a Job that failed seconds ago, and its pods) and the Workflow poller."""
    assert world.bot is not None
    now = datetime.now(UTC)
    world.kube.load(job("nightly-export", now - timedelta(seconds=5), reason="DeadlineExceeded"))
    world.bot.pollers.poll_kube_jobs()
    world.bot.pollers.poll_workflows()
    world.settle()


def _investigation_tools(world: SandboxWorld) -> None:
    """Every Kubernetes tool Claude may call while it investigates."""
    gateway = KubeGateway.for_url(world.kube.url)
    try:
        ctx = make_context(
            gateway,
            Category.TRAINING_CRASH,
            "train-churn-model",
            recorded_clock(),
            namespaces=tuple(world.config.kubernetes.namespaces),
        )
        tools = InvestigationTools(ctx, [])
        pod = {"namespace": NS, "pod": "train-churn-model-x7k2p"}
        answers = [
            tools.pod_status(pod),
            tools.log_tail({**pod, "container": "trainer", "lines": 20, "previous": True}),
            tools.events({"namespace": NS, "name": pod["pod"], "kind": "Pod"}),
            tools.job({"namespace": NS, "name": "train-churn-model"}),
            tools.workflow({"namespace": NS, "name": "churn-training-pipeline-x8k2q"}),
        ]
    finally:
        gateway.close()
    assert all(answers), answers


def run_every_path() -> tuple[AppConfig, list[Recorded]]:
    """The demo (an escalation to a decision, every Level 1 scenario fixed and escalated, the triage
    scenarios, Claude's stand-in investigating), a Workflow resubmission, both pollers and the
    investigation tools, on the demo's cluster and config; the config and every request recorded."""
    with TemporaryDirectory(prefix="escalation-bot-rbac-") as tmp:
        features = FeatureTables(f"sqlite:///{tmp}/features.db")
        try:
            with (
                claude_stand_in(STAND_IN_KEY) as stand_in,
                SandboxMlflowAPI() as mlflow,
                SandboxWorld(
                    config=demo_config(features),
                    job_rule=job_rule(features),
                    mlflow_url=mlflow.url,
                    anthropic_url=stand_in.url,
                    anthropic_key=STAND_IN_KEY,
                ) as world,
            ):
                load_cluster(world.kube, mlflow)
                run_escalation(world, lambda _line: None)
                run_level1(world, mlflow, lambda _line: None)
                run_triage(world, lambda _line: None)
                _resubmit(world)
                _pollers(world)
                _investigation_tools(world)
                return world.config, list(world.kube.requests)
        finally:
            features.engine.dispose()


# What the run must exercise, so that a scenario change that stops making a kind of request is noticed:
# every right a gateway method needs except `may` (asked by `doctor` only).
EXERCISED = {kind for method, kind in GATEWAY_CALLS.items() if method != "may"}


def test_every_request_the_bot_makes_is_covered_by_the_rights_its_config_requires() -> None:
    config, requests = run_every_path()
    kinds = {access_of(r).kind() for r in requests}
    assert not EXERCISED - kinds, f"no longer exercised: {sorted(EXERCISED - kinds)}"
    assert len(requests) > 60  # the whole demo (about 120), not a handful of reads
    gaps = uncovered(requests, config)
    assert gaps == [], (
        "the bot made requests required(config) does not list (a real cluster answers 403); add the right "
        "to kube_permissions._READS/_WRITES and the Roles in deploy/kubernetes/base/rbac-*.yaml:\n"
        + "\n".join(gaps)
    )


def _config(allowlist: dict[str, Any], deployment: str | None = "ml-platform/mlflow-server") -> AppConfig:
    return parse_config(
        {
            "kubernetes": {"namespaces": [NS, "ml-platform"]},
            "mlflow": {"server_deployment": deployment},
            "remediation": {"allowlist": allowlist},
        }
    )


def _recorded(method: str, path: str, **query: str) -> Recorded:
    return Recorded(method, path, query, "application/json", None)


def test_a_request_no_right_covers_is_reported_with_what_it_needed() -> None:
    config = _config({"rerun_job_with_more_memory": {}})
    jobs, pods = f"/apis/batch/v1/namespaces/{NS}/jobs", f"/api/v1/namespaces/{NS}/pods"
    deployments = "/apis/apps/v1/namespaces/ml-platform/deployments"
    fine = [
        _recorded("GET", f"{jobs}/train-churn-model"),
        _recorded("POST", jobs),
        _recorded("GET", f"{pods}/train-churn-model-x7k2p/log", tailLines="50"),
        _recorded("GET", f"/api/v1/namespaces/{NS}/events", fieldSelector="involvedObject.name=x"),
        _recorded("GET", f"{deployments}/mlflow-server"),
        _recorded("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"),
    ]
    assert uncovered(fine, config) == []
    bad = [
        _recorded("DELETE", f"{jobs}/train-churn-model"),  # never granted
        _recorded("DELETE", f"{pods}/train-churn-model-x7k2p"),  # retry_workflow is not allowlisted
        _recorded("PATCH", f"{deployments}/mlflow-server"),  # restart_tracking_server is not either
        _recorded("GET", deployments),  # the named Deployment only, never the list
        _recorded("GET", pods, watch="true"),  # a watch is not a list
        _recorded("GET", "/api/v1/namespaces/kube-system/pods"),  # not a watched namespace
    ]
    assert uncovered(bad, config) == [
        f"delete jobs.batch train-churn-model in {NS} (DELETE {jobs}/train-churn-model)",
        f"delete pods train-churn-model-x7k2p in {NS} (DELETE {pods}/train-churn-model-x7k2p)",
        f"patch deployments.apps mlflow-server in ml-platform (PATCH {deployments}/mlflow-server)",
        f"list deployments.apps in ml-platform (GET {deployments})",
        f"watch pods in {NS} (GET {pods})",
        "list pods in kube-system (GET /api/v1/namespaces/kube-system/pods)",
    ]


def test_requests_map_to_the_attributes_the_authorizer_checks() -> None:
    cases = {
        ("GET", "/api/v1/namespaces/a/pods/p/log"): Access("get", "", "pods/log", "a", "p"),
        ("GET", "/api/v1/namespaces/a/pods"): Access("list", "", "pods", "a", None),
        ("DELETE", "/api/v1/namespaces/a/pods"): Access("deletecollection", "", "pods", "a", None),
        ("PUT", f"/apis/{ARGO}/v1alpha1/namespaces/a/workflows/w"): Access("update", ARGO, "workflows", "a",
                                                                            "w"),
        ("PATCH", "/apis/apps/v1/namespaces/a/deployments/d"): Access("patch", "apps", "deployments", "a",
                                                                      "d"),
        ("GET", "/api/v1/namespaces/a"): Access("get", "", "namespaces", None, "a"),
        ("GET", "/api/v1/nodes"): Access("list", "", "nodes", None, None),
    }  # fmt: skip
    assert {k: access_of(_recorded(*k)) for k in cases} == cases
    assert str(cases[("GET", "/api/v1/nodes")]) == "list nodes (cluster-scoped)"


# -- the static check -------------------------------------------------------------------------------------


def _methods_calling_the_api(source: str) -> set[str]:
    """KubeGateway's public methods whose body calls self._call (every call to the API server does)."""
    tree = ast.parse(source)
    [gateway] = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "KubeGateway"]
    return {
        method.name
        for method in gateway.body
        if isinstance(method, ast.FunctionDef) and not method.name.startswith("_")
        for node in ast.walk(method)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "_call"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "self"
    }


def test_every_gateway_method_that_calls_the_api_has_a_right_required_lists() -> None:
    calling = _methods_calling_the_api(inspect.getsource(kubernetes))
    new = sorted(calling - set(GATEWAY_CALLS))
    assert not new, (
        f"KubeGateway.{', '.join(new)} call(s) the API server with no known right: add the right it needs "
        "to kube_permissions._READS/_WRITES (and the Roles in deploy/kubernetes/base/rbac-*.yaml), and the "
        "method to GATEWAY_CALLS in this test"
    )
    gone = sorted(set(GATEWAY_CALLS) - calling)
    assert not gone, (
        f"GATEWAY_CALLS names methods KubeGateway no longer has (or that no longer call it): {gone}"
    )
    everything = _config({name: {} for name in [*_WRITES, "restart_tracking_server"]})
    listed = {(p.verb, p.group, p.resource) for p in required(everything)}
    unlisted = sorted({kind for kind in GATEWAY_CALLS.values() if kind not in EVERYONE} - listed)
    assert not unlisted, (
        f"rights KubeGateway's calls need that required() never lists, even with every remediation "
        f"allowlisted: {unlisted}; add them to kube_permissions._READS/_WRITES"
    )


def test_the_finder_sees_a_new_method_that_calls_the_api_and_nothing_else() -> None:
    source = """
class KubeGateway:
    def evict_pod(self, ns, name):
        return self._call(f"POST eviction {ns}/{name}", lambda t: None)

    def describe(self):
        return "cluster"

    def _call(self, what, call):
        return call(1.0)
"""
    assert _methods_calling_the_api(source) == {"evict_pod"}
    assert "evict_pod" not in GATEWAY_CALLS  # so the check above would name it
