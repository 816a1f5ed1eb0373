"""What `doctor` found: one check per line (✓, or ✗ with what is wrong and how to fix it), or one JSON
document for automation. Every word is redacted before it is kept."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TextIO

from bot.core.redact import redact


def cause(exc: BaseException) -> str:
    """The first line of what went wrong, redacted (a driver's error can quote the URL it was given)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return redact(text.splitlines()[0] if text else type(exc).__name__)


@dataclass(frozen=True)
class Check:
    """One thing `doctor` looked at: what (`name`), whether it is fine, what it found, and the fix."""

    name: str
    ok: bool
    detail: str = ""
    fix: str = ""

    def line(self) -> str:
        text = f"{'✓' if self.ok else '✗'} {self.name}" + (f": {self.detail}" if self.detail else "")
        return text + (f"; fix: {self.fix}" if self.fix and not self.ok else "")


class Report:
    """The checks in the order they ran."""

    def __init__(self) -> None:
        self.checks: list[Check] = []

    @property
    def failures(self) -> int:
        return sum(not check.ok for check in self.checks)

    def add(self, name: str, ok: bool, detail: str = "", fix: str = "") -> None:
        """Keep one check's result (a fix is only shown for a failure)."""
        self.checks.append(Check(redact(name), ok, redact(detail), redact(fix) if not ok else ""))

    @contextmanager
    def guarded(self, name: str) -> Iterator[None]:
        """Run checks; whatever they raise becomes one failed line instead of a traceback, so the rest of
        the report still runs."""
        try:
            yield
        except Exception as exc:  # the report must reach its end whatever one check meets
            detail = f"the check itself failed ({type(exc).__name__}: {cause(exc)})"
            self.add(name, False, detail, "run `escalation-bot -v doctor` and report this with its output")

    def write(self, out: TextIO, as_json: bool) -> int:
        """Print the report; the exit status: 1 when anything failed."""
        if as_json:
            document = {"ok": not self.failures, "checks": [asdict(check) for check in self.checks]}
            out.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
        else:
            for check in self.checks:
                out.write(check.line() + "\n")
            out.write(f"{self.failures} check(s) failed\n" if self.failures else "all checks passed\n")
        return 1 if self.failures else 0
