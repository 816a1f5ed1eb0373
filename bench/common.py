"""What the benchmarks share: percentiles, a resident-memory sampler, a throw-away PostgreSQL schema, and
CPU pinning. Imported by the scripts in this folder (run them from the repository root)."""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import create_engine, text

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def pct(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of `values` by nearest rank; 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_mb(pid: int | None = None) -> float:
    """Resident set size of a process (this one by default) in MB, from /proc; 0.0 where there is none."""
    status = Path(f"/proc/{pid or 'self'}/status")
    try:
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class RssSampler:
    """Samples a process's resident memory every `every` seconds while in its `with` block."""

    def __init__(self, pid: int | None = None, every: float = 0.1) -> None:
        self.pid, self.every = pid, every
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while True:
            self.samples.append(rss_mb(self.pid))
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(rss_mb(self.pid))

    @property
    def peak(self) -> float:
        return max(self.samples, default=0.0)

    @property
    def first(self) -> float:
        return self.samples[0] if self.samples else 0.0


class FreshSchema:
    """A new schema on the PostgreSQL server, dropped afterwards; its URL selects it by search_path."""

    def __init__(self, base: str | None = None) -> None:
        self.base = base or os.environ.get("TEST_DATABASE_URL") or DEFAULT_PG
        self.schema = f"bench_{uuid.uuid4().hex[:10]}"
        self._engine = create_engine(self.base.replace("postgresql://", "postgresql+psycopg://", 1))

    def __enter__(self) -> str:
        with self._engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{self.schema}"'))
        sep = "&" if "?" in self.base else "?"
        return f"{self.base}{sep}options=-csearch_path%3D{self.schema}"

    def __exit__(self, *_exc: object) -> None:
        with self._engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{self.schema}" CASCADE'))
        self._engine.dispose()


def pin_cmd(cpu: int) -> list[str]:
    """The `taskset` prefix that pins a command to one CPU, or [] where taskset is missing."""
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") else []


def pin_self(cpu: int) -> bool:
    """Pin this process to one CPU (Linux); whether it could be."""
    if not hasattr(os, "sched_setaffinity"):
        return False
    try:
        os.sched_setaffinity(0, {cpu})
        return True
    except OSError:
        return False
