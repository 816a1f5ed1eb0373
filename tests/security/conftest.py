"""The security suite's Hypothesis profile and its shared worlds.

Profiles: `security` (the default here: derandomized, so every run tries the same examples and a
failure is reproducible) and `security-explore` (random, five times the examples), chosen with
HYPOTHESIS_PROFILE. Each fuzzing module shares one sandbox world (module scope) across its examples."""

from __future__ import annotations

import os
import traceback
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, Phase, settings

from bot.sandbox.world import SandboxWorld
from tests.security.helpers import FUZZ_CONFIG, Crashes, crash_log

# Python 3.11 counts AST-construction depth once per interpreter, not per thread: two threads parsing
# at the same moment can fail with "SystemError: AST constructor recursion depth mismatch". The bot's
# server threads log tracebacks (for which Python parses each source line to draw ^^^ carets) while
# pytest parses test sources for its report, and then pytest itself crashes (INTERNALERROR) and the run
# stops. Tracebacks drawn without carets keep the two from meeting.
if hasattr(traceback, "_extract_caret_anchors_from_line_segment"):
    traceback._extract_caret_anchors_from_line_segment = lambda segment: None  # type: ignore[attr-defined]

_COMMON = dict(
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
    print_blob=True,
)
# No "explain" phase by default: it re-runs every failing example many times over loopback HTTP.
settings.register_profile(
    "security",
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    **_COMMON,
)
settings.register_profile("security-explore", derandomize=False, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "security"))


@pytest.fixture(scope="module")
def fuzz_world() -> Iterator[SandboxWorld]:
    """One sandbox for a whole fuzzing module (SQLite): each example checks its own effects."""
    with SandboxWorld(config=FUZZ_CONFIG) as w:
        yield w


@pytest.fixture(scope="module")
def crashes() -> Iterator[Crashes]:
    """Every ERROR log record with a traceback, from any logger, while the module runs."""
    with crash_log() as handler:
        yield handler


@pytest.fixture(params=["sqlite", "postgres"])
def db_world(request: pytest.FixtureRequest) -> Iterator[SandboxWorld]:
    """A fresh sandbox on SQLite, and on PostgreSQL where TEST_DATABASE_URL is set (else skipped, with
    the reason printed by `pg_url`)."""
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    with SandboxWorld(database_url=url, config=FUZZ_CONFIG) as w:
        yield w
