"""The largest delivery the bot accepts, answered well inside the sender's timeout.

    python bench/max_batch.py [--db sqlite|postgres|both] [--rounds 5]

One Alertmanager POST carries `intake.max_alerts_per_request` alerts (500 by default), every one a new
failure (a new incident, the worst case: nothing is a cheap repeat), against the whole bot on loopback
with its scheduler running, so Level 1 and Slack delivery compete as in production. Each round uses new
fingerprints. Alertmanager gives up on a webhook after 10 s and sends everything again, so the floor is
10 s and the target is a fifth of it. A delivery one alert over the cap is answered 413 at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
import uuid
from typing import Any

from sqlalchemy import create_engine, text

from bot.sandbox.world import DEMO_CONFIG, SandboxWorld, alertmanager_payload

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
SENDER_TIMEOUT_S = 10.0  # Alertmanager's webhook timeout
TARGET_S = SENDER_TIMEOUT_S / 5


def alerts(n: int, round_id: str) -> list[dict[str, Any]]:
    return [
        {
            "labels": {
                "alertname": "KubeJobFailed",
                "namespace": "ml-pipelines",
                "job_name": f"step-{round_id}-{i}",
                "severity": "warning",
                "reason": "BackoffLimitExceeded",
            },
            "annotations": {"summary": f"Job ml-pipelines/step-{round_id}-{i} failed: BackoffLimitExceeded"},
            "fingerprint": f"{round_id}{i:06d}",
        }
        for i in range(n)
    ]


def run(database_url: str | None, rounds: int) -> list[float]:
    config = {**DEMO_CONFIG, "intake": {"rate_limits": {"alertmanager": {"per_second": 1000, "burst": 1000}}}}
    with SandboxWorld(database_url=database_url, config=config) as world:
        assert world.bot is not None
        cap = world.config.intake.max_alerts_per_request
        world.bot.start_background()
        times = []
        for _ in range(rounds):
            body = json.dumps(alertmanager_payload(alerts(cap, uuid.uuid4().hex[:10]))).encode()
            started = time.perf_counter()
            answer = world.post_alerts(body)
            times.append(time.perf_counter() - started)
            assert answer.status == 202 and answer.json()["accepted"] == cap, answer.text
        over = world.post_alerts(alertmanager_payload(alerts(cap + 1, uuid.uuid4().hex[:10])))
        assert over.status == 413, over.text
        world.bot.stop()
        world.bot = None
    return times


def pg_schema() -> tuple[str, Any]:
    base = os.environ.get("TEST_DATABASE_URL") or DEFAULT_PG
    engine = create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"

    def drop() -> None:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()

    return f"{base}{sep}options=-csearch_path%3D{schema}", drop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    ok = True
    for db in ("sqlite", "postgres") if args.db == "both" else (args.db,):
        drop = None
        url = None
        if db == "postgres":
            url, drop = pg_schema()
        try:
            times = run(url, args.rounds)
        finally:
            if drop:
                drop()
        worst = max(times)
        verdict = "ok" if worst <= TARGET_S else "SLOWER THAN TARGET"
        ok &= worst <= TARGET_S
        print(
            f"{db:8s} 500 new alerts in one POST: p50 {statistics.median(times):.2f} s, worst {worst:.2f} s "
            f"(floor: the sender's {SENDER_TIMEOUT_S:g} s timeout; target {TARGET_S:g} s) {verdict}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
