"""Quality figures: the pure parts on their own, then the report over turns written at known times
(SQLite and PostgreSQL), then `mailagent report` and the SVG charts that draw it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from mailagent.config import Price
from mailagent.store import metrics
from mailagent.store.metrics import DraftFact, ReplyFact, ReviewFact, edit_distance, percentile, periods
from mailagent.web.charts import Series, line_chart, nice_step, scale_top

from .conftest import make_settings
from .support.history import Turn, add

PRICES = {"report": {"currency": "EUR", "prices": {"gpt-test": {"input_per_million": "2.00",
                                                                 "output_per_million": "8.00"}}}}
NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)                # a Monday: ISO week 48 starts
DAY_A, DAY_B = datetime(2026, 11, 17, 10, 0, tzinfo=UTC), datetime(2026, 11, 18, 10, 0, tzinfo=UTC)


# --- pure ---------------------------------------------------------------------------------------

def test_percentiles_interpolate_between_ranks() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7], 0.9) == 7
    assert percentile([60, 7200, 5400], 0.5) == 5400
    assert percentile([60, 5400, 7200], 0.9) == pytest.approx(6840)
    assert percentile([30, 60, 5400, 7200], 0.5) == pytest.approx(2730)


def test_edit_distance_counts_words() -> None:
    assert edit_distance("a b c", "a b c") == 0
    assert edit_distance("a  b\nc", "a b c") == 0                         # whitespace does not count
    assert edit_distance("a b c d e", "a x c d e f") == 2                 # one replaced, one added
    assert edit_distance("", "one two three") == 3
    assert edit_distance("keep this and drop that", "keep this") == 3
    long = " ".join(f"w{i}" for i in range(5000))
    assert edit_distance(long, long.replace("w2500", "changed")) == 1     # the common head and tail are skipped


def test_periods_are_utc_days_and_iso_weeks() -> None:
    days = periods("day", 3, NOW)
    assert [p.label for p in days] == ["2026-11-21", "2026-11-22", "2026-11-23"]
    assert days[-1].start == datetime(2026, 11, 23, tzinfo=UTC) and days[-1].end == datetime(2026, 11, 24, tzinfo=UTC)
    weeks = periods("week", 2, NOW)
    assert [p.label for p in weeks] == ["2026-W47", "2026-W48"]
    assert weeks[0].start == datetime(2026, 11, 16, tzinfo=UTC) and weeks[0].end == weeks[1].start
    assert weeks[0].holds(datetime(2026, 11, 22, 23, 59, tzinfo=UTC)) and not weeks[0].holds(weeks[1].start)


def test_draft_and_review_figures() -> None:
    at = NOW
    drafts = [DraftFact(at, 1, "send", False, "m", 0, 0), DraftFact(at, 2, "send", True, "m", 0, 0),
              DraftFact(at, 3, "hold", False, "m", 0, 0), DraftFact(at, 4, "escalate", False, "m", 0, 0),
              DraftFact(at, 5, "ignore", False, "", 0, 0), DraftFact(at, 6, None, False, "m", 0, 0)]
    assert metrics.draft_figures(drafts) == {"drafts": 4, "auto_sent": 1, "auto_send_rate": 0.25, "held": 2,
                                             "hold_rate": 0.5, "escalated": 1, "escalation_rate": 0.25}
    assert metrics.draft_figures([])["auto_send_rate"] is None
    reviews = [ReviewFact(at, "approved", None), ReviewFact(at, "edited", 4), ReviewFact(at, "edited", 10),
               ReviewFact(at, "rejected", None)]
    assert metrics.review_figures(reviews) == {"reviewed": 4, "approved_without_edit": 1, "edited": 2, "rejected": 1,
                                               "approval_without_edit_rate": 0.25, "median_edit_distance": 7}
    assert metrics.reply_figures([ReplyFact(at, 10), ReplyFact(at, 30)]) == {
        "replies": 2, "reply_p50_seconds": 20.0, "reply_p90_seconds": 28.0}


def test_usage_costs_need_a_price_for_every_model_used() -> None:
    price = {"gpt-test": Price(input_per_million=Decimal("2.00"), output_per_million=Decimal("8.00"))}
    drafts = [DraftFact(NOW, 1, "send", False, "gpt-test", 1000, 200), DraftFact(NOW, 1, "send", False, "gpt-test", 1000, 200),
              DraftFact(NOW, 2, "hold", False, "gpt-test", 500, 0), DraftFact(NOW, 3, "ignore", False, "", 0, 0)]
    figures = metrics.usage_figures(drafts, price)
    assert figures["conversations"] == 2 and figures["tokens"] == 2900 and figures["tokens_per_conversation"] == 1450
    assert figures["cost"] == Decimal("0.008200") and figures["cost_per_conversation"] == Decimal("0.004100")
    unpriced = metrics.usage_figures([*drafts, DraftFact(NOW, 4, "hold", False, "other", 10, 10)], price)
    assert unpriced["cost"] is None and unpriced["cost_per_conversation"] is None and unpriced["unpriced_models"] == ["other"]
    offline = metrics.usage_figures([DraftFact(NOW, 1, "hold", False, "offline-kb-v1", 0, 0)], {})
    assert offline["cost"] == Decimal(0) and offline["unpriced_models"] == []   # no tokens, nothing to price


def test_show_formats_for_people() -> None:
    assert metrics.show(None, "rate") == "-" and metrics.show(0.3333, "rate") == "33%"
    assert metrics.show(45.0, "seconds") == "45s" and metrics.show(5000, "seconds") == "83m"
    assert metrics.show(5400, "seconds") == "1.5h" and metrics.show(3 * 86400, "seconds") == "3.0d"
    assert metrics.show(Decimal("0.0036"), "money", "EUR") == "0.0036 EUR" and metrics.show(2.0, "words") == "2"


# --- the report over stored turns --------------------------------------------------------------

def _history(url: str) -> None:
    [first, *_] = add(url, [
        Turn(DAY_A, "send", reply_after=60),
        Turn(DAY_A, "send", shadow=True, review="approved", reply_after=7200),
        Turn(DAY_A, "hold", text="a b c d e", review="edited", final="a x c d e f", reply_after=5400),
        Turn(DAY_A, "escalate"),
        Turn(DAY_A, "ignore"),
    ])
    add(url, [Turn(DAY_B, "hold", model="other-model", tokens=(500, 100), review="rejected"),
              Turn(DAY_B, "send", reply_after=30, conversation=first),
              Turn(NOW - timedelta(hours=3), "send", tokens=(2000, 0), reply_after=10)])


def test_report_per_day_and_per_week(any_db_url: str) -> None:
    _history(any_db_url)
    report = metrics.report(make_settings(any_db_url, **PRICES), days=7, weeks=2, now=NOW)
    days = {p.label: row for p, row in report.days}
    a, b = days["2026-11-17"], days["2026-11-18"]
    assert {k: a[k] for k in ("drafts", "auto_sent", "auto_send_rate", "held", "hold_rate", "escalated")} == {
        "drafts": 4, "auto_sent": 1, "auto_send_rate": 0.25, "held": 2, "hold_rate": 0.5, "escalated": 1}
    assert (a["reviewed"], a["approval_without_edit_rate"], a["median_edit_distance"]) == (2, 0.5, 2)
    assert (a["replies"], a["reply_p50_seconds"], a["reply_p90_seconds"]) == (3, 5400.0, 6840.0)
    assert (a["conversations"], a["tokens_per_conversation"]) == (4, 1200.0)
    assert (a["cost"], a["cost_per_conversation"]) == (Decimal("0.014400"), Decimal("0.003600"))
    assert (b["drafts"], b["auto_send_rate"], b["hold_rate"], b["reviewed"], b["rejected"]) == (2, 0.5, 0.5, 1, 1)
    assert (b["approval_without_edit_rate"], b["median_edit_distance"]) == (0.0, None)
    assert (b["conversations"], b["tokens_per_conversation"], b["cost"], b["unpriced_models"]) == (2, 900.0, None, ["other-model"])
    assert days["2026-11-19"]["drafts"] == 0 and days["2026-11-19"]["auto_send_rate"] is None
    assert days["2026-11-23"]["cost_per_conversation"] == Decimal("0.004000")

    weeks = {p.label: row for p, row in report.weeks}
    w47, w48 = weeks["2026-W47"], weeks["2026-W48"]
    assert (w47["drafts"], w47["auto_send_rate"], w47["hold_rate"], w47["escalated"]) == (6, 0.3333, 0.5, 1)
    assert (w47["reviewed"], w47["approval_without_edit_rate"], w47["median_edit_distance"]) == (3, 0.3333, 2)
    assert (w47["replies"], w47["reply_p50_seconds"], w47["reply_p90_seconds"]) == (4, 2730.0, 6660.0)
    assert (w47["conversations"], w47["tokens_per_conversation"]) == (5, 1320.0)
    assert (w48["drafts"], w48["auto_send_rate"], w48["replies"]) == (1, 1.0, 1)

    rows = report.rows()
    assert len(rows) == 9 and rows[0]["granularity"] == "day" and rows[-1] == {
        "granularity": "week", "period": "2026-W48", "start": "2026-11-23T00:00:00+00:00",
        "end": "2026-11-30T00:00:00+00:00", **w48}


def test_a_second_source_adds_its_figures(sqlite_url: str) -> None:
    """How the evals engine will add eval runs: a Source with its figures and charts."""
    extra = metrics.Source(
        name="evals", figures=(metrics.Figure("eval_pass_rate", "eval pass", "rate"),),
        charts=(metrics.Chart("Eval pass rate", "rate", ("eval_pass_rate",)),),
        measure=lambda _s, _settings, spans: [{"eval_pass_rate": 0.9 if p.label == "2026-11-23" else None} for p in spans])
    report = metrics.report(make_settings(sqlite_url), days=2, weeks=1, now=NOW, sources=(*metrics.SOURCES, extra))
    assert [row["eval_pass_rate"] for _, row in report.days] == [None, 0.9]
    assert "drafts" in report.days[0][1] and report.sources[-1].name == "evals"


def test_report_command(tmp_path: Path, sqlite_url: str) -> None:
    today = datetime.now(UTC).replace(hour=0, minute=30)
    add(sqlite_url, [Turn(today, "send", reply_after=120), Turn(today, "hold", review="edited", text="one two",
                                                                 final="one three", reply_after=600)])
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{sqlite_url}"\n\n[report]\ncurrency = "EUR"\n\n'
                      '[report.prices."gpt-test"]\ninput_per_million = 2.00\noutput_per_million = 8.00\n')
    env = {**os.environ, "COLUMNS": "200"}                              # the table is cut to the terminal

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mailagent", "--config", str(config), "report", *args],
                              capture_output=True, text=True, timeout=120, env=env)

    done = run("--json", "--days", "2", "--weeks", "1")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [r["granularity"] for r in rows] == ["day", "day", "week"]
    row = rows[1]
    assert set(row) >= {"period", "start", "end", "drafts", "auto_sent", "auto_send_rate", "held", "hold_rate",
                        "escalated", "escalation_rate", "reviewed", "approved_without_edit", "edited", "rejected",
                        "approval_without_edit_rate", "median_edit_distance", "replies", "reply_p50_seconds",
                        "reply_p90_seconds", "conversations", "tokens", "tokens_per_conversation", "cost",
                        "cost_per_conversation", "unpriced_models"}
    assert (row["drafts"], row["auto_send_rate"], row["median_edit_distance"], row["reply_p50_seconds"]) == (2, 0.5, 1, 360.0)
    assert row["cost_per_conversation"] == "0.003600"                 # money as an exact decimal string
    table = run("--days", "2", "--weeks", "1")
    assert table.returncode == 0 and "per day (UTC)" in table.stdout and "50%" in table.stdout
    assert "0.0036 EUR" in table.stdout and "6m" in table.stdout
    bad = run("--days", "0")
    assert bad.returncode == 2 and "expected 1 to 1000" in bad.stderr


# --- charts -------------------------------------------------------------------------------------

def test_charts_escape_their_text_and_break_lines_at_gaps() -> None:
    svg = str(line_chart("<script>alert(1)</script>", ["2026-11-21", "2026-11-22", "2026-11-23"],
                         [Series("a&b <img>", [0.5, None, 0.25])], "rate"))
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "<img>" not in svg and "a&amp;b &lt;img&gt;" in svg
    assert svg.count("<polyline") == 0 and svg.count("<circle") == 2          # two points, no line across the gap
    joined = str(line_chart("t", ["a", "b", "c"], [Series("s", [1, 2, 3])], "count"))
    assert joined.count("<polyline") == 1 and ">100%<" not in joined
    empty = str(line_chart("t", ["a", "b"], [Series("s", [None, None])], "words"))
    assert "no data yet" in empty
    assert [nice_step(v) for v in (3, 10, 7200, 0.004)] == [1, 5, 2000, 0.001]
    assert scale_top([15000], "seconds") == (21600, 7200) and scale_top([0.3], "rate") == (1.0, 0.25)
    assert scale_top([7], "count") == (8, 2)
