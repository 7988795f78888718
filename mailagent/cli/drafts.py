"""`drafts`: the review queue from the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from mailagent.cli.common import (
    EX_NOINPUT,
    Fail,
    Subparsers,
    command,
    group,
    json_flag,
    limit_flag,
    print_json,
    reviewer,
    reviewer_flag,
    store,
)
from mailagent.config import Settings

STATES = ["drafting", "waiting", "held", "escalated", "sent", "rejected", "ignored", "superseded"]


def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.cli import views

    rows = views.drafts(store(settings), state=args.state, limit=args.limit)
    if args.json:
        print_json(rows)
    else:
        views.print_table(rows, ["id", "conversation_id", "state", "decision", "rule", "intent", "confidence", "flags", "delivery"])
    return 0


def cmd_show(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.cli import views

    print(views.draft_detail(store(settings), args.id))
    return 0


def cmd_approve(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.review import ReviewError, drafts
    from mailagent.worker import dispatch

    text = None
    if args.edit:
        try:
            text = Path(args.edit).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise Fail(f"cannot read {args.edit}: {exc}", EX_NOINPUT) from None
    store(settings)
    try:
        approved = drafts.approve(settings, args.id, reviewer(args), text)
    except ReviewError as exc:
        raise Fail(str(exc)) from None
    where = f"helpdesk post {approved.post_id}" if approved.post_id is not None else f"reply {approved.outbound_id}"
    print(f"draft {approved.draft.id} approved by {approved.draft.reviewed_by}; {where} queued")
    done = dispatch.reply(settings, approved.outbound_id, approved.post_id)
    if done:
        print(done.summary)
    return 0


def cmd_reject(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.review import ReviewError, drafts

    store(settings)
    try:
        draft = drafts.reject(settings, args.id, reviewer(args), args.reason)
    except ReviewError as exc:
        raise Fail(str(exc)) from None
    print(f"draft {draft.id} rejected by {draft.reviewed_by}: {draft.reject_reason}")
    return 0


def register(sub: Subparsers) -> None:
    drafts = group(sub, "drafts", "drafted replies and their review")
    c = command(drafts, "list", cmd_list, help="the newest drafts")
    json_flag(c)
    c.add_argument("--state", choices=STATES, help="only drafts in this state (held: the review queue)")
    limit_flag(c)
    c = command(drafts, "show", cmd_show, help="one draft: the customer's message, the draft, why")
    c.add_argument("id", type=int)
    c = command(drafts, "approve", cmd_approve, help="send a held draft, or your edit of it")
    c.add_argument("id", type=int)
    c.add_argument("--edit", metavar="FILE", help="send this text instead (kept as an edit for the learning loop)")
    reviewer_flag(c)
    c = command(drafts, "reject", cmd_reject, help="send nothing; the reason is kept for the learning loop")
    c.add_argument("id", type=int)
    c.add_argument("--reason", required=True, help="why (internal: never sent to the customer)")
    reviewer_flag(c)
