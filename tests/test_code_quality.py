"""The project's own rules, checked with every test run: lint, format, the pure core, strict typing."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    exe = BIN / tool if (BIN / tool).exists() else shutil.which(tool)
    if exe is None:
        pytest.fail(f"{tool} is not installed: install the test extra (pip install -e '.[test]')")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_ruff_finds_nothing() -> None:
    result = run("ruff", "check", "bot", "handlers", "tests")
    assert result.returncode == 0, result.stdout


def test_code_is_formatted() -> None:
    result = run("ruff", "format", "--check", "bot", "handlers", "tests")
    assert result.returncode == 0, result.stdout


def test_the_core_imports_no_slack_sql_kubernetes_mlflow_anthropic_or_scheduler() -> None:
    result = run("lint-imports")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_code_type_checks_strictly_in_the_core_and_diagnostics() -> None:
    result = run("mypy", "bot", "handlers")
    assert result.returncode == 0, result.stdout
