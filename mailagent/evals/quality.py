"""Each day's live quality figures, stored in `quality_daily` for the review page to plot (the
names are listed in `store/quality.py`). The `record_quality` actor recomputes today and
yesterday every `[evals] quality_interval_seconds`; a day's rows are replaced as a whole, so a
recomputation is harmless.

Grades and labels are the ones the pipeline stored with each draft's facts when it has them,
and are computed here (the same pure functions) for drafts decided without them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from statistics import fmean

from mailagent.config import Settings
from mailagent.evals import classifiers as classifying
from mailagent.evals import gate
from mailagent.evals.diff import edit_distance, similarity, tokens
from mailagent.store import db
from mailagent.store import quality as store_quality
from mailagent.store.db import Session
from mailagent.store.models import Message, now

Figure = tuple[str, float, int]           # name, value, count


def _day(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def _drafts(s: Session, settings: Settings, start: datetime, end: datetime) -> list[Figure]:
    decided = store_quality.decided_drafts(s, start, end)
    if not decided:
        return []
    auto = sum(d.decision == "send" and not d.shadow and d.reviewed_by is None for d in decided)
    out: list[Figure] = [("drafts", float(len(decided)), len(decided)), ("auto_send_rate", auto / len(decided), len(decided))]
    grades: dict[str, list[float]] = defaultdict(list)
    labels: dict[str, list[str]] = defaultdict(list)
    live = classifying.live(settings)
    for d in decided:
        if not d.text.strip():
            continue
        turn = s.get(Message, d.message_id)
        customer = f"{turn.subject}\n{turn.reply_text or turn.text}" if turn else ""
        found = d.facts.get("grades") or gate.grades(d.text, customer_text=customer)
        for name, score in found.items():
            grades[name].append(score)
        given = d.facts.get("labels") or classifying.labels(live, draft=d.text, customer=customer, key=str(d.id))
        for name, label in given.items():
            labels[name].append(label)
    out += [(f"grade:{name}", fmean(scores), len(scores)) for name, scores in sorted(grades.items())]
    for name, given in sorted(labels.items()):
        out += [(f"label:{name}:{label}", given.count(label) / len(given), len(given)) for label in sorted(set(given))]
    return out


def _reviews(s: Session, start: datetime, end: datetime) -> list[Figure]:
    reviewed = store_quality.reviews(s, start, end)
    if not reviewed:
        return []
    out: list[Figure] = [("approved_unedited_rate", sum(f.verdict == "approved" for f in reviewed) / len(reviewed),
                          len(reviewed))]
    edited = [f for f in reviewed if f.verdict == "edited" and f.final_text is not None]
    if edited:
        out += [("edit_similarity", fmean(similarity(f.draft_text, f.final_text or "") for f in edited), len(edited)),
                ("edit_distance", fmean(edit_distance(tokens(f.draft_text), tokens(f.final_text or "")) for f in edited),
                 len(edited))]
    return out


def _cases(s: Session, start: datetime, end: datetime) -> list[Figure]:
    made = store_quality.cases_from_reviews(s, start, end)
    waits = [(c.created_at - c.rep_at).total_seconds() for c in made]
    return [("case_seconds", fmean(waits), len(waits)), ("case_seconds_max", max(waits), len(waits))] if waits else []


def figures(settings: Settings, day: date) -> list[Figure]:
    start, end = _day(day)
    with db.reading(settings.database.url) as s:
        return [*_drafts(s, settings, start, end), *_reviews(s, start, end), *_cases(s, start, end)]


def refresh(settings: Settings, days: Iterable[date] | None = None) -> int:
    """Recompute and store the figures of `days` (default: today and yesterday, UTC)."""
    today = now().date()
    stored = 0
    for day in days if days is not None else (today - timedelta(days=1), today):
        found = figures(settings, day)
        with db.session(settings.database.url) as s:
            store_quality.replace_day(s, day, found)
        stored += len(found)
    return stored
