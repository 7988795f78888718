"""The pages that only read: the queue, a conversation, the actions, the quality figures, the
eval flags and the ops overview. Queries live in store/; here they are only shaped for the
templates."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from mailagent.policy import check, current_policy, explain_recorded
from mailagent.store import accounts, evalflags, metrics
from mailagent.store import quality as stored
from mailagent.store.casefile import casefile
from mailagent.store.queue import Filters, Kind
from mailagent.store.queue import actions as action_views
from mailagent.store.queue import queue as read_queue
from mailagent.web import learning
from mailagent.web.auth import Visitor
from mailagent.web.charts import Series, line_chart

if TYPE_CHECKING:
    from mailagent.web.site import Site

KINDS: tuple[Kind, ...] = ("draft", "action")
STATES = ("held", "escalated", "proposed")


def queue(site: Site, request: Request, visitor: Visitor, _form: FormData | None) -> Response:
    q = request.query_params
    kind = next((k for k in KINDS if k == q.get("kind")), None)
    filters = Filters(kind=kind, reason=q.get("reason") or None,
                      language=q.get("language") or None, customer=q.get("customer") or None,
                      state=q.get("state") if q.get("state") in STATES else None)
    return site.render(request, visitor, "queue.html", queue=read_queue(site.url, filters), filters=filters,
                       kinds=KINDS, states=STATES)


def conversation(site: Site, request: Request, visitor: Visitor, _form: FormData | None) -> Response:
    case = casefile(site.url, request.path_params["id"])
    if case is None:
        return site.error(request, visitor, 404, f"no conversation with id {request.path_params['id']}")
    policy = current_policy(site.settings)
    explanations: dict[int, str] = {}
    for draft in case.drafts:
        if draft.decision is not None and draft.id is not None:
            try:
                explanations[draft.id] = explain_recorded(draft.decision, draft.rule, draft.reasons, draft.shadow,
                                                          draft.policy_version, draft.facts, policy)
            except ValueError as exc:
                explanations[draft.id] = f"(cannot explain: the recorded facts do not fit this version: {exc})"
    return site.render(request, visitor, "conversation.html", case=case, explanations=explanations,
                       limits=policy.limits, reviewable=("held", "escalated"))


def actions(site: Site, request: Request, visitor: Visitor, _form: FormData | None) -> Response:
    waiting, decided = action_views(site.url)
    return site.render(request, visitor, "actions.html", waiting=waiting, decided=decided,
                       limits=current_policy(site.settings).limits)


def quality(site: Site, request: Request, visitor: Visitor, _form: FormData | None) -> Response:
    days = _bounded(request.query_params.get("days"), 14, 1, 366)
    weeks = _bounded(request.query_params.get("weeks"), 8, 1, 104)
    report = metrics.report(site.settings, days=days, weeks=weeks)
    panels = [(title, spans, _charts(report, spans)) for title, spans in (("Per day", report.days),
                                                                          ("Per week", report.weeks))]
    figures = [f for source in report.sources for f in source.figures]
    sets = stored.run_sets(site.url)
    chosen = request.query_params.get("set") or (sets[0] if sets else "")
    runs = stored.eval_runs(site.url, set_name=chosen, limit=60) if chosen in sets else []
    day_labels = [period.label for period, _ in report.days]
    daily = learning.by_name(stored.daily(site.url, since=report.days[0][0].start.date()))
    return site.render(request, visitor, "quality.html", report=report, panels=panels, figures=figures,
                       days=days, weeks=weeks, sets=sets, chosen=chosen, runs=runs,
                       run_charts=learning.run_charts(runs) if runs else [], day_labels=day_labels, daily=daily,
                       daily_charts=learning.daily_charts(day_labels, daily), label=learning.label, unit=learning.unit)


def _charts(report: metrics.Report, spans: list[tuple[metrics.Period, metrics.Row]]) -> list[dict[str, Any]]:
    labels = [p.label for p, _ in spans]
    names = {f.key: f.header for source in report.sources for f in source.figures}
    out = []
    for source in report.sources:
        for chart in source.charts:
            series = [Series(names.get(key, key), [_number(row.get(key)) for _, row in spans]) for key in chart.keys]
            out.append({"title": chart.title, "legend": [s.name for s in series],
                        "svg": line_chart(chart.title, labels, series, chart.unit, report.currency)})
    return out


def _number(value: metrics.Value) -> float | None:
    """Charts draw floats; money stays Decimal everywhere else."""
    return None if value is None or isinstance(value, list) else float(value)


def _bounded(raw: str | None, default: int, low: int, high: int) -> int:
    try:
        return min(high, max(low, int(raw))) if raw else default
    except ValueError:
        return default


def flags(site: Site, request: Request, visitor: Visitor, _form: FormData | None) -> Response:
    return site.render(request, visitor, "flags.html", flags=evalflags.listing(site.url))


def ops(site: Site, request: Request, visitor: Visitor, _form: FormData | None) -> Response:
    directory = Path(site.settings.policy.directory)
    return site.render(request, visitor, "ops.html", policy=current_policy(site.settings), directory=directory,
                       problems=check(directory), users=accounts.users(site.url), web=site.settings.web,
                       source=site.settings.source)
