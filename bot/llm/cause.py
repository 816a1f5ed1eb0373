"""The structured root cause an investigation answers with, and how it is grounded in the findings.

The model answers `CAUSE_SCHEMA`: a hypothesis, a confidence, the ids of the findings it rests on, the
facts it read (each with the findings that show it), or `inconclusive` when the evidence supports no
cause. `ground` then keeps only what the findings support: a fact citing no finding, or one the incident
does not have, is demoted to a hypothesis, and a cause resting on no known finding is at most a
low-confidence hypothesis. Nothing the model says is shown as a fact unless a finding backs it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

CONFIDENCE = ("high", "medium", "low")

_IDS = {"type": "array", "items": {"type": "integer", "minimum": 1}, "maxItems": 20}
_LINE = {"type": "string", "minLength": 1, "maxLength": 400}

CAUSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "inconclusive": {
            "type": "boolean",
            "description": "true when the findings do not support any root cause",
        },
        "hypothesis": {
            "type": "string",
            "maxLength": 600,
            "description": "the most likely root cause, one or two sentences; empty when inconclusive",
        },
        "confidence": {"type": "string", "enum": list(CONFIDENCE)},
        "finding_ids": {**_IDS, "description": "ids of the findings the hypothesis rests on"},
        "facts": {
            "type": "array",
            "maxItems": 8,
            "items": {
                "type": "object",
                "properties": {"text": _LINE, "finding_ids": _IDS},
                "required": ["text", "finding_ids"],
                "additionalProperties": False,
            },
            "description": "what the findings show, each with the ids of the findings that show it",
        },
        "hypotheses": {
            "type": "array",
            "maxItems": 5,
            "items": _LINE,
            "description": "what is inferred rather than read in a finding",
        },
    },
    "required": ["inconclusive", "hypothesis", "confidence", "finding_ids", "facts"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class Fact:
    text: str
    finding_ids: tuple[int, ...]


@dataclass(frozen=True)
class Cause:
    """A grounded root cause: `facts` are backed by findings; `hypotheses` are not (or not yet)."""

    inconclusive: bool
    hypothesis: str = ""
    confidence: str = "low"
    finding_ids: tuple[int, ...] = ()
    facts: tuple[Fact, ...] = ()
    hypotheses: tuple[str, ...] = ()
    demoted: int = 0  # claims the model made as facts that no known finding backs

    @property
    def supported(self) -> bool:
        """A cause resting on at least one known finding (not inconclusive)."""
        return not self.inconclusive and bool(self.finding_ids)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["facts"] = [{"text": f.text, "finding_ids": list(f.finding_ids)} for f in self.facts]
        data["finding_ids"] = list(self.finding_ids)
        data["hypotheses"] = list(self.hypotheses)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Cause:
        return cls(
            inconclusive=bool(data.get("inconclusive", True)),
            hypothesis=str(data.get("hypothesis", "")),
            confidence=str(data.get("confidence", "low")),
            finding_ids=tuple(int(i) for i in data.get("finding_ids", ())),
            facts=tuple(
                Fact(str(f["text"]), tuple(int(i) for i in f.get("finding_ids", ())))
                for f in data.get("facts", ())
            ),
            hypotheses=tuple(str(h) for h in data.get("hypotheses", ())),
            demoted=int(data.get("demoted", 0)),
        )


INCONCLUSIVE = Cause(inconclusive=True)


def ground(answer: Mapping[str, Any], known: Collection[int]) -> Cause:
    """The model's answer (already valid against CAUSE_SCHEMA) kept to what the findings `known` back."""
    known_ids = set(known)
    facts: list[Fact] = []
    hypotheses = [str(h) for h in answer.get("hypotheses", ())]
    demoted = 0
    for f in answer.get("facts", ()):
        ids = tuple(dict.fromkeys(i for i in f["finding_ids"] if i in known_ids))
        if ids:
            facts.append(Fact(f["text"], ids))
        else:  # cites nothing the incident has: said as a hypothesis, never as a fact
            hypotheses.append(f["text"])
            demoted += 1
    rests_on = tuple(dict.fromkeys(i for i in answer.get("finding_ids", ()) if i in known_ids))
    hypothesis = str(answer.get("hypothesis", "")).strip()
    if answer.get("inconclusive") or not hypothesis:
        return Cause(True, "", "low", (), tuple(facts), tuple(hypotheses), demoted)
    confidence = str(answer.get("confidence", "low"))
    if not rests_on:  # a cause no finding supports is a guess, whatever confidence was claimed
        confidence = "low"
        demoted += 1
    return Cause(False, hypothesis, confidence, rests_on, tuple(facts), tuple(hypotheses), demoted)


@dataclass
class Investigation:
    """What is stored in `incidents.investigation` after Level 1: the cause and who drafted the prose.

    `drafted_by` is the model id or "rule-based"; `says` tells people why a draft is rule-based; `fields`
    holds drafted prose of Problem, Impact and Request (absent: the rule-based text); `similar` lists past
    resolutions like this incident (bot/services/learning.py); `tried_first` names a remediation that
    fixed the same target before and was therefore tried first."""

    drafted_by: str
    cause: Cause = INCONCLUSIVE
    says: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    similar: list[dict[str, Any]] = field(default_factory=list)
    tried_first: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "drafted_by": self.drafted_by,
            "says": self.says,
            "cause": self.cause.to_json(),
            "fields": dict(self.fields),
            "similar": list(self.similar),
            "tried_first": self.tried_first,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Investigation | None:
        """The stored investigation, or None when there is none or it is not in this shape (an older or
        edited row): messages then show no cause rather than fail."""
        if not data:
            return None
        try:
            return cls._read(data)
        except (KeyError, TypeError, ValueError, AttributeError):
            return None

    @classmethod
    def _read(cls, data: Mapping[str, Any]) -> Investigation:
        return cls(
            drafted_by=str(data.get("drafted_by", "rule-based")),
            cause=Cause.from_json(data.get("cause") or {}),
            says=data.get("says"),
            fields=dict(data.get("fields") or {}),
            similar=list(data.get("similar") or []),
            tried_first=data.get("tried_first"),
        )
