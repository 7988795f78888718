"""The quality figures over a large history: `metrics.report` (what `mailagent report` prints) and
the quality page (`GET /review/quality`, charts included), against the baseline of reading the
same rows with plain SQL and doing nothing with them. The page computes its figures on every
request, so this is what a lead waits for.

    .venv/bin/python bench/report.py [--days 60] [--per-day 300] [--repeat 5] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECRET = "bench-session-secret-0123456789abcdefghijkl"
PASSWORD = "bench password 123"

RAW = (
    "SELECT created_at, conversation_id, decision, shadow, model, usage FROM draft WHERE created_at >= :since",
    "SELECT created_at, verdict, draft_text, final_text FROM feedback WHERE created_at >= :since",
    "SELECT o.sent_at, m.received_at FROM outbound o JOIN message m ON o.reply_to_message_id = m.id "
    "WHERE o.state = 'sent' AND o.sent_at >= :since",
)


def median_seconds(step: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=60, help="days of history (default 60)")
    parser.add_argument("--per-day", type=int, default=300, help="customer turns per day (default 300)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each measurement; medians reported")
    parser.add_argument("--database-url", help="default: a new SQLite file")
    args = parser.parse_args()

    from sqlalchemy import text
    from starlette.testclient import TestClient

    from mailagent.config import Settings
    from mailagent.store import accounts, db, metrics, schema
    from mailagent.store.models import Role
    from mailagent.web.app import create_app
    from mailagent.web.passwords import hash_password
    from tests.support import history

    url = args.database_url or f"sqlite:///{tempfile.mkdtemp(prefix='bench-report-')}/bench.db"
    schema.upgrade(url)
    now = datetime.now(UTC)
    started = time.perf_counter()
    for seed in range(max(1, args.per_day // 12)):        # sample() makes 8 to 16 turns a day
        history.add(url, history.sample(now, days=args.days, seed=seed))
    with db.engine(url).connect() as conn:
        turns = conn.execute(text("SELECT count(*) FROM draft")).scalar()
    print(f"history: {turns} turns over {args.days} days, written in {time.perf_counter() - started:.0f} s ({db.safe_url(url)})")

    settings = Settings.model_validate({"database": {"url": url}, "report": {"prices": {
        "gpt-4.1-mini": {"input_per_million": "0.40", "output_per_million": "1.60"}}}})
    since = metrics.periods("week", 8, now)[0].start

    def raw() -> None:
        with db.engine(url).connect() as conn:
            for query in RAW:
                conn.execute(text(query), {"since": since}).fetchall()

    os.environ["MAILAGENT_WEB_SECRET"] = SECRET
    accounts.add(url, "lead", Role.LEAD, hash_password(PASSWORD))
    client = TestClient(create_app(settings))
    login = client.get("/review/login").text
    token = re.search(r'name="csrf" value="([^"]+)"', login)
    assert token
    client.post("/review/login", data={"name": "lead", "password": PASSWORD, "csrf": token.group(1)})

    def page() -> None:
        response = client.get("/review/quality")
        assert response.status_code == 200 and "svg" in response.text

    raw(), metrics.report(settings), page()          # warm caches and pools
    base = median_seconds(raw, args.repeat)
    report = median_seconds(lambda: metrics.report(settings), args.repeat)
    shown = median_seconds(page, args.repeat)
    print(f"\n| | median ms (of {args.repeat}) | ratio to the raw read |")
    print("|---|---|---|")
    print(f"| raw read of the rows (8 weeks) | {base * 1000:.0f} | 1.00 |")
    print(f"| metrics.report (14 days + 8 weeks) | {report * 1000:.0f} | {report / base:.2f} |")
    print(f"| GET /review/quality | {shown * 1000:.0f} | {shown / base:.2f} |")


if __name__ == "__main__":
    main()
