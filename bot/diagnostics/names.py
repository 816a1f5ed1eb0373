"""What a person calls each check and remediation: "Pod logs", not `pod_logs_tail`; "Re-run with 4Gi", not
`rerun_job_with_more_memory`. Every name in the registry has one (tests/test_readable_names.py)."""

from __future__ import annotations

import re

CHECKS: dict[str, str] = {
    "triage": "Triage",
    "job_failed": "Job status",
    "pod_logs_tail": "Pod logs",
    "image_pull": "Image pull",
    "warning_events": "Warning events",
    "job_pods_oom": "Memory and restarts",
    "mlflow_run": "MLflow run",
    "tracking_health": "Tracking server health",
    "tracking_api": "Tracking API",
    "tracking_server_pods": "Tracking server pods",
    "model_version_status": "Model version status",
    "run_model_artifacts": "Model artifacts",
    "registered_model": "Registered model",
    "feature_freshness": "Feature freshness",
    "feature_schema": "Feature schema",
    "job_deadline": "Job deadline",
    "pods_pending": "Pending pods",
    "step_silent": "Step progress",
    "upstream_jobs": "Upstream jobs",
    "image_versions": "Image versions",
    "run_requirements": "Run requirements",
    "import_errors": "Import errors",
    "workflow_nodes": "Workflow nodes",
}

REMEDIATIONS: dict[str, str] = {
    "retry_job_with_debug": "Retry with debug logging",
    "rerun_job_with_more_memory": "Re-run with more memory",
    "recheck_tracking": "Re-check tracking server",
    "restart_tracking_server": "Restart tracking server",
    "reregister_model_version": "Re-register model version",
    "trigger_materialization": "Run feature materialization",
    "rerun_from_checkpoint": "Re-run from checkpoint",
    "rerun_with_known_good_image": "Re-run on known-good image",
    "retry_workflow": "Retry workflow",
}

_MEMORY = re.compile(r"with memory limit (\d+(?:\.\d+)?[KMGTPE]i?)\b")


def _fallback(name: str) -> str:
    return name.replace("_", " ").strip().capitalize() or "Unnamed step"


def check_name(name: str) -> str:
    """The human name of a check (a name it does not know is made readable)."""
    return CHECKS.get(name) or _fallback(name)


def remediation_name(name: str, plan: str = "") -> str:
    """The human name of a remediation attempt, with the memory it asked for when its plan names it."""
    if name == "retry_workflow" and plan.startswith("submit a new run"):
        return "Resubmit workflow"
    memory = _MEMORY.search(plan)
    if memory and name == "rerun_job_with_more_memory":
        return f"Re-run with {memory.group(1)}"
    if memory and name == "retry_workflow":
        return f"Retry workflow with {memory.group(1)}"
    return REMEDIATIONS.get(name) or _fallback(name)


def strip_own_name(name: str, summary: str) -> str:
    """A summary without the check's own id in front ("tracking_api did not answer …" → "did not answer
    …"): the human name stands before it."""
    for prefix in (f"{name} ", f"{name}: "):
        if name and summary.startswith(prefix):
            return summary[len(prefix) :]
    return summary
