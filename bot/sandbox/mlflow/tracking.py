"""MLflow tracking as the sandbox keeps it: experiments, runs, and the runs' artifact files, listed and
downloaded directly or through the `mlflow-artifacts` proxy."""

from __future__ import annotations

import re
from typing import Any

from bot.sandbox.mlflow.errors import not_found

_ARTIFACT_URI = re.compile(r"^mlflow-artifacts:/+(?P<root>.+)$")


class Tracking:
    """Experiments, runs by id and each run's artifacts by path; callers hold the server's lock."""

    def __init__(self) -> None:
        self.experiments: list[dict[str, Any]] = []
        self.runs: dict[str, dict[str, Any]] = {}
        self.artifacts: dict[str, dict[str, str]] = {}

    def load(self, data: dict[str, Any]) -> None:
        """Add the experiments, runs and artifacts of a fixture."""
        self.experiments.extend(data.get("experiments", []))
        for run in data.get("runs", []):
            self.runs[run["info"]["run_id"]] = run
        for run_id, files in data.get("artifacts", {}).items():
            self.artifacts.setdefault(run_id, {}).update(files)

    def set_artifact(self, run_id: str, path: str, text: str | None) -> None:
        files = self.artifacts.setdefault(run_id, {})
        if text is None:
            files.pop(path, None)
        else:
            files[path] = text

    def get_run(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"run": self._run(str(args.get("run_id") or args.get("run_uuid") or ""))}

    def search_runs(self, args: dict[str, Any]) -> dict[str, Any]:
        experiments = {str(e) for e in args.get("experiment_ids", [])}
        wanted = re.search(r"status\s*=\s*'(\w+)'", str(args.get("filter") or ""))
        runs = [
            r
            for r in self.runs.values()
            if r["info"]["experiment_id"] in experiments
            and (wanted is None or r["info"]["status"] == wanted.group(1))
        ]
        return {"runs": runs[: int(args.get("max_results") or 1000)]} if runs else {}

    def search_experiments(self, args: dict[str, Any]) -> dict[str, Any]:
        found = self.experiments[: int(args.get("max_results") or 1000)]
        return {"experiments": found} if found else {}

    def list_artifacts(self, args: dict[str, Any]) -> dict[str, Any]:
        run = self._run(str(args.get("run_id") or args.get("run_uuid") or ""))
        files = self._files(run["info"]["run_id"], str(args.get("path") or ""))
        return {"root_uri": run["info"]["artifact_uri"], "files": files}

    def list_proxied(self, proxied: str) -> dict[str, Any]:
        """The artifacts proxy's listing of a directory, paths relative to it; a file lists as nothing."""
        found = self._locate(proxied.strip("/"))
        if found is None:
            return {}
        run_id, inner = found
        files = [
            {**f, "path": f["path"][len(inner) + 1 :] if inner else f["path"]}
            for f in self._files(run_id, inner)
        ]
        return {"files": files} if files else {}

    def download(self, proxied: str) -> str:
        """The text of one file through the artifacts proxy."""
        found = self._locate(proxied.strip("/"))
        text = self.artifacts.get(found[0], {}).get(found[1]) if found else None
        if text is None:
            raise not_found(f"No such artifact: '{proxied}'")
        return text

    def _run(self, run_id: str) -> dict[str, Any]:
        run = self.runs.get(run_id)
        if run is None:
            raise not_found(f"Run with id={run_id} not found")
        return run

    def _files(self, run_id: str, prefix: str) -> list[dict[str, Any]]:
        """FileInfo entries directly under `prefix` ("" for the root), paths relative to the run root."""
        entries: dict[str, dict[str, Any]] = {}
        base = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        for path, text in self.artifacts.get(run_id, {}).items():
            if not path.startswith(base):
                continue
            head, sep, _ = path[len(base) :].partition("/")
            full = base + head
            entries[full] = (
                {"path": full, "is_dir": True}
                if sep
                else {"path": full, "is_dir": False, "file_size": len(text.encode())}
            )
        return [entries[k] for k in sorted(entries)]

    def _locate(self, proxied: str) -> tuple[str, str] | None:
        """(run_id, path inside the run) for a path under the artifacts proxy root."""
        for run_id, run in self.runs.items():
            match = _ARTIFACT_URI.match(run["info"]["artifact_uri"])
            root = match.group("root").strip("/") if match else None
            if root and (proxied == root or proxied.startswith(root + "/")):
                return run_id, proxied[len(root) :].strip("/")
        return None
