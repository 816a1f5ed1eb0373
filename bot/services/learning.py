"""Learning from resolutions: every resolved incident is kept (`resolutions`), and a new incident is shown
the most similar resolved ones, found by exact target matches and the database's own full-text search
(FTS5 on SQLite, a tsvector on PostgreSQL, LIKE where SQLite has no FTS5).

One row per incident: an incident reopened and resolved again updates its row, so a flapping alert counts
once and its row says how it was resolved last. Everything kept is redacted; a note is untrusted text that
is shown (quoted, bounded) and given to Claude as data, and changes nothing the bot does: only the name of
a remediation that fixed the same target is used, to try that remediation first, and the allowlist, caps
and checks still decide whether it runs.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, text
from sqlmodel import Session, col, select

from bot.core.models import AttemptStatus, Category
from bot.core.untrusted import scrub
from bot.diagnostics.names import remediation_name
from bot.store.knowledge import Resolution
from bot.store.tables import Decision, Incident, RemediationAttempt

log = logging.getLogger(__name__)

NOTE_MAX = 600  # a note kept for next time
SUMMARY_MAX = 300  # what the fix did
BODY_MAX = 4000  # the searchable text
WORDS_MAX = 24  # words of a search
WORD_MAX = 64
SEEN_MAX = 300  # the "seen before" lines together
_QUOTED_MAX = 80  # a note quoted in them
_WORD = re.compile(r"\w[\w.\-/:]*")
_SKIP = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "in",
        "is",
        "it",
        "not",
        "of",
        "on",
        "or",
    }
    | {"the", "to", "was", "were", "with"}
)


@dataclass(frozen=True)
class Past:
    """One resolved incident like this one, as a new incident shows it."""

    incident_id: int
    title: str
    category: str
    level: str  # where it was resolved
    resolved_at: str  # ISO time
    same_target: bool  # the same pipeline/Job/model/feature table, not only similar words
    fix: str | None = None  # the remediation that fixed it
    fix_summary: str = ""
    decision: str | None = None
    note: str = ""
    pipeline: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _text(value: Any, limit: int) -> str:
    return str(scrub(str(value or ""), one_line=True)).strip()[:limit]


def pipeline_of(inc: Incident) -> str | None:
    """The pipeline an incident is about: its `pipeline` label, else its workflow's or Job's name."""
    labels, target = inc.labels or {}, inc.target or {}
    for value in (
        labels.get("pipeline"),
        target.get("workflow"),
        labels.get("workflow"),
        target.get("job"),
        labels.get("job_name"),
    ):
        if value:
            return _text(value, 255) or None
    return None


# -- recording ------------------------------------------------------------------------------------------
def record(s: Session, inc: Incident, now: datetime, note: str | None = None) -> Resolution | None:
    """Keep how `inc` was resolved, in the transaction that resolves it; never fails that transaction."""
    try:
        with s.begin_nested():
            return _record(s, inc, now, note)
    except Exception:  # what is learnt is an aid: the resolution itself must go through
        log.exception("INC-%s: its resolution could not be kept for next time", inc.id)
        return None


def _record(s: Session, inc: Incident, now: datetime, said: str | None) -> Resolution:
    opened = inc.opened_at
    fixed = s.exec(
        select(RemediationAttempt)
        .where(
            col(RemediationAttempt.incident_id) == inc.id,
            col(RemediationAttempt.status) == AttemptStatus.FIXED.value,
            col(RemediationAttempt.at) >= opened,
        )
        .order_by(col(RemediationAttempt.at).desc(), col(RemediationAttempt.id).desc())
    ).first()
    dec = s.exec(
        select(Decision)
        .where(col(Decision.incident_id) == inc.id, col(Decision.status) == "decided")
        .order_by(col(Decision.id).desc())
    ).first()
    if dec is not None and dec.chosen_at is not None and _naive(dec.chosen_at) < _naive(opened):
        dec = None  # decided before the incident reopened
    level = inc.resolved_level or inc.level
    summary = _text(fixed.summary, SUMMARY_MAX) if fixed else ""
    how = f"Fixed at Level {level[1:]} by {remediation_name(fixed.name, fixed.plan)}" if fixed else ""
    note = (
        (dec.rationale if dec is not None else None)
        or inc.resolution_note
        or said
        or (f"{how}: {summary}" if fixed else "")
        or (f"Decision: {dec.chosen_label}" if dec is not None else "")
    )
    row = s.exec(select(Resolution).where(col(Resolution.incident_id) == inc.id)).first()
    row = row or Resolution(
        incident_id=inc.id or 0, category=inc.category, title="", level=inc.level, resolved_at=now
    )
    row.category, row.pipeline, row.target_key = inc.category, pipeline_of(inc), inc.target_key
    row.title, row.labels = _text(inc.title, 1000), dict(scrub(dict(inc.labels or {}), one_line=True))
    row.level = level
    row.fix, row.fix_summary = (fixed.name if fixed else None), summary
    row.decision = _text(dec.chosen_label, 200) if dec is not None and dec.chosen_label else None
    row.note, row.resolved_by = _text(note, NOTE_MAX), inc.resolved_by
    row.resolved_at, row.body = inc.resolved_at or now, _body(row, inc)
    s.add(row)
    s.flush()
    return row


def _naive(at: datetime) -> datetime:
    return at.replace(tzinfo=None) if at.tzinfo else at


def note_rationale(s: Session, incident_id: int, rationale: str) -> None:
    """A decision's reason, given after the incident was resolved, becomes its resolution's note."""
    row = s.exec(select(Resolution).where(col(Resolution.incident_id) == incident_id)).first()
    inc = s.get(Incident, incident_id)
    if row is None or inc is None or not rationale.strip():
        return
    row.note = _text(rationale, NOTE_MAX)
    row.body = _body(row, inc)
    s.add(row)


def _body(row: Resolution, inc: Incident) -> str:
    category = _label(row.category)
    target = " ".join(str(v) for v in (inc.target or {}).values() if v)
    labels = " ".join(str(v) for v in row.labels.values() if isinstance(v, str | int))
    parts = [row.title, category, row.pipeline, row.target_key, target, labels]
    parts += [row.fix, row.fix_summary, row.decision, row.note]
    return _text(" \u00b7 ".join(p for p in parts if p), BODY_MAX)


def _label(category: str) -> str:
    try:
        return Category(category).label
    except ValueError:
        return category


# -- finding ---------------------------------------------------------------------------------------------
def words(query: str) -> list[str]:
    """The words of a search, at most `WORDS_MAX`, without operators or quotes: any text is safe."""
    seen: list[str] = []
    for w in _WORD.findall(query[:20_000]):
        w = w.strip(".-/:").lower()[:WORD_MAX]
        if w and w not in _SKIP and w not in seen:
            seen.append(w)
        if len(seen) >= WORDS_MAX:
            break
    return seen


def search(
    s: Session, query: str, limit: int = 3, exclude: set[int] | None = None, category: str | None = None
) -> list[Resolution]:
    """Resolutions matching any word of `query` (of `category` when given), best first (bm25 / ts_rank,
    then the most recent)."""
    found = words(query)
    if not found or limit <= 0:
        return []
    skip, wanted = exclude or set(), limit + len(exclude or ())
    of_category = " AND r.category = :c" if category else ""
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        statement = text(
            "SELECT r.id FROM resolutions r, websearch_to_tsquery('english', :q) q WHERE r.search @@ q "
            f"{of_category} ORDER BY ts_rank(r.search, q) DESC, r.resolved_at DESC, r.id DESC LIMIT :n"
        )
        ids = list(s.execute(statement, {"q": " or ".join(found), "n": wanted, "c": category}).scalars())
    elif _has_fts(s):
        match = " OR ".join('"{}"'.format(w.replace('"', "")) for w in found)
        statement = text(
            "SELECT r.id FROM resolutions_fts JOIN resolutions r ON r.id = resolutions_fts.rowid "
            f"WHERE resolutions_fts MATCH :q{of_category} "
            "ORDER BY bm25(resolutions_fts, 2.0, 1.0), r.resolved_at DESC, r.id DESC LIMIT :n"
        )
        ids = list(s.execute(statement, {"q": match, "n": wanted, "c": category}).scalars())
    else:  # a Python built without FTS5: plain substring matches, the most recent first
        clauses = " OR ".join(f"lower(r.body) LIKE :w{i} ESCAPE '\\'" for i in range(len(found[:8])))
        params: dict[str, Any] = {f"w{i}": f"%{_like(w)}%" for i, w in enumerate(found[:8])}
        statement = text(
            f"SELECT r.id FROM resolutions r WHERE ({clauses}){of_category} "
            "ORDER BY r.resolved_at DESC, r.id DESC LIMIT :n"
        )
        ids = list(s.execute(statement, {**params, "n": wanted, "c": category}).scalars())
    rows = {r.id: r for r in s.exec(select(Resolution).where(col(Resolution.id).in_(ids)))} if ids else {}
    ranked = [rows[i] for i in ids if i in rows and rows[i].incident_id not in skip]
    return ranked[:limit]


def _like(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _has_fts(s: Session) -> bool:
    statement = text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'resolutions_fts'")
    return s.execute(statement).first() is not None


def _latest(s: Session, where: Any, exclude: set[int], limit: int) -> list[Resolution]:
    return list(
        s.exec(
            select(Resolution)
            .where(where, col(Resolution.incident_id).notin_(exclude))
            .order_by(col(Resolution.resolved_at).desc(), col(Resolution.id).desc())
            .limit(limit)
        )
    )


def similar(engine: Engine, inc: Incident, limit: int = 3) -> list[Past]:
    """The most similar resolved incidents: the same target first, then the same pipeline (each the most
    recent first), then incidents of the same category by full-text rank; never the incident itself."""
    limit = max(0, min(limit, 10))
    found: list[Past] = []
    exclude = {inc.id or 0}
    pipeline = pipeline_of(inc)
    with Session(engine) as s:
        tiers = []
        if inc.target_key:
            tiers.append(col(Resolution.target_key) == inc.target_key)
        if pipeline:
            tiers.append(col(Resolution.pipeline) == pipeline)
        for where in tiers:
            for row in _latest(s, where, exclude, limit - len(found)):
                found.append(_past(row, True))
                exclude.add(row.incident_id)
        if len(found) < limit:
            query = " ".join(filter(None, [inc.title, _label(inc.category), pipeline]))
            # by words only among incidents of the same category: a shared word alone is no likeness
            alike = search(s, query, limit - len(found), exclude, inc.category)
            found += [_past(r, False) for r in alike]
    return found[:limit]


def _past(row: Resolution, same_target: bool) -> Past:
    return Past(
        incident_id=row.incident_id,
        title=row.title,
        category=row.category,
        level=row.level,
        resolved_at=row.resolved_at.isoformat(),
        same_target=same_target,
        fix=row.fix,
        fix_summary=row.fix_summary,
        decision=row.decision,
        note=row.note,
        pipeline=row.pipeline,
    )


def fixed_before(engine: Engine, inc: Incident) -> list[str]:
    """Remediations that fixed this incident's target before, the most recent first."""
    if not inc.target_key:
        return []
    with Session(engine) as s:
        fixes = s.exec(
            select(Resolution.fix)
            .where(
                col(Resolution.target_key) == inc.target_key,
                col(Resolution.fix).is_not(None),
                col(Resolution.incident_id) != (inc.id or 0),
            )
            .order_by(col(Resolution.resolved_at).desc(), col(Resolution.id).desc())
            .limit(20)
        )
        return list(dict.fromkeys(f for f in fixes if f))


# -- saying it ---------------------------------------------------------------------------------------------
def seen_before(similar: list[dict[str, Any]]) -> list[str]:
    """One or two short lines for a message: how the same target was fixed before, and what else was
    similar. Notes are quoted and bounded; the message renderer escapes them."""
    pasts = [p for p in similar if isinstance(p, dict) and isinstance(p.get("incident_id"), int)]
    same = [p for p in pasts if p.get("same_target")]
    lines: list[str] = []
    if same:
        latest = same[0]
        alike = [p for p in same if p.get("fix") == latest.get("fix")] if latest.get("fix") else [latest]
        what = _quote(latest.get("pipeline") or latest.get("title") or "this target", 60, quoted=False)
        times = f"Last {len(alike)} times" if len(alike) > 1 else "Last time"
        lines.append(f"{times} {what} failed like this: {_how(latest)} — {_ids(alike)}")
        pasts = [p for p in pasts if p not in alike]
    if pasts:
        lines.append("Similar: " + ", ".join(f"INC-{p['incident_id']} ({_how(p)})" for p in pasts))
    out, room = [], SEEN_MAX
    for line in lines:
        if room < 40:
            break
        out.append(line if len(line) <= room else line[: room - 1].rstrip() + "…")
        room -= len(out[-1])
    return out


def _how(p: dict[str, Any]) -> str:
    level = str(p.get("level") or "?")[:4]
    if p.get("fix"):
        summary = _quote(p.get("fix_summary") or "", _QUOTED_MAX, quoted=False)
        fix = _quote(p["fix"], 40, quoted=False)
        return f"{summary} ({fix}), fixed at {level}" if summary else f"{fix}, fixed at {level}"
    said = p.get("note") or (f"Decision: {p['decision']}" if p.get("decision") else "")
    return f"resolved at {level}: {_quote(said, _QUOTED_MAX)}" if said else f"resolved at {level}"


def _quote(value: Any, limit: int, *, quoted: bool = True) -> str:
    said = " ".join(str(value).split()).replace("'", "’")
    said = said if len(said) <= limit else said[: limit - 1].rstrip() + "…"
    return f"'{said}'" if quoted else said


def _ids(pasts: list[dict[str, Any]]) -> str:
    return ", ".join(f"INC-{p['incident_id']}" for p in pasts)
