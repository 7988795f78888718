"""The learning loop on the quality page: every stored eval run of a set (score and cases passed
per run, the gate's verdict on each point) and the live figures `record_quality` stores per day
(`quality_daily`: auto-send rate, approval without edit, edit distance, grader scores, classifier
labels, seconds to a case). The shaping is pure; `store/quality.py` reads."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from mailagent.store.metrics import Unit
from mailagent.web.charts import Series, bar_chart, line_chart


@dataclass(frozen=True)
class Chart:
    title: str
    legend: list[str]
    svg: Markup
    kind: str = ""                      # a class for the figure (colours of pass/fail bars)


@dataclass(frozen=True)
class DailyChart:
    """A chart of stored daily figures: the names it draws, or every name with the prefix."""

    title: str
    unit: Unit
    names: tuple[str, ...] = ()
    prefix: str = ""


DAILY: tuple[DailyChart, ...] = (
    DailyChart("Auto-sent and approved without edit", "rate", ("auto_send_rate", "approved_unedited_rate")),
    DailyChart("Words changed in edited replies (mean)", "words", ("edit_distance",)),
    DailyChart("Pre-send grader scores (mean of the day's drafts)", "rate", prefix="grade:"),
    DailyChart("Classifier labels (share of the day's drafts)", "rate", prefix="label:"),
    DailyChart("From a rep's final to its eval case", "seconds", ("case_seconds", "case_seconds_max")),
)
NAMES = {"auto_send_rate": "auto-sent", "approved_unedited_rate": "approved without edit",
         "edit_distance": "words changed", "edit_similarity": "similarity", "case_seconds": "to case (mean)",
         "case_seconds_max": "to case (longest)", "drafts": "drafts"}


def unit(name: str) -> Unit:
    """How a stored daily figure is shown: the unit of the chart that draws it."""
    if name == "drafts":
        return "count"
    if name == "edit_similarity":
        return "rate"
    return next((c.unit for c in DAILY if name in c.names or (c.prefix and name.startswith(c.prefix))), "count")


def label(name: str) -> str:
    """`grade:tone` -> tone, `label:urgency:high` -> urgency: high."""
    if name in NAMES:
        return NAMES[name]
    kind, _, rest = name.partition(":")
    return rest.replace(":", ": ") if kind in ("grade", "label") else name


def run_charts(runs: Sequence[dict[str, Any]]) -> list[Chart]:
    """Two charts over a set's runs, oldest first: the mean score and the pass rate (a hollow
    red point where the gate failed), and the cases passed and failed."""
    labels = [f"#{r['id']}" for r in runs]
    scores = Series("mean score", [r["score"] for r in runs])
    rates = Series("cases passed", [r["passed"] / r["cases"] if r["cases"] else None for r in runs])
    marks = ["gate-none" if r["gate_passed"] is None else "gate-pass" if r["gate_passed"] else "gate-fail"
             for r in runs]
    passed = Series("passed", [float(r["passed"]) for r in runs])
    failed = Series("failed", [float(r["cases"] - r["passed"]) for r in runs])
    return [Chart("Score per eval run", [scores.name, rates.name],
                  line_chart("Score per eval run", labels, [scores, rates], "rate", marks=marks), "runs"),
            Chart("Cases passed and failed per run", [passed.name, failed.name],
                  bar_chart("Cases passed and failed per run", labels, [passed, failed], "count"), "passfail")]


def by_name(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """`quality.daily` rows as name -> day -> value."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for row in rows:
        out[row["name"]][row["day"]] = row["value"]
    return dict(out)


def daily_charts(days: Sequence[str], figures: dict[str, dict[str, float]]) -> list[Chart]:
    """One chart per `DAILY` entry that has data, over `days` (a missing day is a gap)."""
    out = []
    for chart in DAILY:
        names = chart.names or tuple(sorted(n for n in figures if n.startswith(chart.prefix)))
        if not any(n in figures for n in names):
            continue
        series = [Series(label(n), [figures.get(n, {}).get(day) for day in days]) for n in names]
        out.append(Chart(chart.title, [s.name for s in series], line_chart(chart.title, days, series, chart.unit)))
    return out
