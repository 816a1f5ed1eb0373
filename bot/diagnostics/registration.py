"""Level 1 for this category: not written yet, so its alerts go to Level 2 saying so."""

from __future__ import annotations

from bot.diagnostics.base import Check, Remediation

CHECKS: list[type[Check]] = []
REMEDIATIONS: list[type[Remediation]] = []
