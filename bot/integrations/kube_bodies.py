"""The bodies and quantities the Kubernetes adapter writes: a Job re-run from another Job's template, a
memory size as the shortest exact quantity, and an API model as the API's own camelCase JSON."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from bot.config import parse_memory

# Labels the API server generates for a Job; a copied template must not carry them.
GENERATED_LABELS = (
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "job-name",
    "batch.kubernetes.io/job-name",
)
_DROPPED_ANNOTATIONS = (
    "kubectl.kubernetes.io/last-applied-configuration",
    "batch.kubernetes.io/job-tracking",
)
# The suffixes a quantity is written with, largest first, and their sizes in bytes.
_UNITS = {
    "Ei": 2**60, "Pi": 2**50, "Ti": 2**40, "Gi": 2**30, "Mi": 2**20, "Ki": 2**10,
    "E": 10**18, "P": 10**15, "T": 10**12, "G": 10**9, "M": 10**6, "k": 10**3,
}  # fmt: skip


def format_memory(size: int) -> str:
    """The shortest exact quantity for `size` bytes, binary units first ("4Gi", "1536Mi", "2G")."""
    for suffix, unit in _UNITS.items():
        if size and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def to_wire(obj: Any) -> Any:
    """An API model (or anything holding them) as the API's camelCase JSON, without nulls."""
    if hasattr(obj, "to_dict") and not isinstance(obj, dict):
        return to_wire(obj.to_dict(serialize=True))
    if isinstance(obj, dict):
        return {k: to_wire(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list | tuple):
        return [to_wire(v) for v in obj]
    if isinstance(obj, datetime):
        return obj.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return obj


def job_rerun_body(
    job: client.V1Job | dict[str, Any],
    *,
    suffix: str,
    memory_limit: str | None = None,
    extra_env: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A new Job body (camelCase) that runs `job`'s pod template again, with the given changes."""
    source = copy.deepcopy(job) if isinstance(job, dict) else to_wire(job)
    meta, spec = source.get("metadata", {}), source.get("spec", {})
    # The API server caps generated names at 63 characters and appends 5 of its own.
    base = f"{meta['name'][: 57 - len(suffix) - 1]}-{suffix}-"
    template = copy.deepcopy(spec.get("template", {}))
    template_meta = template.setdefault("metadata", {})
    template_meta["labels"] = {
        **{k: v for k, v in template_meta.get("labels", {}).items() if k not in GENERATED_LABELS},
        **(labels or {}),
    }
    for container in template.get("spec", {}).get("containers", []):
        if memory_limit is not None:
            _set_memory(container, memory_limit)
        if extra_env:
            kept = [e for e in container.get("env", []) if e.get("name") not in extra_env]
            container["env"] = kept + [{"name": k, "value": v} for k, v in extra_env.items()]
    new_spec = {k: v for k, v in spec.items() if k not in ("selector", "manualSelector", "template")}
    new_spec["template"] = template
    kept_annotations = {k: v for k, v in meta.get("annotations", {}).items() if k not in _DROPPED_ANNOTATIONS}
    new_meta: dict[str, Any] = {
        "generateName": base,
        "namespace": meta.get("namespace"),
        "labels": {
            **{k: v for k, v in meta.get("labels", {}).items() if k not in GENERATED_LABELS},
            **(labels or {}),
        },
        "annotations": {**kept_annotations, **(annotations or {})},
    }
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": to_wire(new_meta), "spec": new_spec}


def _set_memory(container: dict[str, Any], limit: str) -> None:
    resources = container.setdefault("resources", {})
    resources.setdefault("limits", {})["memory"] = limit
    requests = resources.get("requests") or {}
    if "memory" in requests and parse_memory(requests["memory"]) > parse_memory(limit):
        requests["memory"] = limit
