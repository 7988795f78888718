"""`drafts`: the review queue from the command line."""

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
    read_text,
    reviewer,
    reviewer_flag,
    store,
)

if TYPE_CHECKING:
    from mailagent.config import Settings

STATES = ["drafting", "waiting", "held", "escalated", "sent", "rejected", "ignored", "superseded"]


def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.cli import rows as fields
    from mailagent.store import listings

    fields.print_listing([fields.draft_row(d, delivery) for d, delivery in
                          listings.drafts(store(settings), state=args.state, limit=args.limit + 1)], args,
                         ["id", "conversation_id", "state", "delivery", "decision", "rule", "intent", "confidence",
                          "flags"])
    return 0


def cmd_show(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.cli import views

    print(views.draft_detail(store(settings), args.id))
    return 0


def cmd_approve(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.review import ReviewError, drafts
    from mailagent.worker import dispatch

    text = read_text(args.edit) if args.edit else None
    store(settings)
    with fail_on(ReviewError):
        approved = drafts.approve(settings, args.id, reviewer(args), text)
    where = f"helpdesk post {approved.post_id}" if approved.post_id is not None else f"reply {approved.outbound_id}"
    print(f"draft {approved.draft.id} approved by {approved.draft.reviewed_by}; {where} queued")
    done = dispatch.reply(settings, approved.outbound_id, approved.post_id)
    if done:
        print(done.summary)
    return 0


def cmd_reject(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.review import ReviewError, drafts

    store(settings)
    with fail_on(ReviewError):
        draft = drafts.reject(settings, args.id, reviewer(args), args.reason)
    print(f"draft {draft.id} rejected by {draft.reviewed_by}: {draft.reject_reason}")
    return 0


def register(sub: Subparsers) -> None:
    drafts = group(sub, "drafts", "drafted replies and their review")
    c = command(drafts, "list", cmd_list, help="the newest drafts")
    json_flag(c)
    c.add_argument("--state", choices=STATES, help="only drafts in this state (held: the review queue)")
    limit_flag(c)
    c = command(drafts, "show", cmd_show, help="one draft: the customer's message, the draft, why")
    id_arg(c, "draft", "drafts list")
    c = command(drafts, "approve", cmd_approve, help="send a held draft, or your edit of it")
    id_arg(c, "draft", "drafts list")
    c.add_argument("--edit", metavar="FILE", help="send this text instead (kept as an edit for the learning loop)")
    reviewer_flag(c)
    c = command(drafts, "reject", cmd_reject, help="send nothing; the reason is kept for the learning loop")
    id_arg(c, "draft", "drafts list")
    c.add_argument("--reason", required=True, help="why (internal: never sent to the customer)")
    reviewer_flag(c)
