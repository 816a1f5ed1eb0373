"""Alert → failure category, by explicit label or by ordered rules over labels, annotations and text."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from bot.core.models import AlertIn, Basis, Category, Classification, Target


@dataclass(frozen=True)
class Rule:
    category: Category
    pattern: re.Pattern[str]
    description: str
    configured: bool = False  # written in app.yaml (wins over what Level 1 reads), not built in


def _r(category: Category, pattern: str, description: str, configured: bool = False) -> Rule:
    return Rule(category, re.compile(pattern, re.IGNORECASE), description, configured)


def _w(alternatives: str) -> str:
    """`alternatives` as whole words, where `_`, `-`, `=` and punctuation separate words (so `mlflow`
    matches in `mlflow_tracking` and `down` does not match in `download`)."""
    return rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])"


# Order matters: the first rule that matches wins (specific signals before generic ones).
DEFAULT_RULES: tuple[Rule, ...] = (
    _r(
        Category.TRAINING_CRASH,
        _w(r"OOMKill(ed|ing)?|exit(ed)?[ _-]?(code)?[ =:]*137|out of memory"),
        "out-of-memory kill",
    ),
    _r(Category.TRAINING_CRASH, _w("CrashLoopBackOff"), "container crash loop"),
    _r(
        Category.MODEL_REGISTRATION_FAILED,
        _w(r"FAILED_REGISTRATION|RESOURCE_DOES_NOT_EXIST|model[ _-]?(registry|registration|version)")
        + "|"
        + _w(r"regist(er|ering|ration|ry)")
        + r".*"
        + _w("models?"),
        "model registry",
    ),
    _r(
        Category.TRACKING_DISCONNECTED,
        # a 5xx only where it is a status code ("status 503", "HTTP 502", "503 Bad Gateway"), not any
        # three digits (an MLflow run id is hex and often holds one)
        _w("mlflow")
        + ".*(?:"
        + _w(r"connection refused|unreachable|timed? ?out|down|unauthori[sz]ed|forbidden")
        + "|"
        + _w(r"(http|status|code|error|returned)[ :=]*5\d\d")
        + "|"
        + _w(r"5\d\d (internal server error|bad gateway|service unavailable|gateway time-?out)")
        + ")|"
        + _w(r"tracking (server|uri)"),
        "tracking server unreachable",
    ),
    _r(
        Category.FEATURE_STORE_ISSUE,
        _w(r"feature[ _-]?(store|view|table)s?|stale features?|freshness|materiali[sz]ation"),
        "feature store",
    ),
    _r(
        Category.VERSION_INCOMPATIBILITY,
        _w(r"ImportError|ModuleNotFoundError|VersionConflict|incompatible versions?|version conflict"),
        "dependency versions",
    ),
    _r(
        Category.ORCHESTRATION_TIMEOUT,
        _w(r"DeadlineExceeded|activeDeadlineSeconds|FailedScheduling|timed? ?out|stuck"),
        "deadline or stuck step",
    ),
    _r(
        Category.ORCHESTRATION_TIMEOUT,
        _w(r"(?:Argo)?[ _-]?Workflows?[ _-]?(?:Timed[ _-]?Out|Timeout|Stuck|Hung|Hanging)"),
        "Argo Workflow past its deadline or stuck",
    ),
    # an Argo Workflow is a pipeline: its failing is a failed step until its nodes say more
    _r(
        Category.PIPELINE_STEP_FAILED,
        _w(r"(?:Argo)?[ _-]?Workflows?[ _-]?(?:Failed|Failure|Errored|Error)") + "|" + _w("argo") + ".*fail",
        "failed Argo Workflow",
    ),
    _r(
        Category.PIPELINE_STEP_FAILED,
        _w(r"BackoffLimitExceeded|KubeJobFailed|job failed|step failed") + "|" + _w("pipeline") + ".*fail",
        "failed job or step",
    ),
    _r(Category.TRAINING_CRASH, _w(r"train(ing)?") + r".*(crash|fail)", "training failure"),
)

_TARGET_KEYS = {
    "namespace": ("namespace", "exported_namespace", "kubernetes_namespace"),
    "job": ("job_name", "k8s_job", "kube_job"),
    "pod": ("pod", "pod_name", "exported_pod"),
    "container": ("container",),
    "cluster": ("cluster",),
    "run_id": ("run_id", "mlflow_run_id"),
    "model": ("model", "model_name", "registered_model"),
    "model_version": ("model_version", "version"),
    "workflow": ("workflow", "workflow_name", "argo_workflow", "label_workflows_argoproj_io_workflow"),
}


def with_custom(rules: list[tuple[Category, str, str]]) -> tuple[Rule, ...]:
    """Rules from app.yaml (category, pattern, description), tried before the built-in ones."""
    custom = tuple(_r(c, p, d or f"app.yaml rule {i + 1}", True) for i, (c, p, d) in enumerate(rules))
    return custom + DEFAULT_RULES


def classify(alert: AlertIn, rules: tuple[Rule, ...] = DEFAULT_RULES) -> Classification:
    """Pick the category: an explicit `category` label wins, then what the source itself found, then the
    first matching rule (app.yaml's before the built-in ones). The basis says how strong the choice is:
    Level 1 may later re-classify from the target's evidence unless a label or an app.yaml rule decided."""
    explicit = alert.labels.get("category") or alert.annotations.get("category")
    if explicit:
        try:
            return Classification(Category(explicit), f"label category={explicit}", Basis.LABEL)
        except ValueError:
            pass
    if alert.category:
        try:
            reason = alert.category_reason or f"set by {alert.source}"
            return Classification(Category(alert.category), reason, Basis.SOURCE)
        except ValueError:
            pass
    haystacks = [
        ("labels", " ".join(f"{k}={v}" for k, v in alert.labels.items())),
        ("title", alert.title),
        ("annotations", " ".join(f"{k}={v}" for k, v in alert.annotations.items())),
        ("text", alert.text),
    ]
    for rule in rules:
        for where, text in haystacks:
            match = rule.pattern.search(text)
            if match:
                basis = Basis.CONFIGURED if rule.configured else Basis.NAME
                return Classification(
                    rule.category, f"{rule.description}: '{match.group(0)}' in {where}", basis
                )
    workflow = target_of(alert.labels).workflow
    if workflow:  # whatever watched it, an alert about a Workflow is about a pipeline that did not finish
        return Classification(
            Category.PIPELINE_STEP_FAILED,
            f"the alert names Argo Workflow {workflow} and no rule matched its name",
            Basis.NAME,
        )
    return Classification(
        Category.UNCLASSIFIED, "no rule matched the alert's labels, title, annotations or text", Basis.NONE
    )


def target_of(labels: Mapping[str, str]) -> Target:
    """What the alert points at, from the label names exporters commonly use."""
    found: dict[str, str | None] = {}
    for attr, keys in _TARGET_KEYS.items():
        found[attr] = next((labels[k] for k in keys if labels.get(k)), None)
    return Target(**found)


def target_key(labels: Mapping[str, str], default_cluster: str | None = None) -> str | None:
    """One key for what the alert is about, which every source reporting the same failure shares: the
    Kubernetes Job (cluster/namespace/name), the Argo Workflow, the MLflow run, the model version or the
    feature table; None when the alert names none of them."""
    t = target_of(labels)
    cluster = t.cluster or default_cluster or ""
    workflow = t.workflow
    table = labels.get("feature_table")
    if t.namespace and t.job:
        key = f"k8s-job:{cluster}/{t.namespace}/{t.job}"
    elif t.namespace and workflow:
        key = f"workflow:{cluster}/{t.namespace}/{workflow}"
    elif t.run_id:
        key = f"mlflow-run:{t.run_id}"
    elif t.model and t.model_version:
        key = f"model:{t.model}/{t.model_version}"
    elif table:
        key = f"feature-table:{table}"
    else:
        return None
    return key[:512]
