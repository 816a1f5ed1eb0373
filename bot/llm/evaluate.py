"""Scoring an investigation's answer against a recorded incident whose cause is known.

An answer is `inconclusive` when the model said so; `supported` when, once grounded (bot/llm/cause.py
`ground`), its cause rests on at least one finding that really shows the expected cause and its hypothesis
names that cause (every expected keyword, each a set of alternatives like "OOM|out of memory", appears);
`unsupported` when it claims any other cause: resting on a finding that does not show it, on an id the
incident does not have, or naming something else. Claims the model stated as facts without a finding to
back them are counted as demoted: they are shown as hypotheses, never as facts. Grounding checks that a
fact cites a finding the incident has, not that the finding says it: facts an unsupported answer keeps
(citing a real finding that does not show them) are counted apart, so the gap stays visible.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from bot.llm.cause import Cause, ground


class Verdict(StrEnum):
    SUPPORTED = "supported"
    UNSUPPORTED = "unsupported"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Expected:
    """The known cause of a recorded incident and the findings that show it (none: the evidence is thin)."""

    cause: str
    keywords: tuple[str, ...]  # each "a|b|c": one of the alternatives must appear in the hypothesis
    finding_ids: tuple[int, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Expected:
        return cls(
            str(data["cause"]),
            tuple(str(k) for k in data.get("keywords", ())),
            tuple(int(i) for i in data.get("finding_ids", ())),
        )


@dataclass(frozen=True)
class Score:
    verdict: Verdict
    cause: Cause  # the answer as grounded: what a person would be shown
    why: str  # one line: what made the verdict

    @property
    def demoted(self) -> int:
        return self.cause.demoted


def missing_keywords(hypothesis: str, keywords: Iterable[str]) -> list[str]:
    """The expected keywords (alternatives joined by "|") none of whose alternatives is in `hypothesis`."""
    said = hypothesis.casefold()
    return [k for k in keywords if not any(a.strip().casefold() in said for a in k.split("|"))]


def score(answer: Mapping[str, Any], known: Collection[int], expected: Expected) -> Score:
    """The verdict on one answer (valid against CAUSE_SCHEMA) for an incident whose findings are `known`."""
    cause = ground(answer, known)
    if cause.inconclusive:
        return Score(Verdict.INCONCLUSIVE, cause, "the model says the findings support no cause")
    unknown = sorted(set(answer.get("finding_ids", ())) - set(known))
    if not cause.finding_ids:
        cited = ", ".join(f"F{i}" for i in unknown) or "nothing"
        return Score(Verdict.UNSUPPORTED, cause, f"the cause cites {cited}: no finding of this incident")
    showing = [i for i in cause.finding_ids if i in expected.finding_ids]
    if not showing:
        rests = ", ".join(f"F{i}" for i in cause.finding_ids)
        return Score(Verdict.UNSUPPORTED, cause, f"it rests on {rests}: none of them shows the cause")
    missing = missing_keywords(cause.hypothesis, expected.keywords)
    if missing:
        return Score(Verdict.UNSUPPORTED, cause, f"the hypothesis does not name {', '.join(missing)}")
    return Score(Verdict.SUPPORTED, cause, "rests on " + ", ".join(f"F{i}" for i in showing))


@dataclass(frozen=True)
class Tally:
    """Verdicts over a set of answers, and the claims demoted from fact to hypothesis."""

    supported: int = 0
    unsupported: int = 0
    inconclusive: int = 0
    demoted: int = 0
    kept_in_unsupported: int = 0  # facts citing a real finding in answers whose cause is unsupported

    @property
    def answers(self) -> int:
        return self.supported + self.unsupported + self.inconclusive

    @property
    def supported_rate(self) -> float:
        return self.supported / self.answers if self.answers else 0.0

    def line(self) -> str:
        return (
            f"{self.answers} answers: {self.supported} supported, {self.unsupported} unsupported, "
            f"{self.inconclusive} inconclusive; {self.demoted} claim(s) shown as hypotheses, not facts; "
            f"{self.kept_in_unsupported} fact(s) kept in unsupported answers"
        )


def tally(scores: Iterable[Score]) -> Tally:
    counts = dict.fromkeys(Verdict, 0)
    demoted = kept = 0
    for s in scores:
        counts[s.verdict] += 1
        demoted += s.demoted
        kept += len(s.cause.facts) if s.verdict is Verdict.UNSUPPORTED else 0
    return Tally(
        counts[Verdict.SUPPORTED], counts[Verdict.UNSUPPORTED], counts[Verdict.INCONCLUSIVE], demoted, kept
    )


@dataclass(frozen=True)
class Recorded:
    """A model's answer recorded for a case, and the verdict it must get."""

    expect: Verdict
    note: str
    input: dict[str, Any]  # what the model passed to submit_answer


@dataclass(frozen=True)
class Case:
    """A recorded incident: what the model is shown, its known cause, and answers recorded for it."""

    name: str
    incident: dict[str, Any]  # category, title, target, labels, annotations
    findings: tuple[dict[str, Any], ...]  # id, check, status, summary, facts
    expected: Expected
    answers: tuple[Recorded, ...]

    @property
    def known(self) -> frozenset[int]:
        return frozenset(int(f["id"]) for f in self.findings)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Case:
        return cls(
            str(data["name"]),
            dict(data["incident"]),
            tuple(dict(f) for f in data["findings"]),
            Expected.from_json(data["expected"]),
            tuple(
                Recorded(Verdict(a["expect"]), str(a.get("note", "")), dict(a["input"]))
                for a in data.get("answers", ())
            ),
        )


def load_set(folder: Path) -> list[Case]:
    """Every case in `folder` (one JSON file each), by file name."""
    return [Case.from_json(json.loads(p.read_text())) for p in sorted(folder.glob("*.json"))]
