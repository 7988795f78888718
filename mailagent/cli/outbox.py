"""`outbox`: replies on their way out; retry a failed one, settle one whose delivery is unknown."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from mailagent.cli.common import (
    Subparsers,
    command,
    fail_on,
    group,
    id_arg,
    json_flag,
    limit_flag,
    reviewer,
    reviewer_flag,
    store,
)
from mailagent.cli.rows import print_listing

if TYPE_CHECKING:
    from mailagent.config import Settings

STATES = ["queued", "sending", "sent", "failed", "unknown"]


def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.cli import views

    print_listing(views.outbounds(store(settings), state=args.state, limit=args.limit), args,
                  ["id", "conversation_id", "state", "recipients", "subject", "attempts", "smtp_phase",
                   "smtp_last_reply", "last_error"])
    return 0


def cmd_show(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.cli import views

    print(views.outbound_detail(store(settings), args.id))
    return 0


def cmd_retry(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.review import ReviewError, outbox
    from mailagent.worker import dispatch

    store(settings)
    rep = reviewer(args)
    with fail_on(ReviewError):
        outbox.retry(settings, args.id, rep)
    print(f"reply {args.id} queued again by {rep}")
    if done := dispatch.deliver(settings, args.id):
        print(done.summary)
    return 0


def cmd_resolve(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.review import ReviewError, outbox

    store(settings)
    rep = reviewer(args)
    with fail_on(ReviewError):
        row = outbox.resolve(settings, args.id, rep, delivered=args.delivered, note=args.note or "")
    print(f"reply {args.id} resolved as {row.state} by {rep}")
    return 0


def register(sub: Subparsers) -> None:
    out = group(sub, "outbox", "replies on their way out: delivery state, retries, unknown outcomes")
    c = command(out, "list", cmd_list, help="the newest replies in the outbox")
    json_flag(c)
    c.add_argument("--state", choices=STATES, help="only replies in this state (unknown: a rep must settle them)")
    limit_flag(c)
    c = command(out, "show", cmd_show, help="one reply: its SMTP phase, the server's last answer, the text")
    id_arg(c, "reply", "outbox list")
    c = command(out, "retry", cmd_retry, help="send a failed reply again (the same bytes, once)")
    id_arg(c, "reply", "outbox list")
    reviewer_flag(c)
    c = command(out, "resolve", cmd_resolve, help="settle an unknown delivery after checking it")
    id_arg(c, "reply", "outbox list")
    verdict = c.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--delivered", action="store_true", help="it did arrive: mark it sent")
    verdict.add_argument("--failed", dest="delivered", action="store_false", help="it did not: mark it failed")
    c.add_argument("--note", help="what you checked (kept in the audit log)")
    reviewer_flag(c)
