"""What the Kubernetes-backed Level 1 checks and remediations share.

evidence (the exact calls and how results report them), guards (may Level 1 touch the target), objects
(reading Jobs and pods), logs (the log that explains a failure), checks (JobCheck and the warning-events
check) and reruns (re-running a Job and waiting for it). The names are re-exported here, so a category
module reads them as `kc.<name>`.
"""

from bot.diagnostics.kube_common.checks import JobCheck, WarningEventsCheck
from bot.diagnostics.kube_common.evidence import (
    create_job_call,
    error_result,
    events_call,
    evidence,
    job_brief,
    job_call,
    log_call,
    pod_brief,
    pods_call,
)
from bot.diagnostics.kube_common.guards import namespace_refusal, skip_reason
from bot.diagnostics.kube_common.logs import failed_container, last_error_line, read_failed_log
from bot.diagnostics.kube_common.objects import (
    condition,
    failed_condition,
    main_container,
    memory_limit,
    name_of,
    newest_first,
    terminations,
    waiting,
)
from bot.diagnostics.kube_common.reruns import (
    INCIDENT_LABEL,
    REMEDIATION_ANNOTATION,
    job_pods,
    rerun,
    verified_fact,
    wait_for_job,
)

__all__ = [
    "INCIDENT_LABEL",
    "REMEDIATION_ANNOTATION",
    "JobCheck",
    "WarningEventsCheck",
    "condition",
    "create_job_call",
    "error_result",
    "events_call",
    "evidence",
    "failed_condition",
    "failed_container",
    "job_brief",
    "job_call",
    "job_pods",
    "last_error_line",
    "log_call",
    "main_container",
    "memory_limit",
    "name_of",
    "namespace_refusal",
    "newest_first",
    "pod_brief",
    "pods_call",
    "read_failed_log",
    "rerun",
    "skip_reason",
    "terminations",
    "verified_fact",
    "wait_for_job",
    "waiting",
]
