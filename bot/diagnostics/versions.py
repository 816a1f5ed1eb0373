"""Level 1 for a version incompatibility: the Job's images and pinned versions and the MLflow run's
requirements against the compatibility matrix, import errors in the log; re-run on the known-good image.

A pin is a version read from somewhere (an image tag, a `*_VERSION` env var, `pkg==x.y` in a logged
requirements file, a `*version*` run tag); a matrix rule whose package names it says which versions fit.
An image is checked by a rule whose package is the image repository (e.g. `registry.local/ml/train`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from bot.config import CompatibilityRule, NoCaps
from bot.core.errors import IntegrationError
from bot.core.models import AttemptStatus, CheckResult, CheckStatus, Risk
from bot.core.redact import redact, redact_obj
from bot.diagnostics import kube_common as kc
from bot.diagnostics import mlflow_common as mc
from bot.diagnostics.base import Check, Context, Plan, Remediation, Verification
from bot.diagnostics.mlflow_common import REQUIREMENT_FILES, Pin, pins_in_environment, pins_in_requirements
from bot.integrations.kubernetes import KubeGateway, V1Job, job_rerun_body
from bot.integrations.mlflow import MlflowGateway

TAIL_LINES = 100
MAX_ERROR_LINES = 10
RUN_TAGS = ("mlflow.source.git.commit", "mlflow.runName")  # shown beside every tag naming a version
ENV_VERSION = re.compile(r"^(?P<pkg>[A-Za-z][A-Za-z0-9_]*?)_VERSION$")
TAG_VERSION = re.compile(r"^(?P<pkg>[A-Za-z][A-Za-z0-9_-]*?)[._-]version$", re.IGNORECASE)
IMPORT_ERROR = re.compile(
    r"ImportError|ModuleNotFoundError|VersionConflict|DistributionNotFound|incompatib|undefined symbol",
    re.IGNORECASE,
)


# -- pins and the matrix ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Conflict:
    pin: Pin
    rule: CompatibilityRule

    def describe(self) -> str:
        """`numpy==1.24.0 (allowed >=1.26,<3: the reason)`."""
        why = f": {self.rule.reason}" if self.rule.reason else ""
        return f"{self.pin.package}=={self.pin.version} (allowed {self.rule.allowed}{why})"


def matrix_of(ctx: Context) -> list[CompatibilityRule]:
    """The compatibility matrix from app.yaml (empty when none is configured)."""
    return list(ctx.config.versions.matrix) if ctx.config is not None else []


def known_good_of(ctx: Context) -> dict[str, str]:
    """Image repository → the tag known to work, from app.yaml."""
    return dict(ctx.config.versions.known_good_images) if ctx.config is not None else {}


def conflicts_of(pins: list[Pin], matrix: list[CompatibilityRule]) -> list[Conflict]:
    """Every pin whose version a rule for its package does not allow."""
    found = []
    for pin in pins:
        try:
            version = Version(pin.version)
        except InvalidVersion:
            continue  # "latest" or a branch name: nothing to compare
        for rule in matrix:
            if canonicalize_name(rule.package) != canonicalize_name(pin.package):
                continue
            if not SpecifierSet(rule.allowed).contains(version, prereleases=True):
                found.append(Conflict(pin, rule))
    return found


def describe_conflicts(conflicts: list[Conflict]) -> list[str]:
    """One line per distinct conflict, naming every place it was read."""
    sources: dict[str, list[str]] = {}
    for c in conflicts:
        sources.setdefault(c.describe(), []).append(c.pin.source)
    return [f"{text} in {', '.join(where)}" for text, where in sources.items()]


# -- images ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Image:
    """One container's image reference split into repository and tag (None when untagged)."""

    container: str
    reference: str
    repository: str
    tag: str | None


def parse_image(container: str, reference: str) -> Image:
    """Split `registry:5000/team/name:tag@sha256:…` into repository and tag."""
    name = reference.split("@", 1)[0]
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        return Image(container, reference, name[:colon], name[colon + 1 :])
    return Image(container, reference, name, None)


def _containers(job: V1Job) -> list[Any]:  # V1Container
    spec = job.spec.template.spec if job.spec and job.spec.template else None
    return [*((spec.init_containers or []) if spec else []), *((spec.containers or []) if spec else [])]


def images_of(job: V1Job) -> list[Image]:
    """The images of the Job's init and main containers."""
    return [parse_image(c.name, c.image or "") for c in _containers(job)]


def env_pins(job: V1Job) -> list[Pin]:
    """Versions the pod spec pins in `*_VERSION` env vars with a literal value."""
    pins = []
    for c in _containers(job):
        for env in c.env or []:
            match = ENV_VERSION.match(env.name)
            if match and env.value:
                package = match["pkg"].lower().replace("_", "-")
                pins.append(Pin(package, env.value, f"env {env.name} of container {c.name}"))
    return pins


class ImageVersionsCheck(kc.JobCheck):
    """Do the Job's images and pinned versions fit the compatibility matrix and the known-good images?"""

    name = "image_versions"
    timeout_s = 15.0

    def inspect(self, ctx: Context, gateway: KubeGateway, ns: str, name: str) -> CheckResult:
        """Read the Job's images and `*_VERSION` env pins and check them against the matrix."""
        call = kc.job_call(ns, name)
        try:
            job = gateway.read_job(ns, name)
        except IntegrationError as exc:
            return kc.error_result(self, call, exc)
        images = images_of(job)
        pins = [Pin(i.repository, i.tag, f"image of container {i.container}") for i in images if i.tag]
        pins += env_pins(job)
        matrix, known = matrix_of(ctx), known_good_of(ctx)
        conflicts = describe_conflicts(conflicts_of(pins, matrix))
        stale = [i for i in images if i.repository in known and i.tag != known[i.repository]]
        response = {
            "images": [{"container": i.container, "image": i.reference} for i in images],
            "pins": [{"package": p.package, "version": p.version, "source": p.source} for p in pins],
        }
        found = kc.evidence(call, response, matrix=[r.model_dump() for r in matrix], known_good_images=known)
        facts: dict[str, Any] = {
            "images": [
                {"container": i.container, "image": i.reference, "repository": i.repository, "tag": i.tag}
                for i in images
            ],
            "conflicts": conflicts,
            "job_name": name,
        }
        advice = "; ".join(
            f"container {i.container} runs {i.reference}, the known-good tag is {known[i.repository]}"
            for i in stale
        )
        if conflicts:
            summary = (
                f"job {name}: {len(conflicts)} version(s) outside the compatibility matrix: "
                + "; ".join(conflicts)
            )
            return self.result(
                CheckStatus.FAIL, redact(summary + (f"; {advice}" if advice else "")), found, facts
            )
        if stale:
            return self.result(CheckStatus.WARN, redact(f"job {name}: {advice}"), found, facts)
        runs = ", ".join(i.reference for i in images) or "no containers"
        if not matrix:
            summary = f"job {name} runs {runs}; no compatibility matrix is configured to check it against"
        else:
            summary = (
                f"job {name} runs {runs}; its {len(pins)} pinned version(s) fit the compatibility matrix"
            )
        return self.result(CheckStatus.OK, redact(summary), found, facts)


# -- the MLflow run's logged requirements -------------------------------------------------------------
class RunRequirementsCheck(mc.RunCheck):
    """Do the versions the MLflow run logged (requirements, environments, tags) fit the matrix?"""

    name = "run_requirements"
    timeout_s = 20.0

    def inspect(
        self, ctx: Context, gateway: MlflowGateway, run_id: str, source: str | None, run: Any, call: str
    ) -> CheckResult:
        """Read the run's tags and requirements.txt / python_env.yaml / conda.yaml and check every pin."""
        try:
            paths, calls = mc.find_artifacts(gateway, run_id, mc.named(*REQUIREMENT_FILES))
        except IntegrationError as exc:
            return kc.error_result(self, mc.list_call(run_id), exc)
        tags: dict[str, str] = dict(run.data.tags)
        shown = {k: v for k, v in sorted(tags.items()) if k in RUN_TAGS or "version" in k.lower()}
        pins = [
            Pin(m["pkg"], v, f"run tag {k}")
            for k, v in shown.items()
            if not k.startswith("mlflow.") and (m := TAG_VERSION.match(k))
        ]
        files: dict[str, Any] = {}
        for path in paths:
            calls.append(mc.artifact_call(run_id, path))
            try:
                text = gateway.read_artifact_text(run_id, path) or ""
            except IntegrationError as exc:
                files[path] = {"error": redact(str(exc))}
                continue
            parse = pins_in_requirements if path.endswith(".txt") else pins_in_environment
            found_pins, unparsed = parse(text, path)
            pins += found_pins
            files[path] = {"pins": [f"{p.package}=={p.version}" for p in found_pins], "unparsed": unparsed}
        matrix = matrix_of(ctx)
        conflicts = describe_conflicts(conflicts_of(pins, matrix))
        response = {"run_id": run_id, "status": run.info.status, "tags": shown, "artifacts": files}
        found = kc.evidence(call, response, [call, *calls], run_id_from=source)
        facts = {
            "run_id": run_id,
            "run_conflicts": conflicts,
            "requirement_files": paths,
            "git_commit": tags.get("mlflow.source.git.commit"),
        }
        who = f"run {run_id}"
        if conflicts:
            summary = (
                f"{who}: {len(conflicts)} pinned version(s) outside the compatibility matrix: "
                + "; ".join(conflicts)
            )
            return self.result(CheckStatus.FAIL, redact(summary), found, facts)
        if not paths:
            summary = (
                f"{who} logged no {', '.join(REQUIREMENT_FILES)}, so its dependency versions are unknown"
            )
            return self.result(CheckStatus.WARN, summary, found, facts)
        if not matrix:
            summary = f"{who}: {len(pins)} pinned version(s) read; no compatibility matrix is configured"
        else:
            summary = f"{who}: its {len(pins)} pinned version(s) fit the compatibility matrix"
        return self.result(CheckStatus.OK, summary, found, facts)


# -- import errors in the log -------------------------------------------------------------------------
def import_error_lines(text: str) -> list[str]:
    """The log lines that say an import failed or versions clash, last ones kept."""
    return [line.strip()[:300] for line in text.splitlines() if IMPORT_ERROR.search(line)][-MAX_ERROR_LINES:]


class ImportErrorLogCheck(kc.JobCheck):
    """Does the failed pod's log show an ImportError, ModuleNotFoundError or version clash?"""

    name = "import_errors"
    timeout_s = 20.0

    def inspect(self, ctx: Context, gateway: KubeGateway, ns: str, name: str) -> CheckResult:
        """Read the failed container's log tail and keep its import and version error lines."""
        log = kc.read_failed_log(self, gateway, ctx, ns, name, TAIL_LINES)
        if isinstance(log, CheckResult):
            return log
        pod, container, call, tail = log.pod, log.container, log.call, log.tail
        lines = import_error_lines(tail)
        found = kc.evidence(call, {"lines": lines, "tail": tail}, pod=pod, container=container)
        facts = {"import_errors": lines, "pod": pod, "container": container, "job_name": name}
        if lines:
            more = f" (and {len(lines) - 1} more such line(s))" if len(lines) > 1 else ""
            return self.result(
                CheckStatus.FAIL, redact(f"{pod}/{container}: {lines[-1]}{more}"), found, facts
            )
        summary = f"no import or version error in the last {TAIL_LINES} lines of {pod}/{container}"
        return self.result(CheckStatus.OK, summary, found, facts)


# -- re-running on the known-good image ---------------------------------------------------------------
def with_images(body: dict[str, Any], images: dict[str, str]) -> dict[str, Any]:
    """The Job body with each named container's image replaced (container name → image)."""
    spec = body.get("spec", {}).get("template", {}).get("spec", {})
    for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        if container.get("name") in images:
            container["image"] = images[container["name"]]
    return body


class RerunWithKnownGoodImage(Remediation[NoCaps]):
    """Re-run the Job as a new Job whose containers run the known-good tag of their image."""

    name = "rerun_with_known_good_image"
    risk = Risk.SAFE
    needs = ("kube",)
    caps_model = NoCaps

    def plan(self, ctx: Context, caps: NoCaps) -> Plan | None:
        """Swap every image whose repository has another known-good tag; once per incident."""
        ns, job = ctx.target.namespace, ctx.target.job
        images: list[dict[str, Any]] = ctx.fact("images") or []
        if not ns or not job or not images:
            return None
        if any(a.name == self.name and a.status is not AttemptStatus.REFUSED for a in ctx.attempts):
            return None  # the known-good image was tried; trying it again tells nothing new
        known = known_good_of(ctx)
        swaps = {
            i["container"]: f"{i['repository']}:{known[i['repository']]}"
            for i in images
            if i["repository"] in known and i["tag"] != known[i["repository"]]
        }
        if not swaps:
            return None
        was = {i["container"]: i["image"] for i in images if i["container"] in swaps}
        changes = ", ".join(f"{c} {was[c]} → {image}" for c, image in swaps.items())
        describe = f"re-run job {ns}/{job} as a new job on the known-good image ({changes})"
        refusal = kc.namespace_refusal(ctx)
        if refusal:
            return Plan(self.name, describe, refused=refusal)
        return Plan(self.name, describe, {"namespace": ns, "job": job, "images": swaps, "previous": was})

    def apply(self, ctx: Context, plan: Plan) -> dict[str, Any]:
        """Create the new Job; raises IntegrationError when the API refuses it."""
        gateway: KubeGateway = ctx.deps.kube
        ns, job, images = plan.params["namespace"], plan.params["job"], plan.params["images"]
        body = job_rerun_body(
            gateway.read_job(ns, job),
            suffix="l1",
            labels={kc.INCIDENT_LABEL: str(ctx.incident_id)},
            annotations={"escalation-bot/rerun-of": job, "escalation-bot/remediation": self.name},
        )
        created = gateway.create_job(ns, with_images(body, images))
        name = kc.name_of(created)
        return {
            "call": kc.create_job_call(ns),
            "request": redact_obj(body),
            "response": {"name": name, "uid": created.metadata.uid if created.metadata else None},
            "facts": {"job_name": name, "images": images},
        }

    def verify(self, ctx: Context, plan: Plan, applied: dict[str, Any], deadline: datetime) -> Verification:
        """Wait for the new Job; when it fails too, quote its import errors."""
        ns, name = plan.params["namespace"], applied["facts"]["job_name"]
        images = ", ".join(plan.params["images"].values())
        end = kc.wait_for_job(ctx, ns, name, deadline)
        facts: dict[str, Any] = {"job_name": name, "images": plan.params["images"]}
        evidence = {"call": kc.job_call(ns, name), "facts": facts}
        if end.state == "complete":
            return Verification(True, f"job {name} completed on the known-good image {images}", evidence)
        if end.state != "failed":
            return Verification(False, f"job {name}: {end.detail}", evidence)
        summary = f"job {name} failed on the known-good image {images} too ({end.detail})"
        lines = self._import_errors(ctx, ns, name)
        if lines:
            facts["import_errors"] = lines
            summary += f"; {lines[-1]}"
        return Verification(False, redact(summary), evidence)

    @staticmethod
    def _import_errors(ctx: Context, ns: str, job: str) -> list[str]:
        gateway: KubeGateway = ctx.deps.kube
        chosen = kc.failed_container(ctx, kc.job_pods(ctx, ns, job))
        if chosen is None:
            return []
        pod, container, previous = chosen
        try:
            log = gateway.read_pod_log(ns, kc.name_of(pod), container, TAIL_LINES, previous)
            return import_error_lines(redact(log))
        except IntegrationError:
            return []


CHECKS: list[type[Check]] = [ImageVersionsCheck, RunRequirementsCheck, ImportErrorLogCheck]
REMEDIATIONS: list[type[Remediation[Any]]] = [RerunWithKnownGoodImage]
