"""Learning from resolutions: every way of resolving keeps a resolution with its note, the database's own
full-text search finds it again (FTS5 on SQLite, a tsvector on PostgreSQL), and a second incident on a
target fixed before shows the earlier fix and tries it first. A note is data: it changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from bot.services import learning
from bot.store.db import make_engine, migrate
from bot.store.tables import Incident, RemediationAttempt
from tests.conftest import postgres_url

T0 = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)


# -- the store: search on SQLite and PostgreSQL --------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'learn.db'}"
    else:
        if not postgres_url():
            print("TEST_DATABASE_URL is not set: the PostgreSQL search is not tested here")
        url = request.getfixturevalue("pg_url")
    db = make_engine(url)
    migrate(db)
    yield db
    db.dispose()


def incident(s: Session, n: int, title: str, **kw: Any) -> Incident:
    inc = Incident(
        fingerprint=f"fp-{n}",
        source="alertmanager",
        title=title,
        category=kw.pop("category", "training_crash"),
        status=kw.pop("status", "resolved"),
        opened_at=kw.pop("at", T0),
        updated_at=T0,
        **kw,
    )
    s.add(inc)
    s.flush()
    return inc


def resolved(
    db: Engine, title: str, note: str = "", fix: str | None = None, at: datetime = T0, **kw: Any
) -> int:
    """An incident resolved at `at` (its fix applied just before), kept as the engine keeps it."""
    with Session(db) as s:
        inc = incident(s, 0, title, at=at - timedelta(minutes=5), **kw)
        inc.fingerprint = f"fp-{inc.id}"
        inc.resolved_at, inc.resolved_level, inc.resolution_note = at, kw.get("level", "L2"), note or None
        if fix:
            s.add(
                RemediationAttempt(
                    incident_id=inc.id or 0,
                    name=fix,
                    attempt=1,
                    risk="safe",
                    status="fixed",
                    summary="memory raised to 8Gi",
                    at=at - timedelta(minutes=1),
                )
            )
        row = learning.record(s, inc, at)
        assert row is not None
        s.commit()
        return inc.id or 0


def test_search_finds_a_note_by_its_words_stemmed_and_ranks_the_best_first(engine: Engine) -> None:
    lag = resolved(engine, "Feature freshness alert", note="consumer lag on the features topic, restarted")
    gpu = resolved(engine, "GPU node gpu-3 lost", note="cordoned gpu-3 and rescheduled")
    resolved(engine, "Model registration failed", note="registry quota raised")

    with Session(engine) as s:
        by_stem = [r.incident_id for r in learning.search(s, "features lagging behind")]
        by_name = [r.incident_id for r in learning.search(s, "node gpu-3 is gone")]
        by_title = [r.incident_id for r in learning.search(s, "registration")]

    assert by_stem[0] == lag  # "lagging" finds "lag", "features" finds "feature"
    assert by_name[0] == gpu
    assert len(by_title) == 1


@pytest.mark.parametrize(
    "hostile",
    [
        'memory "limit',
        "NOT AND (",
        "gpu-3",
        "lag\x00ging",
        "x" * 10_000,
        "oom " * 2_500,
        "*",
        "-",
        "' OR 1=1 --",
    ],
)
def test_hostile_search_text_never_raises(engine: Engine, hostile: str) -> None:
    resolved(engine, "GPU node gpu-3 lost", note='memory "limit" raised; lagging consumer')
    with Session(engine) as s:
        found = learning.search(s, hostile)
    assert isinstance(found, list)


def test_the_same_target_comes_first_then_the_pipeline_then_words(engine: Engine) -> None:
    key = "k8s-job:/ml-pipelines/train-daily"
    words = resolved(engine, "train-daily OOMKilled", note="oom train daily", at=T0 + timedelta(hours=3))
    same = resolved(engine, "Training crashed", fix="rerun_job_with_more_memory", target_key=key)
    older = resolved(
        engine,
        "Training crashed",
        fix="rerun_job_with_more_memory",
        target_key=key,
        at=T0 - timedelta(days=1),
    )
    piped = resolved(engine, "Other step", note="reran", labels={"pipeline": "train-daily"})
    with Session(engine, expire_on_commit=False) as s:
        now = incident(s, 99, "train-daily OOMKilled again", status="l1_running", target_key=None)
        now.target_key, now.labels = key, {"pipeline": "train-daily", "job_name": "train-daily"}
        s.commit()

    found = learning.similar(engine, now, limit=5)

    assert [p.incident_id for p in found][:4] == [same, older, piped, words]
    assert [p.same_target for p in found][:4] == [True, True, True, False]
    assert found[0].fix == "rerun_job_with_more_memory" and found[0].fix_summary == "memory raised to 8Gi"
    assert learning.fixed_before(engine, now) == ["rerun_job_with_more_memory"]
    assert all(p.incident_id != now.id for p in found)
    assert len(learning.similar(engine, now)) == 3  # bounded


def test_an_incident_is_never_similar_to_itself_and_a_target_never_fixed_has_no_fix(engine: Engine) -> None:
    key = "k8s-job:/ml-pipelines/feature-build"
    first = resolved(engine, "Feature build failed", note="upstream restored", target_key=key)
    with Session(engine) as s:
        inc = s.get(Incident, first)
        assert inc is not None
    assert learning.similar(engine, inc) == []
    assert learning.fixed_before(engine, inc) == []


# -- "seen before" lines ---------------------------------------------------------------------------------
def past(n: int, **kw: Any) -> dict[str, Any]:
    base = {"incident_id": n, "title": "t", "category": "training_crash", "level": "L1"}
    return {**base, "resolved_at": T0.isoformat(), "same_target": False, **kw}


def test_seen_before_says_how_the_same_target_was_fixed_and_what_else_was_similar() -> None:
    fix = {
        "fix": "rerun_job_with_more_memory",
        "fix_summary": "memory raised to 8Gi",
        "pipeline": "train-daily",
    }
    lines = learning.seen_before(
        [
            past(12, same_target=True, **fix),
            past(9, same_target=True, **fix),
            past(4, same_target=True, **fix),
            past(7, level="L2", note="restarted the tracking server\n<!channel>"),
        ]
    )
    assert lines == [
        "Last 3 times train-daily failed like this: memory raised to 8Gi (rerun_job_with_more_memory), "
        "fixed at L1 — INC-12, INC-9, INC-4",
        "Similar: INC-7 (resolved at L2: 'restarted the tracking server <!channel>')",
    ]
    long = learning.seen_before([past(i, note="x " * 400) for i in range(10)])
    assert len("".join(long)) <= 300
    assert learning.seen_before([]) == []
