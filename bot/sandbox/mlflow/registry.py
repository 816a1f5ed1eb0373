"""The MLflow model registry as the sandbox keeps it: registered models, their versions and aliases, and
new versions that stay PENDING_REGISTRATION for a few reads before a rule decides their status."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot.sandbox.mlflow.errors import MlflowError, not_found

RegistrationRule = Callable[[dict[str, Any]], str]


class Registry:
    """Models by name and versions by (name, version); callers hold the server's lock."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.models: dict[str, dict[str, Any]] = {}
        self.versions: dict[tuple[str, str], dict[str, Any]] = {}
        self._pending: dict[tuple[str, str], list[Any]] = {}  # (name, version) -> [reads left, status]
        self._clock = clock

    def load(self, data: dict[str, Any]) -> None:
        """Add the registered models and model versions of a fixture."""
        for model in data.get("registered_models", []):
            self.models[model["name"]] = model
        for version in data.get("model_versions", []):
            self.versions[(version["name"], version["version"])] = version

    def set_alias(self, name: str, alias: str, version: str) -> None:
        for (n, v), found in self.versions.items():
            kept = [a for a in found.get("aliases", []) if a != alias or n != name]
            found["aliases"] = kept + ([alias] if (n, v) == (name, str(version)) else [])

    def get_registered_model(self, args: dict[str, Any]) -> dict[str, Any]:
        name = str(args.get("name", ""))
        model = copy.deepcopy(self._model(name))
        versions = [v for (n, _), v in self.versions.items() if n == name]
        aliases = [{"alias": a, "version": v["version"]} for v in versions for a in v.get("aliases", [])]
        if versions:
            latest = max(versions, key=lambda v: int(v["version"]))
            model["latest_versions"] = [{k: v for k, v in latest.items() if k != "aliases"}]
        if aliases:
            model["aliases"] = aliases
        return {"registered_model": model}

    def get_model_version(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"model_version": self._version(str(args.get("name", "")), str(args.get("version", "")))}

    def get_by_alias(self, args: dict[str, Any]) -> dict[str, Any]:
        name, alias = str(args.get("name", "")), str(args.get("alias", ""))
        self._model(name)
        for (n, _), version in self.versions.items():
            if n == name and alias in version.get("aliases", []):
                return {"model_version": version}
        raise MlflowError(400, "INVALID_PARAMETER_VALUE", f"Registered model alias {alias} not found.")

    def create_model_version(
        self, args: dict[str, Any], rule: RegistrationRule, pending_reads: int
    ) -> dict[str, Any]:
        """A new version, PENDING_REGISTRATION for `pending_reads` reads, then the status `rule` gives."""
        name, source = str(args.get("name", "")), str(args.get("source", ""))
        if not source:
            raise MlflowError(
                400, "INVALID_PARAMETER_VALUE", "Missing value for required parameter 'source'."
            )
        self._model(name)
        number = str(1 + max((int(v) for n, v in self.versions if n == name), default=0))
        now = self._now_ms()
        version: dict[str, Any] = {
            "name": name,
            "version": number,
            "creation_timestamp": now,
            "last_updated_timestamp": now,
            "current_stage": "None",
            "description": str(args.get("description") or ""),
            "source": source,
            "run_id": str(args.get("run_id") or ""),
            "status": "PENDING_REGISTRATION",
            "run_link": "",
        }
        if args.get("tags"):
            version["tags"] = list(args["tags"])
        final = rule(copy.deepcopy(version))
        if pending_reads <= 0:
            version["status"] = final
        else:
            self._pending[(name, number)] = [pending_reads, final]
        self.versions[(name, number)] = version
        return {"model_version": version}

    def _model(self, name: str) -> dict[str, Any]:
        model = self.models.get(name)
        if model is None:
            raise not_found(f"Registered Model with name={name} not found")
        return model

    def _version(self, name: str, version: str) -> dict[str, Any]:
        key = (name, version)
        pending = self._pending.get(key)
        if pending is not None:
            if pending[0] <= 0:
                self.versions[key]["status"] = pending[1]
                self.versions[key]["last_updated_timestamp"] = self._now_ms()
                del self._pending[key]
            else:
                pending[0] -= 1
        found = self.versions.get(key)
        if found is None:
            raise not_found(f"Model Version (name={name}, version={version}) not found")
        return found

    def _now_ms(self) -> int:
        return int(self._clock().timestamp() * 1000)
