"""What the MLflow-backed Level 1 checks share: which run an incident is about, the calls they report,
a readable brief of a run, finding artifacts by name in the run's top folders, and the exact version
pins in the environment files MLflow logs with a model (requirements.txt, python_env.yaml, conda.yaml)."""

from __future__ import annotations

import fnmatch
import re
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml
from packaging.requirements import InvalidRequirement, Requirement

from bot.core.errors import IntegrationError
from bot.core.models import CheckResult, CheckStatus
from bot.core.redact import redact
from bot.diagnostics import kube_common as kc
from bot.diagnostics.base import Check, Context
from bot.integrations.kubernetes import KubeGateway
from bot.integrations.mlflow import MlflowGateway

RUN_ID_ANNOTATION = "mlflow.org/run-id"
REQUIREMENT_FILES = ("requirements.txt", "python_env.yaml", "conda.yaml")  # what MLflow logs with a model
CONDA_PIN = re.compile(r"^(?P<pkg>[A-Za-z0-9_.-]+)\s*=\s*(?P<ver>[0-9][^=\s,|]*)$")  # conda's `numpy=1.24`
RUN_ID_LABELS = ("run_id", "mlflow_run_id")
FAILED_STATUSES = frozenset({"FAILED", "KILLED"})
LOG_TAIL_LINES = 40
LOG_TAIL_BYTES = 64 * 1024
STDERR_FIRST = ("stderr.log", "logs/stderr.log")
MAX_DIRS = 20  # top-level folders searched for artifacts; a run with more is unusual


# -- the exact calls, as reported in evidence ---------------------------------------------------------
def run_call(run_id: str) -> str:
    return f"GET /api/2.0/mlflow/runs/get?run_id={run_id}"


def list_call(run_id: str, path: str | None = None) -> str:
    return f"list artifacts runs:/{run_id}/{path or ''}"


def artifact_call(run_id: str, path: str) -> str:
    return f"download runs:/{run_id}/{path}"


# -- which run --------------------------------------------------------------------------------------
def run_id_of(ctx: Context) -> tuple[str | None, str | None]:
    """The MLflow run the incident is about and where that came from (alert label or Job annotation)."""
    if ctx.target.run_id:
        return ctx.target.run_id, "the alert's run_id label"
    for key in RUN_ID_LABELS:
        if ctx.labels.get(key):
            return ctx.labels[key], f"the alert's {key} label"
    gateway: KubeGateway | None = ctx.deps.kube
    if gateway is None or kc.skip_reason(ctx):
        return None, None
    try:
        job = gateway.read_job(str(ctx.target.namespace), str(ctx.target.job))
    except IntegrationError:
        return None, None
    annotations = (job.metadata.annotations if job.metadata else None) or {}
    run_id = annotations.get(RUN_ID_ANNOTATION)
    where = f"annotation {RUN_ID_ANNOTATION} of job {ctx.target.namespace}/{ctx.target.job}"
    return (run_id, where) if run_id else (None, None)


# -- reading a run ----------------------------------------------------------------------------------
def iso_ms(ms: int | None) -> str | None:
    """An MLflow millisecond timestamp as ISO 8601 UTC (None stays None)."""
    if not ms:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def user_tags(tags: dict[str, str]) -> dict[str, str]:
    """The run's own tags, without MLflow's `mlflow.*` system tags."""
    return {k: v for k, v in sorted(tags.items()) if not k.startswith("mlflow.")}


def run_brief(run: Any) -> dict[str, Any]:
    """The parts of a run a reader needs: status, times, latest metrics, params and its own tags."""
    info, data = run.info, run.data
    return {
        "run_id": info.run_id,
        "run_name": info.run_name,
        "experiment_id": info.experiment_id,
        "status": info.status,
        "start_time": iso_ms(info.start_time),
        "end_time": iso_ms(info.end_time),
        "metrics": dict(sorted(data.metrics.items())),
        "params": dict(sorted(data.params.items())),
        "tags": user_tags(data.tags),
    }


def find_artifacts(
    gateway: MlflowGateway,
    run_id: str,
    matches: Callable[[str], bool],
    folders: Callable[[str], bool] = lambda _folder: True,
) -> tuple[list[str], list[str]]:
    """Artifact files at the top of the run or one folder down whose path `matches`; and the calls made.

    Raises IntegrationError when the run's artifact root cannot be listed.
    """
    calls = [list_call(run_id)]
    found: list[str] = []
    top = gateway.list_artifacts(run_id)
    found += [f.path for f in top if not f.is_dir and matches(f.path)]
    for folder in [f.path for f in top if f.is_dir and folders(f.path)][:MAX_DIRS]:
        calls.append(list_call(run_id, folder))
        try:
            found += [
                f.path for f in gateway.list_artifacts(run_id, folder) if not f.is_dir and matches(f.path)
            ]
        except IntegrationError:
            continue  # one unreadable folder must not hide what the others hold
    return found, calls


def named(*patterns: str) -> Callable[[str], bool]:
    """A matcher for artifact paths whose file name fits one of the glob `patterns`."""
    return lambda path: any(fnmatch.fnmatch(path.rsplit("/", 1)[-1], p) for p in patterns)


# -- the model environment files MLflow logs --------------------------------------------------------
@dataclass(frozen=True)
class Pin:
    """A version read from somewhere: an image tag, an env var, a requirements line or a run tag."""

    package: str
    version: str
    source: str  # where it was read, for the reader: "env MLFLOW_VERSION of container trainer"


def pins_in_requirements(text: str, source: str) -> tuple[list[Pin], list[str]]:
    """Exact pins (`pkg==x.y`) in a requirements.txt, and the lines that are not requirements."""
    pins, unparsed = [], []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue  # comments and pip options (-r, --index-url, -e)
        pin, ok = _pin_of(line, source)
        if pin is not None:
            pins.append(pin)
        elif not ok:
            unparsed.append(line)
    return pins, unparsed


def pins_in_environment(text: str, source: str) -> tuple[list[Pin], list[str]]:
    """Exact pins in MLflow's python_env.yaml or conda.yaml (python, conda and pip dependencies)."""
    try:
        env = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return [], [f"not YAML: {str(exc).splitlines()[0]}"]
    if not isinstance(env, dict):
        return [], ["not a YAML mapping"]
    pins, unparsed = [], []
    if env.get("python") is not None:
        pins.append(Pin("python", str(env["python"]), source))
    entries: list[Any] = [e for key in ("build_dependencies", "dependencies") for e in _listed(env, key)]
    for entry in entries:
        if isinstance(entry, dict):
            entries.extend(_listed(entry, "pip"))  # conda.yaml nests pip's list under `pip:`
            continue
        line = str(entry).strip()
        conda = CONDA_PIN.match(line)
        if conda:
            pins.append(Pin(conda["pkg"], conda["ver"], source))
            continue
        if line.startswith("-"):
            continue
        pin, ok = _pin_of(line, source)
        if pin is not None:
            pins.append(pin)
        elif not ok:
            unparsed.append(line)
    return pins, unparsed


def _listed(mapping: dict[Any, Any], key: str) -> list[Any]:
    value = mapping.get(key)
    return value if isinstance(value, list) else []


def _pin_of(line: str, source: str) -> tuple[Pin | None, bool]:
    """The exact pin a requirement line makes (None when it pins nothing); False when it does not parse."""
    try:
        req = Requirement(line)
    except InvalidRequirement:
        return None, False
    specs = list(req.specifier)
    if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
        return Pin(req.name, specs[0].version, source), True
    return None, True


class RunCheck(Check):
    """A check about the MLflow run the alert names; it skips, saying why, when it cannot look."""

    needs = ("mlflow",)

    def run(self, ctx: Context) -> CheckResult:
        run_id, source = run_id_of(ctx)
        if not run_id:
            reason = f"the alert names no MLflow run (no run_id label, no {RUN_ID_ANNOTATION} annotation)"
            return self.result(CheckStatus.SKIPPED, reason)
        gateway: MlflowGateway | None = ctx.deps.mlflow
        if gateway is None:
            return self.result(CheckStatus.SKIPPED, "no MLflow tracking server is configured")
        call = run_call(run_id)
        try:
            run = gateway.get_run(run_id)
        except IntegrationError as exc:
            return kc.error_result(self, call, exc)
        return self.inspect(ctx, gateway, run_id, source, run, call)

    @abstractmethod
    def inspect(
        self, ctx: Context, gateway: MlflowGateway, run_id: str, source: str | None, run: Any, call: str
    ) -> CheckResult:
        """Look at run `run_id` (read with `call`; found through `source`)."""


def stderr_tail(gateway: MlflowGateway, run_id: str) -> tuple[dict[str, Any], list[str]]:
    """The last lines of the run's stderr (else another .log at the top or under logs/), redacted."""
    try:
        paths, calls = find_artifacts(gateway, run_id, named("*.log"), lambda folder: folder == "logs")
    except IntegrationError as exc:
        return {"error": redact(str(exc))}, [list_call(run_id)]
    if not paths:
        return {}, calls
    path = next((p for p in STDERR_FIRST if p in paths), sorted(paths)[0])
    calls.append(artifact_call(run_id, path))
    try:
        text = gateway.read_artifact_tail(run_id, path, LOG_TAIL_BYTES) or ""
    except IntegrationError as exc:
        return {"call": calls[-1], "path": path, "error": redact(str(exc))}, calls
    tail = "\n".join(text.splitlines()[-LOG_TAIL_LINES:])
    return {"call": calls[-1], "path": path, "tail": redact(tail)}, calls
