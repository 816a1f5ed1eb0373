"""Level 1 for a failed model registration: the version's status, the run's model artifacts and the
registered model's aliases; re-register the version from the same source when its artifacts are intact."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import yaml

from bot.config import NoCaps
from bot.core.errors import IntegrationError
from bot.core.models import AttemptStatus, CheckResult, CheckStatus, Risk
from bot.core.redact import redact, redact_obj
from bot.diagnostics.base import Check, Context, Plan, Remediation, Verification
from bot.integrations.mlflow import MlflowGateway

FAILED, PENDING, READY = "FAILED_REGISTRATION", "PENDING_REGISTRATION", "READY"
MISSING = "RESOURCE_DOES_NOT_EXIST"
# MLmodel flavor keys that name a file or folder next to MLmodel.
FILE_KEYS = ("model_path", "pickled_model", "data", "model_data", "saved_model_dir", "code")
REREGISTERED_TAG = "escalation_bot.reregistered_from"
_RUNS_URI = re.compile(r"^runs:/(?P<run>[^/]+)/?(?P<path>.*)$")


def version_call(name: str, version: str) -> str:
    return f"GET /api/2.0/mlflow/model-versions/get?name={name}&version={version}"


def model_call(name: str) -> str:
    return f"GET /api/2.0/mlflow/registered-models/get?name={name}"


def alias_call(name: str, alias: str) -> str:
    return f"GET /api/2.0/mlflow/registered-models/alias?name={name}&alias={alias}"


def artifact_location(source: str, run_id: str | None) -> tuple[str, str] | None:
    """(run id, path inside the run) of a model version's source, when it lies in a run's artifacts."""
    match = _RUNS_URI.match(source)
    if match:
        return match["run"], match["path"].strip("/")
    marker = f"/{run_id}/artifacts" if run_id else None
    if marker and marker in source:
        return str(run_id), source.split(marker, 1)[1].strip("/")
    return None


def version_brief(mv: Any) -> dict[str, Any]:
    """The parts of a model version a reader needs."""
    return {
        "name": mv.name,
        "version": mv.version,
        "status": mv.status,
        "status_message": mv.status_message,
        "source": mv.source,
        "run_id": mv.run_id,
        "aliases": list(mv.aliases or []),
    }


def _missing(exc: IntegrationError) -> bool:
    return MISSING in str(exc)


def _target(ctx: Context) -> tuple[str, str] | None:
    model, version = ctx.target.model, ctx.target.model_version
    return (model, version) if model and version else None


class ModelVersionCheck(Check):
    """What status did the registry give the model version, and from which source?"""

    name = "model_version_status"
    needs = ("mlflow",)
    timeout_s = 15.0

    def run(self, ctx: Context) -> CheckResult:
        """Read the version: READY is ok, PENDING a warning, FAILED_REGISTRATION (or missing) a failure."""
        target = _target(ctx)
        if target is None:
            return self.result(CheckStatus.SKIPPED, "the alert names no model and model_version to inspect")
        name, version = target
        call = version_call(name, version)
        gateway: MlflowGateway = ctx.deps.mlflow
        try:
            mv = gateway.get_model_version(name, version)
        except IntegrationError as exc:
            found = redact_obj({"call": call, "error": str(exc), "status": exc.status})
            if _missing(exc):
                summary = f"model version {name}/{version} does not exist ({MISSING})"
                return self.result(CheckStatus.FAIL, summary, found, {"registration_status": None})
            return self.result(CheckStatus.ERROR, redact(str(exc)), found)
        where = artifact_location(mv.source or "", mv.run_id)
        facts: dict[str, Any] = {
            "model": name,
            "model_version": version,
            "registration_status": mv.status,
            "source": mv.source,
            "run_id": mv.run_id,
            "artifact_run_id": where[0] if where else None,
            "artifact_path": where[1] if where else None,
        }
        found = redact_obj({"call": call, "response": version_brief(mv)})
        if mv.status == READY:
            return self.result(
                CheckStatus.OK, f"{name} v{version} is READY (source {mv.source})", found, facts
            )
        if mv.status == PENDING:
            summary = f"{name} v{version} is still PENDING_REGISTRATION (source {mv.source})"
            return self.result(CheckStatus.WARN, redact(summary), found, facts)
        summary = f"{name} v{version} is {mv.status} (source {mv.source})" + (
            f": {mv.status_message}" if mv.status_message else ""
        )
        return self.result(CheckStatus.FAIL, redact(summary), found, facts)


def named_files(mlmodel: dict[str, Any]) -> list[str]:
    """Every file or folder the MLmodel's flavors name, relative to the model folder."""
    names: list[str] = []
    for flavor in (mlmodel.get("flavors") or {}).values():
        if not isinstance(flavor, dict):
            continue
        values = [flavor.get(k) for k in FILE_KEYS]
        env = flavor.get("env")
        values += list(env.values()) if isinstance(env, dict) else [env]
        names += [v for v in values if isinstance(v, str) and v and v not in names]
    return names


class RunArtifactsCheck(Check):
    """Is the model under the version's source intact: an MLmodel that parses and the files it names?"""

    name = "run_model_artifacts"
    needs = ("mlflow",)
    timeout_s = 20.0

    def run(self, ctx: Context) -> CheckResult:
        """List the model folder, parse its MLmodel (YAML) and look for every file its flavors name."""
        gateway: MlflowGateway = ctx.deps.mlflow
        located = self._locate(ctx, gateway)
        if isinstance(located, CheckResult):
            return located
        run_id, path = located
        where = f"runs:/{run_id}/{path}".rstrip("/")
        calls = [f"list artifacts {where}"]
        facts: dict[str, Any] = {"artifacts_intact": False, "artifact_run_id": run_id, "artifact_path": path}
        try:
            files = gateway.list_artifacts(run_id, path or None)
        except IntegrationError as exc:
            found = redact_obj({"call": calls[0], "error": str(exc), "status": exc.status})
            if _missing(exc):
                return self.result(CheckStatus.FAIL, f"run {run_id} does not exist ({MISSING})", found, facts)
            return self.result(CheckStatus.ERROR, redact(str(exc)), found)
        names = sorted(f.path.rsplit("/", 1)[-1] for f in files)
        listing = {"files": [{"path": f.path, "is_dir": f.is_dir, "file_size": f.file_size} for f in files]}
        if "MLmodel" not in names:
            found = redact_obj({"call": calls[0], "response": listing})
            summary = f"no MLmodel under {where}" + (f" (found: {', '.join(names)})" if names else " (empty)")
            return self.result(CheckStatus.FAIL, redact(summary), found, facts)
        mlmodel_path = f"{path}/MLmodel" if path else "MLmodel"
        calls.append(f"download {where}/MLmodel")
        try:
            text = gateway.read_artifact_text(run_id, mlmodel_path) or ""
        except IntegrationError as exc:
            found = redact_obj({"call": calls[-1], "error": str(exc), "status": exc.status, "calls": calls})
            return self.result(CheckStatus.ERROR, redact(str(exc)), found)
        try:
            mlmodel = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mlmodel, problem = None, f"is not valid YAML ({str(exc).splitlines()[0]})"
        else:
            problem = "names no flavors"
        if (
            not isinstance(mlmodel, dict)
            or not isinstance(mlmodel.get("flavors"), dict)
            or not mlmodel["flavors"]
        ):
            found = redact_obj(
                {"call": calls[-1], "response": text[:1000], "calls": calls, "listing": listing}
            )
            return self.result(CheckStatus.FAIL, redact(f"MLmodel under {where} {problem}"), found, facts)
        flavors = sorted(mlmodel["flavors"])
        wanted = named_files(mlmodel)
        absent = [n for n in wanted if n.split("/", 1)[0] not in names]
        response = {"flavors": flavors, "named_files": wanted, "files": names}
        found = redact_obj({"call": calls[-1], "response": response, "calls": calls})
        facts.update(mlmodel_flavors=flavors, missing_files=absent)
        if absent:
            summary = f"MLmodel under {where} names files that are missing: {', '.join(absent)}"
            return self.result(CheckStatus.FAIL, redact(summary), found, facts)
        facts["artifacts_intact"] = True
        summary = f"{where} holds an MLmodel with flavors {', '.join(flavors)}"
        summary += f" and the {len(wanted)} file(s) it names"
        return self.result(CheckStatus.OK, redact(summary), found, facts)

    def _locate(self, ctx: Context, gateway: MlflowGateway) -> tuple[str, str] | CheckResult:
        """Where the model lies: the version's source, else the alert's run_id with the usual `model`."""
        target = _target(ctx)
        if target is None:
            if ctx.target.run_id:
                return ctx.target.run_id, "model"
            return self.result(CheckStatus.SKIPPED, "the alert names no model version or run to inspect")
        name, version = target
        try:
            mv = gateway.get_model_version(name, version)
        except IntegrationError as exc:
            found = redact_obj({"call": version_call(name, version), "error": str(exc), "status": exc.status})
            if _missing(exc) and ctx.target.run_id:
                return ctx.target.run_id, "model"
            status = CheckStatus.SKIPPED if _missing(exc) else CheckStatus.ERROR
            return self.result(status, redact(f"cannot find the model's source: {exc}"), found)
        where = artifact_location(mv.source or "", mv.run_id)
        if where is None:
            summary = f"source {mv.source} of {name} v{version} is not inside a run's artifacts"
            return self.result(CheckStatus.SKIPPED, redact(summary), {"call": version_call(name, version)})
        return where


class RegisteredModelCheck(Check):
    """Does the registered model exist, and does each alias point at an existing version?"""

    name = "registered_model"
    needs = ("mlflow",)
    timeout_s = 20.0

    def run(self, ctx: Context) -> CheckResult:
        """Read the registered model, then resolve every alias it has."""
        name = ctx.target.model
        if not name:
            return self.result(CheckStatus.SKIPPED, "the alert names no registered model")
        gateway: MlflowGateway = ctx.deps.mlflow
        calls = [model_call(name)]
        try:
            model = gateway.get_registered_model(name)
        except IntegrationError as exc:
            found = redact_obj({"call": calls[0], "error": str(exc), "status": exc.status})
            if _missing(exc):
                summary = f"registered model {name} does not exist ({MISSING})"
                return self.result(CheckStatus.FAIL, summary, found, {"registered_model_exists": False})
            return self.result(CheckStatus.ERROR, redact(str(exc)), found)
        aliases: dict[str, str] = dict(model.aliases or {})
        resolved: dict[str, Any] = {}
        broken: list[str] = []
        for alias, version in sorted(aliases.items()):
            calls.append(alias_call(name, alias))
            try:
                mv = gateway.get_model_version_by_alias(name, alias)
            except IntegrationError as exc:
                resolved[alias] = {"version": version, "error": str(exc)}
                broken.append(f"{alias} → v{version} ({'missing' if _missing(exc) else exc})")
                continue
            resolved[alias] = {"version": mv.version, "status": mv.status}
            if mv.status != READY:
                broken.append(f"{alias} → v{mv.version} ({mv.status})")
        response = {"name": name, "aliases": resolved}
        found = redact_obj({"call": calls[0], "response": response, "calls": calls})
        facts = {"registered_model_exists": True, "aliases": aliases}
        if broken:
            summary = f"registered model {name} has aliases not on a READY version: {'; '.join(broken)}"
            return self.result(CheckStatus.FAIL, redact(summary), found, facts)
        shown = ", ".join(f"{a} → v{v}" for a, v in sorted(aliases.items())) or "no aliases"
        return self.result(CheckStatus.OK, f"registered model {name} exists ({shown})", found, facts)


class ReregisterModelVersion(Remediation[NoCaps]):
    """Register the failed version again from the same source and run, once, when its artifacts are intact."""

    name = "reregister_model_version"
    risk = Risk.SAFE
    needs = ("mlflow",)
    caps_model = NoCaps

    def plan(self, ctx: Context, caps: NoCaps) -> Plan | None:
        """Applies to FAILED_REGISTRATION with an MLmodel that parses and names no missing file."""
        if ctx.fact("registration_status") != FAILED or ctx.fact("artifacts_intact") is not True:
            return None
        name, version, source = ctx.fact("model"), ctx.fact("model_version"), ctx.fact("source")
        describe = f"register {name} again from {source} (v{version} failed registration)"
        tried = [a for a in ctx.attempts if a.name == self.name and a.status is not AttemptStatus.REFUSED]
        if tried:
            return Plan(self.name, describe, refused=f"{name} v{version} was already registered again once")
        params = {"name": name, "version": version, "source": source, "run_id": ctx.fact("run_id")}
        return Plan(self.name, describe, params)

    def apply(self, ctx: Context, plan: Plan) -> dict[str, Any]:
        """Create the new version; raises IntegrationError when the registry refuses it."""
        p = plan.params
        gateway: MlflowGateway = ctx.deps.mlflow
        tags = {REREGISTERED_TAG: str(p["version"])}
        mv = gateway.create_model_version(p["name"], p["source"], run_id=p["run_id"] or None, tags=tags)
        request = {"name": p["name"], "source": p["source"], "run_id": p["run_id"], "tags": tags}
        return {
            "call": "POST /api/2.0/mlflow/model-versions/create",
            "request": redact_obj(request),
            "response": {"name": mv.name, "version": mv.version, "status": mv.status},
            "facts": {"new_model_version": mv.version},
        }

    def verify(self, ctx: Context, plan: Plan, applied: dict[str, Any], deadline: datetime) -> Verification:
        """Poll the new version until it is READY, fails registration or the deadline passes."""
        name, version = plan.params["name"], applied["facts"]["new_model_version"]
        gateway: MlflowGateway = ctx.deps.mlflow
        call = version_call(name, version)
        facts: dict[str, Any] = {"new_model_version": version}
        while True:
            mv = gateway.get_model_version(name, version)
            facts["registration_status"] = mv.status
            if mv.status == READY:
                summary = f"{name} v{version} registered from {mv.source} is READY"
                return Verification(True, redact(summary), {"call": call, "facts": facts})
            if mv.status == FAILED:
                summary = f"{name} v{version} failed registration too" + (
                    f": {mv.status_message}" if mv.status_message else ""
                )
                return Verification(False, redact(summary), {"call": call, "facts": facts})
            remaining = (deadline - ctx.now()).total_seconds()
            if remaining <= 0:
                summary = f"{name} v{version} is still {mv.status} at the verification deadline"
                return Verification(False, summary, {"call": call, "facts": facts})
            ctx.sleep(min(ctx.verify_poll_seconds, remaining))


CHECKS: list[type[Check]] = [ModelVersionCheck, RunArtifactsCheck, RegisteredModelCheck]
REMEDIATIONS: list[type[Remediation[Any]]] = [ReregisterModelVersion]
