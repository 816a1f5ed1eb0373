"""One read per object while Level 1 looks: the triage and every check share what the cluster and the
tracking server answered.

`ReadOnce` wraps a KubeGateway or an MlflowGateway. While it is `reading`, each read (the same method
with the same arguments, however they are passed) goes to the server once; a later or concurrent caller
gets the same answer, or the same error. `stop()` ends that before remediations run, so what they verify
is read afresh. Writes and anything not listed in READS pass straight through.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from typing import Any

from bot.core.errors import IntegrationError

READS = frozenset(
    {
        "read_job",
        "list_job_pods",
        "read_pod",
        "read_pod_log",
        "list_events",
        "read_cronjob",
        "list_pods",
        "list_jobs",
        "read_workflow",
        "list_workflows",
        # MLflow
        "get_run",
        "list_artifacts",
        "read_artifact_text",
        "read_artifact_tail",
    }
)


class _Answer:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done = False
        self.value: Any = None
        self.error: IntegrationError | None = None


class ReadOnce:
    """A KubeGateway whose reads are remembered until `stop()`; `calls` counts what reached the server."""

    def __init__(self, gateway: Any) -> None:
        self._gateway = gateway
        self._answers: dict[tuple[Any, ...], _Answer] = {}
        self._lock = threading.Lock()
        self.reading = True
        self.calls = 0

    def stop(self) -> None:
        """From now on every read goes to the server."""
        self.reading = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._gateway, name)
        if name not in READS or not callable(attr):
            return attr
        return self._remembered(name, attr)

    def _remembered(self, name: str, read: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(read)

        def call(*args: Any, **kwargs: Any) -> Any:
            if not self.reading:
                return read(*args, **kwargs)
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            key = (name, *sorted((k, repr(v)) for k, v in bound.arguments.items()))
            with self._lock:
                answer = self._answers.setdefault(key, _Answer())
            with answer.lock:
                if not answer.done:
                    self.calls += 1
                    try:
                        answer.value = read(*args, **kwargs)
                    except IntegrationError as exc:
                        answer.error = exc
                    answer.done = True
            if answer.error is not None:
                raise answer.error
            return answer.value

        return call
