"""`ingest`, `messages` and `conversations`: mail in, and what became of it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mailagent.cli.common import (
    EX_DATAERR,
    EX_NOINPUT,
    EX_TEMPFAIL,
    Fail,
    Subparsers,
    command,
    fail_on,
    first_line,
    group,
    id_arg,
    json_flag,
    limit_flag,
    reviewer,
    reviewer_flag,
    store,
)

if TYPE_CHECKING:
    from mailagent.config import Settings


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    """Store messages from files or stdin. A file that cannot be read or is empty is reported and
    skipped; the others are stored all the same. Exit codes: 0 all stored; 66 some file could not
    be read, 65 some file was empty (66 wins), the rest stored either way; 75 storage is down and
    nothing was stored (an MTA pipe keeps the message and tries again later)."""
    from mailagent.pipeline import ingest
    from mailagent.store import plain
    from mailagent.worker import dispatch

    paths: list[str] = args.files or ["-"]
    items, bad = [], []
    for path in paths:
        name = "standard input" if path == "-" else path
        try:
            raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
        except OSError as exc:
            bad.append(EX_NOINPUT)
            print(f"mailagent: cannot read {name}: {exc.strerror or exc}; skipped", file=sys.stderr)
            continue
        if not raw.strip():
            bad.append(EX_DATAERR)
            print(f"mailagent: {name}: empty, no message to store; skipped", file=sys.stderr)
            continue
        items.append(ingest.Inbound(raw, "pipe" if path == "-" else "file", args.mailbox))
    if args.mailbox:
        settings.mailbox(args.mailbox)
    ids: list[int | None] = []
    if items:
        try:
            ids = ingest.store_many(store(settings), items)
        except Exception as exc:
            if not plain.is_storage_error(exc):
                raise
            raise Fail(f"storage unavailable, nothing stored: {exc.__class__.__name__}: {first_line(exc)}",
                       EX_TEMPFAIL) from None
    new = [i for i in ids if i is not None]
    try:
        dispatch.stored(settings, new)
    except Exception as exc:  # noqa: BLE001 - stored is what matters; the sweeper enqueues later
        print(f"mailagent: stored, but could not hand over to the workers ({exc}): the sweeper will",
              file=sys.stderr)
    skipped = f", {len(bad)} file(s) skipped" if bad else ""
    print(f"stored {len(new)} new message(s), {len(ids) - len(new)} already stored{skipped}", file=sys.stderr)
    return max(bad, default=0)


def cmd_messages_list(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.cli import rows as fields
    from mailagent.store import listings

    fields.print_listing([fields.message_row(m) for m in listings.messages(store(settings), limit=args.limit + 1)],
                         args, ["id", "received_at", "kind", "from", "subject", "state", "conversation_id",
                                "parse_error", "error"])
    return 0


def cmd_messages_show(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.cli import views

    url = store(settings)
    if args.raw:
        sys.stdout.buffer.write(views.raw_message(url, args.id))
        sys.stdout.buffer.flush()
        return 0
    print(views.message_detail(url, args.id))
    return 0


def cmd_conversations_list(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.cli import rows as fields
    from mailagent.store import listings

    fields.print_listing([fields.conversation_row(*found) for found in
                          listings.conversations(store(settings), limit=args.limit + 1)],
                         args, ["id", "last_message_at", "state", "customer", "subject", "messages", "replies"])
    return 0


def cmd_conversations_show(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.cli import views

    print(views.conversation_detail(store(settings), args.id))
    return 0


def cmd_conversations_takeover(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.review import ReviewError, takeover

    store(settings)
    rep = reviewer(args)
    with fail_on(ReviewError):
        (takeover.take if args.sub == "take" else takeover.release)(settings, args.id, rep)
    print(f"conversation {args.id} {'taken by ' + rep if args.sub == 'take' else 'released by ' + rep}")
    return 0


def register(sub: Subparsers) -> None:
    c = command(sub, "ingest", cmd_ingest, help="store RFC 5322 messages from files or stdin (MTA pipe)")
    c.add_argument("files", nargs="*", metavar="FILE", help="one message per file; - or nothing for stdin")
    c.add_argument("--mailbox", help="the mailbox these messages were sent to (default: from their headers)")

    msgs = group(sub, "messages", "stored inbound messages")
    c = command(msgs, "list", cmd_messages_list, help="the newest messages")
    json_flag(c)
    limit_flag(c)
    c = command(msgs, "show", cmd_messages_show, help="one message: envelope, parts, new text")
    id_arg(c, "message", "messages list")
    c.add_argument("--raw", action="store_true", help="print the stored bytes exactly")

    convs = group(sub, "conversations", "threads")
    c = command(convs, "list", cmd_conversations_list, help="the newest conversations")
    json_flag(c)
    limit_flag(c)
    c = command(convs, "show", cmd_conversations_show, help="one conversation, message by message")
    id_arg(c, "conversation", "conversations list")
    for name, text in (("take", "a rep takes over: no auto-send, no auto-approval"), ("release", "hand back to the agent")):
        c = command(convs, name, cmd_conversations_takeover, help=text)
        id_arg(c, "conversation", "conversations list")
        reviewer_flag(c)
