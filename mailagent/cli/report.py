"""`report`: the quality figures of the review page's quality page, per day and per week."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from mailagent.cli.common import Subparsers, command, print_json, store
from mailagent.cli.rows import print_table

if TYPE_CHECKING:
    from mailagent.config import Settings


def cmd_report(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.store import metrics

    store(settings)
    report = metrics.report(settings, days=args.days, weeks=args.weeks)
    if args.json:
        print_json(report.rows())
        return 0
    figures = [f for source in report.sources for f in source.figures]
    for title, spans in (("per day (UTC)", report.days), ("per ISO week", report.weeks)):
        print(title)
        print_table([{"period": p.label, **{f.header: metrics.show(row.get(f.key), f.unit, report.currency)
                                                  for f in figures}} for p, row in spans],
                          ["period", *(f.header for f in figures)])
        print()
    unpriced = sorted({m for _, row in report.days + report.weeks for m in row.get("unpriced_models") or []})
    if unpriced:
        print(f"no price for model(s) {', '.join(unpriced)}: set [report.prices.\"NAME\"] to see costs")
    return 0


def _count(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"expected 1 to 1000, got {value}")
    return value


def register(sub: Subparsers) -> None:
    c = command(sub, "report", cmd_report, help="quality figures per day and per week (the review page's quality page)")
    c.add_argument("--json", action="store_true", help="one JSON array: a row per period (fields: see the README)")
    c.add_argument("--days", type=_count, default=14, metavar="N", help="the last N days, today included (default 14)")
    c.add_argument("--weeks", type=_count, default=8, metavar="N",
                   help="the last N ISO weeks, this one included (default 8)")
