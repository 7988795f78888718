"""`db` and `traces`: the schema, and what the agent did step by step."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from mailagent.cli.common import Subparsers, command, group, store

if TYPE_CHECKING:
    from mailagent.config import Settings


def cmd_db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    from mailagent.store import db, schema

    schema.upgrade(settings.database.url)
    print(f"database is at the newest schema: {db.safe_url(settings.database.url)}")
    return 0


def cmd_traces_show(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.cli import views

    print(views.trace_detail(store(settings), args.conversation_id))
    return 0


def register(sub: Subparsers) -> None:
    traces = group(sub, "traces", "agent runs, step by step")
    c = command(traces, "show", cmd_traces_show, help="every run of a conversation: model calls, tools, checks")
    c.add_argument("conversation_id", type=int, help="a conversation id (`conversations list`)")

    dbp = group(sub, "db", "database schema")
    command(dbp, "upgrade", cmd_db_upgrade, help="apply migrations")
