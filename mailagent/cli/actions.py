"""`actions`, `audit` and `backend`: proposed side effects, the log of who did what, demo data."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from mailagent.cli.common import (
    Subparsers,
    command,
    command_line,
    fail_on,
    group,
    id_arg,
    json_flag,
    limit_flag,
    print_json,
    reviewer,
    reviewer_flag,
    store,
)
from mailagent.cli.rows import newest, print_listing

if TYPE_CHECKING:
    from mailagent.config import Settings

STATES = ["proposed", "approved", "rejected", "executed", "failed"]


def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.cli import views

    rows = views.actions(store(settings), state=args.state, limit=args.limit)
    if not args.json:
        rows = [{**r, "why": views.compact(r["reasons"][-1], 90).strip('"') if r["reasons"] else ""} for r in rows]
    print_listing(rows, args, ["id", "conversation_id", "draft_id", "tool", "amount", "currency", "state", "decided_by",
                               "why"])
    return 0


def cmd_show(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.cli import views

    print(views.action_detail(store(settings), args.id))
    return 0


def cmd_decide(settings: Settings, args: argparse.Namespace) -> int:
    """A rep's verdict on a proposed action; the paused draft then continues (executing it once)."""
    from mailagent.review import ReviewError, actions
    from mailagent.worker import dispatch

    store(settings)
    rep = reviewer(args)
    with fail_on(ReviewError):
        if args.sub == "approve":
            action = actions.approve(settings, args.id, rep)
        else:
            action = actions.reject(settings, args.id, rep, args.reason)
    print(f"action {args.id} {'approved' if args.sub == 'approve' else 'rejected'} by {rep}")
    if done := dispatch.resume(settings, action.draft_id):
        print(done.summary)
        _show_held(settings, action.draft_id, command_line(args.config))
    return 0


def _show_held(settings: Settings, draft_id: int, cli: str) -> None:
    """The reply that follows a decided action, when it waits for the rep: what would go out, and
    the command (as the rep must run it) to send it or an edit of it."""
    from mailagent.store import db
    from mailagent.store.models import Draft, DraftState

    with db.reading(settings.database.url) as s:
        row = s.get(Draft, draft_id)
    if row is None or row.state != DraftState.HELD or not row.text.strip():
        return
    print(f"\nThe reply is held for you (draft {draft_id}); nothing was sent to the customer yet:\n")
    print("    " + row.text.replace("\n", "\n    "))
    print(f"\nSend it: {cli} drafts approve {draft_id}   (or your edit of it: --edit FILE)")


def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.cli import views

    rows = newest(views.audit(store(settings), conversation_id=args.conversation, limit=args.limit), args.limit)
    if args.json:
        print_json(rows)
        return 0
    for row in rows:
        print(f"{row['at']}  {row['actor']:<28} {row['event']:<10} conversation={row['conversation_id']} "
              f"draft={row['draft_id']} action={row['action_id']} {views.compact(row['details'], 160)}")
    return 0


def cmd_seed(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.actions.backends import demo_url
    from mailagent.actions.backends.demo import seed

    store(settings)
    counts = seed(demo_url(settings), Path(args.file or settings.actions.demo_data))
    print("demo backend: " + ", ".join(f"{n} {name}" for name, n in counts.items()))
    return 0


def register(sub: Subparsers) -> None:
    acts = group(sub, "actions", "proposed actions with side effects")
    c = command(acts, "list", cmd_list, help="the newest proposed actions")
    json_flag(c)
    c.add_argument("--state", choices=STATES, help="only actions in this state (proposed: waiting for a rep)")
    limit_flag(c)
    c = command(acts, "show", cmd_show, help="one action with its audit trail")
    id_arg(c, "action", "actions list")
    c = command(acts, "approve", cmd_decide, help="approve; the paused draft continues and runs it once")
    id_arg(c, "action", "actions list")
    reviewer_flag(c)
    c = command(acts, "reject", cmd_decide, help="reject; the agent writes a reply without it")
    id_arg(c, "action", "actions list")
    c.add_argument("--reason", required=True, help="why (internal: kept in the audit log)")
    reviewer_flag(c)

    aud = group(sub, "audit", "the append-only audit log")
    c = command(aud, "list", cmd_audit, help="who did what, oldest first")
    json_flag(c)
    c.add_argument("--conversation", type=int, metavar="ID", help="only this conversation")
    limit_flag(c, 500)

    backend = group(sub, "backend", "the actions backend")
    c = command(backend, "seed", cmd_seed, help="load sample company data into the demo backend")
    c.add_argument("file", nargs="?", help="default: [actions] demo_data")
