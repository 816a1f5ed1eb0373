"""The escalation protocol's targets for how incidents end, as the seed states them: 70% of issues
resolve at Level 1, 80% of the remaining issues at Level 2, under 2% reach Level 4."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class RateTarget:
    """One target: `part` of `whole` (keys of the stats counts) should be at least `percent`, or under it
    when `under`."""

    label: str
    part: str
    whole: str
    percent: int
    under: bool = False

    def fraction(self, counts: Mapping[str, int]) -> float | None:
        """`part` of `whole` as a ratio (0 to 1); None when there is nothing to measure it on."""
        whole = counts.get(self.whole, 0)
        return counts.get(self.part, 0) / whole if whole else None

    def rate(self, counts: Mapping[str, int]) -> int | None:
        """The rate in whole percent; None when there is nothing to measure it on."""
        fraction = self.fraction(counts)
        return None if fraction is None else round(100 * fraction)

    def met(self, counts: Mapping[str, int]) -> bool | None:
        """Whether the counts meet the target, compared exactly (not on the rounded rate)."""
        whole = counts.get(self.whole, 0)
        if not whole:
            return None
        scaled = 100 * counts.get(self.part, 0)
        return scaled < self.percent * whole if self.under else scaled >= self.percent * whole

    @property
    def wording(self) -> str:
        return f"target {'under ' if self.under else ''}{self.percent}%"


TARGETS = (
    RateTarget("Resolved at L1", "resolved_l1", "total", 70),
    RateTarget("Of the rest, resolved at L2", "resolved_l2", "beyond_l1", 80),
    RateTarget("Reached L4", "reached_l4", "total", 2, under=True),
)
