"""How Argo names what a Workflow runs: node IDs and v2 pod names from the FNV-1a hash of a node's name,
and the labels and annotations the controller puts on Workflows and their pods."""

from __future__ import annotations

GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "workflows"
API_VERSION = f"{GROUP}/{VERSION}"
QUALIFIED = f"{PLURAL}.{GROUP}"

PHASE_LABEL = "workflows.argoproj.io/phase"
COMPLETED_LABEL = "workflows.argoproj.io/completed"
WORKFLOW_LABEL = "workflows.argoproj.io/workflow"
NODE_ID_ANNOTATION = "workflows.argoproj.io/node-id"
NODE_NAME_ANNOTATION = "workflows.argoproj.io/node-name"
POD_NAME_FORMAT = "workflows.argoproj.io/pod-name-format"
DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"

# Node phases a node does not leave by itself (a retry deletes the node instead).
NODE_DONE = ("Succeeded", "Failed", "Error", "Skipped", "Omitted")

_FNV_BASIS, _FNV_PRIME = 2166136261, 16777619
_MAX_PREFIX = 253 - 10 - 1  # a pod name's prefix leaves room for "-" and the 10-digit hash


def fnv1a_32(text: str) -> int:
    """The 32-bit FNV-1a hash of `text`'s UTF-8 bytes (Go's hash/fnv New32a)."""
    value = _FNV_BASIS
    for byte in text.encode():
        value = ((value ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return value


def node_id(workflow: str, node_name: str) -> str:
    """A node's ID: the workflow's name for the root node, `<workflow>-<hash of the node name>` otherwise."""
    return workflow if node_name == workflow else f"{workflow}-{fnv1a_32(node_name)}"


def pod_name(workflow: str, node_name: str, template: str, version: str = "v2") -> str:
    """The pod a node runs in: its node ID under format v1, `<workflow>-<template>-<hash>` under v2."""
    if version == "v1":
        return node_id(workflow, node_name)
    if node_name == workflow:
        return workflow
    prefix = f"{workflow}-{template}" if template else workflow
    return f"{prefix[:_MAX_PREFIX]}-{fnv1a_32(node_name)}"


def task_node_name(workflow: str, task: str) -> str:
    """The node name of a task of the workflow's entrypoint DAG."""
    return f"{workflow}.{task}"
