"""Quality figures per day and per week: what `mailagent report` prints and the quality page
draws. Times are UTC; weeks are ISO weeks (Monday to Sunday).

Figures come from sources. A source reads what it needs for the whole span in one transaction
and returns one row of figures per period; the report merges the rows of every source and the
page draws each source's charts. The pipeline's own figures are the first source; another one
(eval runs, daily quality scores) is a `Source` added to `SOURCES`, with nothing else to change.
"""

from __future__ import annotations

import statistics
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal, TypeVar

from sqlmodel import Session, col, select

from mailagent.config import Price, Settings
from mailagent.store import db
from mailagent.store.models import Draft, Feedback, Message, Outbound, OutboundState

Granularity = Literal["day", "week"]
Value = int | float | Decimal | list[str] | None
Row = dict[str, Value]
Unit = Literal["count", "rate", "seconds", "words", "tokens", "money"]
F = TypeVar("F")


@dataclass(frozen=True)
class Period:
    granularity: Granularity
    start: datetime                 # inclusive, UTC
    end: datetime                   # exclusive

    @property
    def label(self) -> str:
        if self.granularity == "day":
            return self.start.date().isoformat()
        year, week, _ = self.start.isocalendar()
        return f"{year}-W{week:02d}"

    def holds(self, at: datetime | None) -> bool:
        return at is not None and self.start <= at < self.end


def periods(granularity: Granularity, count: int, now: datetime) -> list[Period]:
    """The last `count` days or ISO weeks up to and including the current one, oldest first."""
    day = datetime(now.year, now.month, now.day, tzinfo=UTC)
    step = timedelta(days=1 if granularity == "day" else 7)
    first = day if granularity == "day" else day - timedelta(days=day.weekday())
    starts = [first - step * i for i in reversed(range(count))]
    return [Period(granularity, start, start + step) for start in starts]


@dataclass(frozen=True)
class Figure:
    """One field of a report row."""

    key: str
    header: str                     # column title in the text table
    unit: Unit


@dataclass(frozen=True)
class Chart:
    """One chart of the quality page: a line per key, over the periods."""

    title: str
    unit: Unit
    keys: tuple[str, ...]


@dataclass(frozen=True)
class Source:
    name: str
    figures: tuple[Figure, ...]
    charts: tuple[Chart, ...]
    measure: Callable[[Session, Settings, Sequence[Period]], list[Row]]   # one row per period, in order


@dataclass(frozen=True)
class Report:
    generated_at: datetime
    currency: str
    days: list[tuple[Period, Row]]
    weeks: list[tuple[Period, Row]]
    sources: tuple[Source, ...] = field(default_factory=tuple)

    def rows(self) -> list[Row]:
        """Flat rows for `--json`: every period of both granularities with every source's figures."""
        return [{"granularity": p.granularity, "period": p.label, "start": p.start.isoformat(),
                 "end": p.end.isoformat(), **row} for p, row in self.days + self.weeks]


# --- pure figures -----------------------------------------------------------------------------

def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between the closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def edit_distance(before: str, after: str) -> int:
    """Words inserted, deleted or replaced to turn `before` into `after` (Levenshtein on words,
    whitespace ignored). A rep's edit usually touches one place: the common head and tail are
    dropped first, so the quadratic part only sees what changed."""
    a, b = before.split(), after.split()
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    a, b = a[head:], b[head:]
    while a and b and a[-1] == b[-1]:
        a, b = a[:-1], b[:-1]
    previous = list(range(len(b) + 1))
    for i, word in enumerate(a, 1):
        current, left = [i], i
        for j, other in enumerate(b, 1):
            left = min(previous[j] + 1, left + 1, previous[j - 1] + (word != other))
            current.append(left)
        previous = current
    return previous[-1]


@dataclass(frozen=True)
class DraftFact:
    created_at: datetime
    conversation_id: int
    decision: str | None
    shadow: bool
    model: str
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class ReviewFact:
    at: datetime
    verdict: str                    # approved | edited | rejected
    distance: int | None            # words changed, for edits


@dataclass(frozen=True)
class ReplyFact:
    sent_at: datetime
    waited_seconds: float           # from the customer's message arriving to our reply leaving


def draft_figures(drafts: Sequence[DraftFact]) -> Row:
    """Of the drafts the policy decided (automated mail, which is never answered, left out)."""
    decided = [d for d in drafts if d.decision in ("send", "hold", "escalate")]
    auto = sum(d.decision == "send" and not d.shadow for d in decided)
    held = sum(d.decision == "hold" or (d.decision == "send" and d.shadow) for d in decided)
    escalated = sum(d.decision == "escalate" for d in decided)
    return {"drafts": len(decided), "auto_sent": auto, "auto_send_rate": rate(auto, len(decided)),
            "held": held, "hold_rate": rate(held, len(decided)), "escalated": escalated,
            "escalation_rate": rate(escalated, len(decided))}


def review_figures(reviews: Sequence[ReviewFact]) -> Row:
    approved = sum(r.verdict == "approved" for r in reviews)
    edited = [r.distance for r in reviews if r.verdict == "edited" and r.distance is not None]
    rejected = sum(r.verdict == "rejected" for r in reviews)
    return {"reviewed": len(reviews), "approved_without_edit": approved, "edited": len(edited), "rejected": rejected,
            "approval_without_edit_rate": rate(approved, len(reviews)),
            "median_edit_distance": statistics.median(edited) if edited else None}


def reply_figures(replies: Sequence[ReplyFact]) -> Row:
    waits = [r.waited_seconds for r in replies]
    p50, p90 = percentile(waits, 0.5), percentile(waits, 0.9)
    return {"replies": len(waits), "reply_p50_seconds": None if p50 is None else round(p50, 1),
            "reply_p90_seconds": None if p90 is None else round(p90, 1)}


def usage_figures(drafts: Sequence[DraftFact], prices: Mapping[str, Price]) -> Row:
    """Tokens and cost per conversation that had an agent run. A model with tokens but no
    configured price makes the cost unknown (None) rather than silently zero, and is named."""
    ran = [d for d in drafts if d.model]
    conversations = len({d.conversation_id for d in ran})
    tokens = sum(d.input_tokens + d.output_tokens for d in ran)
    unpriced = sorted({d.model for d in ran if d.model not in prices and d.input_tokens + d.output_tokens})
    cost = None
    if not unpriced:
        cost = sum((Decimal(d.input_tokens) * prices[d.model].input_per_million
                    + Decimal(d.output_tokens) * prices[d.model].output_per_million
                    for d in ran if d.model in prices), Decimal(0)) / 1_000_000
    return {"conversations": conversations, "tokens": tokens,
            "tokens_per_conversation": round(tokens / conversations, 1) if conversations else None,
            "cost": _money(cost), "cost_per_conversation": _money(cost / conversations if cost is not None
                                                                  and conversations else None),
            "unpriced_models": unpriced}


def _money(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(Decimal("0.000001"))


# --- the pipeline's own figures ---------------------------------------------------------------

def _read_pipeline(s: Session, since: datetime) -> tuple[list[DraftFact], list[ReviewFact], list[ReplyFact]]:
    """Only the columns the figures need (a draft row also holds facts, traces and run state)."""
    drafts = [DraftFact(at, conversation, decision, shadow, model, int((usage or {}).get("input_tokens", 0)),
                        int((usage or {}).get("output_tokens", 0)))
              for at, conversation, decision, shadow, model, usage in s.exec(
                  select(Draft.created_at, Draft.conversation_id, Draft.decision, Draft.shadow, Draft.model, Draft.usage)
                  .where(col(Draft.created_at) >= since))]
    reviews = [ReviewFact(at, verdict, edit_distance(before, after or "") if verdict == "edited" else None)
               for at, verdict, before, after in s.exec(
                   select(Feedback.created_at, Feedback.verdict, Feedback.draft_text, Feedback.final_text)
                   .where(col(Feedback.created_at) >= since))]
    sent = s.exec(select(Outbound.sent_at, Message.received_at)
                  .join(Message, col(Outbound.reply_to_message_id) == Message.id)
                  .where(Outbound.state == OutboundState.SENT, col(Outbound.sent_at) >= since)).all()
    replies = [ReplyFact(at, (at - arrived).total_seconds()) for at, arrived in sent if at is not None]
    return drafts, reviews, replies


def within(facts: Sequence[F], when: Callable[[F], datetime], period: Period) -> Sequence[F]:
    """The facts of one period, from facts sorted by `when` (two binary searches, no scan)."""
    return facts[bisect_left(facts, period.start, key=when):bisect_left(facts, period.end, key=when)]


def _measure_pipeline(s: Session, settings: Settings, spans: Sequence[Period]) -> list[Row]:
    if not spans:
        return []
    drafts, reviews, replies = _read_pipeline(s, min(p.start for p in spans))
    drafts.sort(key=lambda d: d.created_at)
    reviews.sort(key=lambda r: r.at)
    replies.sort(key=lambda r: r.sent_at)
    rows = []
    for p in spans:
        made = within(drafts, lambda d: d.created_at, p)
        rows.append({**draft_figures(made), **review_figures(within(reviews, lambda r: r.at, p)),
                     **reply_figures(within(replies, lambda r: r.sent_at, p)),
                     **usage_figures(made, settings.report.prices)})
    return rows


PIPELINE = Source(
    name="pipeline",
    figures=(
        Figure("drafts", "drafts", "count"), Figure("auto_send_rate", "auto-sent", "rate"),
        Figure("hold_rate", "held", "rate"), Figure("escalated", "escalated", "count"),
        Figure("reviewed", "reviewed", "count"), Figure("approval_without_edit_rate", "no edit", "rate"),
        Figure("median_edit_distance", "edit words", "words"), Figure("reply_p50_seconds", "reply p50", "seconds"),
        Figure("reply_p90_seconds", "reply p90", "seconds"),
        Figure("tokens_per_conversation", "tokens/conv", "tokens"),
        Figure("cost_per_conversation", "cost/conv", "money"),
    ),
    charts=(
        Chart("Auto-sent and held drafts", "rate", ("auto_send_rate", "hold_rate")),
        Chart("Approved without edit", "rate", ("approval_without_edit_rate",)),
        Chart("Median edit distance (words)", "words", ("median_edit_distance",)),
        Chart("Escalations", "count", ("escalated",)),
        Chart("Time from arrival to reply (p50, p90)", "seconds", ("reply_p50_seconds", "reply_p90_seconds")),
        Chart("Tokens per conversation", "tokens", ("tokens_per_conversation",)),
        Chart("Cost per conversation", "money", ("cost_per_conversation",)),
    ),
    measure=_measure_pipeline,
)

SOURCES: tuple[Source, ...] = (PIPELINE,)


def report(settings: Settings, days: int = 14, weeks: int = 8, now: datetime | None = None,
           sources: tuple[Source, ...] = SOURCES) -> Report:
    now = now or datetime.now(UTC)
    day_spans, week_spans = periods("day", days, now), periods("week", weeks, now)
    merged: dict[Granularity, list[Row]] = {"day": [{} for _ in day_spans], "week": [{} for _ in week_spans]}
    spans = day_spans + week_spans
    with db.reading(settings.database.url) as s:
        for source in sources:                          # one read per source, for both granularities
            figures = source.measure(s, settings, spans)
            for row, more in zip(merged["day"] + merged["week"], figures, strict=True):
                row.update(more)
    return Report(generated_at=now, currency=settings.report.currency,
                  days=list(zip(day_spans, merged["day"], strict=True)),
                  weeks=list(zip(week_spans, merged["week"], strict=True)), sources=sources)


def show(value: Value, unit: Unit, currency: str = "") -> str:
    """A figure for people: rates as percentages, seconds as a duration, money with its currency."""
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(value)
    if unit == "rate":
        return f"{float(value) * 100:.0f}%"
    if unit == "seconds":
        return duration(float(value))
    if unit == "money":
        return f"{Decimal(value):.4f} {currency}".strip()
    if isinstance(value, float):
        return f"{value:.1f}".removesuffix(".0")
    return str(value)


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f}m"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
